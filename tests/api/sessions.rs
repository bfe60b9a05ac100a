//! Sessions (docs/sessions-and-tokens.md): devices, refresh tokens with rotation and reuse
//! detection, expiry, and what ends sessions.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

async fn sessions_of(app: &TestApp, token: &str) -> Vec<Value> {
    let r = app.get("/auth/sessions", Some(token)).await;
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap().as_array().unwrap().clone()
}

async fn login_as(app: &TestApp, email: &str, user_agent: &str) -> String {
    let r = app
        .client
        .post(app.url("/auth/jwt/login"))
        .header("user-agent", user_agent)
        .form(&[("username", email), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn is_iso_utc(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    s.len() == 20 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

async fn devices_are_listed_and_ended_one_by_one(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let laptop = login_as(&app, &email, "Laptop/1.0").await;
    let phone = login_as(&app, &email, "Phone/2.0").await;
    let tablet = login_as(&app, &email, &"T".repeat(300)).await;

    let list = sessions_of(&app, &phone).await;
    assert_eq!(list.len(), 3);
    let keys: BTreeSet<_> = list[0].as_object().unwrap().keys().cloned().collect();
    let expected: BTreeSet<_> = [
        "id",
        "created_at",
        "last_used_at",
        "expires_at",
        "ip",
        "user_agent",
        "method",
        "aal",
        "current",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(keys, expected);
    // newest first; the caller's marked
    assert_eq!(
        list[0]["user_agent"],
        "T".repeat(256),
        "cut at 256 characters"
    );
    assert_eq!(list[1]["user_agent"], "Phone/2.0");
    assert_eq!(list[2]["user_agent"], "Laptop/1.0");
    let current: Vec<_> = list.iter().map(|s| s["current"] == true).collect();
    assert_eq!(current, [false, true, false]);
    for s in &list {
        assert_eq!(s["ip"], "127.0.0.1");
        assert_eq!(s["method"], "password");
        assert_eq!(s["aal"], 1);
        assert!(is_iso_utc(&s["created_at"]), "{s}");
        assert!(is_iso_utc(&s["last_used_at"]), "{s}");
        assert!(is_iso_utc(&s["expires_at"]), "{s}");
        assert!(s["expires_at"].as_str() > s["created_at"].as_str());
    }

    // ending one device leaves the others
    let laptop_id = list[2]["id"].as_str().unwrap().to_owned();
    let r = app
        .delete(&format!("/auth/sessions/{laptop_id}"), &phone)
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(app.me(&laptop).await.status(), 401);
    assert_eq!(app.me(&phone).await.status(), 200);
    assert_eq!(app.me(&tablet).await.status(), 200);
    assert_eq!(sessions_of(&app, &phone).await.len(), 2);

    // ended, unknown, malformed and other users' ids are all 404
    let (_, stranger) = app.user_with_token().await;
    let theirs = sessions_of(&app, &stranger).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in [
        laptop_id.as_str(),
        &uuid::Uuid::new_v4().to_string(),
        "not-a-session",
        &theirs,
    ] {
        assert_json(
            app.delete(&format!("/auth/sessions/{id}"), &phone).await,
            404,
            json!({"detail": "Not Found"}),
        )
        .await;
    }
    assert_eq!(app.me(&stranger).await.status(), 200);

    // sign out everywhere else
    assert_eq!(app.delete("/auth/sessions", &phone).await.status(), 204);
    assert_eq!(app.me(&tablet).await.status(), 401);
    assert_eq!(app.me(&phone).await.status(), 200);
    let list = sessions_of(&app, &phone).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["current"], true);

    // logout ends the session itself
    assert_eq!(app.logout(&phone).await.status(), 204);
    assert_eq!(app.me(&phone).await.status(), 401);
    assert_eq!(
        app.get("/auth/sessions", None).await.status(),
        401,
        "the device list needs a token"
    );
}

async fn refresh_tokens_rotate_and_a_late_reuse_ends_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let first = app.login_offline(&email, PASSWORD).await;
    let keys: BTreeSet<_> = first.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["access_token", "expires_in", "refresh_token", "token_type"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert_eq!(first["token_type"], "bearer");
    assert_eq!(first["expires_in"], 3600);
    let r0 = first["refresh_token"].as_str().unwrap().to_owned();
    assert!(r0.len() >= 43, "at least 256 bits: {r0}");
    assert!(!r0.contains('.'), "opaque, not a JWT");
    // without offline_access, exactly the Token of §3
    let plain: Value = app.login(&email, PASSWORD).await.json().await.unwrap();
    assert_eq!(plain.as_object().unwrap().len(), 2, "{plain}");

    // rotation (JSON)
    let r = app.refresh(&r0).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let second: Value = r.json().await.unwrap();
    let r1 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r0);
    let a1 = second["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.me(&a1).await.status(), 200);
    // same session: the refresh created none
    let listed = sessions_of(&app, &a1).await;
    assert_eq!(listed.len(), 2, "the offline login and the plain one");
    assert!(listed.iter().any(|s| s["current"] == true));

    // rotation with the RFC 6749 form
    let r = app
        .client
        .post(app.url("/auth/jwt/refresh"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &r1)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let third: Value = r.json().await.unwrap();
    let r2 = third["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r2, r1);

    // the token spent just now, again within the interval: the current one
    let again: Value = app.refresh(&r1).await.json().await.unwrap();
    assert_eq!(again["refresh_token"], r2, "converges on the current token");
    assert_eq!(
        app.me(again["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    // a token spent two rotations ago is theft, at once
    assert_json(
        app.refresh(&r0).await,
        400,
        json!({"detail": "REFRESH_TOKEN_REUSED"}),
    )
    .await;
    // the whole session is gone: its access and refresh tokens
    assert_eq!(app.me(&a1).await.status(), 401);
    assert_json(
        app.refresh(&r2).await,
        400,
        json!({"detail": "REFRESH_TOKEN_INVALID"}),
    )
    .await;

    // the just-spent token after the interval is theft too
    let fresh = app.login_offline(&email, PASSWORD).await;
    let f0 = fresh["refresh_token"].as_str().unwrap().to_owned();
    let f1: Value = app.refresh(&f0).await.json().await.unwrap();
    app.clock.advance(Duration::from_secs(11));
    assert_json(
        app.refresh(&f0).await,
        400,
        json!({"detail": "REFRESH_TOKEN_REUSED"}),
    )
    .await;
    assert_eq!(
        app.me(f1["access_token"].as_str().unwrap()).await.status(),
        401
    );

    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("users_refreshes_total{result=\"rotated\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("users_refreshes_total{result=\"converged\"} 1"));
    assert!(metrics.contains("users_refreshes_total{result=\"reused\"} 2"));
}

/// Many sessions refreshing at once, each along its own chain: every rotation is
/// answered 200 with the next token, none is lost or counted twice (on SQLite the
/// writers take turns: docs/operations.md#sqlite-writers).
async fn many_sessions_refreshing_at_once_all_rotate(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let email = unique_email();
    app.create_user(&email).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let app = app.clone();
        let first = app.login_offline(&email, PASSWORD).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        tasks.push(tokio::spawn(async move {
            let mut token = first;
            let mut seen = vec![token.clone()];
            for _ in 0..4 {
                let r = app.refresh(&token).await;
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                assert_eq!(status, 200, "{body}");
                token = body["refresh_token"].as_str().unwrap().to_owned();
                assert!(!seen.contains(&token), "a new token each time");
                seen.push(token.clone());
            }
            token
        }));
    }
    let mut last = BTreeSet::new();
    for t in tasks {
        last.insert(t.await.unwrap());
    }
    assert_eq!(last.len(), 16, "sixteen chains, sixteen current tokens");
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("users_refreshes_total{result=\"rotated\"} 64"),
        "{metrics}"
    );
    // each chain's current token still rotates
    for token in last {
        assert_eq!(app.refresh(&token).await.status(), 200);
    }
}

/// Refreshes that arrive together are checked and rotated in one transaction
/// (docs/sessions-and-tokens.md#rotations): forged and replayed tokens among them are
/// refused, a replay ends its own session, and the good ones beside them still rotate.
async fn bad_refreshes_in_a_burst_spoil_only_themselves(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let email = unique_email();
    app.create_user(&email).await;
    let mut good = Vec::new();
    let mut replayed = Vec::new();
    for i in 0..12 {
        let r0 = app.login_offline(&email, PASSWORD).await["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        if i < 8 {
            good.push(r0);
            continue;
        }
        // two rotations on: r0 is older than the one spent just before
        let r1 = app.refresh(&r0).await.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        let r2 = app.refresh(&r1).await.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
        replayed.push((r0, r2));
    }
    // a token of a good session with its last character changed: the MAC fails
    let forged: Vec<String> = good[..4]
        .iter()
        .map(|t| {
            let mut t = t.clone().into_bytes();
            let at = t.len() - 2;
            t[at] = if t[at] == b'A' { b'B' } else { b'A' };
            String::from_utf8(t).unwrap()
        })
        .collect();
    let mut burst: Vec<(&'static str, String)> = Vec::new();
    burst.extend(good.iter().map(|t| ("good", t.clone())));
    burst.extend(forged.into_iter().map(|t| ("forged", t)));
    burst.extend(replayed.iter().map(|(old, _)| ("replayed", old.clone())));
    let tasks: Vec<_> = burst
        .into_iter()
        .map(|(kind, token)| {
            let app = app.clone();
            tokio::spawn(async move {
                let r = app.refresh(&token).await;
                let status = r.status().as_u16();
                let body: Value = r.json().await.unwrap();
                (kind, status, body)
            })
        })
        .collect();
    let mut next = Vec::new();
    for t in tasks {
        let (kind, status, body) = t.await.unwrap();
        match kind {
            "good" => {
                assert_eq!(status, 200, "{body}");
                next.push(body["refresh_token"].as_str().unwrap().to_owned());
            }
            "forged" => assert_eq!(body["detail"], "REFRESH_TOKEN_INVALID", "{status}"),
            _ => assert_eq!(body["detail"], "REFRESH_TOKEN_REUSED", "{status}"),
        }
        assert!(kind == "good" || status == 400, "{kind}: {status}");
    }
    // the good chains go on; the replayed sessions are over, their newest token too
    for token in next {
        assert_eq!(app.refresh(&token).await.status(), 200);
    }
    for (_, newest) in replayed {
        assert_eq!(app.refresh(&newest).await.status(), 400);
    }
}

async fn concurrent_refreshes_converge_on_one_token(backend: Backend) {
    let app = std::sync::Arc::new(spawn_app(backend).await);
    let email = unique_email();
    app.create_user(&email).await;
    let r0 = app.login_offline(&email, PASSWORD).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (app, r0) = (app.clone(), r0.clone());
        tasks.push(tokio::spawn(async move {
            let r = app.refresh(&r0).await;
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    let mut got = BTreeSet::new();
    for t in tasks {
        let (status, body) = t.await.unwrap();
        assert_eq!(status, 200, "{body}");
        got.insert(body["refresh_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(got.len(), 1, "every caller got the same refresh token");
    let current = got.into_iter().next().unwrap();
    assert_ne!(current, r0);
    // the session did not fork: the current token rotates on
    assert_eq!(app.refresh(&current).await.status(), 200);
}

async fn two_processes_refreshing_at_once_converge(backend: Backend) {
    let database = TestDatabase::new(backend);
    let env = process_env(&database.url);
    let a = ServerProcess::start(&env);
    let b = ServerProcess::start(&env);
    let client = reqwest::Client::new();
    let email = unique_email();
    let r = client
        .post(a.url("/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    for _ in 0..5 {
        let login: Value = client
            .post(b.url("/auth/jwt/login"))
            .form(&[
                ("username", email.as_str()),
                ("password", PASSWORD),
                ("scope", "offline_access"),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let r0 = login["refresh_token"].as_str().unwrap().to_owned();
        let refresh = |server: &ServerProcess| {
            client
                .post(server.url("/auth/jwt/refresh"))
                .json(&json!({ "refresh_token": r0 }))
                .send()
        };
        let (ra, rb) = tokio::join!(refresh(&a), refresh(&b));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert_eq!((ra.status().as_u16(), rb.status().as_u16()), (200, 200));
        let (ja, jb): (Value, Value) = (ra.json().await.unwrap(), rb.json().await.unwrap());
        assert_eq!(
            ja["refresh_token"], jb["refresh_token"],
            "no fork across processes"
        );
        let next = client
            .post(a.url("/auth/jwt/refresh"))
            .json(&json!({ "refresh_token": ja["refresh_token"] }))
            .send()
            .await
            .unwrap();
        assert_eq!(next.status(), 200);
    }
}

async fn bad_refresh_tokens_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    let user = app.create_user(&email).await;
    let login = app.login_offline(&email, PASSWORD).await;
    let access = login["access_token"].as_str().unwrap().to_owned();
    let refresh = login["refresh_token"].as_str().unwrap().to_owned();
    let mut flipped = refresh.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        "",
        "garbage",
        "a.b.c",
        access.as_str(),
        flipped.as_str(),
        &"A".repeat(76),
    ] {
        assert_json(
            app.refresh(bad).await,
            400,
            json!({"detail": "REFRESH_TOKEN_INVALID"}),
        )
        .await;
    }
    // a refresh token is no access token
    assert_eq!(app.me(&refresh).await.status(), 401);
    // the field is required, the grant must be refresh_token
    let d = assert_422(app.post_json("/auth/jwt/refresh", &json!({}), None).await).await;
    assert_eq!(d[0]["loc"], json!(["body", "refresh_token"]));
    let d = assert_422(
        app.post_raw(
            "/auth/jwt/refresh",
            "application/x-www-form-urlencoded",
            format!("grant_type=password&refresh_token={refresh}"),
        )
        .await,
    )
    .await;
    assert_eq!(d[0]["loc"], json!(["body", "grant_type"]));
    assert_422(
        app.post_raw("/auth/jwt/refresh", "application/json", "{")
            .await,
    )
    .await;
    // nothing above spent the token
    let r = app.refresh(&refresh).await;
    assert_eq!(r.status(), 200);
    let current = r.json::<Value>().await.unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // an inactive user's, then a deleted user's
    let (_, admin) = app.superuser_with_token().await;
    let path = format!("/users/{}", user["id"].as_str().unwrap());
    let r = app.patch(&path, &admin, &json!({"is_active": false})).await;
    assert_eq!(r.status(), 200);
    assert_json(
        app.refresh(&current).await,
        400,
        json!({"detail": "REFRESH_TOKEN_INVALID"}),
    )
    .await;
    assert_eq!(app.delete(&path, &admin).await.status(), 204);
    assert_json(
        app.refresh(&current).await,
        400,
        json!({"detail": "REFRESH_TOKEN_INVALID"}),
    )
    .await;
}

async fn sessions_expire_when_idle_and_at_their_lifetime(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("SESSION_IDLE_SECONDS".into(), "300".into());
        env.insert("SESSION_LIFETIME_SECONDS".into(), "900".into());
        env.insert("JWT_LIFETIME_SECONDS".into(), "3600".into());
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;

    // idle: a use within the limit keeps it; none for longer ends it
    let token = app.token(&email, PASSWORD).await;
    app.clock.advance(Duration::from_secs(200));
    assert_eq!(app.me(&token).await.status(), 200, "used at +200 s");
    app.clock.advance(Duration::from_secs(200));
    assert_eq!(
        app.me(&token).await.status(),
        200,
        "200 s after its last use"
    );
    app.clock.advance(Duration::from_secs(301));
    assert_eq!(app.me(&token).await.status(), 401, "301 s unused");

    // absolute: refreshes keep it in use, but not past its lifetime
    let login = app.login_offline(&email, PASSWORD).await;
    let mut refresh = login["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(250));
        let r = app.refresh(&refresh).await;
        assert_eq!(r.status(), 200, "refresh counts as use");
        refresh = r.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    app.clock.advance(Duration::from_secs(151));
    assert_json(
        app.refresh(&refresh).await,
        400,
        json!({"detail": "REFRESH_TOKEN_INVALID"}),
    )
    .await;
}

async fn a_password_change_ends_every_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let a = app.token(&email, PASSWORD).await;
    let b = app.login_offline(&email, PASSWORD).await;
    let new_password = "a brand new long passphrase";
    let r = app
        .patch("/users/me", &a, &json!({"password": new_password}))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.me(&a).await.status(),
        401,
        "the one that made the change too"
    );
    assert_eq!(
        app.me(b["access_token"].as_str().unwrap()).await.status(),
        401
    );
    assert_json(
        app.refresh(b["refresh_token"].as_str().unwrap()).await,
        400,
        json!({"detail": "REFRESH_TOKEN_INVALID"}),
    )
    .await;
    let c = app.token(&email, new_password).await;
    assert_eq!(sessions_of(&app, &c).await.len(), 1);
}

async fn superusers_see_and_end_a_users_sessions(backend: Backend) {
    let app = spawn_app(backend).await;
    let (admin_user, admin) = app.superuser_with_token().await;
    let (user, token) = app.user_with_token().await;
    let path = format!("/users/{}/sessions", user["id"].as_str().unwrap());
    // 401, then 403 before the id is even looked at
    assert_eq!(app.get(&path, None).await.status(), 401);
    assert_json(
        app.get("/users/nonsense/sessions", Some(&token)).await,
        403,
        json!({"detail": "Forbidden"}),
    )
    .await;
    assert_eq!(app.delete(&path, &token).await.status(), 403);
    for unknown in [
        "/users/nonsense/sessions",
        &format!("/users/{}/sessions", uuid::Uuid::new_v4()),
    ] {
        assert_eq!(app.get(unknown, Some(&admin)).await.status(), 404);
        assert_eq!(app.delete(unknown, &admin).await.status(), 404);
    }
    let list: Value = app.get(&path, Some(&admin)).await.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["current"], false);
    assert_eq!(app.delete(&path, &admin).await.status(), 204);
    assert_eq!(app.me(&token).await.status(), 401);
    let list: Value = app.get(&path, Some(&admin)).await.json().await.unwrap();
    assert_eq!(list, json!([]));
    // the admin's own session is untouched
    assert_eq!(app.me(&admin).await.status(), 200);
    let own = format!("/users/{}/sessions", admin_user["id"].as_str().unwrap());
    assert_eq!(app.get(&own, Some(&admin)).await.status(), 200);
}

async fn the_cookie_transport_is_fastapi_users(backend: Backend) {
    let app = spawn_app(backend).await;
    let email = unique_email();
    app.create_user(&email).await;
    let login = |password: &'static str| {
        app.client
            .post(app.url("/auth/cookie/login"))
            .form(&[("username", email.as_str()), ("password", password)])
            .send()
    };
    let r = login(PASSWORD).await.unwrap();
    assert_eq!(r.status(), 204);
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(r.bytes().await.unwrap().is_empty(), "204 has no body");
    let token = set_cookie
        .strip_prefix("fastapiusersauth=")
        .and_then(|rest| rest.split(';').next())
        .unwrap()
        .to_owned();
    assert_eq!(
        set_cookie,
        format!("fastapiusersauth={token}; HttpOnly; Max-Age=3600; Path=/; SameSite=lax")
    );
    // failures as /auth/jwt/login
    assert_json(
        login("wrong password!!").await.unwrap(),
        400,
        json!({"detail": "LOGIN_BAD_CREDENTIALS"}),
    )
    .await;
    assert_422(
        app.post_raw(
            "/auth/cookie/login",
            "application/x-www-form-urlencoded",
            "",
        )
        .await,
    )
    .await;

    let cookie = format!("fastapiusersauth={token}");
    let with_cookie = |req: reqwest::RequestBuilder| req.header("cookie", cookie.clone());
    let me = with_cookie(app.client.get(app.url("/users/me")))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["email"], email);
    // the same token works as a Bearer; Bearer wins when both are sent
    assert_eq!(app.me(&token).await.status(), 200);
    let r = with_cookie(app.client.get(app.url("/users/me")))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the Bearer header wins");
    let (_, other) = app.user_with_token().await;
    let r = app
        .client
        .get(app.url("/users/me"))
        .header("cookie", "fastapiusersauth=garbage")
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_ne!(r.json::<Value>().await.unwrap()["email"], email);

    // CSRF: an unsafe request with the cookie must come from the service's own origin
    let patch = |origin: Option<(&'static str, String)>| {
        let mut req = with_cookie(app.client.patch(app.url("/users/me"))).json(&json!({}));
        if let Some((name, value)) = origin {
            req = req.header(name, value);
        }
        req.send()
    };
    assert_json(
        patch(Some(("origin", "https://evil.example".into())))
            .await
            .unwrap(),
        403,
        json!({"detail": "CSRF_ORIGIN_MISMATCH"}),
    )
    .await;
    assert_json(
        patch(Some(("referer", "https://evil.example/page".into())))
            .await
            .unwrap(),
        403,
        json!({"detail": "CSRF_ORIGIN_MISMATCH"}),
    )
    .await;
    assert_eq!(
        patch(Some(("origin", "null".into())))
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        patch(None).await.unwrap().status(),
        200,
        "no browser, no check"
    );
    // the test app's PUBLIC_URL is http://<BIND_ADDR> = http://127.0.0.1:0
    let own = "http://127.0.0.1:0".to_owned();
    assert_eq!(
        patch(Some(("origin", own.clone()))).await.unwrap().status(),
        200
    );
    assert_eq!(
        patch(Some(("referer", format!("{own}/account"))))
            .await
            .unwrap()
            .status(),
        200
    );
    // a safe method, and a Bearer request, are never checked
    let r = with_cookie(app.client.get(app.url("/users/me")))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = app
        .client
        .patch(app.url("/users/me"))
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // logout needs the cookie, ends the session and clears the cookie
    let r = app
        .client
        .post(app.url("/auth/cookie/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the cookie logout takes the cookie");
    let r = with_cookie(app.client.post(app.url("/auth/cookie/logout")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["set-cookie"],
        "fastapiusersauth=\"\"; HttpOnly; Max-Age=0; Path=/; SameSite=lax"
    );
    let r = with_cookie(app.client.get(app.url("/users/me")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = with_cookie(app.client.post(app.url("/auth/cookie/logout")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// With an https PUBLIC_URL the cookie is `Secure`, and that origin is the trusted one.
async fn the_cookie_is_secure_behind_https(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("PUBLIC_URL".into(), "https://id.example.com".into());
        env.insert(
            "CORS_ALLOWED_ORIGINS".into(),
            "https://app.example.com".into(),
        );
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;
    let r = app
        .client
        .post(app.url("/auth/cookie/login"))
        .form(&[("username", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let set_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.ends_with("; HttpOnly; Max-Age=3600; Path=/; SameSite=lax; Secure"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    for (origin, status) in [
        ("https://id.example.com", 200),
        ("https://app.example.com", 200),
        ("http://id.example.com", 403),
        ("https://app.example.com.evil.example", 403),
    ] {
        let r = app
            .client
            .patch(app.url("/users/me"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{origin}");
    }
}

both_backends!(
    devices_are_listed_and_ended_one_by_one,
    refresh_tokens_rotate_and_a_late_reuse_ends_the_session,
    concurrent_refreshes_converge_on_one_token,
    many_sessions_refreshing_at_once_all_rotate,
    bad_refreshes_in_a_burst_spoil_only_themselves,
    two_processes_refreshing_at_once_converge,
    bad_refresh_tokens_are_refused,
    sessions_expire_when_idle_and_at_their_lifetime,
    a_password_change_ends_every_session,
    superusers_see_and_end_a_users_sessions,
    the_cookie_transport_is_fastapi_users,
    the_cookie_is_secure_behind_https,
);

/// A session ended through one replica is refused by another at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ended_on_one_replica_is_refused_by_another() {
    let a = spawn_app(Backend::Postgres).await;
    let b = spawn_app_on(Backend::Postgres, a.database.clone(), |_| {}).await;
    let email = unique_email();
    a.create_user(&email).await;
    let token = a.token(&email, PASSWORD).await;
    let other = b.token(&email, PASSWORD).await;
    assert_eq!(b.me(&token).await.status(), 200);
    let id = sessions_of(&b, &token)
        .await
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        a.delete(&format!("/auth/sessions/{id}"), &other)
            .await
            .status(),
        204
    );
    assert_eq!(b.me(&token).await.status(), 401);
    assert_eq!(b.me(&other).await.status(), 200);
}

/// The database goes away during a refresh: 503, and the refresh token still works
/// afterwards (a failed rotation spends nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_during_an_outage_spends_nothing() {
    let database = std::sync::Arc::new(TestDatabase::new(Backend::Postgres));
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let proxied = database
        .url
        .replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port), 1);
    let app = spawn_app_on(Backend::Postgres, database.clone(), |env| {
        env.insert("DATABASE_URL".into(), proxied);
        env.insert("DATABASE_TIMEOUT_SECONDS".into(), "2".into());
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;
    let refresh = app.login_offline(&email, PASSWORD).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    proxy.cut().await;
    let r = app.refresh(&refresh).await;
    assert_eq!(r.status(), 503);
    assert!(r.headers().get("retry-after").is_some());
    proxy.resume().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let r = app.refresh(&refresh).await;
        if r.status() == 200 {
            break;
        }
        assert_eq!(r.status(), 503, "only unavailability while reconnecting");
        assert!(
            std::time::Instant::now() < deadline,
            "the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
