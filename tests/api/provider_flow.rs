//! The browser's side of a provider sign-in, for any provider: the authorize step, the
//! consent at the (loopback) provider, the callback; and the checks every provider's
//! callback makes, in the order docs/providers.md gives.

use serde_json::{json, Value};

use crate::github_provider::GithubProvider;
use crate::helpers::*;
use crate::oidc_provider::OidcProvider;

/// A loopback provider a browser can consent at.
pub(crate) trait Consent {
    /// Follows the authorization URL: the `code` and `state` sent back.
    async fn consent(&self, authorization_url: &str) -> (String, String);
}

impl Consent for OidcProvider {
    async fn consent(&self, authorization_url: &str) -> (String, String) {
        self.authorize(authorization_url).await
    }
}

impl Consent for GithubProvider {
    async fn consent(&self, authorization_url: &str) -> (String, String) {
        self.authorize(authorization_url).await
    }
}

/// Settings of an OpenID provider `name` served by `provider` (added to OIDC_PROVIDERS).
pub fn configure_oidc(
    env: &mut std::collections::HashMap<String, String>,
    name: &str,
    provider: &OidcProvider,
) {
    let var = |suffix: &str| users_server::settings::oidc_variable(name, suffix);
    let listed = env.remove("OIDC_PROVIDERS").unwrap_or_default();
    let listed = if listed.is_empty() {
        name.to_owned()
    } else {
        format!("{listed},{name}")
    };
    env.insert("OIDC_PROVIDERS".into(), listed);
    env.insert(var("ISSUER_URL"), provider.issuer());
    env.insert(var("CLIENT_ID"), OidcProvider::CLIENT_ID.into());
    env.insert(var("CLIENT_SECRET"), OidcProvider::CLIENT_SECRET.into());
    env.insert(var("TIMEOUT_SECONDS"), "2".into());
}

/// Settings of "Sign in with GitHub" served by `github`.
pub fn configure_github(
    env: &mut std::collections::HashMap<String, String>,
    github: &GithubProvider,
) {
    env.insert("GITHUB_CLIENT_ID".into(), GithubProvider::CLIENT_ID.into());
    env.insert(
        "GITHUB_CLIENT_SECRET".into(),
        GithubProvider::CLIENT_SECRET.into(),
    );
    env.insert("GITHUB_URL".into(), github.web_url());
    env.insert("GITHUB_API_URL".into(), github.api_url());
    env.insert("GITHUB_TIMEOUT_SECONDS".into(), "2".into());
}

/// The authorize step: (authorization URL, CSRF cookie value).
pub async fn authorize(app: &TestApp, path: &str, token: Option<&str>) -> (String, String) {
    let resp = app.get(path, token).await;
    assert_eq!(resp.status(), 200, "{path}");
    let cookie = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.starts_with("fastapiusersoauthcsrf="), "{cookie}");
    for attr in ["HttpOnly", "Max-Age=3600", "Path=/", "SameSite=Lax"] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("fastapiusersoauthcsrf=")
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    (
        body["authorization_url"].as_str().unwrap().to_owned(),
        value,
    )
}

