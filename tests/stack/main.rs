//! The compose stack, run for real (docs/compose.md): the project's own Dockerfile and
//! docker-compose.yml on a Docker engine of the test's own, driven as a person would
//! through the published ports.
//!
//! No registry is reachable here, so the base images are made from Debian's packages
//! (debootstrap, `docker import`): `debian:bookworm-slim`; the Dockerfile's builder
//! image `rust:<RUST_VERSION>-bookworm` (Debian, the C toolchain the bundled C
//! libraries need, and this machine's active Rust toolchain); and the base of the two
//! stand-ins of deploy/compose.local-images.yml, which replaces only the postgres and
//! mailpit images. Crates are vendored into the build context (vendor/), so the build
//! needs no network inside its containers.
//!
//! Needs root, Debian's docker.io, docker-compose and debootstrap (`.ci/run` installs
//! them) and the Debian mirror apt uses. Where any is missing the test FAILS, saying
//! why; a developer may skip it on purpose with `USERS_STACK_TEST=skip` (refused when
//! CI is set). It is its own test binary, so that its long build runs alone, not beside
//! the timing-sensitive tests of `api`.
//!
//! Cold (nothing cached) it makes the base images and compiles the release binary
//! inside the build (16.5 minutes measured on two shared cores); warm (a second run, the
//! engine's data root kept under target/tmp/stack-test) it reuses images and the build
//! cache (about a minute). docs/compose.md has the commands it runs and its timings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod engine;
mod images;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use engine::Engine;
use images::{BaseImage, Made, Toolchain};

/// `USERS_STACK_TEST=skip` skips the test (not in CI).
const OPT_OUT: &str = "USERS_STACK_TEST";
const PROJECT: &str = "usersstack";
const ADMIN_EMAIL: &str = "admin@example.com";
const USER_EMAIL: &str = "someone@example.com";
const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a new and longer passphrase";
/// The service's default SHUTDOWN_DRAIN_SECONDS (docker-compose.yml leaves it unset).
const DRAIN: Duration = Duration::from_secs(5);
/// What stopping may take beyond the drain.
const STOP_MARGIN: Duration = Duration::from_secs(5);
/// How long after /healthz first answers Compose may take to report the service
/// healthy: one health-check interval (5 s) and some slack.
const HEALTHY_AFTER_READY: Duration = Duration::from_secs(10);
/// The image the Dockerfile makes, on a base the size of the official slim image.
const IMAGE_SIZE_LIMIT: u64 = 150_000_000;
const SERVICE_UID: &str = "10001";

// ---- helpers ------------------------------------------------------------------------------

/// A program in PATH or in the system folders (a root shell's PATH may lack /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Words as a line to show, with the value of `--password` hidden.
fn redacted<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut shown = Vec::new();
    let mut hide = false;
    for word in words {
        shown.push(if hide { "***" } else { word });
        hide = word == "--password";
    }
    shown.join(" ")
}

/// A command as a line to show, with the value of `--password` hidden.
fn describe(command: &Command) -> String {
    let program = command.get_program().to_string_lossy();
    let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy()).collect();
    redacted(std::iter::once(&*program).chain(args.iter().map(|a| &**a)))
}

/// How long one command may take (but the build).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the build may take: a cold one compiles every dependency in release mode.
const BUILD_TIMEOUT: Duration = Duration::from_secs(40 * 60);

/// Waits for `child`, killing it and failing after `timeout`.
fn wait_for(child: &mut std::process::Child, timeout: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{what}` did not end within {timeout:?}: killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `command` to completion (within [`COMMAND_TIMEOUT`]); its stdout. Panics with
/// its stderr when it fails.
pub fn run(command: &mut Command) -> String {
    let what = describe(command);
    let (mut stdout, mut stderr) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let mut child = command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().unwrap())
        .stderr(stderr.try_clone().unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{what}`: {e}"));
    let status = wait_for(&mut child, COMMAND_TIMEOUT, &what);
    let read = |file: &mut std::fs::File| {
        use std::io::{Read, Seek};
        let mut text = String::new();
        file.seek(std::io::SeekFrom::Start(0)).unwrap();
        file.read_to_string(&mut text).unwrap();
        text
    };
    let (out, err) = (read(&mut stdout), read(&mut stderr));
    assert!(
        status.success(),
        "`{what}` failed ({status}):\n{out}\n{err}"
    );
    out
}

