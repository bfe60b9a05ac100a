//! The test harness: boots the real application on a random port against a fresh
//! database (a temp SQLite file, or a new PostgreSQL database), with one typed method
//! per route. Silent unless `TEST_LOG` is set.

use std::collections::HashMap;
use std::sync::Once;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use users_db::{Database, DatabaseUrl, PoolOptions};
use users_server::settings::LogFormat;
use users_server::{telemetry, Application, Settings};

pub const TEST_SECRET: &str = "integration-test-secret-0123456789abcdef";
pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the shared PostgreSQL server is (trust auth, user postgres).
pub fn postgres_base() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

fn init_logs() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            telemetry::init("info", LogFormat::Pretty, false);
        }
    });
}

/// A fresh, empty database of one backend; dropped (PostgreSQL) or deleted (SQLite)
/// with the value.
pub struct TestDatabase {
    pub url: String,
    pg_name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDatabase {
    pub fn new(backend: Backend) -> TestDatabase {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("users.db").display());
                TestDatabase {
                    url,
                    pg_name: None,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let name = format!("users_test_{}", uuid::Uuid::new_v4().simple());
                users_db::admin::create_postgres_database(&postgres_base(), &name)
                    .expect("the PostgreSQL server at TEST_POSTGRES_URL (default 127.0.0.1:5432) must be running");
                TestDatabase {
                    url: format!("{}/{name}", postgres_base()),
                    pg_name: Some(name),
                    _dir: None,
                }
            }
        }
    }

    /// A pool of our own on the same database, for arranging and inspecting state.
    pub fn pool(&self) -> Database {
        Database::connect_lazy(
            DatabaseUrl::parse(&self.url).expect("url"),
            &PoolOptions::default(),
        )
        .expect("pool")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let base = postgres_base();
            // A plain thread: Drop may run inside an async runtime.
            let _ = std::thread::spawn(move || {
                let _ = users_db::admin::drop_postgres_database(&base, &name);
            })
            .join();
        }
    }
}

/// The settings a test app runs with: a fixed secret and cheap argon2 parameters
/// (tests of the defaults override them).
pub fn test_env(db_url: &str) -> HashMap<String, String> {
    let mut env = HashMap::new();
    env.insert("DATABASE_URL".into(), db_url.to_owned());
    env.insert("BIND_ADDR".into(), "127.0.0.1:0".into());
    env.insert("JWT_SECRET".into(), TEST_SECRET.into());
    env.insert("ARGON2_MEMORY_KIB".into(), "1024".into());
    env.insert("ARGON2_ITERATIONS".into(), "1".into());
    env.insert("ARGON2_PARALLELISM".into(), "1".into());
    env.insert("WORKERS".into(), "2".into());
    // every test talks from 127.0.0.1: the per-IP limit is tested on its own
    env.insert("RATE_LIMIT_PER_IP_PER_MINUTE".into(), "0".into());
    // never the working directory's `mail/`
    let mail_dir =
        std::env::temp_dir().join(format!("users-test-mail-{}", uuid::Uuid::new_v4().simple()));
    env.insert("MAIL_DIR".into(), mail_dir.display().to_string());
    env
}

/// A port nothing listens on (yet): for "SMTP is down" tests.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The system clock plus an offset a test can move forward (session expiry, the
/// refresh reuse interval), so nothing has to sleep.
#[derive(Debug, Default)]
pub struct TestClock {
    offset_ms: std::sync::atomic::AtomicI64,
}

impl TestClock {
    pub fn advance(&self, by: std::time::Duration) {
        self.offset_ms
            .fetch_add(by.as_millis() as i64, std::sync::atomic::Ordering::SeqCst);
    }
}

impl users_domain::Clock for TestClock {
    fn now(&self) -> users_domain::Timestamp {
        let system = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as i64;
        users_domain::Timestamp::from_millis(
            system + self.offset_ms.load(std::sync::atomic::Ordering::SeqCst),
        )
    }
}

#[allow(dead_code)] // some fields exist to be dropped last, or for tests to come
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub db: Database,
    pub handle: actix_web::dev::ServerHandle,
    /// The app's clock: `app.clock.advance(…)` moves its time forward.
    pub clock: std::sync::Arc<TestClock>,
    /// The app's flows, for what a test does as the operator (rotating keys, say).
    pub core: users_core::Core,
    /// Kept last so the database outlives the server's use of it.
    pub database: std::sync::Arc<TestDatabase>,
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}).await
}

pub async fn spawn_app_with(
    backend: Backend,
    configure: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    let database = std::sync::Arc::new(TestDatabase::new(backend));
    spawn_app_on(backend, database, configure).await
}

