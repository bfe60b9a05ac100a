//! Password reset and verification by email, through a real SMTP server.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::smtp_sink::{ReceivedMail, SmtpSink};

const WAIT: Duration = Duration::from_secs(20);

async fn app_with_smtp(backend: Backend) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = spawn_app_with(backend, |env| {
        env.insert("SMTP_URL".into(), url);
        env.insert("PUBLIC_URL".into(), "http://users.example.com".into());
    })
    .await;
    (app, sink)
}

async fn forgot(app: &TestApp, email: &str) {
    assert_json(
        app.post_json("/auth/forgot-password", &json!({"email": email}), None)
            .await,
        202,
        Value::Null,
    )
    .await;
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json(
        "/auth/reset-password",
        &json!({"token": token, "password": password}),
        None,
    )
    .await
}

fn reset_token(mail: &ReceivedMail) -> String {
    assert!(
        mail.text_body()
            .unwrap()
            .contains("http://users.example.com/reset-password?token="),
        "{:?}",
        mail.text_body()
    );
    let token = mail.link_token("/reset-password").expect("a reset link");
    assert!(
        mail.html_body().unwrap().contains(&token),
        "the HTML part carries the same token"
    );
    token
}

async fn password_reset_by_email(backend: Backend) {
    let (app, sink) = app_with_smtp(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let old_token = app.token(&email, PASSWORD).await;

    forgot(&app, &email.to_uppercase()).await;
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails[0].rcpt_to, vec![email.clone()]);
    assert!(mails[0].mail_from.contains("noreply@localhost"));
    let token = reset_token(&mails[0]);

    let new_password = "a fresh and long passphrase";
    assert_json(reset(&app, &token, new_password).await, 200, Value::Null).await;
    app.token(&email, new_password).await;
    assert_eq!(
        app.login(&email, PASSWORD).await.status(),
        400,
        "the old password no longer works"
    );
    assert_eq!(
        app.me(&old_token).await.status(),
        401,
        "earlier tokens are revoked"
    );
    // the token is spent
    assert_json(
        reset(&app, &token, "yet another passphrase").await,
        400,
        json!({"detail": "RESET_PASSWORD_BAD_TOKEN"}),
    )
    .await;
    // and the user is told their password changed
    let mails = sink.wait_for(2, WAIT).await;
    assert_eq!(mails[1].rcpt_to, vec![email.clone()]);
    assert!(
        mails[1]
            .subject()
            .unwrap()
            .to_lowercase()
            .contains("password"),
        "{:?}",
        mails[1].subject()
    );
    assert!(mails[1].link_token("/reset-password").is_none());
}

