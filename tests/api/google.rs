//! Sign in with Google through a loopback OpenID provider.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::oidc_provider::{Identity, OidcProvider, Tamper};

async fn app_with_google(
    backend: Backend,
    provider: &OidcProvider,
    configure: impl FnOnce(&mut std::collections::HashMap<String, String>),
) -> TestApp {
    let issuer = provider.issuer();
    spawn_app_with(backend, |env| {
        env.insert("GOOGLE_CLIENT_ID".into(), OidcProvider::CLIENT_ID.into());
        env.insert(
            "GOOGLE_CLIENT_SECRET".into(),
            OidcProvider::CLIENT_SECRET.into(),
        );
        env.insert("GOOGLE_ISSUER_URL".into(), issuer);
        env.insert("GOOGLE_TIMEOUT_SECONDS".into(), "2".into());
        configure(env);
    })
    .await
}

fn identity(email: &str, verified: bool) -> Identity {
    Identity {
        sub: format!("google-{}", uuid::Uuid::new_v4().simple()),
        email: Some(email.to_owned()),
        email_verified: verified,
    }
}

/// The authorize step: (authorization URL, CSRF cookie value).
async fn authorize(app: &TestApp, path: &str, token: Option<&str>) -> (String, String) {
    let resp = app.get(path, token).await;
    assert_eq!(resp.status(), 200);
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
    assert_eq!(value.len(), 43);
    let body: Value = resp.json().await.unwrap();
    (
        body["authorization_url"].as_str().unwrap().to_owned(),
        value,
    )
}

async fn callback(
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

fn query(code: &str, state: &str) -> String {
    serde_urlencoded::to_string([("code", code), ("state", state)]).unwrap()
}

/// The whole browser dance for sign-in: the callback's response.
pub(crate) async fn sign_in(
    app: &TestApp,
    provider: &OidcProvider,
    id: &Identity,
) -> reqwest::Response {
    provider.set_identity(id.clone());
    let (url, cookie) = authorize(app, "/auth/google/authorize", None).await;
    let (code, state) = provider.authorize(&url).await;
    callback(
        app,
        "/auth/google/callback",
        &query(&code, &state),
        Some(&cookie),
        None,
    )
    .await
}

pub(crate) async fn token_of(resp: reqwest::Response) -> String {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body.as_object().unwrap().len(), 2);
    body["access_token"].as_str().unwrap().to_owned()
}

async fn sign_in_creates_a_user_then_reuses_it(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_google(backend, &provider, |_| {}).await;
    let email = unique_email();
    let id = identity(&email, true);
    let token = token_of(sign_in(&app, &provider, &id).await).await;
    let me: Value = app.me(&token).await.json().await.unwrap();
    assert_eq!(me["email"], email.as_str());
    assert_eq!(me["is_active"], true);
    assert_eq!(me["is_verified"], false);
    assert_eq!(me["is_superuser"], false);
    // again: the same user, even if the Google email changed
    let again = Identity {
        email: Some(unique_email()),
        ..id.clone()
    };
    let token = token_of(sign_in(&app, &provider, &again).await).await;
    let me2: Value = app.me(&token).await.json().await.unwrap();
    assert_eq!(me2["id"], me["id"]);
    assert_eq!(
        me2["email"],
        email.as_str(),
        "the user's email stays as it is"
    );
    // no usable password was created
    assert_eq!(app.login(&email, "").await.status(), 422);
    assert_eq!(app.login(&email, PASSWORD).await.status(), 400);
    // the PKCE verifier went to the token endpoint and matches the challenge
    let requests = provider.token_requests();
    assert!(
        requests
            .iter()
            .all(|r| r.get("code_verifier").is_some_and(|v| v.len() >= 43)),
        "{requests:?}"
    );
    // deleting the user removes the link: the next sign-in creates a new user
    let (_, admin) = app.superuser_with_token().await;
    assert_eq!(
        app.delete(&format!("/users/{}", me["id"].as_str().unwrap()), &admin)
            .await
            .status(),
        204
    );
    let token = token_of(sign_in(&app, &provider, &id).await).await;
    let me3: Value = app.me(&token).await.json().await.unwrap();
    assert_ne!(me3["id"], me["id"]);
}

