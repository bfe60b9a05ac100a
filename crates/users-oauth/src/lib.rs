//! "Sign in with Google" as a full OpenID Connect client.
//!
//! [`GoogleClient::discover`] reads the provider's discovery document once; the client
//! then builds authorization URLs (state, nonce, PKCE S256), exchanges codes at the
//! token endpoint, and verifies the returned id_token (RS256 against the provider's
//! JWKS, `iss`, `aud`, `exp`, `iat`, `nonce`) before anyone is signed in. The issuer
//! is configurable, so the tests run the whole flow against a loopback provider.
//!
//! Nothing here ever puts the client secret, an authorization code or a token into an
//! error message or a `Debug` output: errors end up in logs and HTTP answers.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, ExtraTokenFields, HttpClientError, HttpRequest, HttpResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use rand::RngCore;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

/// Google's issuer, the default of `GOOGLE_ISSUER_URL`.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// Google documents that its id_tokens may carry the issuer without the scheme.
const GOOGLE_BARE_ISSUER: &str = "accounts.google.com";

/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: i64 = 60;

/// An unknown `kid` may be a key rotation, so it triggers a JWKS refetch; anyone can
/// mint tokens with made-up kids, so refetches are limited to one a minute.
const JWKS_REFETCH_INTERVAL_SECS: i64 = 60;

/// Keys the provider withdrew should not stay trusted forever.
const JWKS_MAX_AGE_SECS: i64 = 3600;

/// Scopes every authorization asks for: `openid` makes it OpenID Connect, `email` is
/// what accounts are keyed on, `profile` is what fastapi-users asks Google for.
const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// How to reach the OpenID provider and who we are to it.
#[derive(Clone, Debug)]
pub struct GoogleConfig {
    /// `GOOGLE_ISSUER_URL`; [`GOOGLE_ISSUER`] in production.
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Bounds every HTTP call to the provider (connecting included).
    pub timeout: Duration,
}

/// What a verified id_token (or userinfo) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoogleIdentity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

/// Tokens from the token endpoint. `Debug` does not print them.
pub struct ProviderTokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Unix seconds, from `expires_in`.
    pub expires_at: Option<i64>,
    /// The raw id_token, unverified until [`GoogleClient::verify_id_token`] says so.
    pub id_token: Option<String>,
}

impl fmt::Debug for ProviderTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderTokens")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GoogleError {
    /// The provider could not be reached, timed out, answered 5xx or garbage → 502.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (invalid_grant etc., a 4xx) → 400.
    #[error("the identity provider refused the request: {0}")]
    Rejected(String),
    /// The id_token failed verification (signature, alg, kid, iss, aud, exp, iat,
    /// nonce, missing) → 400.
    #[error("invalid id_token: {0}")]
    InvalidIdToken(String),
    /// Discovery document unusable → logged; the server answers 503 meanwhile.
    #[error("invalid discovery document: {0}")]
    Discovery(String),
}

fn invalid(reason: impl Into<String>) -> GoogleError {
    GoogleError::InvalidIdToken(reason.into())
}

/// A fresh PKCE pair: (verifier, S256 challenge).
pub fn pkce_pair() -> (String, String) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    (verifier.secret().clone(), challenge.as_str().to_owned())
}

/// 32 random bytes, base64url (no padding).
pub fn random_nonce() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The id_token rides along in the token response; oauth2 knows only OAuth fields.
#[derive(Clone, Deserialize, Serialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTokenField")
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

type TokenError = RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>;

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    jwks_uri: Option<String>,
    userinfo_endpoint: Option<String>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    id_token_signing_alg_values_supported: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    Basic,
    Post,
}

impl ClientAuth {
    /// RFC 8414: an absent list means `client_secret_basic`.
    fn choose(supported: Option<&[String]>) -> ClientAuth {
        match supported {
            None => ClientAuth::Basic,
            Some(methods) if methods.iter().any(|m| m == "client_secret_basic") => {
                ClientAuth::Basic
            }
            Some(_) => ClientAuth::Post,
        }
    }
}

struct Endpoints {
    issuer: String,
    authorization: Url,
    token: Url,
    jwks: Url,
    userinfo: Option<Url>,
    client_auth: ClientAuth,
}

