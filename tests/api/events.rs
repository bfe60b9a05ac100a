//! Audit events and webhooks (docs/audit-and-webhooks.md): each security event is stored
//! with the change it describes, read through `/audit` and `/users/me/events`, and POSTed,
//! signed, to every webhook receiver, at least once, across failures and replicas.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::smtp_sink::SmtpSink;
use crate::webhook_receiver::{sign, Receiver};

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_PASSWORD: &str = "another long passphrase";

fn id_of(user: &Value) -> String {
    user["id"].as_str().expect("id").to_owned()
}

/// A request as a browser would send it, with a request id to find in the event.
fn traced(req: reqwest::RequestBuilder, request_id: &str) -> reqwest::RequestBuilder {
    req.header("user-agent", "events-test/1.0")
        .header("x-request-id", request_id)
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["type"].as_str().expect("type"))
        .collect()
}

/// Every flow of the account lifecycle leaves its event, with who, from where, and
/// which request; and no event holds a password, a token or a hash.
async fn every_change_leaves_its_event(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(backend, |env| {
        env.insert("SMTP_URL".into(), smtp);
    })
    .await;
    let (admin_user, admin) = app.superuser_with_token().await;
    let admin_id = id_of(&admin_user);
    let email = unique_email();
    let mut secrets = vec![PASSWORD.to_owned(), NEW_PASSWORD.to_owned(), admin.clone()];

    // registration, from a client that names itself and its request
    let r = traced(app.client.post(app.url("/auth/register")), "req-register")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let user = id_of(&r.json().await.unwrap());
    let events = app.events(&format!("/audit?user_id={user}"), &admin).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(e["type"], "user.registered");
    assert_eq!(e["user_id"], user.as_str());
    assert_eq!(e["actor_id"], Value::Null);
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(e["user_agent"], "events-test/1.0");
    assert_eq!(e["request_id"], "req-register");
    assert_eq!(e["data"], json!({"method": "password"}));
    let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "actor_id",
            "at",
            "data",
            "id",
            "ip",
            "request_id",
            "type",
            "user_agent",
            "user_id"
        ]
    );
    assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");

    // sign-ins: a wrong password, an unknown address, a good one with a refresh token
    assert_eq!(app.login(&email, "not the password").await.status(), 400);
    let stranger = unique_email();
    let r = traced(app.client.post(app.url("/auth/jwt/login")), "req-stranger")
        .form(&[("username", stranger.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let unknown = app.events("/audit?type=user.login_failed", &admin).await;
    let unknown: Vec<&Value> = unknown
        .iter()
        .filter(|e| e["request_id"] == "req-stranger")
        .collect();
    assert_eq!(unknown.len(), 1);
    assert_eq!(unknown[0]["user_id"], Value::Null);
    assert_eq!(unknown[0]["data"], json!({"reason": "bad_credentials"}));
    assert!(
        !unknown[0].to_string().contains(&stranger),
        "an unknown address is never stored"
    );

    let tokens = app.login_offline(&email, PASSWORD).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    secrets.push(tokens["access_token"].as_str().unwrap().to_owned());
    secrets.push(refresh.clone());
    // the token rotates, then the spent one comes back after the reuse interval
    let r = app.refresh(&refresh).await;
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    secrets.push(rotated["refresh_token"].as_str().unwrap().to_owned());
    app.clock.advance(Duration::from_secs(11));
    assert_eq!(app.refresh(&refresh).await.status(), 400);

    // two more sessions: one ends the other, then signs out
    let b = app.token(&email, PASSWORD).await;
    let c = app.token(&email, PASSWORD).await;
    secrets.extend([b.clone(), c.clone()]);
    let sessions: Vec<Value> = app
        .get("/auth/sessions", Some(&c))
        .await
        .json()
        .await
        .unwrap();
    let c_session = sessions.iter().find(|s| s["current"] == true).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.delete(&format!("/auth/sessions/{c_session}"), &b)
            .await
            .status(),
        204
    );
    assert_eq!(app.logout(&b).await.status(), 204);

    // the user's own change of password
    let d = app.token(&email, PASSWORD).await;
    secrets.push(d.clone());
    let r = app
        .patch("/users/me", &d, &json!({"password": NEW_PASSWORD}))
        .await;
    assert_eq!(r.status(), 200);

    // mails: a reset and a verification, each recorded once the worker sends it
    for path in ["/auth/forgot-password", "/auth/request-verify-token"] {
        let r = app.post_json(path, &json!({"email": email}), None).await;
        assert_eq!(r.status(), 202);
    }
    let mails = sink.wait_for(3, WAIT).await;
    let reset = mails
        .iter()
        .find_map(|m| m.link_token("/reset-password"))
        .unwrap();
    let verify = mails.iter().find_map(|m| m.link_token("/verify")).unwrap();
    secrets.extend([reset.clone(), verify.clone()]);
    let reset_password = "yet another long passphrase";
    secrets.push(reset_password.to_owned());
    let r = app
        .post_json(
            "/auth/reset-password",
            &json!({"token": reset, "password": reset_password}),
            None,
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = app
        .post_json("/auth/verify", &json!({"token": verify}), None)
        .await;
    assert_eq!(r.status(), 200);

    // signed in again, then a superuser's changes, which name the superuser as actor
    app.token(&email, reset_password).await;
    assert_eq!(
        app.delete(&format!("/users/{user}/sessions"), &admin)
            .await
            .status(),
        204
    );
    let r = app
        .patch(
            &format!("/users/{user}"),
            &admin,
            &json!({"is_superuser": true, "is_verified": true, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.delete(&format!("/users/{user}"), &admin).await.status(),
        204
    );

    // kept after the user is gone, in the order they happened
    let events = app.events(&format!("/audit?user_id={user}"), &admin).await;
    assert_eq!(
        types(&events),
        [
            "user.registered",
            "user.login_failed",
            "user.login_succeeded",
            "refresh_token.reused",
            "user.login_succeeded",
            "user.login_succeeded",
            "session.ended",
            "user.logged_out",
            "user.login_succeeded",
            "user.updated",
            "password.changed",
            "password.reset_requested",
            "email.verification_requested",
            "password.changed",
            "email.verified",
            "user.login_succeeded",
            "session.ended",
            "user.updated",
            "password.changed",
            "user.deleted",
        ]
    );
    assert_eq!(events[1]["data"], json!({"reason": "bad_credentials"}));
    let login = &events[2]["data"];
    assert_eq!(login["method"], "password");
    assert_eq!(login["aal"], 1);
    let first_session = login["session_id"].as_str().unwrap();
    assert_eq!(events[3]["data"], json!({"session_id": first_session}));
    assert_eq!(
        events[6]["data"],
        json!({"reason": "signed_out_by_user", "session_id": c_session})
    );
    assert_eq!(events[7]["data"]["reason"], "logout");
    assert_eq!(events[9]["data"], json!({"fields": ["password"]}));
    assert_eq!(events[10]["data"], json!({"via": "self"}));
    assert_eq!(events[13]["data"], json!({"via": "reset"}));
    assert_eq!(
        events[16]["data"],
        json!({"reason": "ended_by_admin", "sessions": "all"})
    );
    assert_eq!(
        events[17]["data"],
        json!({"fields": ["password", "is_superuser"]})
    );
    assert_eq!(events[18]["data"], json!({"via": "admin"}));
    for (i, e) in events.iter().enumerate() {
        let by_admin = i >= 16;
        assert_eq!(e["actor_id"] == admin_id.as_str(), by_admin, "{e}");
        assert_eq!(e["user_id"], user.as_str(), "{e}");
    }

    // nothing secret anywhere in the log
    let everything = app.events("/audit", &admin).await;
    let text = serde_json::to_string(&everything).unwrap();
    for secret in &secrets {
        assert!(!text.contains(secret.as_str()), "a secret in the audit log");
    }
    assert!(!text.contains("$argon2"), "a hash in the audit log");
}

/// Failed sign-ins name their reason: a bad password, a locked account.
async fn failed_sign_ins_say_why(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("LOGIN_MAX_FAILURES".into(), "3".into());
    })
    .await;
    let (_, admin) = app.superuser_with_token().await;
    let email = unique_email();
    let user = id_of(&app.create_user(&email).await);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(app.login(&email, "wrong").await.status().as_u16());
    }
    assert_eq!(statuses, [400, 400, 400, 429]);
    let events = app.events(&format!("/audit?user_id={user}"), &admin).await;
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "user.login_failed")
        .map(|e| e["data"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "bad_credentials",
            "bad_credentials",
            "bad_credentials",
            "locked"
        ]
    );
}