pub async fn callback(
    app: &TestApp,
    path: &str,
    query: &str,
    cookie: Option<&str>,
    token: Option<&str>,
) -> reqwest::Response {
    let mut req = app.client.get(app.url(&format!("{path}?{query}")));
    if let Some(c) = cookie {
        req = req.header("cookie", format!("fastapiusersoauthcsrf={c}"));
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

pub fn query(code: &str, state: &str) -> String {
    serde_urlencoded::to_string([("code", code), ("state", state)]).unwrap()
}

/// One authorization at `/auth/<name>/authorize`, consented: (code, state, cookie).
pub async fn consented(
    app: &TestApp,
    name: &str,
    provider: &impl Consent,
) -> (String, String, String) {
    let (url, cookie) = authorize(app, &format!("/auth/{name}/authorize"), None).await;
    let (code, state) = provider.consent(&url).await;
    (code, state, cookie)
}

/// The whole sign-in dance at provider `name`: the callback's response.
pub async fn sign_in(app: &TestApp, name: &str, provider: &impl Consent) -> reqwest::Response {
    let (code, state, cookie) = consented(app, name, provider).await;
    callback(
        app,
        &format!("/auth/{name}/callback"),
        &query(&code, &state),
        Some(&cookie),
        None,
    )
    .await
}

/// The associate dance for the user of `token`: the callback's response.
pub async fn associate(
    app: &TestApp,
    name: &str,
    provider: &impl Consent,
    token: &str,
) -> reqwest::Response {
    let (url, cookie) = authorize(
        app,
        &format!("/auth/associate/{name}/authorize"),
        Some(token),
    )
    .await;
    assert!(
        url.contains(&format!("associate%2F{name}%2Fcallback")),
        "{url}"
    );
    let (code, state) = provider.consent(&url).await;
    callback(
        app,
        &format!("/auth/associate/{name}/callback"),
        &query(&code, &state),
        Some(&cookie),
        Some(token),
    )
    .await
}

pub async fn token_of(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body.as_object().unwrap().len(), 2);
    body["access_token"].as_str().unwrap().to_owned()
}

/// The payload of a JWT, unverified.
pub fn claims_of(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// Signs `claims` as an OAuth state with `secret` (HS256).
pub fn sign_state(claims: &Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// docs/providers.md: the callback's 400s, in order, at provider `name`; the provider
/// must sign the next consents in as a user with a verified email.
pub async fn callback_checks_come_in_order(app: &TestApp, name: &str, provider: &impl Consent) {
    let cb = format!("/auth/{name}/callback");
    let cb = cb.as_str();
    let bad = |d: &str| json!({ "detail": d });
    let (code, state, cookie) = consented(app, name, provider).await;

    assert_json(
        callback(app, cb, "error=access_denied&code=x", Some(&cookie), None).await,
        400,
        bad("access_denied"),
    )
    .await;
    assert_json(
        callback(app, cb, &format!("state={state}"), Some(&cookie), None).await,
        400,
        bad("Bad Request"),
    )
    .await;
    assert_json(
        callback(app, cb, "code=x", Some(&cookie), None).await,
        400,
        bad("ACCESS_TOKEN_DECODE_ERROR"),
    )
    .await;
    assert_json(
        callback(app, cb, &query(&code, "garbage"), Some(&cookie), None).await,
        400,
        bad("ACCESS_TOKEN_DECODE_ERROR"),
    )
    .await;
    let mut claims = claims_of(&state);
    let other_secret = sign_state(&claims, "not-the-secret-at-all-0123456789abcdef");
    assert_json(
        callback(app, cb, &query(&code, &other_secret), Some(&cookie), None).await,
        400,
        bad("ACCESS_TOKEN_DECODE_ERROR"),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    claims["exp"] = json!(now - 1);
    let expired = sign_state(&claims, TEST_SECRET);
    assert_json(
        callback(app, cb, &query(&code, &expired), Some(&cookie), None).await,
        400,
        bad("ACCESS_TOKEN_ALREADY_EXPIRED"),
    )
    .await;
    assert_json(
        callback(app, cb, &query(&code, &state), None, None).await,
        400,
        bad("OAUTH_INVALID_STATE"),
    )
    .await;
    assert_json(
        callback(app, cb, &query(&code, &state), Some(&"x".repeat(43)), None).await,
        400,
        bad("OAUTH_INVALID_STATE"),
    )
    .await;
    // the real thing works once; a replay is refused
    token_of(callback(app, cb, &query(&code, &state), Some(&cookie), None).await).await;
    assert_json(
        callback(app, cb, &query(&code, &state), Some(&cookie), None).await,
        400,
        bad("OAUTH_INVALID_STATE"),
    )
    .await;
    // a code the provider does not know (the state is good)
    let (_, state, cookie) = consented(app, name, provider).await;
    assert_json(
        callback(app, cb, &query("not-a-code", &state), Some(&cookie), None).await,
        400,
        bad("OAUTH_CODE_REJECTED"),
    )
    .await;
}
