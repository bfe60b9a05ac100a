//! Abuse limits: per-account login throttling and per-IP limits, shared by replicas.

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;
use crate::oidc_provider::OidcProvider;
use crate::provider_flow::configure_oidc;

async fn assert_429(resp: reqwest::Response) -> u64 {
    assert_eq!(resp.status(), 429);
    let retry: u64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("Too many"),
        "{body}"
    );
    retry
}

async fn accounts_are_throttled_after_consecutive_failures(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("LOGIN_MAX_FAILURES".into(), "3".into());
    })
    .await;
    let email = unique_email();
    app.create_user(&email).await;
    // a success resets the count
    for _ in 0..2 {
        assert_eq!(app.login(&email, "wrong password 1").await.status(), 400);
    }
    app.token(&email, PASSWORD).await;
    for _ in 0..2 {
        assert_eq!(app.login(&email, "wrong password 2").await.status(), 400);
    }
    app.token(&email, PASSWORD).await;
    // three in a row lock the account, even for the right password, in any case
    for _ in 0..3 {
        assert_eq!(app.login(&email, "wrong password 3").await.status(), 400);
    }
    let retry = assert_429(app.login(&email, PASSWORD).await).await;
    assert!((25..=31).contains(&retry), "{retry}");
    assert_429(app.login(&email.to_uppercase(), PASSWORD).await).await;
    // an unknown address behaves the same: a lock reveals nothing
    for _ in 0..3 {
        assert_eq!(
            app.login("nobody-at-all@example.com", "whatever password")
                .await
                .status(),
            400
        );
    }
    assert_429(
        app.login("nobody-at-all@example.com", "whatever password")
            .await,
    )
    .await;
    // other accounts are not affected
    let (_, _) = app.user_with_token().await;
}

async fn per_ip_limits(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("RATE_LIMIT_PER_IP_PER_MINUTE".into(), "5".into());
        env.insert("TRUSTED_PROXIES".into(), "10.0.0.0/8".into());
    })
    .await;
    // 12 quick requests span at most two one-minute windows: at most 10 pass
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let resp = app
            .post_json(
                "/auth/forgot-password",
                &json!({"email": "a@example.com"}),
                None,
            )
            .await;
        let status = resp.status().as_u16();
        if status == 429 {
            let retry: u64 = resp.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!((1..=60).contains(&retry));
            assert_eq!(resp.headers()["cache-control"], "no-store");
        }
        statuses.push(status);
    }
    assert!(
        statuses.iter().filter(|s| **s == 202).count() <= 10,
        "{statuses:?}"
    );
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 202 || *s == 429),
        "{statuses:?}"
    );
    // X-Forwarded-For is not believed from an untrusted peer (127.0.0.1 is not in 10/8)
    let resp = app
        .client
        .post(app.url("/auth/forgot-password"))
        .header("x-forwarded-for", "198.51.100.23")
        .json(&json!({"email": "a@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    // each route has its own budget
    assert_eq!(app.register(&unique_email(), PASSWORD).await.status(), 201);
}

async fn forwarded_for_counts_from_trusted_proxies(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("RATE_LIMIT_PER_IP_PER_MINUTE".into(), "3".into());
        env.insert("TRUSTED_PROXIES".into(), "127.0.0.1/32, ::1".into());
    })
    .await;
    let send = |ip: &'static str| {
        app.client
            .post(app.url("/auth/request-verify-token"))
            .header("x-forwarded-for", format!("203.0.113.250, {ip}"))
            .json(&json!({"email": "a@example.com"}))
            .send()
    };
    // clients behind the proxy have their own budgets
    let mut a = Vec::new();
    for _ in 0..8 {
        a.push(send("198.51.100.1").await.unwrap().status().as_u16());
    }
    assert!(a.contains(&429), "{a:?}");
    let b = send("198.51.100.2").await.unwrap().status().as_u16();
    assert_eq!(
        b, 202,
        "another client behind the same proxy is not limited"
    );
}