/// `/audit` pages newest first with `before`, filters by user and type, and refuses
/// what it cannot read; `/users/me/events` shows only the caller's own.
async fn the_log_pages_and_filters(backend: Backend) {
    let app = spawn_app(backend).await;
    let (admin_user, admin) = app.superuser_with_token().await;
    let (me, my_token) = app.user_with_token().await;
    let me = id_of(&me);
    for _ in 0..4 {
        app.create_user(&unique_email()).await;
    }
    // whole log, two at a time: every event once, newest first
    let everything = app.events("/audit", &admin).await;
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(b) => format!("/audit?limit=2&before={b}"),
            None => "/audit?limit=2".to_owned(),
        };
        let page: Value = app.get(&path, Some(&admin)).await.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        paged.extend(items.iter().cloned());
        match page["next_before"].as_str() {
            Some(b) => {
                assert_eq!(items.len(), 2, "a full page before a next one");
                before = Some(b.to_owned())
            }
            None => break,
        }
    }
    paged.reverse();
    assert_eq!(paged, everything);
    // 6 registrations and 2 sign-ins (the superuser's, and mine)
    assert_eq!(everything.len(), 8, "{everything:?}");
    let ids: Vec<&str> = everything
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "ids grow with time");

    let registered = app.events("/audit?type=user.registered", &admin).await;
    assert_eq!(registered.len(), 6);
    assert!(registered.iter().all(|e| e["type"] == "user.registered"));
    let mine = app.events(&format!("/audit?user_id={me}"), &admin).await;
    assert_eq!(types(&mine), ["user.registered", "user.login_succeeded"]);
    let r: Value = app
        .get(
            &format!("/audit?user_id={me}&type=user.login_succeeded&limit=1"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["items"].as_array().unwrap().len(), 1);
    assert_eq!(r["next_before"], Value::Null, "no page after the last");

    // my own view: the same events, and only mine, whatever user_id says
    let own = app.events("/users/me/events", &my_token).await;
    assert_eq!(own, mine);
    let admin_id = id_of(&admin_user);
    let own = app
        .events(&format!("/users/me/events?user_id={admin_id}"), &my_token)
        .await;
    assert_eq!(own, mine);

    // refusals
    assert_eq!(app.get("/audit", Some(&my_token)).await.status(), 403);
    assert_eq!(app.get("/audit", None).await.status(), 401);
    assert_eq!(app.get("/users/me/events", None).await.status(), 401);
    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "type=user.nonsense",
        "user_id=42",
    ] {
        let errors = assert_422(app.get(&format!("/audit?{bad}"), Some(&admin)).await).await;
        let field = bad.split('=').next().unwrap();
        assert_eq!(errors[0]["loc"], json!(["query", field]), "{bad}");
    }
    let errors = assert_422(app.get("/users/me/events?limit=500", Some(&my_token)).await).await;
    assert_eq!(errors[0]["loc"], json!(["query", "limit"]));
}