/// The last `lines` lines of a log file.
pub fn tail_of(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The time each phase took, printed as it ends and all together at the end.
struct Phases(Vec<(String, Duration)>);

impl Phases {
    fn time<T>(&mut self, name: &str, phase: impl FnOnce() -> T) -> T {
        eprintln!("[stack] ---- {name}");
        let started = Instant::now();
        let result = phase();
        let took = started.elapsed();
        eprintln!("[stack] ---- {name}: {:.1} s", took.as_secs_f64());
        self.0.push((name.to_owned(), took));
        result
    }

    fn report(&self) -> String {
        let total: Duration = self.0.iter().map(|(_, d)| *d).sum();
        let mut lines: Vec<String> = self
            .0
            .iter()
            .map(|(name, d)| format!("  {:<44} {:>7.1} s", name, d.as_secs_f64()))
            .collect();
        lines.push(format!("  {:<44} {:>7.1} s", "total", total.as_secs_f64()));
        lines.join("\n")
    }
}

// ---- HTTP, through the published ports ---------------------------------------------------

struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        Http {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    /// The status and body, or the error (nothing listening, connection reset, …).
    fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, String), String> {
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response.text().await.map_err(|e| e.to_string())?;
            Ok((status, body))
        })
    }

    fn get(&self, url: &str, token: Option<&str>) -> Result<(u16, String), String> {
        let mut request = self.client.get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request)
    }

    fn json(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let (status, body) = self.send(request).unwrap();
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    }

    fn post_json(&self, url: &str, body: &Value) -> (u16, Value) {
        self.json(self.client.post(url).json(body))
    }

    fn login(&self, api: &str, email: &str, password: &str) -> (u16, Value) {
        self.json(
            self.client
                .post(format!("{api}/auth/jwt/login"))
                .form(&[("username", email), ("password", password)]),
        )
    }

    fn token(&self, api: &str, email: &str, password: &str) -> String {
        let (status, body) = self.login(api, email, password);
        assert_eq!(status, 200, "login of {email}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    fn get_json(&self, url: &str, token: &str) -> (u16, Value) {
        self.json(self.client.get(url).bearer_auth(token))
    }
}

// ---- the stack ----------------------------------------------------------------------------

/// The project's compose files on the test's engine; `down -v` on drop once it was up.
struct Stack<'a> {
    engine: &'a Engine,
    repo: PathBuf,
    env_file: PathBuf,
    secrets_dir: PathBuf,
    api_port: u16,
    mail_port: u16,
    up: bool,
}

