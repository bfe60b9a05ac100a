//! API keys (docs/roles-and-api-keys.md): made with re-authentication, shown once,
//! accepted as `Bearer` as their user, refused on the writes that change how the person
//! signs in, revoked at once, checked for their checksum before any database read.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::smtp_sink::SmtpSink;

const BASE62: &str = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// CRC-32 (zlib's), written here again so the test does not take the service's word.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn base62_6(mut n: u64) -> String {
    let mut out = Vec::new();
    for _ in 0..6 {
        out.push(BASE62.as_bytes()[(n % 62) as usize]);
        n /= 62;
    }
    out.reverse();
    String::from_utf8(out).unwrap()
}

/// A key of the right shape and checksum that the service never made.
fn forged_key() -> String {
    let random: String = uuid::Uuid::new_v4()
        .simple()
        .to_string()
        .chars()
        .chain("ABCDEFGHIJKLMNOP".chars())
        .take(34)
        .collect();
    let sum = base62_6(u64::from(crc32(random.as_bytes())));
    format!("usr_{random}{sum}")
}

async fn make_key(app: &TestApp, token: &str, body: Value) -> Value {
    let r = app
        .post_json("/users/me/api-keys", &body, Some(token))
        .await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics"))
}

async fn keys_are_made_listed_and_revoked(backend: Backend) {
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = spawn_app_with(backend, |env| {
        env.insert("SMTP_URL".into(), smtp);
    })
    .await;
    let (admin_user, admin) = app.superuser_with_token().await;
    let email = unique_email();
    let user = app.create_user(&email).await;
    let id = user["id"].as_str().unwrap();
    let token = app.token(&email, PASSWORD).await;

    // a fresh session re-authenticates by itself
    let first = make_key(&app, &token, json!({"name": "ci"})).await;
    let key = first["key"].as_str().unwrap().to_owned();
    let keys: Vec<&str> = first
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut keys = keys;
    keys.sort();
    assert_eq!(
        keys,
        [
            "created_at",
            "expires_at",
            "id",
            "key",
            "last_used_at",
            "name",
            "permissions",
            "prefix"
        ]
    );
    assert_eq!(key.len(), 44);
    assert!(key.starts_with("usr_"));
    assert!(key[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        &key[38..],
        base62_6(u64::from(crc32(&key.as_bytes()[4..38]))),
        "the last 6 are the CRC-32 of the 34 before them"
    );
    assert_eq!(first["prefix"], key[..12]);
    assert_eq!(first["name"], "ci");
    assert_eq!(first["permissions"], Value::Null);
    assert_eq!(first["expires_at"], Value::Null);
    assert_eq!(first["last_used_at"], Value::Null);

    // the key is its user
    let me: Value = app.me(&key).await.json().await.unwrap();
    assert_eq!(me["id"], id);
    assert_eq!(me["email"], email);
    assert_eq!(app.get("/auth/sessions", Some(&key)).await.status(), 200);
    // not on the routes of roles, API keys and the provider (Part three)
    for path in ["/users/me/roles", "/users/me/api-keys", "/users/me/grants"] {
        assert_eq!(app.get(path, Some(&key)).await.status(), 401, "{path}");
    }

    // the notice mail of a new key, which never holds the key
    let mail = sink
        .wait_for_subject("An API key was created", Duration::from_secs(10))
        .await;
    assert!(mail.rcpt_to.iter().any(|r| r.eq_ignore_ascii_case(&email)));
    assert!(!mail.data.contains(&key));

    // the password, or a recent session: a wrong password is refused at any age
    assert_json(
        app.post_json(
            "/users/me/api-keys",
            &json!({"name": "x", "password": "wrong password here"}),
            Some(&token),
        )
        .await,
        400,
        json!({"detail": "MFA_BAD_PASSWORD"}),
    )
    .await;
    app.clock.advance(Duration::from_secs(601));
    assert_json(
        app.post_json("/users/me/api-keys", &json!({"name": "x"}), Some(&token))
            .await,
        400,
        json!({"detail": "REAUTHENTICATION_REQUIRED"}),
    )
    .await;
    let second = make_key(
        &app,
        &token,
        json!({"name": "deploy", "password": PASSWORD, "expires_in_days": 30}),
    )
    .await;
    assert!(second["expires_at"].is_string());

    // the lifetime is 1..=3650 days, at its field
    for days in [json!(0), json!(3651), json!(-1)] {
        let detail = assert_422(
            app.post_json(
                "/users/me/api-keys",
                &json!({"name": "x", "password": PASSWORD, "expires_in_days": days}),
                Some(&token),
            )
            .await,
        )
        .await;
        assert_eq!(detail[0]["loc"], json!(["body", "expires_in_days"]));
    }
    let detail = assert_422(
        app.post_json(
            "/users/me/api-keys",
            &json!({"password": PASSWORD}),
            Some(&token),
        )
        .await,
    )
    .await;
    assert_eq!(detail[0]["loc"], json!(["body", "name"]));

    // permissions: only those the user's roles grant
    assert_json(
        app.post_json(
            "/users/me/api-keys",
            &json!({"name": "x", "password": PASSWORD, "permissions": ["invoices:read"]}),
            Some(&token),
        )
        .await,
        400,
        json!({"detail": "API_KEY_PERMISSION_NOT_HELD"}),
    )
    .await;
    let r = app
        .post_json(
            "/roles",
            &json!({"name": "billing", "permissions": ["invoices:read", "invoices:write"]}),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .client
        .put(app.url(&format!("/users/{id}/roles")))
        .bearer_auth(&admin)
        .json(&json!({"roles": ["billing"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let third = make_key(
        &app,
        &token,
        json!({"name": "reader", "password": PASSWORD, "permissions": ["invoices:read"]}),
    )
    .await;
    assert_eq!(third["permissions"], json!(["invoices:read"]));

    // listed newest first, never with the key; the use of the first is recorded
    let list: Vec<Value> = app
        .get("/users/me/api-keys", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = list.iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["reader", "deploy", "ci"]);
    for k in &list {
        assert!(k.get("key").is_none(), "{k}");
        assert_eq!(k.as_object().unwrap().len(), 7, "{k}");
    }
    assert!(list[2]["last_used_at"].is_string(), "{}", list[2]);
    assert_eq!(list[1]["last_used_at"], Value::Null);
    // a superuser sees them too
    let theirs: Vec<Value> = app
        .get(&format!("/users/{id}/api-keys"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(theirs, list);
    assert_eq!(
        app.get(&format!("/users/{id}/api-keys"), Some(&token))
            .await
            .status(),
        403
    );

    // revoked: at once; then 404, as for another user's key
    let first_id = first["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/users/me/api-keys/{first_id}"), &token)
            .await
            .status(),
        204
    );
    assert_json(app.me(&key).await, 401, json!({"detail": "Unauthorized"})).await;
    assert_json(
        app.delete(&format!("/users/me/api-keys/{first_id}"), &token)
            .await,
        404,
        json!({"detail": "Not Found"}),
    )
    .await;
    let second_id = second["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/users/me/api-keys/{second_id}"), &admin)
            .await
            .status(),
        404,
        "another user's key"
    );
    assert_eq!(
        app.delete("/users/me/api-keys/not-a-uuid", &token)
            .await
            .status(),
        404
    );
    // a superuser revokes anyone's
    assert_eq!(
        app.delete(&format!("/users/{id}/api-keys/{second_id}"), &admin)
            .await
            .status(),
        204
    );
    assert_eq!(
        app.delete(&format!("/users/{id}/api-keys/{second_id}"), &admin)
            .await
            .status(),
        404
    );

    // events, which never hold the key (nor its hash)
    let events = app.events(&format!("/audit?user_id={id}"), &admin).await;
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&key[4..]));
    let created: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "api_key.created")
        .collect();
    assert_eq!(created.len(), 3);
    assert_eq!(created[0]["data"]["name"], "ci");
    assert_eq!(created[0]["data"]["prefix"], key[..12]);
    let revoked: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "api_key.revoked")
        .collect();
    assert_eq!(revoked.len(), 2);
    assert_eq!(revoked[0]["data"]["api_key_id"], first_id);
    assert_eq!(revoked[0]["actor_id"], Value::Null);
    assert_eq!(revoked[1]["actor_id"], admin_user["id"]);
}