/// An event is written in the transaction of its change: when the event cannot be
/// written, the change is not made either; a change refused leaves no event.
async fn an_event_and_its_change_commit_together(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let (user, token) = app.user_with_token().await;
    let user = id_of(&user);
    let (other, _) = app.user_with_token().await;

    // refused changes: an email taken, a wrong reset token
    let taken = other["email"].as_str().unwrap();
    assert_eq!(
        app.patch("/users/me", &token, &json!({"email": taken}))
            .await
            .status(),
        400
    );
    let r = app
        .post_json(
            "/auth/reset-password",
            &json!({"token": "forged", "password": NEW_PASSWORD}),
            None,
        )
        .await;
    assert_eq!(r.status(), 400);
    assert_eq!(
        app.event_types(&admin, &user).await,
        ["user.registered", "user.login_succeeded"]
    );

    // the database refuses `user.updated` rows: the change goes with it
    let mut sql_session = users_db::admin::SqlSession::open(&app.database.url).unwrap();
    let trigger = match backend {
        Backend::Sqlite => vec![
            "CREATE TRIGGER refuse_updates BEFORE INSERT ON audit_events \
             WHEN NEW.type = 'user.updated' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        ],
        Backend::Postgres => vec![
            "CREATE FUNCTION refuse_updates() RETURNS trigger AS $$ BEGIN \
             RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_updates BEFORE INSERT ON audit_events FOR EACH ROW \
             WHEN (NEW.type = 'user.updated') EXECUTE FUNCTION refuse_updates()",
        ],
    };
    for sql in trigger {
        sql_session.execute(sql).unwrap();
    }
    let new_email = unique_email();
    let r = app
        .patch("/users/me", &token, &json!({"email": new_email}))
        .await;
    assert!(r.status().is_server_error(), "{}", r.status());
    let me: Value = app.me(&token).await.json().await.unwrap();
    assert_ne!(
        me["email"],
        new_email.as_str(),
        "the change was rolled back"
    );
    assert_eq!(
        app.event_types(&admin, &user).await,
        ["user.registered", "user.login_succeeded"]
    );
    // other events still go through
    assert_eq!(app.logout(&token).await.status(), 204);
    assert_eq!(
        app.event_types(&admin, &user).await,
        ["user.registered", "user.login_succeeded", "user.logged_out"]
    );
}

/// Events older than AUDIT_RETENTION_DAYS are forgotten by the worker.
async fn old_events_are_forgotten(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("AUDIT_RETENTION_DAYS".into(), "2".into());
    })
    .await;
    let (_, admin) = app.superuser_with_token().await;
    let old = id_of(&app.create_user(&unique_email()).await);
    app.clock.advance(Duration::from_secs(3 * 86_400));
    let (admin_user, _) = (app.me(&admin).await, ());
    assert_eq!(admin_user.status(), 401, "the token expired meanwhile");
    let (fresh, _) = app.user_with_token().await;
    let fresh = id_of(&fresh);
    // a new superuser to read the log with
    let (_, admin) = app.superuser_with_token().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = app.event_types(&admin, &old).await;
        if left.is_empty() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still there: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.event_types(&admin, &fresh).await,
        ["user.registered", "user.login_succeeded"]
    );
}

