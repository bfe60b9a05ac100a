//! Operations: OpenAPI and docs, health, readiness, metrics, request ids, CORS,
//! graceful shutdown, and what the logs hold.

use std::time::Duration;

use serde_json::{json, Value};

use crate::both_backends;
use crate::helpers::*;

/// The account, mail, provider and operations routes of docs/api.md's index, as
/// (method, path).
const CONTRACT_ROUTES: &[(&str, &str)] = &[
    ("post", "/auth/register"),
    ("post", "/auth/jwt/login"),
    ("post", "/auth/jwt/logout"),
    ("post", "/auth/forgot-password"),
    ("post", "/auth/reset-password"),
    ("post", "/auth/request-verify-token"),
    ("post", "/auth/verify"),
    ("get", "/users/me"),
    ("patch", "/users/me"),
    ("get", "/users/{id}"),
    ("patch", "/users/{id}"),
    ("delete", "/users/{id}"),
    ("get", "/users"),
    ("get", "/auth/google/authorize"),
    ("get", "/auth/google/callback"),
    ("get", "/auth/associate/google/authorize"),
    ("get", "/auth/associate/google/callback"),
    ("get", "/auth/providers"),
    ("get", "/auth/{provider}/authorize"),
    ("get", "/auth/{provider}/callback"),
    ("get", "/users/me/identities"),
    ("delete", "/users/me/identities/{provider}"),
    ("get", "/reset-password"),
    ("get", "/verify"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
];

async fn openapi_lists_every_route_and_docs_load_offline(backend: Backend) {
    let app = spawn_app(backend).await;
    let resp = app.get("/openapi.json", None).await;
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    for (method, path) in CONTRACT_ROUTES {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is documented");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{method} {path} has responses"
        );
    }
    assert_eq!(
        doc["paths"]["/auth/register"]["post"]["responses"]["422"]["content"]["application/json"]
            ["schema"]["$ref"],
        "#/components/schemas/ValidationError"
    );

    // /docs: the page and every asset it references come from the service itself
    let resp = app.get("/docs", None).await;
    assert_eq!(resp.status(), 302);
    let resp = app.get("/docs/", None).await;
    assert_eq!(resp.status(), 200);
    let html = resp.text().await.unwrap();
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let target = part.split('"').next().unwrap();
            assert!(!target.starts_with("http"), "external asset {target}");
            assets.push(target.trim_start_matches("./").to_owned());
        }
    }
    assert!(
        assets.iter().any(|a| a.ends_with(".js")) && assets.iter().any(|a| a.ends_with(".css")),
        "{assets:?}"
    );
    for asset in &assets {
        let resp = app.get(&format!("/docs/{asset}"), None).await;
        assert_eq!(resp.status(), 200, "{asset}");
    }
    let init = app
        .get("/docs/swagger-initializer.js", None)
        .await
        .text()
        .await
        .unwrap();
    assert!(init.contains("/openapi.json"));
}

async fn health_metrics_and_request_ids(backend: Backend) {
    let app = spawn_app(backend).await;
    assert_json(
        app.get("/healthz", None).await,
        200,
        json!({"status": "ok"}),
    )
    .await;
    assert_json(
        app.get("/readyz", None).await,
        200,
        json!({"status": "ready"}),
    )
    .await;

    let metric = |text: &str, line_start: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .map(|v| v.parse().unwrap())
            .unwrap_or(0.0)
    };
    let before = app.get("/metrics", None).await.text().await.unwrap();
    let email = unique_email();
    app.create_user(&email).await;
    app.token(&email, PASSWORD).await;
    assert_eq!(app.login(&email, "wrong password here").await.status(), 400);
    let resp = app.get("/metrics", None).await;
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let after = resp.text().await.unwrap();
    for (series, delta) in [
        ("users_logins_total{result=\"success\"}", 1.0),
        ("users_logins_total{result=\"failure\"}", 1.0),
        ("users_registrations_total", 1.0),
        (
            "users_http_requests_total{route=\"/auth/jwt/login\",method=\"POST\",status=\"200\"}",
            1.0,
        ),
        (
            "users_http_requests_total{route=\"/auth/jwt/login\",method=\"POST\",status=\"400\"}",
            1.0,
        ),
    ] {
        assert_eq!(
            metric(&after, series) - metric(&before, series),
            delta,
            "{series}"
        );
    }
    assert!(after.contains(
        "users_http_request_duration_seconds_bucket{route=\"/auth/jwt/login\",le=\"+Inf\"}"
    ));
    assert!(after.contains("users_outbox_pending 0"));
    assert!(after.contains("users_db_pool_connections{state=\"idle\"}"));

    // X-Request-Id: echoed when sent, made up when not
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "abc-123");
    let resp = app.get("/users/me", None).await;
    let id = resp.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

