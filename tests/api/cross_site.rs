//! Sign-ins another site cannot make for a browser, pages that never take a token from
//! their URL, mail floods capped per address, and tokens without a session that end
//! with a new factor (docs/security.md).

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::mfa::{first_step, now_secs};
use crate::oidc_provider::{Identity, OidcProvider};
use crate::provider_flow::*;
use crate::smtp_sink::SmtpSink;
use crate::totp;

/// The test app's PUBLIC_URL is http://<BIND_ADDR>.
const OWN_ORIGIN: &str = "http://127.0.0.1:0";

async fn cookie_login(
    app: &TestApp,
    email: &str,
    header: Option<(&str, &str)>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url("/auth/cookie/login"))
        .form(&[("username", email), ("password", PASSWORD)]);
    if let Some((name, value)) = header {
        req = req.header(name, value);
    }
    req.send().await.unwrap()
}

/// The value of cookie `name` set by `resp`, with its attributes.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    let pair = set_cookie.split(';').next().unwrap();
    pair.split_once('=').unwrap().1.to_owned()
}

/// A form another site posts to `/auth/cookie/login` would sign the browser in to an
/// account of that site's choosing (login CSRF): a foreign or `null` Origin, or without
/// one a foreign Referer, is refused; the service's own origin and a request with
/// neither header (not a browser) pass.
async fn cookie_login_refuses_another_sites_origin(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    for header in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("referer", "https://evil.example/login.html"),
    ] {
        assert_json(
            cookie_login(&app, &email, Some(header)).await,
            403,
            json!({"detail": "CSRF_ORIGIN_MISMATCH"}),
        )
        .await;
    }
    for header in [
        Some(("origin", OWN_ORIGIN)),
        Some(("referer", "http://127.0.0.1:0/account")),
        None,
    ] {
        let r = cookie_login(&app, &email, header).await;
        assert_eq!(r.status(), 204, "{header:?}");
        assert!(set_cookie(&r, "fastapiusersauth").is_some());
    }
}

/// The second step of a cookie sign-in answers with the cookie too: it refuses another
/// site's origin (before the code is even looked at); a Bearer sign-in's does not care.
async fn a_second_step_answering_with_the_cookie_refuses_another_site(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, secret, _, _) = crate::mfa::user_with_totp(&app).await;
    let (mfa_token, _) = first_step(cookie_login(&app, &email, None).await).await;
    let code = |app: &TestApp| {
        app.clock.advance(Duration::from_secs(30));
        totp::code(&secret, now_secs(app))
    };
    let from = |origin: &'static str, body: Value| {
        let (client, url) = (app.client.clone(), app.url("/auth/mfa/verify"));
        async move {
            client
                .post(url)
                .header("origin", origin)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_json(
        from(
            "https://evil.example",
            json!({"mfa_token": mfa_token, "code": code(&app)}),
        )
        .await,
        403,
        json!({"detail": "CSRF_ORIGIN_MISMATCH"}),
    )
    .await;
    let r = from(
        OWN_ORIGIN,
        json!({"mfa_token": mfa_token, "code": code(&app)}),
    )
    .await;
    assert_eq!(r.status(), 204, "the refused try spent nothing");
    assert!(set_cookie(&r, "fastapiusersauth").is_some());

    // a Bearer sign-in's second step answers with a token in the body: no cookie to forge
    let (mfa_token, _) = first_step(app.login(&email, PASSWORD).await).await;
    let r = from(
        "https://evil.example",
        json!({"mfa_token": mfa_token, "code": code(&app)}),
    )
    .await;
    assert_eq!(r.status(), 200);
}

async fn app_with_provider(backend: Backend, provider: &OidcProvider) -> TestApp {
    spawn_app_with(backend, |env| configure_oidc(env, "corp", provider)).await
}