fn webhooks_to(
    urls: &[&str],
    events: &str,
) -> impl FnOnce(&mut std::collections::HashMap<String, String>) {
    let urls = urls.join(",");
    let events = events.to_owned();
    move |env| {
        env.insert("WEBHOOK_URLS".into(), urls);
        env.insert("WEBHOOK_SECRET".into(), SECRET.into());
        env.insert("WEBHOOK_EVENTS".into(), events);
    }
}

/// A metric's value in `/metrics`.
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

/// Each event goes to every receiver as `{type, timestamp, data}`, signed the Standard
/// Webhooks way with the event id as `webhook-id`; only the types asked for.
async fn webhooks_are_signed_and_filtered(backend: Backend) {
    let (one, two) = (Receiver::start(SECRET).await, Receiver::start(SECRET).await);
    let app = spawn_app_with(
        backend,
        webhooks_to(&[&one.url, &two.url], "user.registered, user.login_failed"),
    )
    .await;
    let email = unique_email();
    let user = id_of(&app.create_user(&email).await);
    app.token(&email, PASSWORD).await; // user.login_succeeded: not asked for
    assert_eq!(app.login(&email, "wrong").await.status(), 400);
    let (_, admin) = app.superuser_with_token().await;
    let events = app.events(&format!("/audit?user_id={user}"), &admin).await;
    let wanted: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] != "user.login_succeeded")
        .collect();
    assert_eq!(wanted.len(), 2);
    for receiver in [&one, &two] {
        receiver.wait_for(3, WAIT).await; // and the superuser's registration
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = receiver.attempts();
        assert_eq!(got.len(), 3, "exactly the types asked for: {got:?}");
        for (delivery, event) in got
            .iter()
            .filter(|d| d.json()["data"]["user_id"] == user.as_str())
            .zip(&wanted)
        {
            assert!(delivery.signed && delivery.accepted);
            assert_eq!(delivery.id, event["id"].as_str().unwrap());
            let body = delivery.json();
            assert_eq!(body["type"], event["type"]);
            assert_eq!(body["timestamp"], event["at"]);
            assert_eq!(&body["data"], *event, "the event as /audit shows it");
            assert_eq!(body.as_object().unwrap().len(), 3);
            let sent_at: i64 = delivery.timestamp.parse().unwrap();
            let now = users_domain::Clock::now(&*app.clock).secs();
            assert!(
                (now - sent_at).abs() < 60,
                "webhook-timestamp is the attempt's time"
            );
        }
        // a receiver with another key would refuse them
        let d = &got[0];
        assert_ne!(
            sign(
                "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                &d.id,
                &d.timestamp,
                &d.body
            ),
            sign(SECRET, &d.id, &d.timestamp, &d.body)
        );
    }
    assert_eq!(metric(&app, "users_webhooks_delivered_total").await, 6.0);
    assert_eq!(metric(&app, "users_webhooks_pending").await, 0.0);
    assert!(metric(&app, "users_events_total{type=\"user.registered\"}").await >= 2.0);
}

