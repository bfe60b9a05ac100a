//! Guessing is bounded however requests are interleaved or sent at once
//! (docs/security.md): a correct password with a second step pending does not reset the
//! account's count; one mfa_token evaluates at most five codes; parallel wrong passwords
//! stop at the lock; and a login costs the same whether the account is unknown, has no
//! password, or is an ordinary one with a wrong password.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::mfa::{first_step, user_with_totp, verify};

/// How many answers of each status (and code) a batch got.
async fn tally(responses: Vec<reqwest::Response>) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for r in responses {
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        // a 429's detail is a sentence with the wait in it
        let code = match &body["detail"] {
            _ if status == 429 => String::new(),
            Value::String(s) => s.clone(),
            other => other["code"].as_str().unwrap_or("").to_owned(),
        };
        *counts.entry(format!("{status} {code}")).or_default() += 1;
    }
    counts
}

/// A correct password answered with a second step gives its attempt back and leaves
/// the count alone: wrong codes reach the lock however they are interleaved with fresh
/// sign-ins (before, each correct password cleared the count: 28 wrong codes passed).
async fn wrong_codes_count_however_interleaved_with_logins(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("LOGIN_MAX_FAILURES".into(), "4".into());
    })
    .await;
    let (email, _, _, _) = user_with_totp(&app).await;
    let mut answers = Vec::new();
    for _ in 0..6 {
        let login = app.login(&email, PASSWORD).await;
        if login.status() == 429 {
            answers.push("login 429".to_owned());
            break;
        }
        let (mfa_token, _) = first_step(login).await;
        let r = verify(&app, json!({"mfa_token": mfa_token, "code": "000000"})).await;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        answers.push(format!("code {status} {}", body["detail"]));
    }
    assert_eq!(
        answers,
        [
            "code 400 \"MFA_BAD_CODE\"",
            "code 400 \"MFA_BAD_CODE\"",
            "code 400 \"MFA_BAD_CODE\"",
            "code 400 \"MFA_BAD_CODE\"",
            "login 429",
        ],
        "four wrong codes lock the account, fresh sign-ins in between or not"
    );
}

/// Forty wrong codes at once on one mfa_token: five are evaluated (each recorded as a
/// failed sign-in), the rest find the token spent.
async fn one_mfa_token_evaluates_at_most_five_codes_at_once(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("LOGIN_MAX_FAILURES".into(), "100".into());
    })
    .await;
    let (email, _, _, token) = user_with_totp(&app).await;
    let (mfa_token, _) = first_step(app.login(&email, PASSWORD).await).await;
    let attempts = (0..40).map(|i| {
        let body = json!({"mfa_token": mfa_token, "code": format!("{:06}", 100_000 + i)});
        let (client, url) = (app.client.clone(), app.url("/auth/mfa/verify"));
        async move { client.post(url).json(&body).send().await.unwrap() }
    });
    let counts = tally(futures_util::future::join_all(attempts).await).await;
    assert_eq!(counts.get("400 MFA_BAD_CODE"), Some(&5), "{counts:?}");
    assert_eq!(counts.get("400 MFA_TOKEN_INVALID"), Some(&35), "{counts:?}");
    let failed: Vec<Value> = app
        .events("/users/me/events?type=user.login_failed&limit=200", &token)
        .await;
    assert_eq!(
        failed
            .iter()
            .filter(|e| e["data"]["reason"] == "mfa_failed")
            .count(),
        5,
        "each evaluated code is a failed sign-in"
    );
}

/// Forty wrong passwords at once for one account: no more than the limit are evaluated
/// before the lock answers the rest, however they interleave.
async fn parallel_wrong_passwords_stop_at_the_lock(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("LOGIN_MAX_FAILURES".into(), "5".into());
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;
    let attempts = (0..40).map(|i| {
        let form = [
            ("username", email.clone()),
            ("password", format!("wrong password number {i}")),
        ];
        let (client, url) = (app.client.clone(), app.url("/auth/jwt/login"));
        async move { client.post(url).form(&form).send().await.unwrap() }
    });
    let counts = tally(futures_util::future::join_all(attempts).await).await;
    assert_eq!(
        counts.get("400 LOGIN_BAD_CREDENTIALS"),
        Some(&5),
        "{counts:?}"
    );
    assert_eq!(counts.get("429 "), Some(&35), "{counts:?}");
}

/// A stolen token is no way around the lock: wrong codes at `DELETE /auth/mfa/totp`
/// count like a sign-in's.
async fn wrong_codes_anywhere_count_toward_the_lock(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("LOGIN_MAX_FAILURES".into(), "3".into());
    })
    .await;
    let (email, _, _, token) = user_with_totp(&app).await;
    let body = json!({"code": "000000"});
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = app
            .client
            .delete(app.url("/auth/mfa/totp"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 429]);
    assert_eq!(app.login(&email, PASSWORD).await.status(), 429);
}

/// How long one failed login takes.
async fn failed_login(app: &TestApp, email: &str) -> Duration {
    let started = Instant::now();
    let r = app.login(email, "a wrong password!").await;
    let took = started.elapsed();
    assert_eq!(r.status(), 400, "{email}");
    took
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// A login for an unknown email, or for an account without a usable password (made
/// through a provider), costs what a wrong password for an ordinary account costs: each
/// median of 15 within ±50% (before, the password-less account answered in a tenth of
/// the time, telling which accounts have no password).
async fn every_failed_login_costs_one_hash(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        // the default (OWASP) cost, so the hash and not the request dominates
        env.insert("ARGON2_MEMORY_KIB".into(), "19456".into());
        env.insert("ARGON2_ITERATIONS".into(), "2".into());
        env.insert("LOGIN_MAX_FAILURES".into(), "100".into());
    })
    .await;
    let ordinary = unique_email();
    app.create_user(&ordinary).await;
    let (passwordless, _) = app.user_with_token().await;
    let id = uuid::Uuid::parse_str(passwordless["id"].as_str().unwrap()).unwrap();
    {
        let mut conn = app.db.get().unwrap();
        let changes = users_db::users::UserChanges {
            hashed_password: Some("!unusable-made-through-a-provider".into()),
            ..Default::default()
        };
        assert!(users_db::users::update(&mut conn, id, &changes, 0).unwrap());
    }
    let passwordless = passwordless["email"].as_str().unwrap().to_owned();
    let unknown = unique_email();
    // interleaved, so a machine that speeds up or slows down favours none of them
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..15 {
        a.push(failed_login(&app, &ordinary).await);
        b.push(failed_login(&app, &unknown).await);
        c.push(failed_login(&app, &passwordless).await);
    }
    let (ordinary, unknown, passwordless) = (median(a), median(b), median(c));
    for (what, t) in [("unknown email", unknown), ("no password", passwordless)] {
        let ratio = t.as_secs_f64() / ordinary.as_secs_f64();
        assert!(
            (0.5..=1.5).contains(&ratio),
            "{what}: {t:?} against {ordinary:?} for a wrong password ({ratio:.2}×)"
        );
    }
}

both_backends!(
    wrong_codes_count_however_interleaved_with_logins,
    one_mfa_token_evaluates_at_most_five_codes_at_once,
    parallel_wrong_passwords_stop_at_the_lock,
    wrong_codes_anywhere_count_toward_the_lock,
    every_failed_login_costs_one_hash,
);