#[derive(Default)]
struct JwksCache {
    keys: HashMap<String, DecodingKey>,
    /// Unix seconds of the last successful fetch, on the callers' clock.
    fetched_at: Option<i64>,
}

impl JwksCache {
    fn may_refetch(&self, now: i64) -> bool {
        match self.fetched_at {
            None => true,
            // A clock that went backwards must not freeze the cache.
            Some(at) => now < at || now - at >= JWKS_REFETCH_INTERVAL_SECS,
        }
    }

    fn is_stale(&self, now: i64) -> bool {
        match self.fetched_at {
            None => true,
            Some(at) => now < at || now - at >= JWKS_MAX_AGE_SECS,
        }
    }
}

struct Inner {
    client_id: String,
    endpoints: Endpoints,
    oauth: OAuthClient,
    http: reqwest::Client,
    jwks: Mutex<JwksCache>,
}

/// An OpenID Connect client bound to one discovered provider. Cheap to clone.
#[derive(Clone)]
pub struct GoogleClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for GoogleClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.inner.endpoints;
        f.debug_struct("GoogleClient")
            .field("issuer", &e.issuer)
            .field("client_id", &self.inner.client_id)
            .field("authorization_endpoint", &e.authorization.as_str())
            .field("token_endpoint", &e.token.as_str())
            .field("jwks_uri", &e.jwks.as_str())
            .field("userinfo_endpoint", &e.userinfo.as_ref().map(Url::as_str))
            .field("client_auth", &e.client_auth)
            .finish_non_exhaustive()
    }
}