/// A receiver that is down, then answers 503, gets every event once it is up: each
/// event id accepted once.
async fn a_receiver_down_gets_every_event_once_it_is_up(backend: Backend) {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let app = spawn_app_with(backend, webhooks_to(&[&url], "user.registered")).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(id_of(&app.create_user(&unique_email()).await));
    }
    // each delivery was tried (and refused) before the receiver comes up
    let mut db = users_db::admin::SqlSession::open(&app.database.url).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while db
        .count("SELECT count(*) AS n FROM outbox WHERE kind = 'webhook' AND attempts > 0")
        .unwrap()
        < 3
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt was made"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(metric(&app, "users_webhooks_pending").await, 3.0);
    let receiver = Receiver::start_on(port, SECRET).await;
    receiver.fail_next(2);
    // the retries are due later: move the app's clock past each backoff
    let deadline = tokio::time::Instant::now() + WAIT;
    while receiver.accepted().len() < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            receiver.attempts()
        );
        app.clock.advance(Duration::from_secs(11 * 60));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let accepted = receiver.accepted();
    let mut got: Vec<String> = accepted
        .iter()
        .map(|d| d.json()["data"]["user_id"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    ids.sort();
    assert_eq!(got, ids, "each event accepted once");
    assert_eq!(
        receiver.attempts().len(),
        5,
        "two 503s, then three deliveries"
    );
    assert_eq!(metric(&app, "users_webhooks_pending").await, 0.0);
}

/// Two replicas on one database: each event is delivered once, by one of them.
async fn two_replicas_deliver_each_event_once(backend: Backend) {
    let receiver = Receiver::start(SECRET).await;
    let configure = || webhooks_to(&[&receiver.url], "user.registered");
    let a = spawn_app_with(backend, configure()).await;
    let b = spawn_app_on(backend, a.database.clone(), configure()).await;
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        app.create_user(&unique_email()).await;
    }
    receiver.wait_for(10, WAIT).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = receiver.attempts();
    let mut ids: Vec<&str> = attempts.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((attempts.len(), ids.len()), (10, 10), "{attempts:?}");
}