async fn cors_only_for_allowed_origins(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert(
            "CORS_ALLOWED_ORIGINS".into(),
            "https://app.example.com, http://localhost:5173".into(),
        );
    })
    .await;
    let preflight = |origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/auth/jwt/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type, authorization",
            )
            .send()
    };
    let resp = preflight("https://app.example.com").await.unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(resp.headers()["access-control-allow-credentials"], "true");
    let resp = preflight("https://evil.example.net").await.unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // a simple request from an allowed origin carries the header too
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    // unset: no CORS headers at all
    let app = spawn_app(backend).await;
    let resp = app
        .client
        .get(app.url("/healthz"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
}

/// The account page runs only its own script and style, allowed by their hashes, and
/// loads nothing from anywhere else.
async fn the_account_page_is_self_contained(backend: Backend) {
    use base64::Engine;
    use sha2::Digest;
    let app = spawn_app(backend).await;
    let r = app.get("/account", None).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    let html = r.text().await.unwrap();
    let inline = |open: &str, close: &str| {
        let start = html.find(open).unwrap() + open.len();
        let end = start + html[start..].find(close).unwrap();
        let digest = sha2::Sha256::digest(&html.as_bytes()[start..end]);
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    };
    assert!(
        csp.contains(&format!("script-src {}", inline("<script>", "</script>"))),
        "{csp}"
    );
    assert!(
        csp.contains(&format!("style-src {}", inline("<style>", "</style>"))),
        "{csp}"
    );
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
        "{csp}"
    );
    assert_eq!(html.matches("<script").count(), 1, "one script");
    for external in [
        "src=\"http",
        "href=\"http",
        "src=\"//",
        "@import",
        "url(http",
        "url(//",
    ] {
        assert!(!html.contains(external), "nothing external: {external}");
    }
    // accessible markup: every input has a label
    let inputs = html.matches("<input id=\"").count();
    let labels = html.matches("<label for=\"").count();
    assert_eq!(inputs, labels, "one label per input");
    assert!(html.contains("name=\"viewport\""));
}

const METRICS_TOKEN: &str = "metrics-token-0c5e9f1a2b3d4e5f6a7b";