async fn the_authorization_url_is_full_oidc(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_google(backend, &provider, |_| {}).await;
    let (url, cookie) = authorize(
        &app,
        "/auth/google/authorize?scopes=https://www.googleapis.com/auth/calendar.readonly",
        None,
    )
    .await;
    let parsed = reqwest::Url::parse(&url).unwrap();
    let q: std::collections::HashMap<String, String> = parsed.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], OidcProvider::CLIENT_ID);
    assert!(q["redirect_uri"].ends_with("/auth/google/callback"));
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    for s in [
        "openid",
        "email",
        "https://www.googleapis.com/auth/calendar.readonly",
    ] {
        assert!(scopes.contains(&s), "{scopes:?}");
    }
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["code_challenge"].len(), 43);
    assert!(q["nonce"].len() >= 32);
    // the state is a signed JWT carrying the cookie's value, and nothing secret
    let payload = q["state"].split('.').nth(1).unwrap();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["csrftoken"], cookie.as_str());
    assert_eq!(claims["aud"], "fastapi-users:oauth-state");
    assert!(
        !claims.to_string().contains(&q["nonce"]),
        "the nonce stays server-side"
    );
    // Secure cookies behind https
    let app = app_with_google(backend, &provider, |env| {
        env.insert("PUBLIC_URL".into(), "https://id.example.com".into());
    })
    .await;
    let resp = app.get("/auth/google/authorize", None).await;
    assert!(resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
}

async fn an_existing_password_user_is_not_taken_over(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_google(backend, &provider, |_| {}).await;
    let email = unique_email();
    app.create_user(&email).await;
    assert_json(
        sign_in(&app, &provider, &identity(&email.to_uppercase(), true)).await,
        400,
        json!({"detail": "OAUTH_USER_ALREADY_EXISTS"}),
    )
    .await;
}

async fn associate_by_email_links_only_verified_google_emails(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_google(backend, &provider, |env| {
        env.insert("GOOGLE_ASSOCIATE_BY_EMAIL".into(), "true".into());
    })
    .await;
    // an unverified Google email links nothing
    let email = unique_email();
    let user = app.create_user(&email).await;
    let squatter_token = app.token(&email, PASSWORD).await;
    assert_json(
        sign_in(&app, &provider, &identity(&email, false)).await,
        400,
        json!({"detail": "OAUTH_USER_ALREADY_EXISTS"}),
    )
    .await;
    // a verified one links, and since the local account was unverified, its password
    // (and every session made with it) goes: pre-account-takeover defence
    let token = token_of(sign_in(&app, &provider, &identity(&email, true)).await).await;
    let me: Value = app.me(&token).await.json().await.unwrap();
    assert_eq!(me["id"], user["id"]);
    assert_eq!(me["is_verified"], true);
    assert_eq!(app.login(&email, PASSWORD).await.status(), 400);
    assert_eq!(app.me(&squatter_token).await.status(), 401);
    // a verified local account keeps its password
    let email = unique_email();
    let user = app.create_user(&email).await;
    let (_, admin) = app.superuser_with_token().await;
    app.patch(
        &format!("/users/{}", user["id"].as_str().unwrap()),
        &admin,
        &json!({"is_verified": true}),
    )
    .await;
    token_of(sign_in(&app, &provider, &identity(&email, true)).await).await;
    app.token(&email, PASSWORD).await;
}

