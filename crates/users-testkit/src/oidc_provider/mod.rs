//! An OpenID provider on loopback, standing in for Google (or any OpenID provider) in
//! tests: discovery, JWKS, authorize, token and userinfo, with knobs to choose its
//! signing key and client authentication, spoil id_tokens, rotate the signing key,
//! slow down or go away.
//!
//! Shared by the users-upstream tests and the api tests (each includes this file as a
//! module), so it only uses crates both have: actix-web, base64, jsonwebtoken,
//! reqwest, serde_json, sha2, tokio.

// Each test binary uses a different part of this.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

mod id_token;
mod keys;

use id_token::id_token;
pub use id_token::Tamper;
pub use keys::TestKey;

/// Who the provider says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub sub: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

impl Identity {
    /// A user with a verified email.
    pub fn new(sub: &str, email: &str) -> Identity {
        Identity {
            sub: sub.to_owned(),
            email: Some(email.to_owned()),
            email_verified: true,
        }
    }
}

/// One authorization, from `/authorize` until its code is redeemed.
struct Grant {
    client_id: String,
    redirect_uri: String,
    nonce: Option<String>,
    code_challenge: String,
    scope: String,
    identity: Identity,
}

struct State {
    base_url: String,
    auth_method: String,
    key: TestKey,
    identity: Identity,
    tamper: Tamper,
    email_in_id_token: bool,
    userinfo_identity: Option<Identity>,
    discovery_patch: Map<String, Value>,
    latency: Duration,
    rotated: bool,
    grants: HashMap<String, Grant>,
    access_tokens: HashMap<String, Identity>,
    authorizations: Vec<HashMap<String, String>>,
    token_requests: Vec<HashMap<String, String>>,
    jwks_requests: usize,
    serial: u64,
}

type Shared = web::Data<Mutex<State>>;

/// A running provider; its state is shared with the server's handlers.
pub struct OidcProvider {
    base_url: String,
    state: Shared,
    handle: ServerHandle,
}

impl OidcProvider {
    /// The client the provider knows.
    pub const CLIENT_ID: &'static str = "test-client.apps.example";
    pub const CLIENT_SECRET: &'static str = "test-client-secret";
    /// The kid of the key published from the start.
    pub const KID: &'static str = "oidc-test-key-1";
    /// The kid of the key published, and signed with, after [`Self::rotate_key`].
    pub const ROTATED_KID: &'static str = "oidc-test-key-2";
    /// The kid of the P-256 key ([`TestKey::Ec`]).
    pub const EC_KID: &'static str = "oidc-ec-test-key-1";

    /// A provider that authenticates clients with `client_secret_post`.
    pub async fn start() -> OidcProvider {
        Self::start_with("client_secret_post").await
    }

    /// `auth_method`: `client_secret_post` or `client_secret_basic`.
    pub async fn start_with(auth_method: &str) -> OidcProvider {
        Self::start_with_key(auth_method, TestKey::Rsa).await
    }

    /// A provider signing id_tokens with `key`.
    pub async fn start_with_key(auth_method: &str, key: TestKey) -> OidcProvider {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the provider");
        Self::start_on(listener, auth_method, key)
    }

