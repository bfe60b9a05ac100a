//! A second factor (docs/second-factor.md): TOTP with recovery codes, and the second step
//! of sign-in. Codes are computed here from the secret and the app's clock (totp.rs).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::smtp_sink::SmtpSink;
use crate::totp;

const WAIT: Duration = Duration::from_secs(20);

/// The app's now, in Unix seconds (its clock may have been moved forward).
pub(crate) fn now_secs(app: &TestApp) -> u64 {
    users_domain::Clock::now(&*app.clock).secs() as u64
}

/// A code for the next time step (so it was never used), moving the app's clock there.
pub(crate) fn fresh_code(app: &TestApp, secret: &str) -> String {
    app.clock.advance(Duration::from_secs(30));
    totp::code(secret, now_secs(app))
}

/// A user with TOTP on: (email, secret, recovery codes, the enrolling session's token).
pub(crate) async fn user_with_totp(app: &TestApp) -> (String, String, Vec<String>, String) {
    let (email, secret, codes, token, _) = user_with_totp_and_code(app).await;
    (email, secret, codes, token)
}

/// As [`user_with_totp`], and the code that confirmed the enrolment.
pub(crate) async fn user_with_totp_and_code(
    app: &TestApp,
) -> (String, String, Vec<String>, String, String) {
    let email = unique_email();
    app.create_user(&email).await;
    let token = app.token(&email, PASSWORD).await;
    let r = app
        .post_json(
            "/auth/mfa/totp",
            &json!({"password": PASSWORD}),
            Some(&token),
        )
        .await;
    assert_eq!(r.status(), 200);
    let secret = r.json::<Value>().await.unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = totp::code(&secret, now_secs(app));
    let r = app
        .post_json(
            "/auth/mfa/totp/confirm",
            &json!({"code": code}),
            Some(&token),
        )
        .await;
    assert_eq!(r.status(), 200);
    let codes: Vec<String> = r.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    (email, secret, codes, token, code)
}

/// The first step of a sign-in for a user with a factor: the mfa_token and methods.
pub(crate) async fn first_step(resp: reqwest::Response) -> (String, Value) {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 400, "{body}");
    let detail = &body["detail"];
    assert_eq!(detail["code"], "LOGIN_MFA_REQUIRED", "{body}");
    assert_eq!(detail.as_object().unwrap().len(), 3, "{body}");
    (
        detail["mfa_token"].as_str().unwrap().to_owned(),
        detail["methods"].clone(),
    )
}

pub(crate) async fn verify(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/auth/mfa/verify", &body, None).await
}