async fn a_bad_checksum_is_refused_without_a_query(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, token) = app.user_with_token().await;
    let key = make_key(&app, &token, json!({"name": "ci"})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    // one character changed: the checksum no longer holds
    let mut broken = key.clone().into_bytes();
    broken[20] = if broken[20] == b'A' { b'B' } else { b'A' };
    let broken = String::from_utf8(broken).unwrap();
    let checks = metric(&app, "users_token_checks_total").await;
    for bad in [
        broken.as_str(),
        &key[..43],
        &format!("{key}0"),
        "usr_",
        "usr_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    ] {
        assert_json(app.me(bad).await, 401, json!({"detail": "Unauthorized"})).await;
    }
    assert_eq!(
        metric(&app, "users_token_checks_total").await,
        checks,
        "a malformed key reached the lookup"
    );
    // a well-formed key the service never made is looked up, and refused
    assert_json(
        app.me(&forged_key()).await,
        401,
        json!({"detail": "Unauthorized"}),
    )
    .await;
    assert_eq!(metric(&app, "users_token_checks_total").await, checks + 1.0);
    assert_eq!(app.me(&key).await.status(), 200);
    assert_eq!(metric(&app, "users_token_checks_total").await, checks + 2.0);
}

async fn keys_may_not_change_how_the_person_signs_in(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let token = app.token(&email, PASSWORD).await;
    let made = make_key(&app, &token, json!({"name": "ci"})).await;
    let key = made["key"].as_str().unwrap().to_owned();
    let key_id = made["id"].as_str().unwrap().to_owned();
    let sid = uuid::Uuid::new_v4();
    let not_allowed = || json!({"detail": "API_KEY_NOT_ALLOWED"});
    let writes: Vec<(&str, String, Value)> = vec![
        ("POST", "/auth/jwt/logout".into(), json!({})),
        ("POST", "/auth/cookie/logout".into(), json!({})),
        ("DELETE", "/auth/sessions".into(), json!({})),
        ("DELETE", format!("/auth/sessions/{sid}"), json!({})),
        (
            "POST",
            "/auth/mfa/totp".into(),
            json!({"password": PASSWORD}),
        ),
        ("DELETE", "/auth/mfa/totp".into(), json!({"code": "123456"})),
        (
            "POST",
            "/auth/mfa/totp/confirm".into(),
            json!({"code": "123456"}),
        ),
        (
            "POST",
            "/auth/mfa/recovery-codes".into(),
            json!({"code": "123456"}),
        ),
        (
            "POST",
            "/auth/passkeys/register/options".into(),
            json!({"password": PASSWORD}),
        ),
        (
            "POST",
            "/auth/passkeys/register".into(),
            json!({"credential": {}}),
        ),
        (
            "DELETE",
            format!("/auth/passkeys/{sid}"),
            json!({"password": PASSWORD}),
        ),
        ("DELETE", "/users/me/identities/google".into(), json!({})),
        (
            "DELETE",
            "/users/me/identities/google/123".into(),
            json!({}),
        ),
        (
            "POST",
            "/users/me/api-keys".into(),
            json!({"name": "more", "password": PASSWORD}),
        ),
        ("DELETE", format!("/users/me/api-keys/{key_id}"), json!({})),
        (
            "PATCH",
            "/users/me".into(),
            json!({"email": unique_email()}),
        ),
        (
            "PATCH",
            "/users/me".into(),
            json!({"password": "another good password"}),
        ),
    ];
    for (method, path, body) in &writes {
        let r = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(&key)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_json(r, 403, not_allowed()).await;
    }
    // nothing of it happened: the key and the session still work, the email is the same
    let me: Value = app.me(&key).await.json().await.unwrap();
    assert_eq!(me["email"], email);
    assert_eq!(app.me(&token).await.status(), 200);
    assert!(!app.token(&email, PASSWORD).await.is_empty());
    // what does not change how the person signs in is allowed
    assert_eq!(app.patch("/users/me", &key, &json!({})).await.status(), 200);
    assert_eq!(app.get("/auth/mfa", Some(&key)).await.status(), 200);
    assert_eq!(
        app.get("/users/me/api-keys", Some(&key)).await.status(),
        401,
        "not on the routes of Part three"
    );
    // the same writes with the session's token are not refused for it
    let r = app
        .patch(
            "/users/me",
            &token,
            &json!({"password": "another good password"}),
        )
        .await;
    assert_eq!(r.status(), 200);
    // keys survive a password change
    assert_eq!(app.me(&key).await.status(), 200);

    // a superuser's key may not set someone else's email or password either (a leaked
    // key must not become every account), but may change the flags
    let (_, admin) = app.superuser_with_token().await;
    let admin_key = make_key(&app, &admin, json!({"name": "ops"})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = me["id"].as_str().unwrap();
    let path = format!("/users/{id}");
    let taken = unique_email();
    for body in [
        json!({"email": taken}),
        json!({"password": "the squatter's password"}),
    ] {
        let r = app.patch(&path, &admin_key, &body).await;
        assert_json(r, 403, not_allowed()).await;
    }
    assert_eq!(
        app.login(&email, "the squatter's password").await.status(),
        400,
        "the refused password was not set"
    );
    let r = app
        .patch(&path, &admin_key, &json!({"is_verified": true}))
        .await;
    assert_eq!(r.status(), 200);
    let user: Value = r.json().await.unwrap();
    assert_eq!(
        (user["email"].as_str(), user["is_verified"].as_bool()),
        (Some(email.as_str()), Some(true))
    );
    // the superuser's own token still may
    let r = app.patch(&path, &admin, &json!({"email": taken})).await;
    assert_eq!(r.status(), 200);
}

async fn keys_end_with_their_user_and_their_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let (admin_user, _) = app.superuser_with_token().await;
    let (user, token) = app.user_with_token().await;
    let id = user["id"].as_str().unwrap();
    let lasting = make_key(&app, &token, json!({"name": "a"})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let daily = make_key(&app, &token, json!({"name": "b", "expires_in_days": 1})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.me(&daily).await.status(), 200);
    // last_used_at: once a minute at most, not on every request
    let used = |app: &TestApp| {
        let mut conn = app.db.get().unwrap();
        let rows =
            users_db::api_keys::of_user(&mut conn, uuid::Uuid::parse_str(id).unwrap()).unwrap();
        rows.iter()
            .find(|r| r.name == "b")
            .unwrap()
            .last_used_at
            .unwrap()
    };
    let first_use = used(&app);
    app.clock.advance(Duration::from_secs(30));
    assert_eq!(app.me(&daily).await.status(), 200);
    assert_eq!(used(&app), first_use, "written again within the minute");
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(app.me(&daily).await.status(), 200);
    assert!(used(&app) > first_use, "not written after a minute");

    app.clock.advance(Duration::from_secs(86_400));
    assert_json(app.me(&daily).await, 401, json!({"detail": "Unauthorized"})).await;
    assert_eq!(app.me(&lasting).await.status(), 200);
    // (the superuser signs in again: a day went by)
    let admin = app
        .token(admin_user["email"].as_str().unwrap(), PASSWORD)
        .await;
    // an inactive user's keys are refused
    let r = app
        .patch(
            &format!("/users/{id}"),
            &admin,
            &json!({"is_active": false}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.me(&lasting).await.status(), 401);
    let r = app
        .patch(&format!("/users/{id}"), &admin, &json!({"is_active": true}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(app.me(&lasting).await.status(), 200);
    // and they end with the user
    assert_eq!(
        app.delete(&format!("/users/{id}"), &admin).await.status(),
        204
    );
    assert_eq!(app.me(&lasting).await.status(), 401);
}

/// As for sessions (consistency.rs): a key revoked in one request is refused by every
/// request that starts after that request's answer, under concurrent load.
async fn revocation_is_seen_by_every_later_request(backend: Backend) {
    const USERS: usize = 8;
    const CLIENTS: usize = 24;
    let app = Arc::new(
        spawn_app_with(backend, |env| {
            env.insert("DATABASE_MAX_CONNECTIONS".into(), "8".into());
        })
        .await,
    );
    let mut users = Vec::new();
    for _ in 0..USERS {
        let (_, token) = app.user_with_token().await;
        let made = make_key(&app, &token, json!({"name": "load"})).await;
        let key = made["key"].as_str().unwrap().to_owned();
        users.push((token, made["id"].as_str().unwrap().to_owned(), key));
    }
    // session tokens in the same load, so batches mix keys and sessions
    let credentials: Arc<Vec<String>> = Arc::new(
        users
            .iter()
            .map(|u| u.2.clone())
            .chain(users.iter().map(|u| u.0.clone()))
            .collect(),
    );
    let seen = Arc::new(Mutex::new(Vec::<(usize, Instant, u16)>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for client in 0..CLIENTS {
        let (app, credentials, seen, stop) =
            (app.clone(), credentials.clone(), seen.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut i = client;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let n = i % credentials.len();
                i += 5;
                let started = Instant::now();
                let status = app.me(&credentials[n]).await.status().as_u16();
                seen.lock().unwrap().push((n, started, status));
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut revoked_at = [None; USERS];
    for (n, (token, key_id, _)) in users.iter().enumerate() {
        let r = app
            .delete(&format!("/users/me/api-keys/{key_id}"), token)
            .await;
        assert_eq!(r.status(), 204);
        revoked_at[n] = Some(Instant::now());
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    let (mut before_ok, mut after, mut sessions_ok) = (0, 0, 0);
    for &(n, started, status) in seen.iter() {
        if n >= USERS {
            assert_eq!(status, 200, "a session token was refused");
            sessions_ok += 1;
            continue;
        }
        assert!(status == 200 || status == 401, "status {status}");
        if started > revoked_at[n].unwrap() {
            after += 1;
            assert_eq!(
                status, 401,
                "a request after the revocation was let through"
            );
        } else if status == 200 {
            before_ok += 1;
        }
    }
    println!("{backend:?}: {before_ok} key requests before, {after} after, {sessions_ok} session requests");
    assert!(before_ok > 50, "the load ran: {before_ok}");
    assert!(after > 50, "requests came after the revocations: {after}");
    assert!(sessions_ok > 50);
}

/// What users-core offers the OAuth provider: a user's permissions and role names, and a
/// key string checked into its user and the permissions it holds now.
async fn the_core_verifies_keys_and_their_permissions(backend: Backend) {
    use users_core::flows::{api_keys, roles};
    let app = spawn_app(backend).await;
    let (_, admin) = app.superuser_with_token().await;
    let (user, token) = app.user_with_token().await;
    let id = user["id"].as_str().unwrap();
    let uid = uuid::Uuid::parse_str(id).unwrap();
    for (name, permissions) in [
        ("reader", json!(["invoices:read", "reports:read"])),
        ("writer", json!(["invoices:read", "invoices:write"])),
    ] {
        let r = app
            .post_json(
                "/roles",
                &json!({"name": name, "permissions": permissions}),
                Some(&admin),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let set = |names: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            let r = app
                .client
                .put(app.url(&format!("/users/{id}/roles")))
                .bearer_auth(&admin)
                .json(&json!({ "roles": names }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    set(json!(["reader", "writer"])).await;
    assert_eq!(
        roles::permissions_of(&app.core, uid).await.unwrap(),
        ["invoices:read", "invoices:write", "reports:read"]
    );
    assert_eq!(
        roles::role_names_of(&app.core, uid).await.unwrap(),
        ["reader", "writer"]
    );
    let all = make_key(&app, &token, json!({"name": "all"})).await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let narrow = make_key(
        &app,
        &token,
        json!({"name": "narrow", "permissions": ["invoices:write", "reports:read"]}),
    )
    .await;
    let narrow_key = narrow["key"].as_str().unwrap().to_owned();
    let now = users_domain::Clock::now(&*app.clock);
    let verified = api_keys::verify(&app.core, &all, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verified.user.id, uid);
    assert_eq!(
        verified.permissions,
        ["invoices:read", "invoices:write", "reports:read"]
    );
    let verified = api_keys::verify(&app.core, &narrow_key, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verified.key_id, narrow["id"].as_str().unwrap());
    assert_eq!(verified.permissions, ["invoices:write", "reports:read"]);

    // the user loses `writer`: the keys hold what the user still holds
    set(json!(["reader"])).await;
    let verified = api_keys::verify(&app.core, &narrow_key, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verified.permissions, ["reports:read"]);
    let verified = api_keys::verify(&app.core, &all, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(verified.permissions, ["invoices:read", "reports:read"]);

    // refused: malformed, unknown, revoked
    assert!(api_keys::verify(&app.core, &all[..43], now)
        .await
        .unwrap()
        .is_none());
    assert!(api_keys::verify(&app.core, &forged_key(), now)
        .await
        .unwrap()
        .is_none());
    let narrow_id = narrow["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/users/me/api-keys/{narrow_id}"), &token)
            .await
            .status(),
        204
    );
    assert!(api_keys::verify(&app.core, &narrow_key, now)
        .await
        .unwrap()
        .is_none());
}

both_backends!(
    the_core_verifies_keys_and_their_permissions,
    keys_are_made_listed_and_revoked,
    a_bad_checksum_is_refused_without_a_query,
    keys_may_not_change_how_the_person_signs_in,
    keys_end_with_their_user_and_their_time,
    revocation_is_seen_by_every_later_request,
);