impl GoogleClient {
    /// Reads `{issuer_url}/.well-known/openid-configuration`.
    pub async fn discover(config: GoogleConfig) -> Result<GoogleClient, GoogleError> {
        let http = reqwest::Client::builder()
            // Following redirects would let the provider steer our requests elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("users-oauth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                GoogleError::Unavailable(format!("cannot build the HTTP client: {}", describe(&e)))
            })?;

        let base = config.issuer_url.trim_end_matches('/');
        let base_url = Url::parse(base).map_err(|e| {
            GoogleError::Discovery(format!("the issuer URL {base:?} is not a URL: {e}"))
        })?;
        if !matches!(base_url.scheme(), "https" | "http") {
            return Err(GoogleError::Discovery(format!(
                "the issuer URL {base:?} is not http(s)"
            )));
        }
        let require_https = base_url.scheme() == "https";

        let url = format!("{base}/.well-known/openid-configuration");
        let response = http
            .get(&url)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| GoogleError::Unavailable(format!("discovery: {}", describe(&e))))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(GoogleError::Unavailable(format!(
                "{url} answered HTTP {status}"
            )));
        }
        if !status.is_success() {
            return Err(GoogleError::Discovery(format!(
                "{url} answered HTTP {status}"
            )));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| GoogleError::Unavailable(format!("discovery: {}", describe(&e))))?;
        let doc: DiscoveryDocument = serde_json::from_slice(&body)
            .map_err(|e| GoogleError::Discovery(format!("{url} is not the expected JSON: {e}")))?;

        let issuer = doc
            .issuer
            .ok_or_else(|| GoogleError::Discovery("no issuer".into()))?;
        if issuer.trim_end_matches('/') != base {
            return Err(GoogleError::Discovery(format!(
                "the document's issuer {issuer:?} is not the configured {base:?}"
            )));
        }
        if let Some(algs) = &doc.id_token_signing_alg_values_supported {
            if !algs.iter().any(|a| a == "RS256") {
                return Err(GoogleError::Discovery(
                    "the provider does not sign id_tokens with RS256".into(),
                ));
            }
        }
        let endpoint = |name: &str, value: Option<String>| -> Result<Url, GoogleError> {
            let value = value.ok_or_else(|| GoogleError::Discovery(format!("no {name}")))?;
            let url = Url::parse(&value)
                .map_err(|e| GoogleError::Discovery(format!("{name} is not a URL: {e}")))?;
            let scheme_ok = match url.scheme() {
                "https" => true,
                "http" => !require_https,
                _ => false,
            };
            if !scheme_ok {
                return Err(GoogleError::Discovery(format!(
                    "{name} {value:?} does not use the issuer's scheme"
                )));
            }
            Ok(url)
        };
        let endpoints = Endpoints {
            authorization: endpoint("authorization_endpoint", doc.authorization_endpoint)?,
            token: endpoint("token_endpoint", doc.token_endpoint)?,
            jwks: endpoint("jwks_uri", doc.jwks_uri)?,
            userinfo: doc
                .userinfo_endpoint
                .map(|u| endpoint("userinfo_endpoint", Some(u)))
                .transpose()?,
            client_auth: ClientAuth::choose(doc.token_endpoint_auth_methods_supported.as_deref()),
            issuer,
        };

        let oauth = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                config.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::from_url(endpoints.authorization.clone()))
            .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
            .set_auth_type(match endpoints.client_auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::Post => AuthType::RequestBody,
            });

        Ok(GoogleClient {
            inner: Arc::new(Inner {
                client_id: config.client_id,
                endpoints,
                oauth,
                http,
                jwks: Mutex::new(JwksCache::default()),
            }),
        })
    }

    /// The issuer named by the discovery document.
    pub fn issuer(&self) -> &str {
        &self.inner.endpoints.issuer
    }

    /// The URL to send the browser to. `scopes` adds to `openid email profile`.
    pub fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        pkce_challenge: &str,
        scopes: &[String],
    ) -> String {
        let mut request = self
            .inner
            .oauth
            .authorize_url(|| CsrfToken::new(state.to_owned()));
        for scope in scope_list(scopes) {
            request = request.add_scope(Scope::new(scope));
        }
        request = match RedirectUrl::new(redirect_uri.to_owned()) {
            Ok(url) => request.set_redirect_uri(Cow::Owned(url)),
            // Keeps the signature infallible: the provider refuses such a URI itself.
            Err(_) => request.add_extra_param("redirect_uri", redirect_uri),
        };
        // oauth2 only builds a challenge from a verifier it holds; ours is kept by the
        // caller between the two requests, so the challenge goes in as given.
        let (url, _state) = request
            .add_extra_param("nonce", nonce)
            .add_extra_param("code_challenge", pkce_challenge)
            .add_extra_param("code_challenge_method", "S256")
            .url();
        url.to_string()
    }

    /// Exchanges the authorization code at the token endpoint.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
    ) -> Result<ProviderTokens, GoogleError> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| GoogleError::Rejected("the redirect_uri is not a URL".into()))?;
        let send = StatusRecorder {
            http: &self.inner.http,
            status: AtomicU16::new(0),
        };
        let response = self
            .inner
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .set_redirect_uri(Cow::Owned(redirect))
            .request_async(&send)
            .await
            .map_err(|e| token_error(e, send.status.load(Ordering::Relaxed)))?;

        let expires_at = response
            .expires_in()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .and_then(|secs| unix_now().checked_add(secs));
        Ok(ProviderTokens {
            access_token: SecretString::from(response.access_token().secret().clone()),
            refresh_token: response
                .refresh_token()
                .map(|t| SecretString::from(t.secret().clone())),
            expires_at,
            id_token: response.extra_fields().id_token.clone(),
        })
    }

    /// Verifies an id_token's signature and claims; `now_secs` is unix time.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        expected_nonce: &str,
        now_secs: i64,
    ) -> Result<GoogleIdentity, GoogleError> {
        let header = jsonwebtoken::decode_header(id_token)
            .map_err(|_| invalid("malformed header, or an unknown alg"))?;
        // Only RS256 keys are published; accepting the header's word for anything else
        // opens the alg-confusion attacks (HS256 keyed with the public key, "none").
        if header.alg != Algorithm::RS256 {
            return Err(invalid(format!("alg {:?} is not RS256", header.alg)));
        }
        let kid = header.kid.ok_or_else(|| invalid("no kid in the header"))?;
        let key = self.decoding_key(&kid, now_secs).await?;

        // Time and audience checks use the caller's clock and rules, below.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<IdTokenClaims>(id_token, &key, &validation)
            .map_err(|e| invalid(jwt_error(e.kind())))?;

        check_claims(
            data.claims,
            &accepted_issuers(&self.inner.endpoints.issuer),
            &self.inner.client_id,
            expected_nonce,
            now_secs,
        )
    }

    /// Asks the userinfo endpoint who the access token belongs to.
    pub async fn userinfo(
        &self,
        access_token: &SecretString,
    ) -> Result<GoogleIdentity, GoogleError> {
        let url = self.inner.endpoints.userinfo.as_ref().ok_or_else(|| {
            GoogleError::Discovery("the provider publishes no userinfo_endpoint".into())
        })?;
        let (status, body) = self.get("userinfo", url, Some(access_token)).await?;
        if status.is_client_error() {
            return Err(GoogleError::Rejected(format!(
                "the userinfo endpoint answered HTTP {status}"
            )));
        }
        if !status.is_success() {
            return Err(GoogleError::Unavailable(format!(
                "the userinfo endpoint answered HTTP {status}"
            )));
        }
        let info: UserInfo = serde_json::from_slice(&body).map_err(|_| {
            GoogleError::Unavailable("the userinfo answer is not the expected JSON".into())
        })?;
        if info.sub.is_empty() {
            return Err(GoogleError::Unavailable(
                "the userinfo answer has an empty sub".into(),
            ));
        }
        Ok(GoogleIdentity {
            subject: info.sub,
            email: info.email,
            email_verified: email_verified(info.email_verified.as_ref()),
        })
    }

    /// The whole callback: exchange, verify the id_token, and ask userinfo for the
    /// email if the id_token has none.
    pub async fn sign_in(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        nonce: &str,
        now_secs: i64,
    ) -> Result<(GoogleIdentity, ProviderTokens), GoogleError> {
        let tokens = self
            .exchange_code(code, redirect_uri, pkce_verifier)
            .await?;
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| invalid("the token response has no id_token"))?;
        let mut identity = self.verify_id_token(id_token, nonce, now_secs).await?;
        if identity.email.is_none() && self.inner.endpoints.userinfo.is_some() {
            let info = self.userinfo(&tokens.access_token).await?;
            // Without this, a token for one account could lend its email to another.
            if info.subject != identity.subject {
                return Err(invalid("userinfo names another subject than the id_token"));
            }
            identity.email = info.email;
            identity.email_verified = info.email_verified;
        }
        Ok((identity, tokens))
    }

    async fn decoding_key(&self, kid: &str, now: i64) -> Result<DecodingKey, GoogleError> {
        let (cached, refetch) = {
            let cache = self.jwks();
            let cached = cache.keys.get(kid).cloned();
            let refetch = match cached {
                Some(_) => cache.is_stale(now),
                None => cache.may_refetch(now),
            };
            (cached, refetch)
        };
        let unknown = || invalid("no key of the provider's JWKS has the token's kid");
        if !refetch {
            return cached.ok_or_else(unknown);
        }
        match self.fetch_jwks().await {
            Ok(keys) => {
                let mut cache = self.jwks();
                cache.keys = keys;
                cache.fetched_at = Some(now);
                cache.keys.get(kid).cloned().ok_or_else(unknown)
            }
            // A stale key beats no sign-in while the provider hiccups.
            Err(e) => match cached {
                Some(key) => {
                    tracing::warn!(error = %e, "JWKS refresh failed; using the cached key");
                    Ok(key)
                }
                None => Err(e),
            },
        }
    }

    fn jwks(&self) -> MutexGuard<'_, JwksCache> {
        // The cache is always consistent between statements, so a panic elsewhere
        // while it was held leaves nothing to repair.
        self.inner
            .jwks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn fetch_jwks(&self) -> Result<HashMap<String, DecodingKey>, GoogleError> {
        let (status, body) = self.get("JWKS", &self.inner.endpoints.jwks, None).await?;
        if !status.is_success() {
            return Err(GoogleError::Unavailable(format!(
                "the JWKS endpoint answered HTTP {status}"
            )));
        }
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|_| GoogleError::Unavailable("the JWKS is not the expected JSON".into()))?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .into_iter()
            // Keys of other kinds may sit next to ours; they are not an error.
            .filter_map(|value| serde_json::from_value::<RsaJwk>(value).ok())
            .filter(|jwk| {
                jwk.kty == "RSA"
                    && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
                    && jwk.key_use.as_deref().is_none_or(|u| u == "sig")
            })
            .filter_map(|jwk| {
                let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).ok()?;
                Some((jwk.kid?, key))
            })
            .collect();
        if keys.is_empty() {
            return Err(GoogleError::Unavailable(
                "the JWKS has no usable RS256 key".into(),
            ));
        }
        Ok(keys)
    }

    async fn get(
        &self,
        what: &str,
        url: &Url,
        bearer: Option<&SecretString>,
    ) -> Result<(StatusCode, Vec<u8>), GoogleError> {
        let mut request = self
            .inner
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token.expose_secret());
        }
        let unavailable =
            |e: reqwest::Error| GoogleError::Unavailable(format!("{what}: {}", describe(&e)));
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unavailable)?;
        Ok((status, body.to_vec()))
    }
}