impl Stack<'_> {
    fn compose(&self) -> Command {
        let mut command = Command::new(&self.engine.compose);
        self.engine.client_env(&mut command);
        command
            .current_dir(&self.repo)
            .env("USERS_PUBLISH", format!("127.0.0.1:{}", self.api_port))
            .env("MAILPIT_PUBLISH", format!("127.0.0.1:{}", self.mail_port))
            .env("USERS_SECRETS_DIR", &self.secrets_dir)
            .arg("--env-file")
            .arg(&self.env_file)
            .args(["-p", PROJECT])
            .arg("-f")
            .arg(self.repo.join("docker-compose.yml"))
            .arg("-f")
            .arg(self.repo.join("deploy/compose.local-images.yml"));
        command
    }

    fn run(&self, args: &[&str]) -> String {
        let mut command = self.compose();
        command.args(args);
        eprintln!(
            "[stack] $ docker-compose {}",
            redacted(args.iter().copied())
        );
        run(&mut command)
    }

    /// Like [`Stack::run`] with the output in `log` (a build's is long), its tail shown
    /// when it fails.
    fn run_logged(&self, args: &[&str], log: &Path) {
        let mut command = self.compose();
        command.args(args).stdin(Stdio::null());
        let file = std::fs::File::create(log).unwrap();
        command.stdout(file.try_clone().unwrap()).stderr(file);
        eprintln!(
            "[stack] $ docker-compose {} (output in {})",
            args.join(" "),
            log.display()
        );
        let mut child = command.spawn().unwrap();
        let status = wait_for(
            &mut child,
            BUILD_TIMEOUT,
            &format!("docker-compose {}", args.join(" ")),
        );
        assert!(
            status.success(),
            "docker-compose {} failed ({status}):\n{}",
            args.join(" "),
            tail_of(log, 60)
        );
    }

    fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api_port)
    }

    fn mail(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.mail_port)
    }

    fn container(&self, service: &str) -> String {
        let id = self.run(&["ps", "-q", service]).trim().to_owned();
        assert!(!id.is_empty(), "no container for {service}");
        id
    }

    fn inspect(&self, container: &str, format: &str) -> String {
        run(self
            .engine
            .docker()
            .args(["inspect", "--format", format, container]))
        .trim()
        .to_owned()
    }

    fn logs(&self, service: &str) -> String {
        let mut command = self.compose();
        command.args(["logs", "--no-color", "--tail", "40", service]);
        command
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Waits until Compose reports `users` healthy; how long after `since` /healthz first
    /// answered 200 through the published port, and Compose said healthy.
    fn wait_healthy(&self, http: &Http, since: Instant) -> (Duration, Duration) {
        let container = self.container("users");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut ready = None;
        loop {
            if ready.is_none() && matches!(http.get(&self.api("/healthz"), None), Ok((200, _))) {
                ready = Some(since.elapsed());
            }
            let health = self.inspect(&container, "{{.State.Health.Status}}");
            match health.as_str() {
                "healthy" => {
                    let healthy = since.elapsed();
                    let ready = ready.unwrap_or(healthy);
                    eprintln!(
                        "[stack] /healthz answered {:.1} s after the start, Compose said \
                         healthy at {:.1} s",
                        ready.as_secs_f64(),
                        healthy.as_secs_f64()
                    );
                    return (ready, healthy);
                }
                "unhealthy" => panic!("users is unhealthy:\n{}", self.logs("users")),
                _ => {}
            }
            assert!(
                Instant::now() < deadline,
                "users is not healthy after 120 s ({health}):\n{}",
                self.logs("users")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn up_and_healthy(&self, http: &Http) -> (Duration, Duration) {
        let started = Instant::now();
        self.run(&["up", "-d"]);
        self.wait_healthy(http, started)
    }
}

impl Drop for Stack<'_> {
    fn drop(&mut self) {
        if self.up {
            eprintln!("[stack] cleaning up: docker-compose down -v");
            let mut command = self.compose();
            command.args(["down", "-v", "--remove-orphans", "--timeout", "10"]);
            let _ = command.output();
        }
    }
}

/// vendor/ in the build context, made by `cargo vendor`; removed at the end if this test
/// made it.
struct Vendored {
    path: PathBuf,
    made_here: bool,
}

impl Vendored {
    fn make(repo: &Path) -> Vendored {
        let path = repo.join("vendor");
        let made_here = !path.exists();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        run(Command::new(cargo)
            .current_dir(repo)
            .args([
                "vendor",
                "--locked",
                "--versioned-dirs",
                "--quiet",
                "vendor",
            ])
            .stdout(Stdio::null()));
        Vendored { path, made_here }
    }
}

impl Drop for Vendored {
    fn drop(&mut self) {
        if self.made_here {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The reset token of the newest mail to `to` with a reset link, from the sink's API.
fn reset_token_from_mail(http: &Http, stack: &Stack, to: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = http.get(&stack.mail("/api/v1/messages"), None).unwrap();
        assert_eq!(status, 200, "{body}");
        let list: Value = serde_json::from_str(&body).unwrap();
        for message in list["messages"].as_array().unwrap() {
            let addressed = message["To"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["Address"].as_str() == Some(to));
            if !addressed {
                continue;
            }
            let id = message["ID"].as_str().unwrap();
            let (status, body) = http
                .get(&stack.mail(&format!("/api/v1/message/{id}")), None)
                .unwrap();
            assert_eq!(status, 200, "{body}");
            let full: Value = serde_json::from_str(&body).unwrap();
            let text = full["Text"].as_str().unwrap();
            if let Some((_, rest)) = text.split_once("/reset-password?token=") {
                let token: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
                    .collect();
                assert!(!token.is_empty(), "an empty token in: {text}");
                return token;
            }
        }
        assert!(
            Instant::now() < deadline,
            "no reset mail to {to} after 60 s: {body}\n{}",
            stack.logs("users")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An access token is signed (HS256) with the secret in the Compose secret's file.
fn assert_signed_with(token: &str, secret_file: &Path) {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(secret_file).unwrap();
    assert_eq!(
        (meta.uid(), meta.mode() & 0o777),
        (10001, 0o400),
        "the secret file belongs to the service's user, readable by it only"
    );
    let secret = std::fs::read_to_string(secret_file).unwrap();
    assert!(secret.trim().len() >= 64, "a short generated secret");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_audience(&["fastapi-users:auth"]);
    let decoded = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.trim_end().as_bytes()),
        &validation,
    );
    assert!(
        decoded.is_ok(),
        "the access token is not signed with the secret of JWT_SECRET_FILE: {:?}",
        decoded.err()
    );
}

/// The Dockerfile's `ARG RUST_VERSION=…`.
fn dockerfile_rust_version(repo: &Path) -> String {
    std::fs::read_to_string(repo.join("Dockerfile"))
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("ARG RUST_VERSION="))
        .expect("the Dockerfile has ARG RUST_VERSION=")
        .trim()
        .to_owned()
}

/// Why this machine cannot run the test, if it cannot.
fn missing_requirements() -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut missing = Vec::new();
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        missing.push("root (dockerd, debootstrap and the bridge need it)".to_owned());
    }
    for (program, package) in [
        ("dockerd", "docker.io"),
        ("containerd", "containerd (with docker.io)"),
        ("runc", "runc (with docker.io)"),
        ("docker-compose", "docker-compose"),
        ("debootstrap", "debootstrap"),
        ("ip", "iproute2"),
        ("tar", "tar"),
    ] {
        if find_program(program).is_none() {
            missing.push(format!("`{program}` (Debian package {package})"));
        }
    }
    // Bridged traffic passes iptables' FORWARD chain when br_netfilter is loaded; the
    // engine adds no rule of its own (--iptables=false), so a DROP policy there (set by
    // another Docker engine, say) would cut its containers off from each other.
    let bridged_through_iptables =
        std::fs::read_to_string("/proc/sys/net/bridge/bridge-nf-call-iptables")
            .is_ok_and(|v| v.trim() == "1");
    let forward_drops = Command::new("iptables")
        .args(["-S", "FORWARD"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("-P FORWARD DROP"));
    if bridged_through_iptables && forward_drops {
        missing.push(
            "bridged traffic let through: iptables' FORWARD policy is DROP and \
             net.bridge.bridge-nf-call-iptables is 1 (is a system Docker engine running?)"
                .to_owned(),
        );
    }
    if images::debian_mirror().is_none() {
        missing.push(
            "a Debian mirror for bookworm main in /etc/apt/sources.list[.d] (debootstrap \
             takes its packages from there)"
                .to_owned(),
        );
    }
    missing
}

#[test]
fn the_compose_stack_runs_for_real() {
    let ci = std::env::var_os("CI").is_some();
    if std::env::var(OPT_OUT).as_deref() == Ok("skip") {
        assert!(
            !ci,
            "{OPT_OUT}=skip is not honoured in CI: the stack test must run there"
        );
        eprintln!("SKIPPED: the compose stack test ({OPT_OUT}=skip)");
        return;
    }
    let missing = missing_requirements();
    assert!(
        missing.is_empty(),
        "the compose stack test cannot run on this machine; it needs: {}.\n\
         `.ci/run` installs the packages (apt-get install docker.io docker-compose \
         debootstrap). To skip it on a developer machine on purpose, set {OPT_OUT}=skip \
         (not honoured in CI).",
        missing.join("; ")
    );

    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap();
    let state = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stack-test");
    let rootfs_dir = state.join("rootfs");
    std::fs::create_dir_all(&rootfs_dir).unwrap();
    // Short paths: the engine's sockets live here.
    let run_dir = tempfile::Builder::new()
        .prefix("ustk")
        .tempdir_in("/tmp")
        .unwrap();
    let mirror = images::debian_mirror().unwrap();
    let toolchain = Toolchain::active();
    let rust_version = dockerfile_rust_version(&repo);
    let mut phases = Phases(Vec::new());

    let engine = phases.time("start dockerd", || {
        Engine::start(&state.join("docker"), run_dir.path())
    });
    let engine_version = engine.version();
    let compose_version = run(Command::new(&engine.compose).arg("version").arg("--short"));
    eprintln!(
        "[stack] Docker {engine_version}, docker-compose {}; Debian mirror {mirror}; Rust {} \
         ({})",
        compose_version.trim(),
        toolchain.minor_version,
        toolchain.sysroot.display()
    );

    // The builder image is tagged with the version of the toolchain it holds; when that
    // is not the Dockerfile's RUST_VERSION, the build is told so.
    let mut build_args: Vec<String> = Vec::new();
    if toolchain.minor_version != rust_version {
        eprintln!(
            "[stack] the Dockerfile says RUST_VERSION={rust_version}, this machine has \
             Rust {}: building with --build-arg RUST_VERSION={}",
            toolchain.minor_version, toolchain.minor_version
        );
        build_args.push(format!("RUST_VERSION={}", toolchain.minor_version));
    }
    let cargo_home = "ENV CARGO_HOME=/usr/local/cargo".to_owned();
    let bases = [
        BaseImage {
            tag: "debian:bookworm-slim".into(),
            packages: &[],
            toolchain: None,
            changes: vec![r#"CMD ["bash"]"#.into()],
        },
        BaseImage {
            tag: format!("rust:{}-bookworm", toolchain.minor_version),
            // What the bundled SQLite and libpq, vendored OpenSSL, ring and aws-lc need.
            packages: &["gcc", "libc6-dev", "make", "perl", "ca-certificates"],
            toolchain: Some(&toolchain),
            changes: vec![
                "ENV PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:\
                 /usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                    .into(),
                cargo_home,
                r#"CMD ["bash"]"#.into(),
            ],
        },
        BaseImage {
            tag: "users-local/debian-services:bookworm".into(),
            packages: &["postgresql", "python3"],
            toolchain: None,
            changes: vec![r#"CMD ["bash"]"#.into()],
        },
    ];

    let vendored = phases.time("base images (debootstrap, import) and vendor/", || {
        std::thread::scope(|scope| {
            let jobs: Vec<_> = bases
                .iter()
                .map(|base| {
                    let (engine, rootfs_dir, mirror) = (&engine, &rootfs_dir, &mirror);
                    scope.spawn(move || {
                        let started = Instant::now();
                        let made = base.ensure(engine, rootfs_dir, mirror);
                        let how = match made {
                            Made::Cached => "in the data root already",
                            Made::Imported => "imported from the kept root file system",
                            Made::Debootstrapped => "debootstrapped and imported",
                        };
                        eprintln!(
                            "[stack] {}: {how} ({:.1} s)",
                            base.tag,
                            started.elapsed().as_secs_f64()
                        );
                    })
                })
                .collect();
            let vendored = Vendored::make(&repo);
            for job in jobs {
                job.join().unwrap();
            }
            vendored
        })
    });

    let env_file = run_dir.path().join("stack.env");
    std::fs::write(&env_file, "").unwrap();
    let secrets_dir = run_dir.path().join("secrets");
    std::fs::create_dir_all(&secrets_dir).unwrap();
    let mut stack = Stack {
        engine: &engine,
        repo: repo.clone(),
        env_file,
        secrets_dir: secrets_dir.clone(),
        api_port: free_port(),
        mail_port: free_port(),
        up: false,
    };
    let http = Http::new();

    phases.time("docker-compose build", || {
        let mut args = vec!["build".to_owned()];
        for arg in &build_args {
            args.push("--build-arg".into());
            args.push(arg.clone());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        stack.run_logged(&args, &state.join("build.log"));
    });
    drop(vendored);
    let image = format!("{PROJECT}_users");
    let size: u64 =
        run(engine
            .docker()
            .args(["image", "inspect", "--format", "{{.Size}}", &image]))
        .trim()
        .parse()
        .unwrap();
    let base_size: u64 = run(engine.docker().args([
        "image",
        "inspect",
        "--format",
        "{{.Size}}",
        "debian:bookworm-slim",
    ]))
    .trim()
    .parse()
    .unwrap();
    let megabytes = |b: u64| b as f64 / 1e6;
    eprintln!(
        "[stack] image {image}: {:.1} MB ({:.1} MB base debian:bookworm-slim + {:.1} MB of \
         the Dockerfile's layers)",
        megabytes(size),
        megabytes(base_size),
        megabytes(size - base_size)
    );
    assert!(
        size < IMAGE_SIZE_LIMIT,
        "the image is {:.1} MB, over {:.0} MB",
        megabytes(size),
        megabytes(IMAGE_SIZE_LIMIT)
    );

    // ---- up: healthy by Compose's own health status, soon after it is ready -----------
    stack.up = true;
    let (ready, healthy) = phases.time("docker-compose up -d, until healthy", || {
        // Every container created before any starts, as Compose v2 does it: users exists
        // before jwt-secret has written the secret it reads. (Compose v1's
        // `up --no-start` would wait for jwt-secret to finish, which it never starts.)
        stack.run(&["create"]);
        assert!(
            !secrets_dir.join("jwt_secret").exists(),
            "the secret exists before jwt-secret ran"
        );
        stack.up_and_healthy(&http)
    });
    assert!(
        healthy.saturating_sub(ready) <= HEALTHY_AFTER_READY,
        "Compose said healthy {:.1} s after /healthz first answered",
        (healthy - ready).as_secs_f64()
    );
    let users = stack.container("users");
    for service in ["postgres", "mailpit"] {
        let id = stack.container(service);
        assert_eq!(
            stack.inspect(&id, "{{.State.Health.Status}}"),
            "healthy",
            "{service}"
        );
    }

    // ---- as a person would: the first admin, a user who forgot the password ------------
    let (admin_token, user_token) = phases.time("accounts, mail and reset", || {
        let created = stack.run(&[
            "exec",
            "-T",
            "users",
            "users-server",
            "create-user",
            "--email",
            ADMIN_EMAIL,
            "--password",
            PASSWORD,
            "--superuser",
            "--verified",
        ]);
        let admin: Value = serde_json::from_str(created.trim()).unwrap();
        assert_eq!(admin["is_superuser"], true, "{admin}");

        let (status, body) = http.post_json(
            &stack.api("/auth/register"),
            &json!({"email": USER_EMAIL, "password": PASSWORD}),
        );
        assert_eq!(status, 201, "{body}");
        let (status, body) = http.post_json(
            &stack.api("/auth/forgot-password"),
            &json!({"email": USER_EMAIL}),
        );
        assert_eq!(status, 202, "{body}");
        let token = reset_token_from_mail(&http, &stack, USER_EMAIL);
        let (status, body) = http.post_json(
            &stack.api("/auth/reset-password"),
            &json!({"token": token, "password": NEW_PASSWORD}),
        );
        assert_eq!(status, 200, "{body}");
        let (status, _) = http.login(&stack.api(""), USER_EMAIL, PASSWORD);
        assert_eq!(status, 400, "the old password is refused after the reset");
        let user_token = http.token(&stack.api(""), USER_EMAIL, NEW_PASSWORD);
        let (status, me) = http.get_json(&stack.api("/users/me"), &user_token);
        assert_eq!((status, me["email"].as_str()), (200, Some(USER_EMAIL)));

        let admin_token = http.token(&stack.api(""), ADMIN_EMAIL, PASSWORD);
        let (status, page) = http.get_json(&stack.api("/users"), &admin_token);
        assert_eq!(status, 200, "{page}");
        let emails: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|u| u["email"].as_str())
            .collect();
        assert_eq!(emails, [ADMIN_EMAIL, USER_EMAIL], "{page}");
        (admin_token, user_token)
    });

    // ---- the process: uid 10001; its JWT secret: the Compose secret's file --------------
    let status = stack.run(&["exec", "-T", "users", "cat", "/proc/1/status"]);
    let uids: Vec<&str> = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(uids, [SERVICE_UID; 4], "real, effective, saved and fs uid");
    assert_eq!(stack.inspect(&users, "{{.Config.User}}"), "10001:10001");
    assert_signed_with(&admin_token, &secrets_dir.join("jwt_secret"));

    // Both accounts and both tokens, after each kind of restart.
    let still_there = |what: &str| {
        let (status, me) = http.get_json(&stack.api("/users/me"), &user_token);
        assert_eq!(status, 200, "{what}: the user's token: {me}");
        let (status, page) = http.get_json(&stack.api("/users"), &admin_token);
        assert_eq!(status, 200, "{what}: the admin's token: {page}");
        assert_eq!(page["total"], 2, "{what}: {page}");
        http.token(&stack.api(""), USER_EMAIL, NEW_PASSWORD);
    };

    phases.time("docker-compose restart users, until healthy", || {
        let started = Instant::now();
        stack.run(&["restart", "users"]);
        stack.wait_healthy(&http, started);
    });
    still_there("after docker-compose restart users");

    phases.time("docker-compose down (volumes kept)", || {
        stack.run(&["down"]);
    });
    phases.time("docker-compose up -d again, until healthy", || {
        stack.up_and_healthy(&http)
    });
    still_there("after down and up with the named volume");
    assert_signed_with(
        &http.token(&stack.api(""), ADMIN_EMAIL, PASSWORD),
        &secrets_dir.join("jwt_secret"),
    );

    // ---- SIGTERM: /readyz answers 503 while requests are still served, then it stops --
    let (saw_503, served_while_draining, stopped_after) =
        phases.time("docker-compose stop users (SIGTERM, drain)", || {
            let users = stack.container("users");
            let mut stop = stack.compose();
            stop.args(["stop", "users"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            eprintln!("[stack] $ docker-compose stop users");
            let started = Instant::now();
            let mut stop = stop.spawn().unwrap();
            let (mut saw_503, mut served) = (None, false);
            let exit = loop {
                if let Some(status) = stop.try_wait().unwrap() {
                    break status;
                }
                if let Ok((503, _)) = http.get(&stack.api("/readyz"), None) {
                    saw_503.get_or_insert(started.elapsed());
                    if let Ok((200, _)) = http.get(&stack.api("/healthz"), None) {
                        served = true;
                    }
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "docker-compose stop users takes over 60 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            };
            let stopped_after = started.elapsed();
            assert!(exit.success(), "docker-compose stop users: {exit}");
            assert_eq!(
                stack.inspect(&users, "{{.State.Status}} {{.State.ExitCode}}"),
                "exited 0",
                "the service exits 0 on SIGTERM (not killed):\n{}",
                stack.logs("users")
            );
            (saw_503, served, stopped_after)
        });
    let saw_503 = saw_503.expect("/readyz never answered 503 while the service stopped");
    eprintln!(
        "[stack] SIGTERM: /readyz answered 503 after {:.2} s, the container stopped after \
         {:.1} s (SHUTDOWN_DRAIN_SECONDS {} s)",
        saw_503.as_secs_f64(),
        stopped_after.as_secs_f64(),
        DRAIN.as_secs()
    );
    assert!(
        served_while_draining,
        "/healthz was not served while draining"
    );
    assert!(
        stopped_after >= DRAIN && stopped_after <= DRAIN + STOP_MARGIN,
        "stopped after {stopped_after:?}, not within the drain ({DRAIN:?}) + {STOP_MARGIN:?}"
    );

    phases.time("docker-compose down -v", || {
        stack.run(&["down", "-v", "--remove-orphans"]);
    });
    stack.up = false;
    drop(stack);
    phases.time("stop dockerd", || drop(engine));

    eprintln!(
        "[stack] the users image: {:.1} MB\n[stack] phases:\n{}",
        megabytes(size),
        phases.report()
    );
}