/// With METRICS_TOKEN, /metrics answers only `Authorization: Bearer <METRICS_TOKEN>`:
/// 401 `{"detail": "Unauthorized"}` without it, with another token (an access token, a
/// prefix of the right one, the right one longer) or another scheme.
async fn metrics_token_guards_metrics(backend: Backend) {
    let app = spawn_app_with(backend, |env| {
        env.insert("METRICS_TOKEN".into(), METRICS_TOKEN.into());
    })
    .await;
    let unauthorized = || json!({"detail": "Unauthorized"});
    assert_json(app.get("/metrics", None).await, 401, unauthorized()).await;
    let (_, access) = app.user_with_token().await;
    let prefix = &METRICS_TOKEN[..METRICS_TOKEN.len() - 1];
    let longer = format!("{METRICS_TOKEN}0");
    for wrong in ["wrong", prefix, longer.as_str(), access.as_str()] {
        assert_json(app.get("/metrics", Some(wrong)).await, 401, unauthorized()).await;
    }
    let r = app
        .client
        .get(app.url("/metrics"))
        .header("authorization", format!("Basic {METRICS_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_json(r, 401, unauthorized()).await;
    let r = app.get("/metrics", Some(METRICS_TOKEN)).await;
    assert_eq!(r.status(), 200);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("users_http_requests_total"));
    // the scheme in any case, as for access tokens
    let r = app
        .client
        .get(app.url("/metrics"))
        .header("authorization", format!("bearer {METRICS_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // the other operations endpoints stay open
    assert_eq!(app.get("/healthz", None).await.status(), 200);
    assert_eq!(app.get("/readyz", None).await.status(), 200);
}

/// The binary: without METRICS_TOKEN /metrics is public and the start says so, naming
/// the variable; with METRICS_TOKEN_FILE it is guarded, the start says nothing of it,
/// and the token is never logged.
async fn metrics_are_public_only_without_a_token_and_the_start_says_so(backend: Backend) {
    let database = TestDatabase::new(backend);
    let client = reqwest::Client::new();

    let public = ServerProcess::start(&process_env(&database.url));
    assert_eq!(
        client
            .get(public.url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let output = public.output.clone();
    assert!(public.terminate().success());
    let lines = output.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("WARN")
            && l.contains("/metrics is public")
            && l.contains("METRICS_TOKEN")),
        "{lines:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("metrics_token");
    std::fs::write(&file, format!("{METRICS_TOKEN}\n")).unwrap();
    let mut env = process_env(&database.url);
    env.insert("METRICS_TOKEN_FILE".into(), file.display().to_string());
    let guarded = ServerProcess::start(&env);
    let get = |token: Option<&str>| {
        let mut req = client.get(guarded.url("/metrics"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(get(Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(get(Some(METRICS_TOKEN)).await.unwrap().status(), 200);
    let output = guarded.output.clone();
    assert!(guarded.terminate().success());
    let lines = output.lock().unwrap().clone();
    assert!(
        !lines.iter().any(|l| l.contains("/metrics is public")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(METRICS_TOKEN)),
        "the token must not be logged"
    );
}

both_backends!(
    openapi_lists_every_route_and_docs_load_offline,
    health_metrics_and_request_ids,
    cors_only_for_allowed_origins,
    the_account_page_is_self_contained,
    metrics_token_guards_metrics,
    metrics_are_public_only_without_a_token_and_the_start_says_so,
);

/// The database goes away (a proxy in front of PostgreSQL is cut) and comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_the_database() {
    let database = std::sync::Arc::new(TestDatabase::new(Backend::Postgres));
    let proxy = TcpProxy::start("127.0.0.1:5432").await;
    let proxied = database
        .url
        .replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port), 1);
    assert_ne!(proxied, database.url);
    let app = spawn_app_on(Backend::Postgres, database.clone(), |env| {
        env.insert("DATABASE_URL".into(), proxied);
        env.insert("DATABASE_TIMEOUT_SECONDS".into(), "2".into());
    })
    .await;
    let (_, token) = app.user_with_token().await;
    assert_eq!(app.get("/readyz", None).await.status(), 200);

    proxy.cut().await;
    let started = std::time::Instant::now();
    let resp = app.get("/readyz", None).await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("unreachable"),
        "{body}"
    );
    let resp = app.me(&token).await;
    assert_eq!(resp.status(), 503, "requests answer 503, not 500");
    assert!(resp.headers().get("retry-after").is_some());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by the pool timeout"
    );
    assert_eq!(
        app.get("/healthz", None).await.status(),
        200,
        "alive all the same"
    );

    proxy.resume().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if app.get("/readyz", None).await.status() == 200 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ready again after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.me(&token).await.status(), 200);
}

/// SIGTERM while a request is in flight: the request completes, the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let database = TestDatabase::new(Backend::Sqlite);
    let mut env = process_env(&database.url);
    // a slow password hash makes a slow login
    env.insert("ARGON2_MEMORY_KIB".into(), "262144".into());
    env.insert("ARGON2_ITERATIONS".into(), "4".into());
    let server = ServerProcess::start(&env);
    let client = reqwest::Client::new();
    let email = unique_email();
    let r = client
        .post(server.url("/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let url = server.url("/auth/jwt/login");
    let login = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = reqwest::Client::new()
            .post(url)
            .form(&[("username", email.as_str()), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    let (login_status, took) = login.await.unwrap();
    assert_eq!(
        login_status, 200,
        "the in-flight login finished (took {took:?})"
    );
    assert!(status.success(), "{status:?}");
}

/// SIGTERM with a drain (`SHUTDOWN_DRAIN_SECONDS`): `/readyz` answers 503 at once while
/// every other request is still served, each closing its connection; after the drain
/// the process stops accepting connections and exits 0. A second signal ends a drain
/// early; SIGINT (Ctrl-C) skips it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_before_stopping() {
    let database = TestDatabase::new(Backend::Sqlite);
    let mut env = process_env(&database.url);
    env.insert("SHUTDOWN_DRAIN_SECONDS".into(), "3".into());
    let server = ServerProcess::start(&env);
    let client = reqwest::Client::new();
    assert_eq!(
        client
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let email = unique_email();
    let r = client
        .post(server.url("/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    let signalled = std::time::Instant::now();
    server.signal("TERM");
    let not_ready = loop {
        let r = client.get(server.url("/readyz")).send().await.unwrap();
        if r.status() == 503 {
            break r;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(2),
            "/readyz still answers {} after SIGTERM",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_json(
        not_ready,
        503,
        json!({"detail": "Not ready: shutting down"}),
    )
    .await;
    // still serving, and telling keep-alive clients to go elsewhere
    let r = client
        .post(server.url("/auth/jwt/login"))
        .form(&[("username", email.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["connection"], "close");
    let r = client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200, "alive while draining");
    let healthz = server.url("/healthz");
    let status = tokio::task::spawn_blocking(move || server.wait())
        .await
        .unwrap();
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(13),
        "the drain took {took:?}"
    );
    assert!(
        client.get(&healthz).send().await.is_err(),
        "nothing listens any more"
    );

    // a second SIGTERM ends a long drain; SIGINT skips it
    env.insert("SHUTDOWN_DRAIN_SECONDS".into(), "300".into());
    for signals in [&["TERM", "TERM"][..], &["INT"][..]] {
        let server = ServerProcess::start(&env);
        let started = std::time::Instant::now();
        for signal in signals {
            server.signal(signal);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let status = tokio::task::spawn_blocking(move || server.wait())
            .await
            .unwrap();
        assert!(status.success(), "{signals:?}: {status:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{signals:?} took {:?}",
            started.elapsed()
        );
    }
}

/// A whole flow with `LOG_FORMAT=json`: every line is one JSON object, and no line
/// holds a password, a token, the secret or a full email address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_hold_no_secrets() {
    let database = TestDatabase::new(Backend::Sqlite);
    let mail_dir = tempfile::tempdir().unwrap();
    let mut env = process_env(&database.url);
    let secret = "json-log-test-secret-5b7c0e1d9a8f4e2b";
    env.insert("JWT_SECRET".into(), secret.into());
    env.insert("LOG_FORMAT".into(), "json".into());
    env.insert("MAIL_DIR".into(), mail_dir.path().display().to_string());
    let server = ServerProcess::start(&env);
    let client = reqwest::Client::new();
    let email = format!("log-subject-{}@example.org", uuid::Uuid::new_v4().simple());
    let new_password = "the second passphrase of the log test";

    let r = client
        .post(server.url("/auth/register"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let login = |password: &'static str| {
        client
            .post(server.url("/auth/jwt/login"))
            .form(&[("username", email.as_str()), ("password", password)])
            .send()
    };
    let body: Value = login(PASSWORD).await.unwrap().json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        client
            .get(server.url("/users/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = client
        .post(server.url("/auth/register"))
        .json(&json!({"email": email, "password": 123456789012u64}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = client
        .post(server.url("/auth/forgot-password"))
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let raw = loop {
        let file = std::fs::read_dir(mail_dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| e.path().extension().is_some_and(|x| x == "eml"));
        if let Some(f) = file {
            break std::fs::read_to_string(f.path()).unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "no mail");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reset_token = crate::smtp_sink::ReceivedMail {
        mail_from: String::new(),
        rcpt_to: vec![],
        data: raw,
    }
    .link_token("/reset-password")
    .unwrap();
    let r = client
        .get(server.url(&format!("/reset-password?token={reset_token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = client
        .post(server.url("/auth/reset-password"))
        .json(&json!({"token": reset_token, "password": new_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = login(new_password).await.unwrap().json().await.unwrap();
    let token2 = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        client
            .post(server.url("/auth/jwt/logout"))
            .bearer_auth(&token2)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(login("wrong password!!").await.unwrap().status(), 400);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let output = server.output.clone();
    assert!(server.terminate().success());

    let lines = output.lock().unwrap().clone();
    assert!(lines.len() > 10, "{lines:?}");
    for line in &lines {
        let parsed: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(parsed.is_object(), "{line}");
    }
    assert!(lines.iter().any(|l| l.contains("\"login succeeded\"")));
    assert!(lines.iter().any(|l| l.contains("\"mail sent\"")));
    for needle in [
        PASSWORD,
        new_password,
        "123456789012",
        &token,
        &token2,
        &reset_token,
        secret,
        &email,
        "wrong password!!",
    ] {
        assert!(
            !lines.iter().any(|l| l.contains(needle)),
            "`{needle}` must not be logged"
        );
    }
}

/// Every connection is stuck (a table lock held by another session): a request waits
/// at most DATABASE_TIMEOUT_SECONDS for one, answers 503 with Retry-After, and the
/// stuck request finishes normally once the lock goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_pool_answers_503_within_the_timeout() {
    use users_db::admin::SqlSession;

    let app = spawn_app_with(Backend::Postgres, |env| {
        env.insert("DATABASE_MAX_CONNECTIONS".into(), "1".into());
        env.insert("DATABASE_TIMEOUT_SECONDS".into(), "1".into());
    })
    .await;
    let (_, token) = app.user_with_token().await;

    // Another session takes the users table and keeps it until told to let go.
    let url = app.database.url.clone();
    let (locked_tx, locked_rx) = std::sync::mpsc::channel::<()>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let locker = std::thread::spawn(move || {
        let mut conn = SqlSession::open(&url).unwrap();
        conn.execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;")
            .unwrap();
        locked_tx.send(()).unwrap();
        release_rx.recv().unwrap();
        conn.execute("COMMIT;").unwrap();
    });
    locked_rx.recv().unwrap();

    // The first request takes the only connection and waits on the lock.
    let stuck = {
        let app_url = app.url("/users/me");
        let client = app.client.clone();
        let token = token.clone();
        tokio::spawn(async move { client.get(app_url).bearer_auth(token).send().await })
    };
    // ...and is seen waiting on the lock before the second one is sent
    let mut probe = SqlSession::open(&app.database.url).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = probe
            .count("SELECT count(*) AS n FROM pg_locks WHERE NOT granted")
            .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first request never reached the lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let started = std::time::Instant::now();
    let resp = app.me(&token).await;
    let waited = started.elapsed();
    assert_eq!(resp.status(), 503, "a busy pool is 503, not 500");
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("busy"),
        "says what is wrong: {body}"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "waited {waited:?} for a connection: the configured 1 s"
    );

    release_tx.send(()).unwrap();
    locker.join().unwrap();
    let resp = stuck.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200, "the stuck request completes");
    assert_eq!(app.me(&token).await.status(), 200);
}

/// Operation ids are unique (OpenAPI requires it; generated clients name methods so).
#[test]
fn openapi_operation_ids_are_unique() {
    let doc = serde_json::to_value(users_server::openapi::document()).unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(id) = op["operationId"].as_str() {
                if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                    panic!("operation id {id} of {method} {path} is also {other}'s");
                }
            }
        }
    }
    assert!(seen.len() > 30);
}