/// oauth2 folds every non-200 answer into one error type; the status is what tells
/// "the provider refused" (4xx) from "the provider is broken" (5xx), so it is kept.
///
/// A named type rather than a closure: a closure here makes rustc lose track of the
/// futures being `Send` ("implementation of `Send` is not general enough").
struct StatusRecorder<'a> {
    http: &'a reqwest::Client,
    status: AtomicU16,
}

impl<'c> AsyncHttpClient<'c> for StatusRecorder<'_> {
    type Error = HttpClientError<reqwest::Error>;
    type Future =
        Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let response = AsyncHttpClient::call(self.http, request).await?;
            self.status
                .store(response.status().as_u16(), Ordering::Relaxed);
            Ok(response)
        })
    }
}

/// The scopes to ask for: the defaults first, then the extra ones, each once.
fn scope_list(extra: &[String]) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    let all = DEFAULT_SCOPES
        .into_iter()
        .chain(extra.iter().flat_map(|s| s.split_whitespace()));
    for scope in all {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    scopes
}

fn accepted_issuers(issuer: &str) -> Vec<String> {
    let mut issuers = vec![issuer.to_owned()];
    if issuer.trim_end_matches('/') == GOOGLE_ISSUER {
        issuers.push(GOOGLE_BARE_ISSUER.to_owned());
    }
    issuers
}