/// A receiver that never answers 2xx: the delivery is given up after 24 hours.
async fn a_delivery_is_given_up_after_a_day(backend: Backend) {
    let receiver = Receiver::start(SECRET).await;
    receiver.fail_next(usize::MAX);
    let app = spawn_app_with(backend, webhooks_to(&[&receiver.url], "*")).await;
    app.create_user(&unique_email()).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while receiver.attempts().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no attempt");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.clock.advance(Duration::from_secs(25 * 3600));
    while metric(&app, "users_webhooks_failed_total").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "not given up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tried = receiver.attempts().len();
    assert_eq!(metric(&app, "users_webhooks_pending").await, 0.0);
    app.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        receiver.attempts().len(),
        tried,
        "no attempt after giving up"
    );
}

/// A failed delivery names the receiver's host, never the URL's path or query (either
/// may hold the receiver's token): not in the log, not in the outbox row's `last_error`.
/// One receiver answers 503, the other's port is closed.
async fn failed_deliveries_name_the_host_only(backend: Backend) {
    let receiver = Receiver::start(SECRET).await;
    receiver.fail_next(usize::MAX);
    let base = receiver.url.trim_end_matches("/hook").to_owned();
    let answering_host = base.trim_start_matches("http://").to_owned();
    let answering = format!("{base}/hooks/path-secret-a1b2?token=query-secret-c3d4");
    let refusing_host = format!("127.0.0.1:{}", free_port());
    let refusing = format!("http://{refusing_host}/hooks/path-secret-e5f6?token=query-secret-g7h8");
    let database = TestDatabase::new(backend);
    let mut env = process_env(&database.url);
    webhooks_to(&[&answering, &refusing], "user.registered")(&mut env);
    let server = ServerProcess::start(&env);
    let r = reqwest::Client::new()
        .post(server.url("/auth/register"))
        .json(&json!({"email": unique_email(), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let failed_lines = || -> Vec<String> {
        let lines = server.output.lock().unwrap().clone();
        lines
            .into_iter()
            .filter(|l| l.contains("delivery failed"))
            .collect()
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while failed_lines().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            server.output.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!receiver.attempts().is_empty(), "the receiver answered");
    let lines = server.output.lock().unwrap().clone();
    for host in [&answering_host, &refusing_host] {
        assert_eq!(
            failed_lines()
                .iter()
                .filter(|l| l.contains(host.as_str()))
                .count(),
            1,
            "{host}: {lines:?}"
        );
    }
    for needle in ["/hooks", "path-secret", "query-secret"] {
        assert!(
            !lines.iter().any(|l| l.contains(needle)),
            "`{needle}` in the log: {lines:?}"
        );
    }

    let mut db = users_db::admin::SqlSession::open(&database.url).unwrap();
    let count = |db: &mut users_db::admin::SqlSession, condition: &str| {
        db.count(&format!(
            "SELECT count(*) AS n FROM outbox WHERE kind = 'webhook' AND {condition}"
        ))
        .unwrap()
    };
    for host in [&answering_host, &refusing_host] {
        assert_eq!(
            count(&mut db, &format!("last_error LIKE '%{host}%'")),
            1,
            "{host} in last_error"
        );
    }
    assert_eq!(
        count(
            &mut db,
            "(last_error LIKE '%/hooks%' OR last_error LIKE '%secret%')"
        ),
        0,
        "a path or query in last_error"
    );
    drop(server);
}

both_backends!(
    failed_deliveries_name_the_host_only,
    every_change_leaves_its_event,
    failed_sign_ins_say_why,
    the_log_pages_and_filters,
    an_event_and_its_change_commit_together,
    old_events_are_forgotten,
    webhooks_are_signed_and_filtered,
    a_receiver_down_gets_every_event_once_it_is_up,
    two_replicas_deliver_each_event_once,
);

mod given_up {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::a_delivery_is_given_up_after_a_day(crate::helpers::Backend::Sqlite).await
    }
}
