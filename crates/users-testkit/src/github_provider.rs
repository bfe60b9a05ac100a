//! GitHub on loopback: the web side (`GITHUB_URL`: `/login/oauth/authorize`, and
//! `/login/oauth/access_token` answering JSON when asked with `Accept:
//! application/json`) and the REST API (`GITHUB_API_URL`: `/user`, `/user/emails`),
//! with the real paths, JSON shapes and quirks: a refused code is a 200 with
//! `{"error": "bad_verification_code"}`, the API wants a `User-Agent` (403 without)
//! and takes `Authorization: Bearer` or `token`. Two servers, like github.com and
//! api.github.com, so a test can take the API down alone.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// One address of `GET /user/emails`.
#[derive(Debug, Clone)]
pub struct GithubEmail {
    pub email: String,
    pub primary: bool,
    pub verified: bool,
}

/// Who GitHub says the user is.
#[derive(Debug, Clone)]
pub struct GithubUser {
    pub id: u64,
    pub login: String,
    /// The public profile email of `GET /user` (not necessarily verified).
    pub public_email: Option<String>,
    pub emails: Vec<GithubEmail>,
}

impl GithubUser {
    /// A user whose primary address is verified.
    pub fn new(id: u64, email: &str) -> GithubUser {
        GithubUser {
            id,
            login: format!("user{id}"),
            public_email: None,
            emails: vec![GithubEmail {
                email: email.to_owned(),
                primary: true,
                verified: true,
            }],
        }
    }
}

struct Grant {
    client_id: String,
    redirect_uri: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    user: GithubUser,
}

struct State {
    user: GithubUser,
    grants: HashMap<String, Grant>,
    tokens: HashMap<String, GithubUser>,
    authorizations: Vec<HashMap<String, String>>,
    token_requests: Vec<HashMap<String, String>>,
    /// (path, headers) of each API request.
    api_requests: Vec<(String, HashMap<String, String>)>,
    /// Answer every API request with this status.
    api_status: Option<u16>,
    serial: u64,
}

type Shared = web::Data<Mutex<State>>;

pub struct GithubProvider {
    web_url: String,
    api_url: String,
    state: Shared,
    web: ServerHandle,
    api: ServerHandle,
}

fn serve(state: &Shared, routes: fn(&mut web::ServiceConfig)) -> (String, ServerHandle) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let data = state.clone();
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(routes))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(0)
        .listen(listener)
        .expect("listen")
        .run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}"), handle)
}

impl GithubProvider {
    pub const CLIENT_ID: &'static str = "Iv1.loopback0client";
    pub const CLIENT_SECRET: &'static str = "loopback-github-client-secret";

    pub async fn start() -> GithubProvider {
        let state: Shared = web::Data::new(Mutex::new(State {
            user: GithubUser::new(1, "octocat@example.com"),
            grants: HashMap::new(),
            tokens: HashMap::new(),
            authorizations: Vec::new(),
            token_requests: Vec::new(),
            api_requests: Vec::new(),
            api_status: None,
            serial: 0,
        }));
        let (web_url, web) = serve(&state, |cfg| {
            cfg.route("/login/oauth/authorize", web::get().to(authorize))
                .route("/login/oauth/access_token", web::post().to(access_token));
        });
        // Like GitHub Enterprise Server: the API under a path.
        let (api_base, api) = serve(&state, |cfg| {
            cfg.route("/api/v3/user", web::get().to(user))
                .route("/api/v3/user/emails", web::get().to(emails));
        });
        GithubProvider {
            web_url,
            api_url: format!("{api_base}/api/v3"),
            state,
            web,
            api,
        }
    }

    /// `GITHUB_URL`.
    pub fn web_url(&self) -> String {
        self.web_url.clone()
    }

    /// `GITHUB_API_URL`.
    pub fn api_url(&self) -> String {
        self.api_url.clone()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Who the next authorizations sign in.
    pub fn set_user(&self, user: GithubUser) {
        self.state().user = user;
    }

    /// Every API request answers this status from now on (`None`: normal service).
    pub fn set_api_status(&self, status: Option<u16>) {
        self.state().api_status = status;
    }

    /// Takes the REST API down (connections refused); the web side stays.
    pub async fn stop_api(&self) {
        self.api.stop(false).await;
    }

    pub fn authorizations(&self) -> Vec<HashMap<String, String>> {
        self.state().authorizations.clone()
    }

    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.state().token_requests.clone()
    }

    pub fn api_requests(&self) -> Vec<(String, HashMap<String, String>)> {
        self.state().api_requests.clone()
    }

    /// Follows an authorization URL as a browser would (the user consents at once):
    /// the `code` and `state` GitHub redirects back with.
    pub async fn authorize(&self, authorization_url: &str) -> (String, String) {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let response = client.get(authorization_url).send().await.unwrap();
        let status = response.status();
        let Some(location) = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
        else {
            let body = response.text().await.unwrap_or_default();
            panic!("/login/oauth/authorize answered {status} without a redirect: {body}");
        };
        let location = reqwest::Url::parse(&location).unwrap();
        let query: HashMap<String, String> = location.query_pairs().into_owned().collect();
        (
            query.get("code").cloned().expect("a code in the redirect"),
            query.get("state").cloned().unwrap_or_default(),
        )
    }
}

impl Drop for GithubProvider {
    fn drop(&mut self) {
        drop(self.web.stop(false));
        drop(self.api.stop(false));
    }
}