async fn totp_is_enrolled_from_one_session_and_confirmed_by_a_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let a = app.token(&email, PASSWORD).await;
    let b = app.token(&email, PASSWORD).await;

    // the password again, or a sign-in of the last ten minutes (docs/security.md):
    // a wrong password is refused whatever the session's age; without one, a session
    // signed in ten minutes ago no longer does
    assert_json(
        app.post_json(
            "/auth/mfa/totp",
            &json!({"password": "not the password!"}),
            Some(&a),
        )
        .await,
        400,
        json!({"detail": "MFA_BAD_PASSWORD"}),
    )
    .await;
    app.clock.advance(Duration::from_secs(601));
    assert_json(
        app.post_json("/auth/mfa/totp", &json!({}), Some(&a)).await,
        400,
        json!({"detail": "REAUTHENTICATION_REQUIRED"}),
    )
    .await;
    assert_eq!(
        app.post_json("/auth/mfa/totp", &json!({"password": PASSWORD}), None)
            .await
            .status(),
        401
    );
    let r = app
        .post_json("/auth/mfa/totp", &json!({"password": PASSWORD}), Some(&a))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let enrolment: Value = r.json().await.unwrap();
    let keys: BTreeSet<_> = enrolment.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["otpauth_uri", "qr_svg", "secret"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    let secret = enrolment["secret"].as_str().unwrap().to_owned();
    assert_eq!(totp::base32_decode(&secret).len(), 20, "160 bits: {secret}");
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    let encoded_email = email.replace('@', "%40");
    assert!(
        uri.starts_with(&format!(
            "otpauth://totp/users:{encoded_email}?secret={secret}"
        )),
        "{uri}"
    );
    assert!(uri.contains("issuer=users"), "{uri}");
    let svg = enrolment["qr_svg"].as_str().unwrap();
    assert!(svg.contains("<svg") && svg.contains("</svg>"), "{svg}");
    // pending: not a factor yet, sign-ins need no second step
    assert_json(
        app.get("/auth/mfa", Some(&a)).await,
        200,
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}),
    )
    .await;
    assert_eq!(app.login(&email, PASSWORD).await.status(), 200);

    // another session of the same user cannot confirm it
    let code = totp::code(&secret, now_secs(&app));
    assert_json(
        app.post_json("/auth/mfa/totp/confirm", &json!({"code": code}), Some(&b))
            .await,
        400,
        json!({"detail": "MFA_NOT_PENDING"}),
    )
    .await;
    // a wrong code does not
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert_json(
        app.post_json("/auth/mfa/totp/confirm", &json!({"code": wrong}), Some(&a))
            .await,
        400,
        json!({"detail": "MFA_BAD_CODE"}),
    )
    .await;
    for malformed in ["", "12345", "abcdef", "1234567"] {
        assert_json(
            app.post_json(
                "/auth/mfa/totp/confirm",
                &json!({"code": malformed}),
                Some(&a),
            )
            .await,
            400,
            json!({"detail": "MFA_BAD_CODE"}),
        )
        .await;
    }
    let r = app
        .post_json("/auth/mfa/totp/confirm", &json!({"code": code}), Some(&a))
        .await;
    assert_eq!(r.status(), 200);
    let codes: Vec<String> = r.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    assert_eq!(
        codes.iter().collect::<BTreeSet<_>>().len(),
        10,
        "all different"
    );
    assert!(
        codes
            .iter()
            .all(|c| c.len() == 14 && c.matches('-').count() == 2),
        "{codes:?}"
    );
    // this session is aal 2, the other one ended
    assert_eq!(app.me(&b).await.status(), 401);
    let sessions: Value = app
        .get("/auth/sessions", Some(&a))
        .await
        .json()
        .await
        .unwrap();
    let current: Vec<_> = sessions
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["current"] == true)
        .collect();
    assert_eq!(current[0]["aal"], 2);
    assert_eq!(sessions.as_array().unwrap().len(), 1, "{sessions}");
    assert_json(
        app.get("/auth/mfa", Some(&a)).await,
        200,
        json!({"totp": true, "passkeys": 0, "recovery_codes_left": 10}),
    )
    .await;
    assert_json(
        app.post_json("/auth/mfa/totp", &json!({"password": PASSWORD}), Some(&a))
            .await,
        400,
        json!({"detail": "MFA_ALREADY_ENABLED"}),
    )
    .await;
    // nothing of the secret comes back afterwards
    let status = app.get("/auth/mfa", Some(&a)).await.text().await.unwrap();
    assert!(!status.contains(&secret));
}