/// A sign-in started from a page (`?return_to=/account`): the callback sets the session
/// cookie itself and sends the browser back to the page; no token is in any URL.
async fn a_page_sign_in_ends_with_the_cookie(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = app_with_provider(backend, &provider).await;
    let email = unique_email();
    provider.set_identity(Identity::new("page-user", &email));

    // only a path of this service is a page to return to
    for bad in [
        "//evil.example/x",
        "https://evil.example/",
        "account",
        "/\\evil.example",
    ] {
        let path = format!("/auth/corp/authorize?return_to={}", urlencode(bad));
        assert_eq!(app.get(&path, None).await.status(), 422, "{bad}");
    }

    let (url, csrf) = authorize(&app, "/auth/corp/authorize?return_to=%2Faccount", None).await;
    let (code, state) = provider.consent(&url).await;
    let r = callback(
        &app,
        "/auth/corp/callback",
        &query(&code, &state),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "/account");
    let auth = set_cookie(&r, "fastapiusersauth").expect("the session cookie");
    for attr in ["HttpOnly", "Path=/", "SameSite=lax"] {
        assert!(auth.contains(attr), "{attr} in {auth}");
    }
    let session = cookie_value(&auth);
    let me = app
        .client
        .get(app.url("/users/me"))
        .header("cookie", format!("fastapiusersauth={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["email"], email.as_str());

    // with a second factor, the mfa_token waits in an HttpOnly cookie, and the page learns
    // only which methods there are
    let token = {
        let (url, csrf) = authorize(&app, "/auth/corp/authorize", None).await;
        let (code, state) = provider.consent(&url).await;
        token_of(
            callback(
                &app,
                "/auth/corp/callback",
                &query(&code, &state),
                Some(&csrf),
                None,
            )
            .await,
        )
        .await
    };
    let secret = {
        let r = app
            .post_json("/auth/mfa/totp", &json!({}), Some(&token))
            .await;
        assert_eq!(
            r.status(),
            200,
            "a sign-in of a moment ago stands in for a password"
        );
        let secret = r.json::<Value>().await.unwrap()["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let code = totp::code(&secret, now_secs(&app));
        let r = app
            .post_json(
                "/auth/mfa/totp/confirm",
                &json!({"code": code}),
                Some(&token),
            )
            .await;
        assert_eq!(r.status(), 200);
        secret
    };
    let (url, csrf) = authorize(&app, "/auth/corp/authorize?return_to=%2Faccount", None).await;
    let (code, state) = provider.consent(&url).await;
    let r = callback(
        &app,
        "/auth/corp/callback",
        &query(&code, &state),
        Some(&csrf),
        None,
    )
    .await;
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, "/account?mfa=totp%2Crecovery_code");
    assert!(
        set_cookie(&r, "fastapiusersauth").is_none(),
        "not signed in yet"
    );
    let mfa = set_cookie(&r, "users_mfa").expect("the second step's cookie");
    for attr in ["HttpOnly", "Path=/auth/", "SameSite=Lax", "Max-Age=300"] {
        assert!(mfa.contains(attr), "{attr} in {mfa}");
    }
    let mfa_token = cookie_value(&mfa);
    assert!(!location.contains(&mfa_token));
    app.clock.advance(Duration::from_secs(30));
    let r = app
        .client
        .post(app.url("/auth/mfa/verify"))
        .header("cookie", format!("users_mfa={mfa_token}"))
        .header("origin", OWN_ORIGIN)
        .json(&json!({"code": totp::code(&secret, now_secs(&app))}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        204,
        "the cookie's second step answers with the cookie"
    );
    assert!(set_cookie(&r, "fastapiusersauth").is_some());
    let gone = set_cookie(&r, "users_mfa").expect("the mfa cookie is cleared");
    assert!(gone.contains("Max-Age=0"), "{gone}");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// At most three reset mails and three verification mails reach one address in any 15
/// minutes, however many requests are made; every request still answers 202.
async fn mail_requests_are_capped_per_address(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(backend, |env| {
        env.insert("SMTP_URL".into(), smtp);
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;
    for path in ["/auth/forgot-password", "/auth/request-verify-token"] {
        for _ in 0..6 {
            let r = app.post_json(path, &json!({"email": email}), None).await;
            assert_eq!(r.status(), 202, "{path}");
        }
    }
    sink.wait_for(6, Duration::from_secs(20)).await;
    // the other six requests were dropped, not delayed
    tokio::time::sleep(Duration::from_secs(3)).await;
    let subjects: Vec<String> = sink
        .messages()
        .iter()
        .map(|m| m.subject().unwrap_or_default())
        .collect();
    let reset = subjects.iter().filter(|s| s.contains("Reset")).count();
    let verify = subjects.iter().filter(|s| s.contains("Verify")).count();
    assert_eq!((reset, verify), (3, 3), "{subjects:?}");
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("users_mails_over_quota_total 6"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("quota"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// A token without a session (as fastapi-users mints them with the same secret) is
/// revoked by enabling TOTP, as the user's other sessions are; the confirming session
/// goes on.
async fn tokens_without_a_session_end_with_a_new_factor(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, token) = app.user_with_token().await;
    let id = user["id"].as_str().unwrap();
    let claims = json!({
        "sub": id,
        "aud": ["fastapi-users:auth"],
        "exp": now_secs(&app) + 3600,
    });
    let sessionless = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(TEST_SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(app.me(&sessionless).await.status(), 200);
    app.clock.advance(Duration::from_secs(1));
    let r = app
        .post_json(
            "/auth/mfa/totp",
            &json!({"password": PASSWORD}),
            Some(&token),
        )
        .await;
    let secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = totp::code(&secret, now_secs(&app));
    let r = app
        .post_json(
            "/auth/mfa/totp/confirm",
            &json!({"code": code}),
            Some(&token),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.me(&sessionless).await.status(),
        401,
        "no way around the new factor"
    );
    assert_eq!(
        app.me(&token).await.status(),
        200,
        "the confirming session goes on"
    );
}

both_backends!(
    cookie_login_refuses_another_sites_origin,
    a_second_step_answering_with_the_cookie_refuses_another_site,
    a_page_sign_in_ends_with_the_cookie,
    mail_requests_are_capped_per_address,
    tokens_without_a_session_end_with_a_new_factor,
);