async fn associate_links_a_google_account_to_the_current_user(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_google(backend, &provider, |_| {}).await;
    let (user, token) = app.user_with_token().await;
    assert_json(
        app.get("/auth/associate/google/authorize", None).await,
        401,
        json!({"detail": "Unauthorized"}),
    )
    .await;
    let google_id = identity(&unique_email(), true);
    provider.set_identity(google_id.clone());
    let (url, cookie) = authorize(&app, "/auth/associate/google/authorize", Some(&token)).await;
    assert!(
        url.contains("associate%2Fgoogle%2Fcallback") || url.contains("associate/google/callback")
    );
    let (code, state) = provider.authorize(&url).await;
    let q = query(&code, &state);
    assert_json(
        callback(
            &app,
            "/auth/associate/google/callback",
            &q,
            Some(&cookie),
            None,
        )
        .await,
        401,
        json!({"detail": "Unauthorized"}),
    )
    .await;
    assert_json(
        callback(
            &app,
            "/auth/associate/google/callback",
            &q,
            Some(&cookie),
            Some(&token),
        )
        .await,
        200,
        user.clone(),
    )
    .await;
    // now signing in with that Google account is signing in as the user
    let t = token_of(sign_in(&app, &provider, &google_id).await).await;
    assert_eq!(
        app.me(&t).await.json::<Value>().await.unwrap()["id"],
        user["id"]
    );

    // one Google account links to at most one user
    let (_, other_token) = app.user_with_token().await;
    provider.set_identity(google_id.clone());
    let (url, cookie) =
        authorize(&app, "/auth/associate/google/authorize", Some(&other_token)).await;
    let (code, state) = provider.authorize(&url).await;
    assert_json(
        callback(
            &app,
            "/auth/associate/google/callback",
            &query(&code, &state),
            Some(&cookie),
            Some(&other_token),
        )
        .await,
        400,
        json!({"detail": "OAUTH_ACCOUNT_ALREADY_LINKED"}),
    )
    .await;

    // a state made for another user, and a sign-in state, are refused
    let (url, cookie) = authorize(&app, "/auth/associate/google/authorize", Some(&token)).await;
    let (code, state) = provider.authorize(&url).await;
    assert_json(
        callback(
            &app,
            "/auth/associate/google/callback",
            &query(&code, &state),
            Some(&cookie),
            Some(&other_token),
        )
        .await,
        400,
        json!({"detail": "Bad Request"}),
    )
    .await;
    let (url, cookie) = authorize(&app, "/auth/google/authorize", None).await;
    let (code, state) = provider.authorize(&url).await;
    assert_json(
        callback(
            &app,
            "/auth/associate/google/callback",
            &query(&code, &state),
            Some(&cookie),
            Some(&token),
        )
        .await,
        400,
        json!({"detail": "Bad Request"}),
    )
    .await;
}