    /// A provider on a listener the test chose (a port configured before it listens).
    pub fn start_on(
        listener: std::net::TcpListener,
        auth_method: &str,
        key: TestKey,
    ) -> OidcProvider {
        assert!(
            matches!(auth_method, "client_secret_post" | "client_secret_basic"),
            "unsupported auth method {auth_method}"
        );
        let port = listener.local_addr().expect("provider address").port();
        let base_url = format!("http://127.0.0.1:{port}");
        let state: Shared = web::Data::new(Mutex::new(State {
            base_url: base_url.clone(),
            auth_method: auth_method.to_owned(),
            key,
            identity: Identity::new("google-user-1", "alice@example.com"),
            tamper: Tamper::None,
            email_in_id_token: true,
            userinfo_identity: None,
            discovery_patch: Map::new(),
            latency: Duration::ZERO,
            rotated: false,
            grants: HashMap::new(),
            access_tokens: HashMap::new(),
            authorizations: Vec::new(),
            token_requests: Vec::new(),
            jwks_requests: 0,
            serial: 0,
        }));
        let data = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(discovery),
                )
                .route("/jwks", web::get().to(jwks))
                .route("/authorize", web::get().to(authorize))
                .route("/token", web::post().to(token))
                .route("/userinfo", web::get().to(userinfo))
        })
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        OidcProvider {
            base_url,
            state,
            handle,
        }
    }

    /// The issuer, which is also the base URL: `http://127.0.0.1:<port>`.
    pub fn issuer(&self) -> String {
        self.base_url.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Who the next authorizations sign in.
    pub fn set_identity(&self, identity: Identity) {
        self.state().identity = identity;
    }

    /// How the id_tokens issued from now on are spoiled.
    pub fn set_tamper(&self, tamper: Tamper) {
        self.state().tamper = tamper;
    }

    /// With `false`, id_tokens leave out `email` and `email_verified`; userinfo still
    /// answers them.
    pub fn set_email_in_id_token(&self, include: bool) {
        self.state().email_in_id_token = include;
    }

    /// Makes userinfo answer this identity instead of the token's (`None`: the token's).
    pub fn set_userinfo_identity(&self, identity: Option<Identity>) {
        self.state().userinfo_identity = identity;
    }

    /// Merges `patch` (a JSON object) into the discovery document; `null` removes a field.
    pub fn patch_discovery(&self, patch: Value) {
        let Value::Object(fields) = patch else {
            panic!("the discovery patch must be an object")
        };
        self.state().discovery_patch.extend(fields);
    }

    /// Every endpoint waits this long before answering.
    pub fn set_latency(&self, latency: Duration) {
        self.state().latency = latency;
    }

    /// Publishes a second key and signs with it from now on, under [`Self::ROTATED_KID`].
    pub fn rotate_key(&self) {
        self.state().rotated = true;
    }

    /// The query of each `/authorize` request, in order.
    pub fn authorizations(&self) -> Vec<HashMap<String, String>> {
        self.state().authorizations.clone()
    }

    /// The form fields of each `/token` request, in order, plus an `authorization` key
    /// holding the Authorization header when one came.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.state().token_requests.clone()
    }

    /// How many times `/jwks` was fetched.
    pub fn jwks_requests(&self) -> usize {
        self.state().jwks_requests
    }

    /// Takes the provider down: once this returns, connections are refused.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }

    /// Follows an authorization URL the way a browser would (the user consents at
    /// once) and returns the `code` and `state` the provider redirects back with.
    pub async fn authorize(&self, authorization_url: &str) -> (String, String) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = client.get(authorization_url).send().await.unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned());
        let Some(location) = location else {
            let body = response.text().await.unwrap_or_default();
            panic!("/authorize answered {status} without a redirect: {body}");
        };
        let location = reqwest::Url::parse(&location).unwrap();
        let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
        (
            query.get("code").cloned().expect("a code in the redirect"),
            query.get("state").cloned().unwrap_or_default(),
        )
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // Not awaited: the server winds down on its own once told.
        drop(self.handle.stop(false));
    }
}

async fn delay(state: &Shared) {
    let latency = state.lock().unwrap().latency;
    if !latency.is_zero() {
        actix_web::rt::time::sleep(latency).await;
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn oauth_error(status: u16, error: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({ "error": error }))
}

async fn discovery(state: Shared) -> HttpResponse {
    delay(&state).await;
    let s = state.lock().unwrap();
    let base = &s.base_url;
    let mut doc = json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "userinfo_endpoint": format!("{base}/userinfo"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [s.key.alg_name()],
        "scopes_supported": ["openid", "email", "profile"],
        "token_endpoint_auth_methods_supported": [s.auth_method],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["aud", "email", "email_verified", "exp", "iat", "iss", "sub"],
    });
    let fields = doc.as_object_mut().unwrap();
    for (name, value) in &s.discovery_patch {
        if value.is_null() {
            fields.remove(name);
        } else {
            fields.insert(name.clone(), value.clone());
        }
    }
    HttpResponse::Ok().json(doc)
}

async fn jwks(state: Shared) -> HttpResponse {
    delay(&state).await;
    let mut s = state.lock().unwrap();
    s.jwks_requests += 1;
    let mut keys = vec![s.key.public_jwk()];
    if s.rotated {
        keys.push(TestKey::OtherRsa.public_jwk());
    }
    HttpResponse::Ok().json(json!({ "keys": keys }))
}

