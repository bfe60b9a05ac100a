//! Several replicas behind a load balancer (docs/operations.md): three `users-server`
//! processes on one PostgreSQL database, behind a real HAProxy running
//! `deploy/haproxy.cfg` as it is, with mail going over SMTP to the sink and webhooks to
//! the loopback receiver, under a load of concurrent clients (sign-ins, `/users/me`,
//! sign-ups, refresh-token rotations, reset mails):
//!
//! - each replica in turn is stopped with SIGTERM and started again: not one request
//!   gets anything but the answer it expects;
//! - one replica is killed with SIGKILL: the only requests that may fail are POSTs in
//!   flight on it at that instant (the balancer replays GETs, not POSTs); no sign-up
//!   that got its 201 is lost; every queued mail and webhook arrives exactly once, but
//!   for the one documented point: the delivery the killed replica had handed over and
//!   not yet recorded arrives a second time, from another replica, once its lease ran
//!   out.
//!
//! HAProxy is Debian's `haproxy` (`.ci/run` installs it); where it is missing the test
//! says SKIPPED, except in CI.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::helpers::*;
use crate::smtp_sink::SmtpSink;
use crate::webhook_receiver::Receiver;

const REPLICAS: usize = 3;
const CLIENTS: usize = 8;
/// Each client's pause between two requests: a steady load that leaves the two cores
/// of CI some room for the outbox workers and the database.
const PAUSE: Duration = Duration::from_millis(5);
/// How long HAProxy may take to see a replica come back (checks every second, in
/// after two successes).
const BACK_IN_ROTATION: Duration = Duration::from_secs(30);
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MAIL_KINDS: &[&str] = &["email", "forgot_password", "request_verify"];
const WEBHOOK_KINDS: &[&str] = &["webhook"];

// ---- HAProxy ----------------------------------------------------------------------------

pub(crate) fn haproxy_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("haproxy"))
        .find(|p| p.is_file())
}

/// The HAProxy binary, or `None` after saying SKIPPED (never in CI, where a missing
/// HAProxy fails the test instead).
pub(crate) fn haproxy_or_skip(test: &str) -> Option<PathBuf> {
    let found = haproxy_binary();
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "haproxy must be installed in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: install Debian's haproxy to run {test}");
    }
    found
}

/// `deploy/haproxy.cfg`, the configuration the repository ships.
pub(crate) fn shipped_haproxy_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/haproxy.cfg")
}

/// HAProxy as a child process, running `deploy/haproxy.cfg` (or another configuration
/// that reads the same variables) with the addresses of this test; killed on drop.
pub(crate) struct Haproxy {
    child: std::process::Child,
    output: Arc<Mutex<Vec<String>>>,
    pub(crate) url: String,
    stats: String,
}

impl Haproxy {
    pub(crate) fn start(binary: &PathBuf, replica_ports: &[u16]) -> Haproxy {
        Haproxy::start_with(binary, &shipped_haproxy_config(), replica_ports)
    }