async fn callback_errors_come_in_the_contracts_order(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_google(backend, &provider, |_| {}).await;
    let cb = "/auth/google/callback";
    let bad = |d: &str| json!({ "detail": d });
    provider.set_identity(identity(&unique_email(), true));
    let (url, cookie) = authorize(&app, "/auth/google/authorize", None).await;
    let (code, state) = provider.authorize(&url).await;

    assert_json(
        callback(&app, cb, "error=access_denied&code=x", Some(&cookie), None).await,
        400,
        bad("access_denied"),
    )
    .await;
    assert_json(
        callback(&app, cb, &format!("state={state}"), Some(&cookie), None).await,
        400,
        bad("Bad Request"),
    )
    .await;
    assert_json(
        callback(&app, cb, "code=x", Some(&cookie), None).await,
        400,
        bad("ACCESS_TOKEN_DECODE_ERROR"),
    )
    .await;
    assert_json(
        callback(&app, cb, &query(&code, "garbage"), Some(&cookie), None).await,
        400,
        bad("ACCESS_TOKEN_DECODE_ERROR"),
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sign = |claims: Value, secret: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let other_secret = sign(
        json!({"csrftoken": cookie, "aud": "fastapi-users:oauth-state", "exp": now + 60}),
        "not-the-secret-at-all-0123456789abcdef",
    );
    assert_json(
        callback(&app, cb, &query(&code, &other_secret), Some(&cookie), None).await,
        400,
        bad("ACCESS_TOKEN_DECODE_ERROR"),
    )
    .await;
    let (_, access) = app.user_with_token().await;
    assert_json(
        callback(&app, cb, &query(&code, &access), Some(&cookie), None).await,
        400,
        bad("ACCESS_TOKEN_DECODE_ERROR"),
    )
    .await;
    let expired = sign(
        json!({"csrftoken": cookie, "aud": "fastapi-users:oauth-state", "exp": now - 1}),
        TEST_SECRET,
    );
    assert_json(
        callback(&app, cb, &query(&code, &expired), Some(&cookie), None).await,
        400,
        bad("ACCESS_TOKEN_ALREADY_EXPIRED"),
    )
    .await;
    assert_json(
        callback(&app, cb, &query(&code, &state), None, None).await,
        400,
        bad("OAUTH_INVALID_STATE"),
    )
    .await;
    assert_json(
        callback(
            &app,
            cb,
            &query(&code, &state),
            Some("x".repeat(43).as_str()),
            None,
        )
        .await,
        400,
        bad("OAUTH_INVALID_STATE"),
    )
    .await;
    // a state signed by us but without a pending authorization (e.g. forged by
    // fastapi-users with the same secret) cannot complete: there is no verifier
    let foreign = sign(
        json!({"csrftoken": cookie, "aud": "fastapi-users:oauth-state", "exp": now + 60}),
        TEST_SECRET,
    );
    assert_json(
        callback(&app, cb, &query(&code, &foreign), Some(&cookie), None).await,
        400,
        bad("OAUTH_INVALID_STATE"),
    )
    .await;
    // the real thing works once; a replay is refused
    token_of(callback(&app, cb, &query(&code, &state), Some(&cookie), None).await).await;
    assert_json(
        callback(&app, cb, &query(&code, &state), Some(&cookie), None).await,
        400,
        bad("OAUTH_INVALID_STATE"),
    )
    .await;

    // no email from the provider
    let no_email = Identity {
        sub: "no-email-sub".into(),
        email: None,
        email_verified: false,
    };
    assert_json(
        sign_in(&app, &provider, &no_email).await,
        400,
        bad("OAUTH_NOT_AVAILABLE_EMAIL"),
    )
    .await;
    // an inactive user
    let id = identity(&unique_email(), true);
    let token = token_of(sign_in(&app, &provider, &id).await).await;
    let me: Value = app.me(&token).await.json().await.unwrap();
    let (_, admin) = app.superuser_with_token().await;
    app.patch(
        &format!("/users/{}", me["id"].as_str().unwrap()),
        &admin,
        &json!({"is_active": false}),
    )
    .await;
    assert_json(
        sign_in(&app, &provider, &id).await,
        400,
        bad("LOGIN_BAD_CREDENTIALS"),
    )
    .await;
}

async fn spoiled_id_tokens_are_refused(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_google(backend, &provider, |_| {}).await;
    for tamper in [
        Tamper::WrongAudience,
        Tamper::WrongIssuer,
        Tamper::Expired,
        Tamper::WrongNonce,
        Tamper::Unsigned,
        Tamper::BadSignature,
        Tamper::OtherKey,
    ] {
        let label = format!("{tamper:?}");
        provider.set_tamper(tamper);
        let resp = sign_in(&app, &provider, &identity(&unique_email(), true)).await;
        assert_eq!(resp.status(), 400, "{label}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!({"detail": "OAUTH_INVALID_ID_TOKEN"}),
            "{label}"
        );
    }
    provider.set_tamper(Tamper::None);
    token_of(sign_in(&app, &provider, &identity(&unique_email(), true)).await).await;
    let mut conn = app.db.get().unwrap();
    assert_eq!(
        users_db::users::count(&mut conn).unwrap(),
        1,
        "no user was created by a spoiled token"
    );
}

async fn provider_outages_give_clean_errors(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_google(backend, &provider, |_| {}).await;
    provider.set_identity(identity(&unique_email(), true));
    let (url, cookie) = authorize(&app, "/auth/google/authorize", None).await;
    let (code, state) = provider.authorize(&url).await;
    provider.stop().await;
    let resp = callback(
        &app,
        "/auth/google/callback",
        &query(&code, &state),
        Some(&cookie),
        None,
    )
    .await;
    assert_json(resp, 502, json!({"detail": "OAUTH_PROVIDER_UNAVAILABLE"})).await;

    // unreachable at start: the Google routes answer 503, the rest works
    let app = spawn_app_with(backend, |env| {
        env.insert("GOOGLE_CLIENT_ID".into(), "id".into());
        env.insert("GOOGLE_CLIENT_SECRET".into(), "secret".into());
        env.insert(
            "GOOGLE_ISSUER_URL".into(),
            format!("http://127.0.0.1:{}", free_port()),
        );
        env.insert("GOOGLE_TIMEOUT_SECONDS".into(), "1".into());
    })
    .await;
    let resp = app.get("/auth/google/authorize", None).await;
    assert_eq!(resp.status(), 503);
    assert!(resp.json::<Value>().await.unwrap()["detail"]
        .as_str()
        .unwrap()
        .contains("Google"));
    app.user_with_token().await;
}

async fn without_a_client_id_the_google_routes_are_404(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token().await;
    for path in [
        "/auth/google/authorize",
        "/auth/google/callback?code=x&state=y",
        "/auth/associate/google/authorize",
        "/auth/associate/google/callback?code=x&state=y",
    ] {
        assert_json(
            app.get(path, Some(&token)).await,
            404,
            json!({"detail": "Not Found"}),
        )
        .await;
    }
}

async fn success_can_redirect_to_the_frontend(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_google(backend, &provider, |env| {
        env.insert(
            "OAUTH_SUCCESS_REDIRECT_URL".into(),
            "https://app.example.com/signed-in".into(),
        );
    })
    .await;
    let resp = sign_in(&app, &provider, &identity(&unique_email(), true)).await;
    assert_eq!(resp.status(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let token = location
        .strip_prefix("https://app.example.com/signed-in#access_token=")
        .unwrap();
    let token = token.strip_suffix("&token_type=bearer").unwrap();
    assert_eq!(app.me(token).await.status(), 200);
}

/// A Google sign-in starts a session like a password sign-in, with its method.
async fn a_google_sign_in_starts_a_session(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_google(backend, &provider, |_| {}).await;
    let token = token_of(sign_in(&app, &provider, &identity(&unique_email(), true)).await).await;
    let sessions: Value = app
        .get("/auth/sessions", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    assert_eq!(sessions[0]["method"], "google");
    assert_eq!(sessions[0]["aal"], 1);
    assert_eq!(sessions[0]["current"], true);
    assert_eq!(app.logout(&token).await.status(), 204);
    assert_eq!(app.me(&token).await.status(), 401);
}

/// A user with a second factor signs in through Google in two steps too.
async fn a_google_sign_in_asks_for_the_second_factor(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_google(backend, &provider, |_| {}).await;
    let id = identity(&unique_email(), true);
    let token = token_of(sign_in(&app, &provider, &id).await).await;
    // no password (signed up through Google): a fresh session is enough to enrol
    let r = app
        .post_json("/auth/mfa/totp", &json!({}), Some(&token))
        .await;
    assert_eq!(r.status(), 200);
    let secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let now = || users_domain::Clock::now(&*app.clock).secs() as u64;
    let r = app
        .post_json(
            "/auth/mfa/totp/confirm",
            &json!({"code": crate::totp::code(&secret, now())}),
            Some(&token),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = sign_in(&app, &provider, &id).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["detail"]["code"], "LOGIN_MFA_REQUIRED", "{body}");
    assert_eq!(body["detail"]["methods"], json!(["totp", "recovery_code"]));
    app.clock.advance(std::time::Duration::from_secs(30));
    let r = app
        .post_json(
            "/auth/mfa/verify",
            &json!({"mfa_token": body["detail"]["mfa_token"], "code": crate::totp::code(&secret, now())}),
            None,
        )
        .await;
    let token = token_of(r).await;
    let sessions: Value = app
        .get("/auth/sessions", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let mine = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()
        .clone();
    assert_eq!(
        (mine["method"].clone(), mine["aal"].clone()),
        (json!("google"), json!(2))
    );
}

both_backends!(
    a_google_sign_in_starts_a_session,
    a_google_sign_in_asks_for_the_second_factor,
    sign_in_creates_a_user_then_reuses_it,
    the_authorization_url_is_full_oidc,
    an_existing_password_user_is_not_taken_over,
    associate_by_email_links_only_verified_google_emails,
    associate_links_a_google_account_to_the_current_user,
    callback_errors_come_in_the_contracts_order,
    spoiled_id_tokens_are_refused,
    provider_outages_give_clean_errors,
    without_a_client_id_the_google_routes_are_404,
    success_can_redirect_to_the_frontend,
);