async fn authorize(state: Shared, query: web::Query<HashMap<String, String>>) -> HttpResponse {
    delay(&state).await;
    let query = query.into_inner();
    let mut s = state.lock().unwrap();
    s.authorizations.push(query.clone());
    let param = |name: &str| query.get(name).map(String::as_str);
    let problem = if param("response_type") != Some("code") {
        Some("response_type must be code")
    } else if param("client_id") != Some(OidcProvider::CLIENT_ID) {
        Some("unknown client_id")
    } else if param("redirect_uri").is_none_or(|u| reqwest::Url::parse(u).is_err()) {
        Some("redirect_uri missing or not a URL")
    } else if param("code_challenge").is_none() || param("code_challenge_method") != Some("S256") {
        Some("PKCE with S256 is required")
    } else if !param("scope").is_some_and(|s| s.split(' ').any(|s| s == "openid")) {
        Some("scope must contain openid")
    } else {
        None
    };
    if let Some(problem) = problem {
        return HttpResponse::BadRequest().body(problem);
    }

    s.serial += 1;
    let code = format!("code-{}-{}", s.serial, unix_now());
    let redirect_uri = query["redirect_uri"].clone();
    let grant = Grant {
        client_id: query["client_id"].clone(),
        redirect_uri: redirect_uri.clone(),
        nonce: query.get("nonce").cloned(),
        code_challenge: query["code_challenge"].clone(),
        scope: query["scope"].clone(),
        identity: s.identity.clone(),
    };
    s.grants.insert(code.clone(), grant);

    let mut location = reqwest::Url::parse(&redirect_uri).unwrap();
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(state_param) = query.get("state") {
        location.query_pairs_mut().append_pair("state", state_param);
    }
    HttpResponse::Found()
        .insert_header(("Location", location.to_string()))
        .finish()
}

/// Client authentication by the configured method only: the client_id, or `None`.
fn authenticate(
    s: &State,
    authorization: Option<&str>,
    form: &HashMap<String, String>,
) -> Option<String> {
    let known = |id: &str, secret: &str| {
        id == OidcProvider::CLIENT_ID && secret == OidcProvider::CLIENT_SECRET
    };
    if s.auth_method == "client_secret_basic" {
        if form.contains_key("client_secret") {
            return None;
        }
        let credentials = authorization?.strip_prefix("Basic ")?;
        let decoded = String::from_utf8(STANDARD.decode(credentials).ok()?).ok()?;
        // The test credentials need no form-urlencoding, so none is undone here.
        let (id, secret) = decoded.split_once(':')?;
        known(id, secret).then(|| id.to_owned())
    } else {
        if authorization.is_some() {
            return None;
        }
        let id = form.get("client_id")?;
        known(id, form.get("client_secret")?).then(|| id.clone())
    }
}

async fn token(
    state: Shared,
    request: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    delay(&state).await;
    let form = form.into_inner();
    let authorization = request
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    let mut s = state.lock().unwrap();
    let mut recorded = form.clone();
    if let Some(a) = &authorization {
        recorded.insert("authorization".into(), a.clone());
    }
    if let Some(t) = request
        .headers()
        .get("traceparent")
        .and_then(|h| h.to_str().ok())
    {
        recorded.insert("traceparent".into(), t.to_owned());
    }
    s.token_requests.push(recorded);

    let Some(client_id) = authenticate(&s, authorization.as_deref(), &form) else {
        return oauth_error(401, "invalid_client");
    };
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(400, "unsupported_grant_type");
    }
    // Removed before any check: a code is spent by its first use, good or bad.
    let Some(grant) = form.get("code").and_then(|c| s.grants.remove(c)) else {
        return oauth_error(400, "invalid_grant");
    };
    let verifier_ok = form.get("code_verifier").is_some_and(|v| {
        URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == grant.code_challenge
    });
    if grant.client_id != client_id
        || form.get("redirect_uri") != Some(&grant.redirect_uri)
        || !verifier_ok
    {
        return oauth_error(400, "invalid_grant");
    }

    s.serial += 1;
    let access_token = format!("access-{}", s.serial);
    s.access_tokens
        .insert(access_token.clone(), grant.identity.clone());
    let mut answer = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 3599,
        "refresh_token": format!("refresh-{}", s.serial),
        "scope": grant.scope,
    });
    if let Some(id_token) = id_token(&s, &grant) {
        answer["id_token"] = json!(id_token);
    }
    HttpResponse::Ok().json(answer)
}

async fn userinfo(state: Shared, request: HttpRequest) -> HttpResponse {
    delay(&state).await;
    let s = state.lock().unwrap();
    let token = request
        .headers()
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let Some(identity) = token.and_then(|t| s.access_tokens.get(t)) else {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""))
            .finish();
    };
    let identity = s.userinfo_identity.as_ref().unwrap_or(identity);
    let mut answer = json!({
        "sub": identity.sub,
        "email_verified": identity.email_verified,
    });
    if let Some(email) = &identity.email {
        answer["email"] = json!(email);
    }
    HttpResponse::Ok().json(answer)
}