fn token_error(error: TokenError, status: u16) -> GoogleError {
    match error {
        RequestTokenError::Request(e) => {
            GoogleError::Unavailable(format!("token endpoint: {}", describe(&e)))
        }
        // Only the error code: descriptions are free text and could echo the code.
        RequestTokenError::ServerResponse(answer) if (400..500).contains(&status) => {
            GoogleError::Rejected(format!("token endpoint answered {}", answer.error()))
        }
        _ if (400..500).contains(&status) => {
            GoogleError::Rejected(format!("token endpoint answered HTTP {status}"))
        }
        RequestTokenError::ServerResponse(answer) => GoogleError::Unavailable(format!(
            "token endpoint answered HTTP {status}: {}",
            answer.error()
        )),
        // The body holds tokens; only where parsing failed is safe to report.
        RequestTokenError::Parse(e, _body) => GoogleError::Unavailable(format!(
            "token endpoint answered HTTP {status} with an unreadable body (at `{}`)",
            e.path()
        )),
        RequestTokenError::Other(message) => {
            GoogleError::Unavailable(format!("token endpoint answered HTTP {status}: {message}"))
        }
    }
}

/// jsonwebtoken's JSON errors may quote claim values; the kind is enough.
fn jwt_error(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "the signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => "alg is not RS256".into(),
        ErrorKind::Json(_) | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            "the token is not well-formed".into()
        }
        other => format!("{other:?}"),
    }
}

fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Value>,
}

#[derive(Deserialize)]
struct RsaJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    n: String,
    e: String,
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    email: Option<String>,
    email_verified: Option<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct IdTokenClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    azp: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    nonce: Option<String>,
    email: Option<String>,
    email_verified: Option<Value>,
}

