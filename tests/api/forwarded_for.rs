//! The client's address behind a real HAProxy: a client that writes its own
//! `X-Forwarded-For` lines neither escapes the per-IP limit nor puts a forged address in
//! its sessions and audit events, whether the proxy overwrites the header (the shipped
//! `deploy/haproxy.cfg`) or appends its line to the client's (a proxy as many are set
//! up, and the shipped one before it overwrote).

use std::net::IpAddr;
use std::path::Path;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::*;
use crate::replicas::{haproxy_or_skip, shipped_haproxy_config, Haproxy};

const LIMIT: usize = 5;

/// The line of `deploy/haproxy.cfg` that drops the client's own header.
const OVERWRITE: &str = "http-request del-header X-Forwarded-For";

async fn login_through(
    client: &reqwest::Client,
    base: &str,
    email: &str,
    forged: &[String],
) -> reqwest::Response {
    let mut req = client
        .post(format!("{base}/auth/jwt/login"))
        .form(&[("username", email), ("password", PASSWORD)]);
    // each call adds a line of its own: several lines, as a client may send them
    for line in forged {
        req = req.header("x-forwarded-for", line);
    }
    req.send().await.unwrap()
}

/// A client on `from` signs in through `haproxy` with a forged header every time, other
/// addresses each time, in one line or two: its budget is the one of `from`, spent after
/// LIMIT sign-ins like a client sending no header, and what its sessions and events
/// record is `from`.
async fn forged_addresses_change_nothing(app: &TestApp, haproxy: &Haproxy, from: IpAddr) {
    let client = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let email = unique_email();
    app.create_user(&email).await;
    app.start_rate_window();
    let mut statuses = Vec::new();
    let mut token = None;
    for i in 1..=LIMIT + 1 {
        let forged = if i % 2 == 1 {
            vec![format!("1.2.3.{i}")]
        } else {
            vec![
                format!("198.51.100.{i}"),
                format!("203.0.113.{i}, 192.0.2.{i}"),
            ]
        };
        let r = login_through(&client, &haproxy.url, &email, &forged).await;
        statuses.push(r.status().as_u16());
        if r.status() == 200 {
            let body: Value = r.json().await.unwrap();
            token = Some(body["access_token"].as_str().unwrap().to_owned());
        }
    }
    let mut expected = vec![200; LIMIT];
    expected.push(429);
    assert_eq!(statuses, expected, "from {from}: {:?}", haproxy.log());
    assert_eq!(
        login_through(&client, &haproxy.url, &email, &[])
            .await
            .status(),
        429,
        "no header: the same budget, spent"
    );

    let token = token.unwrap();
    let r = app.get("/auth/sessions", Some(&token)).await;
    assert_eq!(r.status(), 200);
    let sessions: Vec<Value> = r.json().await.unwrap();
    assert_eq!(sessions.len(), LIMIT);
    for s in &sessions {
        assert_eq!(s["ip"], from.to_string(), "{s}");
    }
    let logins: Vec<Value> = app
        .events("/users/me/events", &token)
        .await
        .into_iter()
        .filter(|e| e["type"] == "user.login_succeeded")
        .collect();
    assert_eq!(logins.len(), LIMIT);
    for e in &logins {
        assert_eq!(e["ip"], from.to_string(), "{e}");
    }
}

async fn forged_forwarded_for_through_haproxy(backend: Backend) {
    let Some(binary) = haproxy_or_skip("the X-Forwarded-For test") else {
        return;
    };
    let app = spawn_app_with(backend, |env| {
        env.insert("RATE_LIMIT_PER_IP_PER_MINUTE".into(), LIMIT.to_string());
        env.insert("TRUSTED_PROXIES".into(), "127.0.0.1/32, ::1/128".into());
    })
    .await;
    let port: u16 = app.address.rsplit(':').next().unwrap().parse().unwrap();

    // The shipped configuration drops the client's lines and writes its own. This
    // client is on 127.0.0.1, itself a trusted address: the one line the app gets
    // names it, and with nothing left of it, it is the client.
    let shipped = Haproxy::start(&binary, &[port; 3]);
    forged_addresses_change_nothing(&app, &shipped, "127.0.0.1".parse().unwrap()).await;
    drop(shipped);

    // The same without the overwrite: HAProxy appends its line after the client's.
    // The client connects from 127.0.0.2, which is not trusted, so the app must stop
    // at HAProxy's line, the last one, and never read the client's.
    let text = std::fs::read_to_string(shipped_haproxy_config()).unwrap();
    assert!(text.contains(OVERWRITE), "deploy/haproxy.cfg: {OVERWRITE}");
    let appending: String = text
        .lines()
        .filter(|l| !l.contains(OVERWRITE))
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("appending.cfg");
    std::fs::write(&config, appending).unwrap();
    let appending = Haproxy::start_with(&binary, Path::new(&config), &[port; 3]);
    forged_addresses_change_nothing(&app, &appending, "127.0.0.2".parse().unwrap()).await;
}

both_backends!(forged_forwarded_for_through_haproxy);