    /// HAProxy running `config`, which reads `USERS_LB_BIND`, `USERS_LB_STATS` and
    /// `USERS_REPLICA_1..` as `deploy/haproxy.cfg` does.
    pub(crate) fn start_with(
        binary: &PathBuf,
        config: &std::path::Path,
        replica_ports: &[u16],
    ) -> Haproxy {
        let (port, stats_port) = (free_port(), free_port());
        let mut command = std::process::Command::new(binary);
        command
            .arg("-db")
            .arg("-f")
            .arg(config)
            .env_clear()
            .env("USERS_LB_BIND", format!("127.0.0.1:{port}"))
            .env("USERS_LB_STATS", format!("127.0.0.1:{stats_port}"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        for (i, p) in replica_ports.iter().enumerate() {
            command.env(format!("USERS_REPLICA_{}", i + 1), format!("127.0.0.1:{p}"));
        }
        let mut child = command.spawn().expect("start haproxy");
        let output = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    output.lock().unwrap().push(line);
                }
            });
        }
        let haproxy = Haproxy {
            child,
            output,
            url: format!("http://127.0.0.1:{port}"),
            stats: format!("http://127.0.0.1:{stats_port}/stats;csv"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "haproxy did not start: {:?}",
                haproxy.output.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        haproxy
    }

    /// Everything HAProxy printed so far (its request log, its checks).
    pub(crate) fn log(&self) -> Vec<String> {
        self.output.lock().unwrap().clone()
    }

    /// Each replica's state as HAProxy sees it (`users1` → `UP`, `DOWN`, `UP 1/2`, …).
    async fn states(&self, http: &reqwest::Client) -> BTreeMap<String, String> {
        let csv = http
            .get(&self.stats)
            .send()
            .await
            .expect("stats page")
            .text()
            .await
            .expect("stats csv");
        let mut lines = csv.lines();
        let header: Vec<&str> = lines
            .next()
            .expect("a header")
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let column = |name: &str| header.iter().position(|h| *h == name).expect(name);
        let (px, sv, status) = (column("pxname"), column("svname"), column("status"));
        lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| f.len() > status && f[px] == "users" && f[sv].starts_with("users"))
            .map(|f| (f[sv].to_owned(), f[status].to_owned()))
            .collect()
    }

    /// Waits until HAProxy sends requests to replica `n` (1-based) again.
    pub(crate) async fn wait_up(&self, http: &reqwest::Client, n: usize) {
        let name = format!("users{n}");
        let deadline = Instant::now() + BACK_IN_ROTATION;
        loop {
            let states = self.states(http).await;
            if states.get(&name).map(String::as_str) == Some("UP") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} is not back in rotation: {states:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Why HAProxy took replica `n` out of rotation, each time it did, from its log:
    /// `Layer7 wrong status, code: 503, …` (its `/readyz`), `Layer4 connection
    /// problem, info: "Connection refused", …` (nothing listening).
    fn down_reasons(&self, n: usize) -> Vec<String> {
        let prefix = format!("Server users/users{n} is DOWN, reason: ");
        self.output
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|reason| {
                reason
                    .split(", check duration")
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// From the request log (`option httplog`): how many requests were retried, and
    /// how many of those were sent to another replica. The fifth of the connection
    /// counts (`actconn/feconn/beconn/srv_conn/retries`) is the retries, `+` marking a
    /// redispatch.
    fn retries(&self) -> (usize, usize) {
        let lines = self.output.lock().unwrap().clone();
        let (mut retried, mut redispatched) = (0, 0);
        for line in &lines {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(at) = fields.iter().position(|f| f.starts_with("users/")) else {
                continue;
            };
            let counts: Vec<&str> = match fields.get(at + 7) {
                Some(c) => c.split('/').collect(),
                None => continue,
            };
            let [.., r] = counts[..] else { continue };
            let Ok(n) = r.trim_start_matches('+').parse::<u32>() else {
                continue;
            };
            if counts.len() != 5 {
                continue;
            }
            if n > 0 {
                retried += 1;
            }
            if r.starts_with('+') {
                redispatched += 1;
            }
        }
        (retried, redispatched)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client of the balancer. It closes its idle connections before HAProxy does (its
/// `timeout http-keep-alive` is 10 s), or it could send a request on a connection being
/// closed.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

// ---- the replicas -----------------------------------------------------------------------

/// Starts a replica listening on `port`.
async fn start_replica(env: &HashMap<String, String>, port: u16) -> ServerProcess {
    let mut env = env.clone();
    env.insert("BIND_ADDR".into(), format!("127.0.0.1:{port}"));
    tokio::task::spawn_blocking(move || ServerProcess::start(&env))
        .await
        .unwrap()
}

// ---- the load ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Op {
    Me,
    Login,
    Register,
    Refresh,
    Forgot,
}

impl Op {
    /// What HAProxy may replay (and does, when a replica closed without answering).
    fn is_get(self) -> bool {
        self == Op::Me
    }
}

/// The order each client goes through (from a different starting point each).
const CYCLE: [Op; 10] = [
    Op::Me,
    Op::Login,
    Op::Me,
    Op::Refresh,
    Op::Register,
    Op::Me,
    Op::Forgot,
    Op::Me,
    Op::Refresh,
    Op::Login,
];

#[derive(Debug)]
struct Attempt {
    op: Op,
    started: Instant,
    ended: Instant,
    /// `None`: the answer this request expects; otherwise what came instead.
    problem: Option<String>,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    /// Every email whose sign-up got a 201.
    registered: Mutex<Vec<String>>,
    /// For each email, how many forgot-password requests got their 202.
    forgot: Mutex<HashMap<String, usize>>,
}

impl Shared {
    fn someone(&self, k: usize) -> String {
        let r = self.registered.lock().unwrap();
        r[k.wrapping_mul(7919) % r.len()].clone()
    }
}

/// The status and, for an error, the body: what a failed request is reported with (an
/// error body holds no secret; a success body is never shown).
async fn unexpected(r: reqwest::Response) -> String {
    let status = r.status();
    if status.is_success() {
        format!("{status} with an unexpected body")
    } else {
        let body = r.text().await.unwrap_or_default();
        format!("{status} {}", body.chars().take(200).collect::<String>())
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
    email: String,
    access: String,
    refresh: String,
}

impl Client {
    /// A client with an account of its own, signed in with a refresh token.
    async fn new(base: &str, shared: &Shared) -> Client {
        let http = http_client();
        let email = unique_email();
        let r = http
            .post(format!("{base}/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", unexpected(r).await);
        shared.registered.lock().unwrap().push(email.clone());
        let r = http
            .post(format!("{base}/auth/jwt/login"))
            .form(&[
                ("username", email.as_str()),
                ("password", PASSWORD),
                ("scope", "offline_access"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", unexpected(r).await);
        let body: Value = r.json().await.unwrap();
        Client {
            http,
            base: base.to_owned(),
            email,
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
        }
    }

    async fn run(mut self, n: usize, shared: Arc<Shared>) -> Vec<Attempt> {
        let mut attempts = Vec::new();
        let mut k = n;
        while !shared.stop.load(Ordering::SeqCst) {
            let op = CYCLE[k % CYCLE.len()];
            k += 1;
            let started = Instant::now();
            let problem = self.one(op, k, &shared).await.err();
            attempts.push(Attempt {
                op,
                started,
                ended: Instant::now(),
                problem,
            });
            tokio::time::sleep(PAUSE).await;
        }
        attempts
    }

    /// One request and the check of its answer.
    async fn one(&mut self, op: Op, k: usize, shared: &Shared) -> Result<(), String> {
        let url = |path: &str| format!("{}{path}", self.base);
        let sent = match op {
            Op::Me => self.http.get(url("/users/me")).bearer_auth(&self.access),
            Op::Login => {
                let who = shared.someone(k);
                self.http
                    .post(url("/auth/jwt/login"))
                    .form(&[("username", who.as_str()), ("password", PASSWORD)])
            }
            Op::Register => {
                let email = unique_email();
                let r = self
                    .http
                    .post(url("/auth/register"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await
                    .map_err(|e| format!("no answer: {e}"))?;
                if r.status() != 201 {
                    return Err(unexpected(r).await);
                }
                let body: Value = r.json().await.map_err(|e| e.to_string())?;
                if body["email"] != email.as_str() {
                    return Err("201 for another email".into());
                }
                shared.registered.lock().unwrap().push(email);
                return Ok(());
            }
            // a refresh that failed is tried again with the same token: spent by a
            // request whose answer was lost, it is within the reuse interval and
            // gets the current one
            Op::Refresh => self
                .http
                .post(url("/auth/jwt/refresh"))
                .json(&json!({"refresh_token": self.refresh})),
            Op::Forgot => {
                let who = shared.someone(k);
                let r = self
                    .http
                    .post(url("/auth/forgot-password"))
                    .json(&json!({"email": who}))
                    .send()
                    .await
                    .map_err(|e| format!("no answer: {e}"))?;
                if r.status() != 202 {
                    return Err(unexpected(r).await);
                }
                *shared.forgot.lock().unwrap().entry(who).or_default() += 1;
                return Ok(());
            }
        };
        let r = sent.send().await.map_err(|e| format!("no answer: {e}"))?;
        if r.status() != 200 {
            return Err(unexpected(r).await);
        }
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        match op {
            Op::Me if body["email"] != self.email.as_str() => Err("200 for another user".into()),
            Op::Login if !body["access_token"].is_string() => Err("200 without a token".into()),
            Op::Refresh => {
                let (Some(access), Some(refresh)) = (
                    body["access_token"].as_str(),
                    body["refresh_token"].as_str(),
                ) else {
                    return Err("200 without the tokens".into());
                };
                self.access = access.to_owned();
                self.refresh = refresh.to_owned();
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

// ---- what arrived -----------------------------------------------------------------------

/// The outbox row a mail came from: its Message-ID is `<row id@domain>`.
fn outbox_row_of(mail: &crate::smtp_sink::ReceivedMail) -> String {
    let id = mail.header("Message-ID").expect("a Message-ID");
    id.trim_start_matches('<')
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// How the deliveries of one channel went.
struct Deliveries {
    received: usize,
    lost: usize,
    repeated: usize,
    /// Whatever breaks the promise: a stray, a repeat away from the crash, more than
    /// one repeat.
    problems: Vec<String>,
}

/// Compares what arrived (names in arrival order) with what was queued. A name may
/// arrive twice only at the documented point: its first copy before the crash (by the
/// count taken just after it) and its second after; and at most one name, since a
/// worker delivers one row at a time.
fn check_deliveries(
    channel: &str,
    expected: &HashSet<String>,
    names: &[String],
    before_crash: usize,
) -> Deliveries {
    let mut at: HashMap<&String, Vec<usize>> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        at.entry(name).or_default().push(i);
    }
    let mut problems: Vec<String> = at
        .keys()
        .filter(|k| !expected.contains(**k))
        .map(|k| format!("{channel} {k} was never queued"))
        .collect();
    let lost = expected.iter().filter(|k| !at.contains_key(k)).count();
    let twice: Vec<(&&String, &Vec<usize>)> = at.iter().filter(|(_, a)| a.len() > 1).collect();
    for (name, a) in &twice {
        if !(a.len() == 2 && a[0] < before_crash && a[1] >= before_crash) {
            problems.push(format!(
                "{channel} {name} arrived more than once, not at the crash: at {a:?}, crash after {before_crash}"
            ));
        }
    }
    if twice.len() > 1 {
        problems.push(format!(
            "{channel}: {} deliveries were repeated, only the one in flight at the crash may be",
            twice.len()
        ));
    }
    Deliveries {
        received: names.len(),
        lost,
        repeated: twice.len(),
        problems,
    }
}

async fn wait_for_outbox(db: &users_db::Database, timeout: Duration) {
    let started = Instant::now();
    loop {
        let mut conn = db.get().unwrap();
        let mails = users_db::outbox::pending_count(&mut conn, MAIL_KINDS).unwrap();
        let hooks = users_db::outbox::pending_count(&mut conn, WEBHOOK_KINDS).unwrap();
        drop(conn);
        if mails == 0 && hooks == 0 {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "the outbox still holds {mails} mails and {hooks} webhooks"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn all_event_ids(db: &users_db::Database) -> HashSet<String> {
    let mut conn = db.get().unwrap();
    let mut ids = HashSet::new();
    let mut before = None;
    loop {
        let page = users_db::audit::list(
            &mut conn,
            &users_db::audit::AuditQuery {
                before: before.clone(),
                limit: 500,
                ..Default::default()
            },
        )
        .unwrap();
        let Some(last) = page.last() else {
            return ids;
        };
        before = Some(last.id.clone());
        ids.extend(page.into_iter().map(|e| e.id));
    }
}

// ---- the test ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_behind_haproxy_survive_sigterm_and_sigkill() {
    let Some(haproxy_bin) = haproxy_or_skip("the replicas test") else {
        return;
    };
    let t0 = Instant::now();
    let database = TestDatabase::new(Backend::Postgres);
    let db = database.pool();
    let sink = SmtpSink::start().await;
    let receiver = Receiver::start(WEBHOOK_SECRET).await;
    let mut env = process_env(&database.url);
    env.insert("SMTP_URL".into(), sink.url());
    env.insert("WEBHOOK_URLS".into(), receiver.url.clone());
    env.insert("WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into());
    env.insert("TRUSTED_PROXIES".into(), "127.0.0.1".into());
    env.insert("DATABASE_MAX_CONNECTIONS".into(), "5".into());
    // the default drain, which the example configuration's checks are made for
    env.remove("SHUTDOWN_DRAIN_SECONDS");

    // all at once on the empty database: they take turns at the migrations
    let ports: Vec<u16> = (0..REPLICAS).map(|_| free_port()).collect();
    let (a, b, c) = tokio::join!(
        start_replica(&env, ports[0]),
        start_replica(&env, ports[1]),
        start_replica(&env, ports[2])
    );
    let mut replicas = vec![Some(a), Some(b), Some(c)];
    let haproxy = Haproxy::start(&haproxy_bin, &ports);
    let http = http_client();
    for n in 1..=REPLICAS {
        haproxy.wait_up(&http, n).await;
    }
    let base = haproxy.url.clone();

    // the load
    let shared = Arc::new(Shared::default());
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        clients.push(Client::new(&base, &shared).await);
    }
    let load_started = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, c)| tokio::spawn(c.run(n, shared.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // (a) each replica in turn: SIGTERM, drained and stopped, started again
    let mut stops = Vec::new();
    for i in 0..REPLICAS {
        let server = replicas[i].take().unwrap();
        let signalled = Instant::now();
        let status = tokio::task::spawn_blocking(move || {
            server.signal("TERM");
            server.wait()
        })
        .await
        .unwrap();
        assert!(status.success(), "replica {} exited with {status:?}", i + 1);
        let stopped_after = signalled.elapsed();
        replicas[i] = Some(start_replica(&env, ports[i]).await);
        haproxy.wait_up(&http, i + 1).await;
        stops.push((stopped_after, signalled.elapsed()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let rolling_done = Instant::now();
    // each left the rotation through its /readyz while it still listened, not by
    // refusing connections: the drain worked before anything depended on retries
    let left_by: Vec<Vec<String>> = (1..=REPLICAS).map(|n| haproxy.down_reasons(n)).collect();

    // (b) one replica killed under load
    tokio::time::sleep(Duration::from_secs(1)).await;
    let victim = 1;
    let server = replicas[victim].take().unwrap();
    let retried_before_kill = haproxy.retries().0;
    let killed_at = Instant::now();
    tokio::task::spawn_blocking(move || server.kill())
        .await
        .unwrap();
    // what had arrived by just after the crash (a copy the dying replica had handed
    // over lands within this second)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mails_before_crash, hooks_before_crash) =
        (sink.messages().len(), receiver.attempts().len());
    tokio::time::sleep(Duration::from_secs(1)).await;
    replicas[victim] = Some(start_replica(&env, ports[victim]).await);
    haproxy.wait_up(&http, victim + 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;

    shared.stop.store(true, Ordering::SeqCst);
    let mut attempts = Vec::new();
    for t in tasks {
        attempts.extend(t.await.unwrap());
    }
    let load_time = load_started.elapsed();
    let load_ended = Instant::now();
    let backlog = {
        let mut conn = db.get().unwrap();
        (
            users_db::outbox::pending_count(&mut conn, MAIL_KINDS).unwrap(),
            users_db::outbox::pending_count(&mut conn, WEBHOOK_KINDS).unwrap(),
        )
    };

    // what the clients saw
    // a POST on the killed replica when it died (or sent to it in the instant after,
    // before HAProxy saw its connections close): the balancer does not replay it
    let lost_with_the_replica = |a: &Attempt| {
        a.started < killed_at + Duration::from_secs(1) && a.ended >= killed_at && !a.op.is_get()
    };
    let failed: Vec<&Attempt> = attempts.iter().filter(|a| a.problem.is_some()).collect();
    let before_kill = attempts.iter().filter(|a| a.ended < killed_at).count();
    let failed_before_kill: Vec<&&Attempt> =
        failed.iter().filter(|a| a.ended < killed_at).collect();
    let unexplained: Vec<&&Attempt> = failed
        .iter()
        .filter(|a| !lost_with_the_replica(a))
        .collect();
    let mut by_op: BTreeMap<Op, usize> = BTreeMap::new();
    for a in &attempts {
        *by_op.entry(a.op).or_default() += 1;
    }

    // every sign-up that got a 201 signs in
    let registered = shared.registered.lock().unwrap().clone();
    let mut lost_users = Vec::new();
    for batch in registered.chunks(16) {
        let mut set = tokio::task::JoinSet::new();
        for email in batch {
            let (http, base, email) = (http.clone(), base.clone(), email.clone());
            set.spawn(async move {
                let r = http
                    .post(format!("{base}/auth/jwt/login"))
                    .form(&[("username", email.as_str()), ("password", PASSWORD)])
                    .send()
                    .await;
                (email, r.map(|r| r.status().as_u16()).unwrap_or(0))
            });
        }
        while let Some(done) = set.join_next().await {
            let (email, status) = done.unwrap();
            if status != 200 {
                lost_users.push((email, status));
            }
        }
    }

    // every queued mail and webhook arrives
    wait_for_outbox(&db, Duration::from_secs(60)).await;
    let (drained_after, drained_after_kill) = (load_ended.elapsed(), killed_at.elapsed());
    let (sent, given_up) = {
        let mut conn = db.get().unwrap();
        (
            users_db::outbox::by_status(&mut conn, users_db::outbox::SENT).unwrap(),
            users_db::outbox::by_status(&mut conn, users_db::outbox::FAILED).unwrap(),
        )
    };
    let mail_rows: HashSet<String> = sent
        .iter()
        .filter(|r| MAIL_KINDS.contains(&r.kind.as_str()))
        .map(|r| r.id.clone())
        .collect();
    let hook_rows = sent
        .iter()
        .filter(|r| WEBHOOK_KINDS.contains(&r.kind.as_str()))
        .count();
    let mails = sink.messages();
    let mail_names: Vec<String> = mails.iter().map(outbox_row_of).collect();
    let mail = check_deliveries("mail", &mail_rows, &mail_names, mails_before_crash);
    // each acknowledged forgot-password request got a mail of its own, up to the quota
    // of reset mails one address gets in 15 minutes (docs/security.md)
    let quota = users_core::flows::recovery::MAIL_QUOTA as usize;
    let mut mails_to: HashMap<&String, HashSet<&String>> = HashMap::new();
    for (m, row) in mails.iter().zip(&mail_names) {
        for to in &m.rcpt_to {
            mails_to.entry(to).or_default().insert(row);
        }
    }
    let forgot = shared.forgot.lock().unwrap().clone();
    let unmailed: Vec<(&String, &usize)> = forgot
        .iter()
        .filter(|(email, n)| mails_to.get(email).map_or(0, HashSet::len) < (**n).min(quota))
        .collect();
    let forgot_acked: usize = forgot.values().sum();

    let events = all_event_ids(&db);
    let deliveries = receiver.attempts();
    let refused: Vec<_> = deliveries
        .iter()
        .filter(|d| !(d.signed && d.accepted))
        .collect();
    let hook_names: Vec<String> = deliveries.iter().map(|d| d.id.clone()).collect();
    let hooks = check_deliveries("webhook", &events, &hook_names, hooks_before_crash);
    let (retried, redispatched) = haproxy.retries();

    println!(
        "replicas behind HAProxy: {REPLICAS} replicas, {CLIENTS} clients, load for {load_time:.1?}"
    );
    println!("  requests: {} ({by_op:?})", attempts.len());
    for (i, ((stopped, back), reasons)) in stops.iter().zip(&left_by).enumerate() {
        println!(
            "  replica {}: SIGTERM → exited 0 after {stopped:.1?}, back in rotation after {back:.1?}; HAProxy took it out: {reasons:?}",
            i + 1
        );
    }
    println!(
        "  (a) rolling SIGTERM restarts: {before_kill} requests, {} failed, {retried_before_kill} retried by HAProxy",
        failed_before_kill.len()
    );
    println!(
        "  (b) SIGKILL of replica {} under load: {} requests after it, {} failed ({} of them POSTs in flight on it); HAProxy took it out: {:?}",
        victim + 1,
        attempts.len() - before_kill,
        failed.len() - failed_before_kill.len(),
        failed.len() - failed_before_kill.len() - unexplained.len(),
        haproxy.down_reasons(victim + 1).last()
    );
    println!(
        "  HAProxy, in all: {retried} requests retried, {redispatched} of them on another replica"
    );
    println!(
        "  sign-ups acknowledged: {}, lost: {}",
        registered.len(),
        lost_users.len()
    );
    println!(
        "  mails: {forgot_acked} forgot-password requests acknowledged, {} queued, {} received, lost {}, repeated {}",
        mail_rows.len(),
        mail.received,
        mail.lost,
        mail.repeated
    );
    println!(
        "  webhooks: {} events, {hook_rows} deliveries recorded, {} received, lost {}, repeated {}",
        events.len(),
        hooks.received,
        hooks.lost,
        hooks.repeated
    );
    println!(
        "  outbox: {} mails and {} webhooks waiting when the load stopped; empty {drained_after:.1?} later ({drained_after_kill:.1?} after the SIGKILL); test took {:.1?}",
        backlog.0,
        backlog.1,
        t0.elapsed()
    );
    for a in failed.iter().take(20) {
        println!(
            "  failed {:?} at {:.2?} (kill at {:.2?}): {}",
            a.op,
            a.started - load_started,
            killed_at - load_started,
            a.problem.as_deref().unwrap_or_default()
        );
    }

    for (i, reasons) in left_by.iter().enumerate() {
        assert!(
            reasons.len() == 1 && reasons[0].starts_with("Layer7 wrong status, code: 503"),
            "replica {} must leave the rotation by its /readyz while draining: {reasons:?}",
            i + 1
        );
    }
    assert!(
        failed_before_kill.is_empty(),
        "SIGTERM cost requests: {failed_before_kill:?}"
    );
    assert!(
        unexplained.is_empty(),
        "failures other than POSTs in flight at the SIGKILL: {unexplained:?}"
    );
    assert!(failed.len() <= CLIENTS, "{failed:?}");
    assert!(
        lost_users.is_empty(),
        "acknowledged sign-ups lost: {lost_users:?}"
    );
    assert!(given_up.is_empty(), "deliveries given up: {given_up:?}");
    assert_eq!((mail.lost, hooks.lost), (0, 0), "lost mails, webhooks");
    assert!(mail.problems.is_empty(), "{:?}", mail.problems);
    assert!(hooks.problems.is_empty(), "{:?}", hooks.problems);
    assert!(
        unmailed.is_empty(),
        "acknowledged requests without a mail: {unmailed:?}"
    );
    assert!(
        refused.is_empty(),
        "deliveries the receiver refused: {refused:?}"
    );
    assert_eq!(hook_rows, events.len(), "one delivery recorded per event");
    // the load was a load: every kind of request, through every phase
    for op in CYCLE {
        assert!(by_op.get(&op).copied().unwrap_or(0) > 20, "{by_op:?}");
    }
    assert!(
        attempts.iter().filter(|a| a.started > rolling_done).count() > 100,
        "load during the SIGKILL"
    );
    assert!(forgot_acked > 20 && events.len() > 100);
    drop(replicas);
}