/// Google has sent `email_verified` both as a boolean and as a string.
fn email_verified(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn check_claims(
    claims: IdTokenClaims,
    issuers: &[String],
    client_id: &str,
    expected_nonce: &str,
    now: i64,
) -> Result<GoogleIdentity, GoogleError> {
    match claims.iss.as_deref() {
        Some(iss) if issuers.iter().any(|i| i == iss) => {}
        Some(_) => return Err(invalid("iss is not the provider")),
        None => return Err(invalid("no iss")),
    }

    let audiences = match claims.aud {
        Some(Audience::One(aud)) => vec![aud],
        Some(Audience::Many(auds)) => auds,
        None => return Err(invalid("no aud")),
    };
    if !audiences.iter().any(|a| a == client_id) {
        return Err(invalid("aud is not this client"));
    }
    // OpenID Connect Core 3.1.3.7: with several audiences the authorized party must be
    // us, and when named it must be us anyway.
    match claims.azp.as_deref() {
        Some(azp) if azp != client_id => return Err(invalid("azp is not this client")),
        None if audiences.len() > 1 => return Err(invalid("several audiences and no azp")),
        _ => {}
    }

    let exp = claims.exp.ok_or_else(|| invalid("no exp"))?;
    if now > exp.saturating_add(LEEWAY_SECS) {
        return Err(invalid("expired"));
    }
    let iat = claims.iat.ok_or_else(|| invalid("no iat"))?;
    if iat > now.saturating_add(LEEWAY_SECS) {
        return Err(invalid("issued in the future"));
    }

    let nonce = claims.nonce.ok_or_else(|| invalid("no nonce"))?;
    if !constant_time_eq(nonce.as_bytes(), expected_nonce.as_bytes()) {
        return Err(invalid("nonce mismatch"));
    }

    let subject = claims.sub.filter(|s| !s.is_empty());
    let subject = subject.ok_or_else(|| invalid("no sub"))?;
    Ok(GoogleIdentity {
        subject,
        email: claims.email,
        email_verified: email_verified(claims.email_verified.as_ref()),
    })
}

/// Compares without an early exit, so timing does not reveal a matching prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLIENT: &str = "client-1";
    const NOW: i64 = 1_700_000_000;

    fn claims(value: Value) -> IdTokenClaims {
        serde_json::from_value(value).unwrap()
    }

    fn good() -> Value {
        json!({
            "iss": "https://issuer.example",
            "aud": CLIENT,
            "sub": "42",
            "exp": NOW + 3600,
            "iat": NOW,
            "nonce": "n-1",
            "email": "a@example.com",
            "email_verified": true,
        })
    }

    fn check(value: Value) -> Result<GoogleIdentity, GoogleError> {
        check_claims(
            claims(value),
            &accepted_issuers("https://issuer.example"),
            CLIENT,
            "n-1",
            NOW,
        )
    }

    fn with(key: &str, v: Value) -> Value {
        let mut c = good();
        c[key] = v;
        c
    }

    fn without(key: &str) -> Value {
        let mut c = good();
        c.as_object_mut().unwrap().remove(key);
        c
    }

    #[test]
    fn good_claims_give_the_identity() {
        assert_eq!(
            check(good()).unwrap(),
            GoogleIdentity {
                subject: "42".into(),
                email: Some("a@example.com".into()),
                email_verified: true,
            }
        );
    }

    #[test]
    fn google_issuer_variants_accepted_only_for_google() {
        let google = accepted_issuers(GOOGLE_ISSUER);
        assert!(google.contains(&"https://accounts.google.com".to_owned()));
        assert!(google.contains(&"accounts.google.com".to_owned()));
        assert_eq!(accepted_issuers("https://accounts.google.com/").len(), 2);

        let other = accepted_issuers("http://127.0.0.1:4000");
        assert_eq!(other, vec!["http://127.0.0.1:4000".to_owned()]);

        let google_claims = |iss: &str| {
            let mut c = good();
            c["iss"] = json!(iss);
            check_claims(claims(c), &google, CLIENT, "n-1", NOW)
        };
        assert!(google_claims("https://accounts.google.com").is_ok());
        assert!(google_claims("accounts.google.com").is_ok());
        assert!(google_claims("http://accounts.google.com").is_err());
        assert!(check(with("iss", json!("accounts.google.com"))).is_err());
        assert!(check(with("iss", json!("issuer.example"))).is_err());
    }

    #[test]
    fn email_verified_as_bool_or_string() {
        let verified = |v: Value| check(with("email_verified", v)).unwrap().email_verified;
        assert!(verified(json!(true)));
        assert!(verified(json!("true")));
        assert!(!verified(json!(false)));
        assert!(!verified(json!("false")));
        assert!(!verified(json!("yes")));
        assert!(!verified(json!(1)));
        let absent = check(without("email_verified")).unwrap();
        assert!(!absent.email_verified);
        let no_email = check(without("email")).unwrap();
        assert_eq!(no_email.email, None);
    }

    #[test]
    fn audience_rules() {
        assert!(check(with("aud", json!("someone-else"))).is_err());
        assert!(check(without("aud")).is_err());
        assert!(check(with("aud", json!([CLIENT]))).is_ok());
        // Several audiences need azp naming us.
        assert!(check(with("aud", json!([CLIENT, "other"]))).is_err());
        let mut c = with("aud", json!([CLIENT, "other"]));
        c["azp"] = json!(CLIENT);
        assert!(check(c).is_ok());
        assert!(check(with("azp", json!("other"))).is_err());
    }

    #[test]
    fn time_rules_with_leeway() {
        assert!(check(with("exp", json!(NOW - 60))).is_ok());
        assert!(check(with("exp", json!(NOW - 61))).is_err());
        assert!(check(with("iat", json!(NOW + 60))).is_ok());
        assert!(check(with("iat", json!(NOW + 61))).is_err());
        assert!(check(without("exp")).is_err());
        assert!(check(without("iat")).is_err());
    }

    #[test]
    fn nonce_and_subject_required() {
        assert!(check(with("nonce", json!("n-2"))).is_err());
        assert!(check(with("nonce", json!("n-10"))).is_err());
        assert!(check(without("nonce")).is_err());
        assert!(check(without("sub")).is_err());
        assert!(check(with("sub", json!(""))).is_err());
        assert!(matches!(
            check(with("nonce", json!("x"))),
            Err(GoogleError::InvalidIdToken(_))
        ));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn jwks_refetch_is_rate_limited() {
        let mut cache = JwksCache::default();
        assert!(cache.may_refetch(NOW), "an empty cache is always fetched");
        cache.fetched_at = Some(NOW);
        assert!(!cache.may_refetch(NOW));
        assert!(!cache.may_refetch(NOW + 59));
        assert!(cache.may_refetch(NOW + 60));
        assert!(cache.may_refetch(NOW - 1), "a clock that went back");
        assert!(!cache.is_stale(NOW + 3599));
        assert!(cache.is_stale(NOW + 3600));
    }

    #[test]
    fn scopes_always_include_openid_and_email_once() {
        assert_eq!(scope_list(&[]), ["openid", "email", "profile"]);
        let extra = [
            "email".to_owned(),
            "openid https://x/y".to_owned(),
            "a".into(),
        ];
        assert_eq!(
            scope_list(&extra),
            ["openid", "email", "profile", "https://x/y", "a"]
        );
    }

    #[test]
    fn client_auth_choice() {
        let list = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(ClientAuth::choose(None), ClientAuth::Basic);
        assert_eq!(
            ClientAuth::choose(Some(&list(&["client_secret_post", "client_secret_basic"]))),
            ClientAuth::Basic
        );
        assert_eq!(
            ClientAuth::choose(Some(&list(&["client_secret_post"]))),
            ClientAuth::Post
        );
    }

    #[test]
    fn pkce_and_nonce_shapes() {
        let (verifier, challenge) = pkce_pair();
        assert!(verifier.len() >= 43);
        let expected =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.clone()));
        assert_eq!(challenge, expected.as_str());
        let nonce = random_nonce();
        assert_eq!(URL_SAFE_NO_PAD.decode(&nonce).unwrap().len(), 32);
        assert_ne!(nonce, random_nonce());
    }

    #[test]
    fn provider_tokens_debug_hides_tokens() {
        let tokens = ProviderTokens {
            access_token: SecretString::from("access-secret"),
            refresh_token: Some(SecretString::from("refresh-secret")),
            expires_at: Some(5),
            id_token: Some("id-secret".into()),
        };
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("expires_at: Some(5)"));
    }
}