async fn reset_password_errors(backend: Backend) {
    let (app, sink) = app_with_smtp(backend).await;
    let email = unique_email();
    let user = app.create_user(&email).await;
    let id = user["id"].as_str().unwrap();
    let bad = json!({"detail": "RESET_PASSWORD_BAD_TOKEN"});
    forgot(&app, &email).await;
    let token = reset_token(&sink.wait_for(1, WAIT).await[0]);

    // a refused password leaves the token usable
    let resp = reset(&app, &token, "short").await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["detail"]["code"], "RESET_PASSWORD_INVALID_PASSWORD");
    assert!(body["detail"]["reason"].as_str().unwrap().contains("12"));
    let body: Value = reset(&app, &token, &format!("{email}-suffix"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["detail"]["code"], "RESET_PASSWORD_INVALID_PASSWORD");

    // garbage, other purposes, other secrets, expired
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
    let access = app.token(&email, PASSWORD).await;
    let _ = sink.messages();
    let fgpt = {
        // a real fingerprint of the current hash, to isolate each other defect
        let mut conn = app.db.get().unwrap();
        let stored = users_db::users::find_by_id(&mut conn, uuid::Uuid::parse_str(id).unwrap())
            .unwrap()
            .unwrap();
        use argon2::password_hash::{PasswordHasher, SaltString};
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        argon2::Argon2::default()
            .hash_password(stored.hashed_password.as_bytes(), &salt)
            .unwrap()
            .to_string()
    };
    let good_claims =
        json!({"sub": id, "password_fgpt": fgpt, "aud": "fastapi-users:reset", "exp": now + 600});
    for (what, t) in [
        ("garbage", "garbage".to_string()),
        ("an access token", access.clone()),
        (
            "another secret",
            sign(good_claims.clone(), "some-other-secret-entirely-0123456789"),
        ),
        (
            "expired",
            sign(
                json!({"sub": id, "password_fgpt": fgpt, "aud": "fastapi-users:reset", "exp": now - 1}),
                TEST_SECRET,
            ),
        ),
        (
            "wrong fingerprint",
            sign(
                json!({"sub": id, "password_fgpt": "$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "aud": "fastapi-users:reset", "exp": now + 600}),
                TEST_SECRET,
            ),
        ),
        (
            "unknown user",
            sign(
                json!({"sub": uuid::Uuid::new_v4().to_string(), "password_fgpt": fgpt, "aud": "fastapi-users:reset", "exp": now + 600}),
                TEST_SECRET,
            ),
        ),
        (
            "verify audience",
            sign(
                json!({"sub": id, "password_fgpt": fgpt, "aud": "fastapi-users:verify", "exp": now + 600}),
                TEST_SECRET,
            ),
        ),
    ] {
        let resp = reset(&app, &t, "a perfectly fine passphrase").await;
        assert_eq!(resp.status(), 400, "{what}");
        assert_eq!(resp.json::<Value>().await.unwrap(), bad, "{what}");
    }
    // a token minted the way fastapi-users mints it (same secret) works
    let fu_token = sign(good_claims.clone(), TEST_SECRET);
    // an inactive user's token is refused
    let (_, admin) = app.superuser_with_token().await;
    assert_eq!(
        app.patch(
            &format!("/users/{id}"),
            &admin,
            &json!({"is_active": false})
        )
        .await
        .status(),
        200
    );
    assert_json(
        reset(&app, &token, "a perfectly fine passphrase").await,
        400,
        bad.clone(),
    )
    .await;
    assert_eq!(
        app.patch(&format!("/users/{id}"), &admin, &json!({"is_active": true}))
            .await
            .status(),
        200
    );
    // a token minted the way fastapi-users mints it (same secret, argon2 fingerprint) works
    assert_json(
        reset(&app, &fu_token, "set with a fastapi-users token").await,
        200,
        Value::Null,
    )
    .await;
    // which makes the mailed token stale
    assert_json(
        reset(&app, &token, "a perfectly fine passphrase").await,
        400,
        bad.clone(),
    )
    .await;
    app.token(&email, "set with a fastapi-users token").await;
    // 422s
    let d = assert_422(
        app.post_json("/auth/reset-password", &json!({"token": "x"}), None)
            .await,
    )
    .await;
    assert_eq!(d[0]["loc"], json!(["body", "password"]));
    let d = assert_422(
        app.post_json("/auth/forgot-password", &json!({"email": "nope"}), None)
            .await,
    )
    .await;
    assert_eq!(d[0]["loc"], json!(["body", "email"]));
    assert_422(app.post_json("/auth/verify", &json!({}), None).await).await;
    assert_422(
        app.post_json("/auth/request-verify-token", &json!({"email": 3}), None)
            .await,
    )
    .await;
}

async fn unknown_and_inactive_addresses_get_no_mail(backend: Backend) {
    let (app, sink) = app_with_smtp(backend).await;
    let (inactive, _) = app.user_with_token().await;
    let (_, admin) = app.superuser_with_token().await;
    let path = format!("/users/{}", inactive["id"].as_str().unwrap());
    assert_eq!(
        app.patch(&path, &admin, &json!({"is_active": false}))
            .await
            .status(),
        200
    );
    let inactive_email = inactive["email"].as_str().unwrap();
    forgot(&app, "nobody-here@example.com").await;
    forgot(&app, inactive_email).await;
    assert_json(
        app.post_json(
            "/auth/request-verify-token",
            &json!({"email": "nobody-here@example.com"}),
            None,
        )
        .await,
        202,
        Value::Null,
    )
    .await;
    assert_json(
        app.post_json(
            "/auth/request-verify-token",
            &json!({"email": inactive_email}),
            None,
        )
        .await,
        202,
        Value::Null,
    )
    .await;
    // a known active address afterwards: once its mail is in, the others were handled
    let known = unique_email();
    app.create_user(&known).await;
    forgot(&app, &known).await;
    let mails = sink.wait_for(1, WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mails_after = sink.messages();
    assert_eq!(
        mails_after.len(),
        1,
        "{:?}",
        mails_after
            .iter()
            .map(|m| m.rcpt_to.clone())
            .collect::<Vec<_>>()
    );
    assert_eq!(mails[0].rcpt_to, vec![known]);
    let mut conn = app.db.get().unwrap();
    assert_eq!(
        users_db::outbox::pending_count(&mut conn, users_core::outbox::Channel::Mail.kinds())
            .unwrap(),
        0
    );
}

async fn email_verification(backend: Backend) {
    let (app, sink) = app_with_smtp(backend).await;
    let email = unique_email();
    let user = app.create_user(&email).await;
    assert_json(
        app.post_json("/auth/request-verify-token", &json!({"email": email}), None)
            .await,
        202,
        Value::Null,
    )
    .await;
    let mail = sink.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.rcpt_to, vec![email.clone()]);
    let token = mail.link_token("/verify").expect("a verification link");
    assert!(mail.html_body().unwrap().contains(&token));
    let resp = app
        .post_json("/auth/verify", &json!({"token": token}), None)
        .await;
    let mut expected = user.clone();
    expected["is_verified"] = json!(true);
    assert_json(resp, 200, expected).await;
    assert_json(
        app.post_json("/auth/verify", &json!({"token": token}), None)
            .await,
        400,
        json!({"detail": "VERIFY_USER_ALREADY_VERIFIED"}),
    )
    .await;
    assert_json(
        app.post_json("/auth/verify", &json!({"token": "garbage"}), None)
            .await,
        400,
        json!({"detail": "VERIFY_USER_BAD_TOKEN"}),
    )
    .await;
    // a verified user gets no further verification mail
    assert_json(
        app.post_json("/auth/request-verify-token", &json!({"email": email}), None)
            .await,
        202,
        Value::Null,
    )
    .await;

    // a token made for an address the user no longer has is refused
    let other = unique_email();
    app.create_user(&other).await;
    let other_token = app.token(&other, PASSWORD).await;
    assert_json(
        app.post_json("/auth/request-verify-token", &json!({"email": other}), None)
            .await,
        202,
        Value::Null,
    )
    .await;
    let mails = sink.wait_for(2, WAIT).await;
    assert_eq!(mails.len(), 2, "no mail for the verified user");
    let stale = mails[1].link_token("/verify").unwrap();
    assert_eq!(
        app.patch("/users/me", &other_token, &json!({"email": unique_email()}))
            .await
            .status(),
        200
    );
    assert_json(
        app.post_json("/auth/verify", &json!({"token": stale}), None)
            .await,
        400,
        json!({"detail": "VERIFY_USER_BAD_TOKEN"}),
    )
    .await;
}

async fn mail_survives_an_smtp_outage(backend: Backend) {
    let port = free_port();
    let app = spawn_app_with(backend, |env| {
        env.insert("SMTP_URL".into(), format!("smtp://127.0.0.1:{port}"));
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;
    forgot(&app, &email).await; // SMTP is down: still 202
    tokio::time::sleep(Duration::from_millis(1500)).await;
    {
        let mut conn = app.db.get().unwrap();
        let pending = users_db::outbox::by_status(&mut conn, users_db::outbox::PENDING).unwrap();
        assert_eq!(pending.len(), 1);
        assert!(pending[0].attempts >= 1, "a delivery was tried and failed");
    }
    let sink = SmtpSink::start_on(port).await;
    let mails = sink.wait_for(1, WAIT).await;
    assert!(mails[0].link_token("/reset-password").is_some());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.messages().len(), 1, "exactly once");
    let mut conn = app.db.get().unwrap();
    let sent = users_db::outbox::by_status(&mut conn, users_db::outbox::SENT).unwrap();
    assert_eq!(sent.len(), 1);
    assert!(
        sent[0].payload.is_none(),
        "the body (it holds a token) is dropped once sent"
    );
}

async fn mail_survives_a_restart(backend: Backend) {
    let port = free_port();
    let smtp = format!("smtp://127.0.0.1:{port}");
    let database = std::sync::Arc::new(TestDatabase::new(backend));
    let first = spawn_app_on(backend, database.clone(), |env| {
        env.insert("SMTP_URL".into(), smtp.clone());
    })
    .await;
    let email = unique_email();
    first.create_user(&email).await;
    forgot(&first, &email).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.handle.stop(true).await;
    drop(first);
    let sink = SmtpSink::start_on(port).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        sink.messages().is_empty(),
        "nothing sends while no server runs"
    );
    let _second = spawn_app_on(backend, database.clone(), |env| {
        env.insert("SMTP_URL".into(), smtp.clone());
    })
    .await;
    let mails = sink.wait_for(1, WAIT).await;
    assert_eq!(mails[0].rcpt_to, vec![email]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.messages().len(), 1, "exactly once");
}

async fn two_servers_deliver_each_mail_once(backend: Backend) {
    let sink = SmtpSink::start().await;
    let database = std::sync::Arc::new(TestDatabase::new(backend));
    let url = sink.url();
    let a = spawn_app_on(backend, database.clone(), |env| {
        env.insert("SMTP_URL".into(), url.clone());
    })
    .await;
    let b = spawn_app_on(backend, database.clone(), |env| {
        env.insert("SMTP_URL".into(), url.clone());
    })
    .await;
    let mut emails = Vec::new();
    for i in 0..12 {
        let email = unique_email();
        a.create_user(&email).await;
        let app = if i % 2 == 0 { &a } else { &b };
        forgot(app, &email).await;
        emails.push(email);
    }
    sink.wait_for(12, WAIT).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut got: Vec<String> = sink
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    got.sort();
    emails.sort();
    assert_eq!(got, emails, "each mail exactly once");
}

/// A delivery slower than the outbox lease (15 s): its worker renews the lease while
/// it waits, so the other server never takes the row and sends the mail again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_delivery_keeps_its_lease() {
    let sink = SmtpSink::start().await;
    sink.delay_replies_to_data(Duration::from_secs(20));
    let database = std::sync::Arc::new(TestDatabase::new(Backend::Sqlite));
    let url = sink.url();
    let a = spawn_app_on(Backend::Sqlite, database.clone(), |env| {
        env.insert("SMTP_URL".into(), url.clone());
    })
    .await;
    let _b = spawn_app_on(Backend::Sqlite, database.clone(), |env| {
        env.insert("SMTP_URL".into(), url.clone());
    })
    .await;
    let email = unique_email();
    a.create_user(&email).await;
    forgot(&a, &email).await;
    sink.wait_for(1, WAIT).await;
    let mut conn = a.db.get().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while users_db::outbox::pending_count(&mut conn, &["forgot_password"]).unwrap() > 0 {
        assert_eq!(
            sink.messages().len(),
            1,
            "sent again while the first delivery still waited for its answer"
        );
        assert!(std::time::Instant::now() < deadline, "never recorded");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        users_db::outbox::by_status(&mut conn, users_db::outbox::SENT)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(sink.messages().len(), 1, "sent once, though it took 20 s");
}

/// A worker whose row was taken by another (here: by hand, as a replica would once the
/// lease lapsed) stops that delivery at its next renewal instead of waiting for the
/// SMTP server: the row is the new holder's, and the worker is free for the next mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_lost_its_row_stops_delivering_it() {
    let sink = SmtpSink::start().await;
    sink.delay_replies_to_data(Duration::from_secs(40));
    let url = sink.url();
    let app = spawn_app_with(Backend::Sqlite, |env| {
        env.insert("SMTP_URL".into(), url.clone());
    })
    .await;
    let (first, second) = (unique_email(), unique_email());
    app.create_user(&first).await;
    app.create_user(&second).await;
    forgot(&app, &first).await;
    sink.wait_for(1, WAIT).await;
    let mut db = users_db::admin::SqlSession::open(&app.database.url).unwrap();
    db.execute("UPDATE outbox SET locked_by = 'another-replica' WHERE status = 'pending'")
        .unwrap();
    let taken = std::time::Instant::now();
    forgot(&app, &second).await;
    // the worker delivers one row at a time: the second mail leaves only once the first
    // delivery has ended, which without the stop would be when the SMTP server answers
    let mails = sink.wait_for(2, Duration::from_secs(20)).await;
    assert_eq!(
        mails.len(),
        2,
        "the second mail waited for the first delivery"
    );
    assert!(
        taken.elapsed() < Duration::from_secs(20),
        "the worker kept delivering a row it no longer held"
    );
    assert_eq!(
        db.count(
            "SELECT count(*) AS n FROM outbox WHERE locked_by = 'another-replica' AND status = 'pending'"
        )
        .unwrap(),
        1,
        "the row stays its new holder's"
    );
}

async fn mail_goes_to_eml_files_by_default(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("outgoing");
    let md = mail_dir.display().to_string();
    let app = spawn_app_with(backend, |env| {
        env.insert("MAIL_DIR".into(), md);
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;
    forgot(&app, &email).await;
    let deadline = std::time::Instant::now() + WAIT;
    let file = loop {
        let files: Vec<_> = std::fs::read_dir(&mail_dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(f) = files.first() {
            break f.path();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no .eml file appeared"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let raw = std::fs::read_to_string(&file).unwrap();
    let mail = ReceivedMail {
        mail_from: String::new(),
        rcpt_to: vec![],
        data: raw.clone(),
    };
    assert!(raw.contains("multipart/alternative"), "{raw}");
    assert!(raw.contains(&format!("To: {email}")), "{raw}");
    assert!(raw.contains("text/plain") && raw.contains("text/html"));
    let token = mail
        .link_token("/reset-password")
        .expect("link in the .eml");
    assert_json(
        reset(&app, &token, "set from an eml file").await,
        200,
        Value::Null,
    )
    .await;
}

async fn the_pages_complete_reset_and_verification(backend: Backend) {
    let (app, sink) = app_with_smtp(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    forgot(&app, &email).await;
    let token = reset_token(&sink.wait_for(1, WAIT).await[0]);

    let resp = app
        .get(&format!("/reset-password?token={token}"), None)
        .await;
    assert_eq!(resp.status(), 200);
    for (h, v) in [
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(resp.headers()[h], v);
    }
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("frame-ancestors 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("<form method=\"post\"")
            && html.contains(&token)
            && !html.contains("<script")
    );

    let submit = |password: &str, confirm: &str| {
        app.client
            .post(app.url("/reset-password"))
            .form(&[
                ("token", token.as_str()),
                ("password", password),
                ("confirm", confirm),
            ])
            .send()
    };
    let resp = submit("short", "short").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text().await.unwrap().contains("at least 12"),
        "the policy's reason is shown"
    );
    let resp = submit("one long passphrase", "another long passphrase")
        .await
        .unwrap();
    assert!(resp.text().await.unwrap().contains("differ"));
    let resp = submit("the page set this password", "the page set this password")
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Password changed"));
    app.token(&email, "the page set this password").await;
    let resp = submit("again with the same token", "again with the same token")
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(app.get("/reset-password", None).await.status(), 400);

    assert_json(
        app.post_json("/auth/request-verify-token", &json!({"email": email}), None)
            .await,
        202,
        Value::Null,
    )
    .await;
    let mails = sink.wait_for(3, WAIT).await;
    let verify = mails
        .iter()
        .find_map(|m| m.link_token("/verify"))
        .expect("verification mail");
    let resp = app.get(&format!("/verify?token={verify}"), None).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().contains("Email verified"));
    let t = app.token(&email, "the page set this password").await;
    assert_eq!(
        app.me(&t).await.json::<Value>().await.unwrap()["is_verified"],
        true
    );
    assert_eq!(app.get("/verify?token=nonsense", None).await.status(), 400);
}

both_backends!(
    password_reset_by_email,
    reset_password_errors,
    unknown_and_inactive_addresses_get_no_mail,
    email_verification,
    mail_survives_an_smtp_outage,
    mail_survives_a_restart,
    two_servers_deliver_each_mail_once,
    mail_goes_to_eml_files_by_default,
    the_pages_complete_reset_and_verification,
);