/// An IPv6 client is counted per /64 (one subscriber's usual share: a fresh address per
/// request would be a fresh budget), an IPv4-mapped one as its IPv4 address; sessions
/// still record the whole address.
async fn ipv6_clients_are_counted_per_64(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("RATE_LIMIT_PER_IP_PER_MINUTE".into(), "3".into());
        env.insert("TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    })
    .await;
    let send = |ip: &'static str| {
        app.client
            .post(app.url("/auth/request-verify-token"))
            .header("x-forwarded-for", ip)
            .json(&json!({"email": "a@example.com"}))
            .send()
    };
    app.start_rate_window();
    let mut statuses = Vec::new();
    for ip in [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
        "[2001:db8:1:2::4]:443",
    ] {
        statuses.push(send(ip).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [202, 202, 202, 429], "one /64, one budget");
    assert_eq!(
        send("2001:db8:1:3::1").await.unwrap().status(),
        202,
        "the next /64 has its own"
    );
    let mut statuses = Vec::new();
    for ip in [
        "198.51.100.9",
        "::ffff:198.51.100.9",
        "198.51.100.9:1234",
        "::ffff:198.51.100.9",
    ] {
        statuses.push(send(ip).await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [202, 202, 202, 429], "mapped or not, one IPv4");
    assert_eq!(send("198.51.100.10").await.unwrap().status(), 202);

    let email = unique_email();
    app.create_user(&email).await;
    let r = app
        .client
        .post(app.url("/auth/jwt/login"))
        .header("x-forwarded-for", "2001:db8:1:2::abcd")
        .form(&[("username", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let sessions: Value = app
        .get("/auth/sessions", Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sessions[0]["ip"], "2001:db8:1:2::abcd", "{sessions}");
}

/// Each authorize at a provider writes a state row: a client gets the per-IP budget of
/// them a minute, on the sign-in route and on the linking one, and a refused call
/// writes nothing.
async fn provider_authorize_is_limited_per_ip(backend: Backend) {
    let provider = OidcProvider::start().await;
    let app = spawn_app_with(backend, |env| {
        configure_oidc(env, "corp", &provider);
        env.insert("RATE_LIMIT_PER_IP_PER_MINUTE".into(), "3".into());
    })
    .await;
    let (_, token) = app.user_with_token().await;
    let mut db = users_db::admin::SqlSession::open(&app.database.url).unwrap();
    let states = |db: &mut users_db::admin::SqlSession| {
        db.count("SELECT count(*) AS n FROM upstream_states")
            .unwrap()
    };
    for (path, token) in [
        ("/auth/corp/authorize", None),
        ("/auth/associate/corp/authorize", Some(token.as_str())),
    ] {
        app.start_rate_window();
        let before = states(&mut db);
        let mut statuses = Vec::new();
        for _ in 0..4 {
            statuses.push(app.get(path, token).await.status().as_u16());
        }
        assert_eq!(statuses, [200, 200, 200, 429], "{path}");
        assert_eq!(states(&mut db) - before, 3, "{path}");
        assert_429(app.get(path, token).await).await;
    }
}

both_backends!(
    accounts_are_throttled_after_consecutive_failures,
    per_ip_limits,
    forwarded_for_counts_from_trusted_proxies,
    ipv6_clients_are_counted_per_64,
    provider_authorize_is_limited_per_ip
);

/// Two server processes on one database count one account's failures together.
async fn replicas_share_the_failure_count(backend: Backend) {
    let database = TestDatabase::new(backend);
    let mut env = process_env(&database.url);
    env.insert("LOGIN_MAX_FAILURES".into(), "4".into());
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
    let login = |s: &ServerProcess, pw: &'static str| {
        client
            .post(s.url("/auth/jwt/login"))
            .form(&[("username", email.as_str()), ("password", pw)])
            .send()
    };
    for server in [&a, &b, &a, &b] {
        assert_eq!(
            login(server, "not the password").await.unwrap().status(),
            400
        );
    }
    assert_429(login(&a, PASSWORD).await.unwrap()).await;
    assert_429(login(&b, PASSWORD).await.unwrap()).await;
}

both_backends!(replicas_share_the_failure_count);

/// A client that sends its body too slowly gets a 408 with a JSON detail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(Backend::Sqlite).await;
    let addr = app.address.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!("POST /auth/register HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"email\":");
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        stream.read_to_end(&mut response),
    )
    .await;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("{\"detail\":"), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