async fn sign_in_needs_the_second_step(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(backend, |env| {
        env.insert("SMTP_URL".into(), smtp);
    })
    .await;
    let (email, secret, recovery, _, used) = user_with_totp_and_code(&app).await;

    // the first factor alone gives no token
    let (mfa_token, methods) = first_step(app.login(&email, PASSWORD).await).await;
    assert_eq!(methods, json!(["totp", "recovery_code"]));
    assert!(mfa_token.len() >= 43);
    assert_eq!(
        app.me(&mfa_token).await.status(),
        401,
        "an mfa_token is no access token"
    );
    // a wrong password is still just that
    assert_json(
        app.login(&email, "not the password!").await,
        400,
        json!({"detail": "LOGIN_BAD_CREDENTIALS"}),
    )
    .await;

    // the code of the enrolment was used already: a replay is refused
    assert_json(
        verify(&app, json!({"mfa_token": mfa_token, "code": used})).await,
        400,
        json!({"detail": "MFA_BAD_CODE"}),
    )
    .await;
    assert_json(
        verify(
            &app,
            json!({"mfa_token": "forged", "code": fresh_code(&app, &secret)}),
        )
        .await,
        400,
        json!({"detail": "MFA_TOKEN_INVALID"}),
    )
    .await;
    let code = totp::code(&secret, now_secs(&app));
    let r = verify(&app, json!({"mfa_token": mfa_token, "code": code})).await;
    assert_eq!(r.status(), 200);
    let token: Value = r.json().await.unwrap();
    assert_eq!(
        token.as_object().unwrap().len(),
        2,
        "the Token of §3: {token}"
    );
    let access = token["access_token"].as_str().unwrap().to_owned();
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
        (mine["aal"].clone(), mine["method"].clone()),
        (json!(2), json!("password"))
    );
    // single use
    assert_json(
        verify(
            &app,
            json!({"mfa_token": mfa_token, "code": fresh_code(&app, &secret)}),
        )
        .await,
        400,
        json!({"detail": "MFA_TOKEN_INVALID"}),
    )
    .await;
    // the same code again, on a new sign-in: used
    let (again, _) = first_step(app.login(&email, PASSWORD).await).await;
    assert_json(
        verify(&app, json!({"mfa_token": again, "code": code})).await,
        400,
        json!({"detail": "MFA_BAD_CODE"}),
    )
    .await;

    // a recovery code works once, and its use is mailed
    let r = verify(
        &app,
        json!({"mfa_token": again, "recovery_code": recovery[0].to_uppercase()}),
    )
    .await;
    assert_eq!(r.status(), 200, "recovery codes ignore case");
    let mail = sink.wait_for_subject("recovery code", WAIT).await;
    assert!(
        mail.subject().unwrap().contains("recovery code"),
        "{:?}",
        mail.subject()
    );
    let text = mail.text_body().unwrap();
    assert!(text.contains("9 recovery codes left"), "{text}");
    assert!(
        !text.contains(&recovery[0]),
        "the code itself is not mailed"
    );
    let (third, _) = first_step(app.login(&email, PASSWORD).await).await;
    assert_json(
        verify(
            &app,
            json!({"mfa_token": third, "recovery_code": recovery[0]}),
        )
        .await,
        400,
        json!({"detail": "MFA_BAD_CODE"}),
    )
    .await;
    assert_json(
        app.get("/auth/mfa", Some(&access)).await,
        200,
        json!({"totp": true, "passkeys": 0, "recovery_codes_left": 9}),
    )
    .await;

    // what the first step asked for: a refresh token; the cookie
    let r = app
        .client
        .post(app.url("/auth/jwt/login"))
        .form(&[
            ("username", email.as_str()),
            ("password", PASSWORD),
            ("scope", "offline_access"),
        ])
        .send()
        .await
        .unwrap();
    let (offline, _) = first_step(r).await;
    let r = verify(
        &app,
        json!({"mfa_token": offline, "code": fresh_code(&app, &secret)}),
    )
    .await;
    let token: Value = r.json().await.unwrap();
    assert!(token["refresh_token"].is_string(), "{token}");
    let r = app
        .client
        .post(app.url("/auth/cookie/login"))
        .form(&[("username", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let (cookie_token, _) = first_step(r).await;
    let r = verify(
        &app,
        json!({"mfa_token": cookie_token, "code": fresh_code(&app, &secret)}),
    )
    .await;
    assert_eq!(r.status(), 204);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set_cookie.starts_with("fastapiusersauth=ey"),
        "{set_cookie}"
    );

    // the body names one proof
    let (fourth, _) = first_step(app.login(&email, PASSWORD).await).await;
    assert_422(verify(&app, json!({"mfa_token": fourth})).await).await;
    assert_422(
        verify(
            &app,
            json!({"mfa_token": fourth, "code": "123456", "recovery_code": "x"}),
        )
        .await,
    )
    .await;
    assert_422(verify(&app, json!({"code": "123456"})).await).await;
    // five bad codes spend the mfa_token
    for _ in 0..5 {
        assert_json(
            verify(&app, json!({"mfa_token": fourth, "code": "000000"})).await,
            400,
            json!({"detail": "MFA_BAD_CODE"}),
        )
        .await;
    }
    assert_json(
        verify(
            &app,
            json!({"mfa_token": fourth, "code": fresh_code(&app, &secret)}),
        )
        .await,
        400,
        json!({"detail": "MFA_TOKEN_INVALID"}),
    )
    .await;
    // and it expires after five minutes
    let (fifth, _) = first_step(app.login(&email, PASSWORD).await).await;
    app.clock.advance(Duration::from_secs(301));
    assert_json(
        verify(
            &app,
            json!({"mfa_token": fifth, "code": totp::code(&secret, now_secs(&app))}),
        )
        .await,
        400,
        json!({"detail": "MFA_TOKEN_INVALID"}),
    )
    .await;
}

async fn bad_codes_count_toward_the_lockout(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("LOGIN_MAX_FAILURES".into(), "3".into());
    })
    .await;
    let (email, secret, _, _) = user_with_totp(&app).await;
    let (mfa_token, _) = first_step(app.login(&email, PASSWORD).await).await;
    for _ in 0..3 {
        assert_eq!(
            verify(&app, json!({"mfa_token": mfa_token, "code": "000000"}))
                .await
                .status(),
            400
        );
    }
    // locked: even a right code is refused for a while (the clock is not moved here)
    let r = verify(
        &app,
        json!({"mfa_token": mfa_token, "code": totp::code(&secret, now_secs(&app))}),
    )
    .await;
    assert_eq!(r.status(), 429, "the account is locked");
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(app.login(&email, PASSWORD).await.status(), 429);
}

