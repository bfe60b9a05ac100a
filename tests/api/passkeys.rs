//! Passkeys (docs/second-factor.md) driven by a software authenticator (authenticator.rs)
//! against the real server: registration, passwordless sign-in, a passkey as the second
//! step, and what must be refused.

use std::time::Duration;

use serde_json::{json, Value};

use crate::authenticator::Authenticator;
use crate::both_backends;
use crate::helpers::*;

/// An app whose relying party is `localhost` on its own port, and that origin.
async fn app_with_passkeys(backend: Backend) -> (TestApp, String) {
    let port = free_port();
    let origin = format!("http://localhost:{port}");
    let public = origin.clone();
    let app = spawn_app_with(backend, |env| {
        env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
        env.insert("PUBLIC_URL".into(), public);
        env.insert("WEBAUTHN_RP_ID".into(), "localhost".into());
    })
    .await;
    (app, origin)
}

async fn options(app: &TestApp, path: &str, body: &Value, token: Option<&str>) -> Value {
    let r = app.post_json(path, body, token).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{path}: {v}");
    assert!(
        v["challenge_id"].is_string() && v["publicKey"].is_object(),
        "{v}"
    );
    v
}

/// Registers a passkey of `device` for the holder of `token`: the passkey's JSON.
async fn register(app: &TestApp, token: &str, device: &mut Authenticator, name: &str) -> Value {
    let opts = options(
        app,
        "/auth/passkeys/register/options",
        &json!({}),
        Some(token),
    )
    .await;
    let credential = device.register(&opts);
    let r = app
        .post_json(
            "/auth/passkeys/register",
            &json!({"challenge_id": opts["challenge_id"], "name": name, "credential": credential}),
            Some(token),
        )
        .await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// A passwordless sign-in with `device`: the response.
async fn sign_in(app: &TestApp, device: &mut Authenticator) -> reqwest::Response {
    let opts = options(app, "/auth/passkeys/login/options", &json!({}), None).await;
    let credential = device.assert(&opts);
    app.post_json(
        "/auth/passkeys/login",
        &json!({"challenge_id": opts["challenge_id"], "credential": credential}),
        None,
    )
    .await
}

async fn passkeys_register_and_sign_in_alone(backend: Backend) {
    let (app, origin) = app_with_passkeys(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let token = app.token(&email, PASSWORD).await;
    let mut device = Authenticator::new(&origin);

    // the options ask for a discoverable credential with user verification
    let opts = options(
        &app,
        "/auth/passkeys/register/options",
        &json!({}),
        Some(&token),
    )
    .await;
    let selection = &opts["publicKey"]["authenticatorSelection"];
    assert_eq!(selection["residentKey"], "required", "{opts}");
    assert_eq!(selection["userVerification"], "required");
    assert_eq!(opts["publicKey"]["rp"]["id"], "localhost");
    assert_eq!(opts["publicKey"]["user"]["name"], email);
    assert_eq!(
        app.post_json("/auth/passkeys/register/options", &json!({}), None)
            .await
            .status(),
        401
    );

    let passkey = register(&app, &token, &mut device, "Laptop").await;
    assert_eq!(passkey["name"], "Laptop");
    assert_eq!(passkey["last_used_at"], Value::Null);
    assert_eq!(passkey.as_object().unwrap().len(), 4, "{passkey}");
    let list: Value = app
        .get("/auth/passkeys", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_json(
        app.get("/auth/mfa", Some(&token)).await,
        200,
        json!({"totp": false, "passkeys": 1, "recovery_codes_left": 0}),
    )
    .await;

    // signing in with the passkey alone: both factors
    let r = sign_in(&app, &mut device).await;
    assert_eq!(r.status(), 200);
    let access = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let me: Value = app.me(&access).await.json().await.unwrap();
    assert_eq!(me["email"], email);
    let sessions: Value = app
        .get("/auth/sessions", Some(&access))
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
        (json!("passkey"), json!(2))
    );
    let list: Value = app
        .get("/auth/passkeys", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert!(list[0]["last_used_at"].is_string(), "{list}");

    // with offline_access, a refresh token too
    let opts = options(&app, "/auth/passkeys/login/options", &json!({}), None).await;
    let credential = device.assert(&opts);
    let r = app
        .post_json(
            "/auth/passkeys/login",
            &json!({"challenge_id": opts["challenge_id"], "credential": credential, "scope": "offline_access"}),
            None,
        )
        .await;
    assert!(r.json::<Value>().await.unwrap()["refresh_token"].is_string());

    // a user with a passkey signs in with a password in two steps, the passkey second
    let r = app.login(&email, PASSWORD).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["detail"]["code"], "LOGIN_MFA_REQUIRED", "{body}");
    assert_eq!(body["detail"]["methods"], json!(["passkey"]));
    let mfa_token = body["detail"]["mfa_token"].as_str().unwrap().to_owned();
    let opts = options(
        &app,
        "/auth/passkeys/login/options",
        &json!({"mfa_token": mfa_token}),
        None,
    )
    .await;
    assert_eq!(
        opts["publicKey"]["allowCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the user's passkeys: {opts}"
    );
    let credential = device.assert(&opts);
    let r = app
        .post_json(
            "/auth/mfa/verify",
            &json!({"mfa_token": mfa_token, "challenge_id": opts["challenge_id"], "credential": credential}),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_json(
        app.post_json(
            "/auth/passkeys/login/options",
            &json!({"mfa_token": "forged"}),
            None,
        )
        .await,
        400,
        json!({"detail": "MFA_TOKEN_INVALID"}),
    )
    .await;

    // removed: 204, then 404; signing in with it no longer works
    let id = passkey["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/auth/passkeys/{id}"), &token)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.delete(&format!("/auth/passkeys/{id}"), &token)
            .await
            .status(),
        404
    );
    assert_json(
        sign_in(&app, &mut device).await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        200,
        "one step again"
    );

    // the log has it all: the passkey's coming and going, and how each sign-in went
    let events = app.events("/users/me/events", &token).await;
    let seen: Vec<(&str, &Value)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), &e["data"]))
        .collect();
    let login = |method: &str, aal: i64| (method.to_owned(), aal);
    let logins: Vec<(String, i64)> = seen
        .iter()
        .filter(|(t, _)| *t == "user.login_succeeded")
        .map(|(_, d)| login(d["method"].as_str().unwrap(), d["aal"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        logins,
        [
            login("password", 1),
            login("passkey", 2),
            login("passkey", 2),
            login("password", 2),
            login("password", 1)
        ]
    );
    let kinds: Vec<&str> = seen
        .iter()
        .map(|(t, _)| *t)
        .filter(|t| *t != "user.login_succeeded")
        .collect();
    assert_eq!(
        kinds,
        ["user.registered", "passkey.added", "passkey.removed"]
    );
    let added = seen.iter().find(|(t, _)| *t == "passkey.added").unwrap().1;
    assert_eq!(added, &json!({"passkey_id": id, "name": "Laptop"}));
}

async fn ceremonies_are_single_use_and_bound_to_their_user_and_origin(backend: Backend) {
    let (app, origin) = app_with_passkeys(backend).await;
    let (_, alice) = app.user_with_token().await;
    let (_, bob) = app.user_with_token().await;
    let mut device = Authenticator::new(&origin);

    // a challenge started for another user
    let opts = options(
        &app,
        "/auth/passkeys/register/options",
        &json!({}),
        Some(&alice),
    )
    .await;
    let credential = device.register(&opts);
    let app = &app;
    let finish = |token: &str, opts: &Value, credential: &Value| {
        let body =
            json!({"challenge_id": opts["challenge_id"], "name": "x", "credential": credential});
        let token = token.to_owned();
        async move {
            app.post_json("/auth/passkeys/register", &body, Some(&token))
                .await
        }
    };
    assert_json(
        finish(&bob, &opts, &credential).await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;
    // the attempt spent it: the rightful user cannot use it either
    assert_json(
        finish(&alice, &opts, &credential).await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;

    // a registration made on another origin (another RP ID too)
    let opts = options(
        app,
        "/auth/passkeys/register/options",
        &json!({}),
        Some(&alice),
    )
    .await;
    let mut elsewhere = Authenticator::new("https://evil.example");
    let mut foreign = opts.clone();
    foreign["publicKey"]["rp"]["id"] = json!("evil.example");
    let credential = elsewhere.register(&foreign);
    assert_json(
        finish(&alice, &opts, &credential).await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;
    // the same RP ID, another port of localhost
    let opts = options(
        app,
        "/auth/passkeys/register/options",
        &json!({}),
        Some(&alice),
    )
    .await;
    let mut other_port = Authenticator::new("http://localhost:9");
    let credential = other_port.register(&opts);
    assert_json(
        finish(&alice, &opts, &credential).await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;

    // a sound one (a device of its own: the first one keeps credentials the server
    // never took), then a replayed sign-in challenge
    let mut device = Authenticator::new(&origin);
    register(app, &alice, &mut device, "Phone").await;
    let opts = options(app, "/auth/passkeys/login/options", &json!({}), None).await;
    let credential = device.assert(&opts);
    let login = json!({"challenge_id": opts["challenge_id"], "credential": credential});
    assert_eq!(
        app.post_json("/auth/passkeys/login", &login, None)
            .await
            .status(),
        200
    );
    assert_json(
        app.post_json("/auth/passkeys/login", &login, None).await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;
    // garbage and an expired challenge
    let garbage = json!({"challenge_id": opts["challenge_id"], "credential": {"id": "x"}});
    assert_json(
        app.post_json("/auth/passkeys/login", &garbage, None).await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;
    assert_422(
        app.post_json("/auth/passkeys/login", &json!({"challenge_id": "x"}), None)
            .await,
    )
    .await;
    let opts = options(app, "/auth/passkeys/login/options", &json!({}), None).await;
    let credential = device.assert(&opts);
    app.clock.advance(Duration::from_secs(301));
    assert_json(
        app.post_json(
            "/auth/passkeys/login",
            &json!({"challenge_id": opts["challenge_id"], "credential": credential}),
            None,
        )
        .await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;
}

async fn a_cloned_authenticator_is_refused(backend: Backend) {
    let (app, origin) = app_with_passkeys(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let token = app.token(&email, PASSWORD).await;
    let mut device = Authenticator::new(&origin);
    register(&app, &token, &mut device, "Key").await;
    let mut clone = device.clone_device();
    // a second step is started before the original is used again
    let r = app.login(&email, PASSWORD).await;
    let mfa_token = r.json::<Value>().await.unwrap()["detail"]["mfa_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = options(
        &app,
        "/auth/passkeys/login/options",
        &json!({"mfa_token": mfa_token}),
        None,
    )
    .await;
    // the original signs twice: its counter moves on
    for _ in 0..2 {
        assert_eq!(sign_in(&app, &mut device).await.status(), 200);
    }
    // the copy signs with a counter behind the one seen last
    assert_json(
        sign_in(&app, &mut clone).await,
        400,
        json!({"detail": "PASSKEY_INVALID"}),
    )
    .await;
    // also where the ceremony's own state is older than the counter's last move
    let credential = clone.assert(&second);
    assert_json(
        app.post_json(
            "/auth/mfa/verify",
            &json!({"mfa_token": mfa_token, "challenge_id": second["challenge_id"], "credential": credential}),
            None,
        )
        .await,
        400,
        json!({"detail": "MFA_BAD_CODE"}),
    )
    .await;
    assert_eq!(sign_in(&app, &mut device).await.status(), 200);
}

/// Without a host name for the relying party (the test app's public URL is
/// http://127.0.0.1:0), every passkey route says so.
async fn passkeys_need_a_relying_party(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token().await;
    for (path, authed) in [
        ("/auth/passkeys/register/options", true),
        ("/auth/passkeys/login/options", false),
    ] {
        assert_json(
            app.post_json(path, &json!({}), authed.then_some(token.as_str()))
                .await,
            503,
            json!({"detail": "PASSKEYS_NOT_CONFIGURED"}),
        )
        .await;
    }
    assert_eq!(app.get("/auth/passkeys", Some(&token)).await.status(), 503);
}

both_backends!(
    passkeys_register_and_sign_in_alone,
    ceremonies_are_single_use_and_bound_to_their_user_and_origin,
    a_cloned_authenticator_is_refused,
    passkeys_need_a_relying_party,
);