/// Another app on an existing test database (replicas, restarts).
pub async fn spawn_app_on(
    backend: Backend,
    database: std::sync::Arc<TestDatabase>,
    configure: impl FnOnce(&mut HashMap<String, String>),
) -> TestApp {
    init_logs();
    let mut env = test_env(&database.url);
    configure(&mut env);
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).expect("valid test settings");
    let clock = std::sync::Arc::new(TestClock::default());
    let app = Application::build_with_clock(settings, clock.clone())
        .await
        .expect("app starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let db = app.state().core.store.database().clone();
    let core = app.state().core.clone();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        backend,
        db,
        handle,
        clock,
        core,
        database,
    }
}

pub fn unique_email() -> String {
    format!("user-{}@example.com", uuid::Uuid::new_v4().simple())
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Moves the app's clock to the start of the next minute. The per-IP limits count
    /// per calendar minute, so the requests of a test that follow all fall in one window
    /// (unless they take a minute): the budget's N+1-th request is the first refused.
    pub fn start_rate_window(&self) {
        let now = users_domain::Clock::now(&*self.clock).millis();
        let to_next = 60_000 - now.rem_euclid(60_000);
        self.clock
            .advance(std::time::Duration::from_millis(to_next as u64));
    }

    pub async fn post_json(&self, path: &str, body: &Value, token: Option<&str>) -> Response {
        let mut req = self.client.post(self.url(path)).json(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> Response {
        self.client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn register(&self, email: &str, password: &str) -> Response {
        self.post_json(
            "/auth/register",
            &json!({"email": email, "password": password}),
            None,
        )
        .await
    }

    /// Registers and returns the created user.
    pub async fn create_user(&self, email: &str) -> Value {
        let r = self.register(email, PASSWORD).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.expect("json")
    }

    pub async fn login(&self, username: &str, password: &str) -> Response {
        self.client
            .post(self.url("/auth/jwt/login"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .expect("request")
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        let r = self.login(email, password).await;
        assert_eq!(r.status(), StatusCode::OK, "login of {email}");
        let body: Value = r.json().await.expect("json");
        body["access_token"].as_str().expect("token").to_owned()
    }

    /// A registered user and a token of theirs.
    pub async fn user_with_token(&self) -> (Value, String) {
        let email = unique_email();
        let user = self.create_user(&email).await;
        let token = self.token(&email, PASSWORD).await;
        (user, token)
    }

    /// A superuser (promoted directly in the database) and a token.
    pub async fn superuser_with_token(&self) -> (Value, String) {
        let (user, token) = self.user_with_token().await;
        let id = uuid::Uuid::parse_str(user["id"].as_str().expect("id")).expect("uuid");
        let mut conn = self.db.get().expect("conn");
        let changes = users_db::users::UserChanges {
            is_superuser: Some(true),
            ..Default::default()
        };
        assert!(users_db::users::update(&mut conn, id, &changes, 0).expect("update"));
        (user, token)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.expect("request")
    }

    pub async fn me(&self, token: &str) -> Response {
        self.get("/users/me", Some(token)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> Response {
        self.client
            .patch(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.client
            .delete(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// A password login asking for a refresh token: the four-field answer.
    pub async fn login_offline(&self, username: &str, password: &str) -> Value {
        let r = self
            .client
            .post(self.url("/auth/jwt/login"))
            .form(&[
                ("username", username),
                ("password", password),
                ("scope", "openid offline_access"),
            ])
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::OK, "login of {username}");
        r.json().await.expect("json")
    }

    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post_json(
            "/auth/jwt/refresh",
            &json!({ "refresh_token": refresh_token }),
            None,
        )
        .await
    }

    /// Every event `path` lists (`/audit?…` or `/users/me/events?…`), oldest first,
    /// following `next_before` to the last page.
    pub async fn events(&self, path: &str, token: &str) -> Vec<Value> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut all = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let page_path = match &before {
                Some(b) => format!("{path}{sep}limit=200&before={b}"),
                None => format!("{path}{sep}limit=200"),
            };
            let r = self.get(&page_path, Some(token)).await;
            assert_eq!(r.status(), StatusCode::OK, "{page_path}");
            let page: Value = r.json().await.expect("json");
            all.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_before"].as_str() {
                Some(b) => before = Some(b.to_owned()),
                None => break,
            }
        }
        all.reverse();
        all
    }

    /// The types of the events about `user_id`, oldest first, as a superuser reads them.
    pub async fn event_types(&self, admin_token: &str, user_id: &str) -> Vec<String> {
        self.events(&format!("/audit?user_id={user_id}"), admin_token)
            .await
            .iter()
            .map(|e| e["type"].as_str().expect("type").to_owned())
            .collect()
    }

    pub async fn logout(&self, token: &str) -> Response {
        self.client
            .post(self.url("/auth/jwt/logout"))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }
}

/// Asserts status and JSON body of a response.
pub async fn assert_json(resp: Response, status: u16, expected: Value) {
    let got_status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    assert_eq!(got_status, status, "body: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    assert_eq!(body, expected);
}

/// Asserts a 422 and returns its `detail` list.
pub async fn assert_422(resp: Response) -> Vec<Value> {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("json");
    assert_eq!(status, 422, "{body}");
    let detail = body["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("detail is a list: {body}"))
        .clone();
    assert!(!detail.is_empty());
    for e in &detail {
        assert!(
            e["type"].is_string() && e["msg"].is_string() && e["loc"].is_array(),
            "{e}"
        );
        let loc0 = e["loc"][0].as_str().expect("loc[0]");
        assert!(["body", "query", "path"].contains(&loc0), "{e}");
        assert!(e.get("input").is_some(), "{e}");
    }
    detail
}

/// Defines a test that runs once per backend: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

/// The real `users-server` binary running as a child process; killed on drop.
#[allow(dead_code)]
pub struct ServerProcess {
    pub address: String,
    child: std::process::Child,
    pub output: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub const BINARY: &str = env!("CARGO_BIN_EXE_users-server");

/// The environment of a child process: the test settings minus `JWT_SECRET`, so the
/// secret generated and kept in the database is what the processes share. SIGTERM
/// stops it without draining (the tests of draining set `SHUTDOWN_DRAIN_SECONDS`).
pub fn process_env(db_url: &str) -> HashMap<String, String> {
    let mut env = test_env(db_url);
    env.remove("JWT_SECRET");
    env.insert("RUST_LOG".into(), "info".into());
    env.insert("SHUTDOWN_DRAIN_SECONDS".into(), "0".into());
    env
}

impl ServerProcess {
    pub fn start(env: &HashMap<String, String>) -> ServerProcess {
        use std::io::BufRead;
        let mut child = std::process::Command::new(BINARY)
            .env_clear()
            .envs(env)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the users-server binary");
        let output = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let tx = tx.clone();
            let output = output.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    output.lock().expect("lock").push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("listening on ").nth(1) {
                        // plain or JSON log line: the URL ends at the first other character
                        let address: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || ":/.".contains(*c))
                            .collect();
                        return ServerProcess {
                            address,
                            child,
                            output,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the server did not start: {:?}",
                        output.lock().expect("lock")
                    );
                }
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// SIGTERM, then waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().expect("wait");
        std::mem::forget(self);
        status
    }

    /// Sends a signal (`"TERM"`, `"INT"`) and returns at once; [`ServerProcess::wait`]
    /// collects the exit.
    pub fn signal(&self, name: &str) {
        let _ = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits for the exit status (after [`ServerProcess::signal`]).
    pub fn wait(mut self) -> std::process::ExitStatus {
        let status = self.child.wait().expect("wait");
        std::mem::forget(self);
        status
    }

    /// SIGKILL: the process dies at once, whatever it was doing.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with arguments to completion: (exit code, stdout, stderr).
pub fn run_binary(env: &HashMap<String, String>, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(BINARY)
        .env_clear()
        .envs(env)
        .args(args)
        .output()
        .expect("run the binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A TCP proxy on loopback in front of another address, which a test can cut (every
/// connection dropped, new ones refused) and restore: a database "going away" without
/// touching the shared server.
pub struct TcpProxy {
    pub port: u16,
    upstream: String,
    /// The accept loop, and the sender that tells it to close everything.
    task: std::sync::Mutex<
        Option<(
            tokio::task::JoinHandle<()>,
            tokio::sync::oneshot::Sender<()>,
        )>,
    >,
}

impl TcpProxy {
    pub async fn start(upstream: &str) -> TcpProxy {
        let port = free_port();
        let proxy = TcpProxy {
            port,
            upstream: upstream.to_owned(),
            task: std::sync::Mutex::new(None),
        };
        proxy.resume().await;
        proxy
    }

    pub async fn resume(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("bind proxy");
        let upstream = self.upstream.clone();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = &mut stopped => break,
                };
                let Ok((mut inbound, _)) = accepted else {
                    break;
                };
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
            // every connection closed before cut() returns
            conns.shutdown().await;
        });
        *self.task.lock().expect("lock") = Some((task, stop));
    }

    /// Drops every connection and stops listening, and returns once that has happened
    /// (an abort alone only takes effect when the runtime next polls the tasks).
    pub async fn cut(&self) {
        let running = self.task.lock().expect("lock").take();
        if let Some((task, stop)) = running {
            let _ = stop.send(());
            let _ = task.await;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        if let Some((task, _)) = self.task.lock().expect("lock").take() {
            task.abort(); // the JoinSet, and every connection in it, goes with the task
        }
    }
}