async fn recovery_codes_are_renewed_and_totp_disabled_with_a_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let (email, secret, old_codes, token) = user_with_totp(&app).await;
    assert_json(
        app.post_json(
            "/auth/mfa/recovery-codes",
            &json!({"code": "000000"}),
            Some(&token),
        )
        .await,
        400,
        json!({"detail": "MFA_BAD_CODE"}),
    )
    .await;
    let r = app
        .post_json(
            "/auth/mfa/recovery-codes",
            &json!({"code": fresh_code(&app, &secret)}),
            Some(&token),
        )
        .await;
    assert_eq!(r.status(), 200);
    let new_codes: Vec<String> = r.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(new_codes.len(), 10);
    assert!(new_codes.iter().all(|c| !old_codes.contains(c)));
    // the old set died
    let (mfa_token, _) = first_step(app.login(&email, PASSWORD).await).await;
    assert_json(
        verify(
            &app,
            json!({"mfa_token": mfa_token, "recovery_code": old_codes[1]}),
        )
        .await,
        400,
        json!({"detail": "MFA_BAD_CODE"}),
    )
    .await;

    // disabling needs a valid code (here a recovery code)
    let disable = |code: String| {
        app.client
            .delete(app.url("/auth/mfa/totp"))
            .bearer_auth(&token)
            .json(&json!({ "code": code }))
            .send()
    };
    assert_json(
        disable("000000".into()).await.unwrap(),
        400,
        json!({"detail": "MFA_BAD_CODE"}),
    )
    .await;
    assert_eq!(disable(new_codes[0].clone()).await.unwrap().status(), 204);
    assert_json(
        app.get("/auth/mfa", Some(&token)).await,
        200,
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}),
    )
    .await;
    // signing in is one step again
    assert_eq!(app.login(&email, PASSWORD).await.status(), 200);

    let events = app.events("/users/me/events", &token).await;
    let seen: Vec<(&str, &Value)> = events
        .iter()
        .map(|e| (e["type"].as_str().unwrap(), &e["data"]))
        .collect();
    assert_eq!(
        seen,
        [
            ("user.registered", &json!({"method": "password"})),
            ("user.login_succeeded", &events[1]["data"]),
            ("mfa.enabled", &json!({"method": "totp"})),
            ("user.login_failed", &json!({"reason": "mfa_failed"})),
            ("mfa.recovery_code_used", &json!({"left": 9})),
            ("mfa.disabled", &json!({"method": "totp"})),
            ("user.login_succeeded", &events[6]["data"]),
        ]
    );
}

async fn a_superuser_removes_every_factor_of_a_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let (email, _, _, token) = user_with_totp(&app).await;
    let id = app.me(&token).await.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/users/{id}/mfa");
    assert_eq!(
        app.delete(&path, &token).await.status(),
        403,
        "403 before the id"
    );
    assert_eq!(
        app.delete("/users/nonsense/mfa", &token).await.status(),
        403
    );
    assert_eq!(
        app.delete("/users/nonsense/mfa", &admin).await.status(),
        404
    );
    assert_eq!(
        app.delete(&format!("/users/{}/mfa", uuid::Uuid::new_v4()), &admin)
            .await
            .status(),
        404
    );
    assert_eq!(app.delete(&path, &admin).await.status(), 204);
    assert_eq!(
        app.me(&token).await.status(),
        401,
        "the user's sessions ended"
    );
    let token = app.token(&email, PASSWORD).await;
    assert_json(
        app.get("/auth/mfa", Some(&token)).await,
        200,
        json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0}),
    )
    .await;
    let events = app.events("/users/me/events", &token).await;
    let reset = &events[events.len() - 2];
    assert_eq!(reset["type"], "mfa.disabled");
    assert_eq!(reset["data"], json!({"method": "all"}));
    let admin_id = app.me(&admin).await.json::<Value>().await.unwrap()["id"].clone();
    assert_eq!(reset["actor_id"], admin_id, "the superuser who did it");
}

/// An account made through a provider has no password: enrolling needs a recent
/// sign-in instead.
async fn without_a_password_enrolment_needs_a_recent_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let (user, token) = app.user_with_token().await;
    let id = uuid::Uuid::parse_str(user["id"].as_str().unwrap()).unwrap();
    {
        let mut conn = app.db.get().unwrap();
        let changes = users_db::users::UserChanges {
            hashed_password: Some("!unusable-for-the-test".into()),
            ..Default::default()
        };
        assert!(users_db::users::update(&mut conn, id, &changes, 0).unwrap());
    }
    let r = app
        .post_json("/auth/mfa/totp", &json!({}), Some(&token))
        .await;
    assert_eq!(r.status(), 200, "a session of a moment ago");
    app.clock.advance(Duration::from_secs(601));
    assert_json(
        app.post_json("/auth/mfa/totp", &json!({}), Some(&token))
            .await,
        400,
        json!({"detail": "REAUTHENTICATION_REQUIRED"}),
    )
    .await;
}

both_backends!(
    totp_is_enrolled_from_one_session_and_confirmed_by_a_code,
    sign_in_needs_the_second_step,
    bad_codes_count_toward_the_lockout,
    recovery_codes_are_renewed_and_totp_disabled_with_a_code,
    a_superuser_removes_every_factor_of_a_user,
    without_a_password_enrolment_needs_a_recent_sign_in,
);