async fn authorize(state: Shared, query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let query = query.into_inner();
    let mut s = state.lock().unwrap();
    s.authorizations.push(query.clone());
    if query.get("client_id").map(String::as_str) != Some(GithubProvider::CLIENT_ID) {
        return HttpResponse::NotFound().body("unknown client_id");
    }
    let Some(redirect_uri) = query.get("redirect_uri").cloned() else {
        return HttpResponse::BadRequest().body("redirect_uri is required here");
    };
    s.serial += 1;
    let code = format!("{:020x}", s.serial);
    let grant = Grant {
        client_id: GithubProvider::CLIENT_ID.to_owned(),
        redirect_uri: Some(redirect_uri.clone()),
        code_challenge: query.get("code_challenge").cloned(),
        code_challenge_method: query.get("code_challenge_method").cloned(),
        user: s.user.clone(),
    };
    s.grants.insert(code.clone(), grant);
    let mut location = reqwest::Url::parse(&redirect_uri).unwrap();
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(st) = query.get("state") {
        location.query_pairs_mut().append_pair("state", st);
    }
    HttpResponse::Found()
        .insert_header(("Location", location.to_string()))
        .finish()
}

/// GitHub's token errors come as 200 with an `error` (as JSON when JSON was asked for).
fn token_error(error: &str) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "error": error,
        "error_description": "The code passed is incorrect or expired.",
        "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
    }))
}

async fn access_token(
    state: Shared,
    request: HttpRequest,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let form = form.into_inner();
    let mut s = state.lock().unwrap();
    let mut recorded = form.clone();
    for header in ["accept", "authorization", "user-agent"] {
        if let Some(v) = request.headers().get(header).and_then(|h| h.to_str().ok()) {
            recorded.insert(header.to_owned(), v.to_owned());
        }
    }
    s.token_requests.push(recorded);
    let wants_json = request
        .headers()
        .get("accept")
        .and_then(|h| h.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if !wants_json {
        // GitHub's default answer is a form, which no JSON client reads.
        return HttpResponse::Ok()
            .content_type("application/x-www-form-urlencoded")
            .body("error=not_json_asked");
    }
    if form.get("client_id").map(String::as_str) != Some(GithubProvider::CLIENT_ID)
        || form.get("client_secret").map(String::as_str) != Some(GithubProvider::CLIENT_SECRET)
    {
        return token_error("incorrect_client_credentials");
    }
    // A code is spent by its first use, good or bad.
    let Some(grant) = form.get("code").and_then(|c| s.grants.remove(c)) else {
        return token_error("bad_verification_code");
    };
    if grant.client_id != GithubProvider::CLIENT_ID
        || grant.redirect_uri.as_ref() != form.get("redirect_uri")
    {
        return token_error("redirect_uri_mismatch");
    }
    if let Some(challenge) = &grant.code_challenge {
        let verified = grant.code_challenge_method.as_deref() == Some("S256")
            && form.get("code_verifier").is_some_and(|v| {
                URL_SAFE_NO_PAD.encode(Sha256::digest(v.as_bytes())) == *challenge
            });
        if !verified {
            return token_error("bad_verification_code");
        }
    }
    s.serial += 1;
    let token = format!("gho_{:036}", s.serial);
    s.tokens.insert(token.clone(), grant.user);
    HttpResponse::Ok().json(json!({
        "access_token": token,
        "token_type": "bearer",
        "scope": "read:user,user:email",
    }))
}

/// The API's checks: a User-Agent, a known token (Bearer or `token`). The user, or the
/// answer to give instead.
fn api_user(state: &Shared, request: &HttpRequest) -> Result<GithubUser, Box<HttpResponse>> {
    let mut s = state.lock().unwrap();
    let headers: HashMap<String, String> = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    s.api_requests
        .push((request.path().to_owned(), headers.clone()));
    if let Some(status) = s.api_status {
        return Err(Box::new(
            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .json(json!({"message": "Service unavailable"})),
        ));
    }
    if !headers.contains_key("user-agent") {
        return Err(Box::new(HttpResponse::Forbidden().body(
            "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
        )));
    }
    let token = headers.get("authorization").and_then(|a| {
        a.strip_prefix("Bearer ")
            .or_else(|| a.strip_prefix("token "))
    });
    match token.and_then(|t| s.tokens.get(t)) {
        Some(user) => Ok(user.clone()),
        None => Err(Box::new(HttpResponse::Unauthorized().json(json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
            "status": "401",
        })))),
    }
}

async fn user(state: Shared, request: HttpRequest) -> HttpResponse {
    match api_user(&state, &request) {
        Ok(u) => HttpResponse::Ok().json(json!({
            "login": u.login,
            "id": u.id,
            "node_id": "MDQ6VXNlcjE=",
            "type": "User",
            "site_admin": false,
            "name": "The Octocat",
            "email": u.public_email,
        })),
        Err(answer) => *answer,
    }
}

async fn emails(state: Shared, request: HttpRequest) -> HttpResponse {
    match api_user(&state, &request) {
        Ok(u) => HttpResponse::Ok().json(
            u.emails
                .iter()
                .map(|e| {
                    json!({
                        "email": e.email,
                        "primary": e.primary,
                        "verified": e.verified,
                        "visibility": if e.primary { Value::from("public") } else { Value::Null },
                    })
                })
                .collect::<Vec<_>>(),
        ),
        Err(answer) => *answer,
    }
}
