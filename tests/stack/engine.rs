//! A Docker engine of the test's own: Debian's `dockerd` with its data root under
//! `target/` (images and the BuildKit cache survive between runs), its exec root,
//! socket and pid file in the test's temporary folder, and a bridge of its own. It
//! touches no firewall rule and no sysctl of the machine (`--iptables=false`,
//! `--ip-forward=false`): containers reach each other on their bridges, the machine
//! reaches them through the ports they publish (docker-proxy), and nothing reaches out.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{find_program, run, tail_of};

/// How long `dockerd` may take to answer on its socket.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The running daemon; on drop it is stopped (SIGTERM by its PID, then SIGKILL) and its
/// bridge deleted.
pub struct Engine {
    child: Option<Child>,
    /// The client of the same engine (`docker` beside `dockerd`) and `docker-compose`.
    pub docker: PathBuf,
    pub compose: PathBuf,
    /// `unix://…/docker.sock`
    pub host: String,
    /// PATH for the clients: the engine's folder first, so that Compose v1's builds
    /// (COMPOSE_DOCKER_CLI_BUILD) run this engine's `docker`, not another client.
    path: String,
    config_dir: PathBuf,
    bridge: String,
    log: PathBuf,
    /// The data root's note of the daemon using it.
    owner_file: PathBuf,
}

impl Engine {
    /// Starts `dockerd` with its data root in `data_root` and everything else in `run_dir`.
    pub fn start(data_root: &Path, run_dir: &Path) -> Engine {
        let dockerd = find_program("dockerd").expect("checked before");
        let docker = client_of(&dockerd);
        let compose = find_program("docker-compose").expect("checked before");
        std::fs::create_dir_all(data_root).unwrap();

        // One daemon per data root: a note of the running one, to refuse a second run
        // in the same target/ (or say which leftover daemon to stop) rather than have two
        // daemons share a data root.
        let owner_file = data_root.join("stack-test-dockerd.pid");
        if let Ok(pid) = std::fs::read_to_string(&owner_file) {
            let pid = pid.trim();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !(cmdline.contains("dockerd") && cmdline.contains(&*data_root.to_string_lossy())),
                "a dockerd (PID {pid}) already runs on {}: another stack test is running \
                 in this target folder, or one was killed and left it (then stop it: \
                 kill {pid})",
                data_root.display()
            );
        }

        let bridge = format!("ustk{}", std::process::id());
        let (bridge_cidr, pool) = free_subnets();
        let _ = Command::new("ip").args(["link", "del", &bridge]).output();
        run(Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]));
        run(Command::new("ip").args(["addr", "add", &bridge_cidr, "dev", &bridge]));
        run(Command::new("ip").args(["link", "set", &bridge, "up"]));

        let exec_root = run_dir.join("exec");
        let socket = run_dir.join("docker.sock");
        let log = run_dir.join("dockerd.log");
        let config_dir = run_dir.join("docker-config");
        std::fs::create_dir_all(&config_dir).unwrap();
        let mut command = Command::new(&dockerd);
        command
            .arg("--data-root")
            .arg(data_root)
            .arg("--exec-root")
            .arg(&exec_root)
            .arg("--pidfile")
            .arg(run_dir.join("dockerd.pid"))
            .arg("--host")
            .arg(format!("unix://{}", socket.display()))
            .args(["--bridge", &bridge])
            .args(["--iptables=false", "--ip-forward=false", "--ip-masq=false"])
            .args(["--ip", "127.0.0.1"])
            .args(["--default-address-pool", &format!("base={pool},size=24")])
            .args(["--storage-driver", "overlay2"])
            .stdin(Stdio::null());
        let log_file = std::fs::File::create(&log).unwrap();
        command
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        eprintln!(
            "[stack] dockerd: data root {}, socket {}, bridge {bridge} ({bridge_cidr}), \
             networks from {pool}",
            data_root.display(),
            socket.display()
        );
        let child = command.spawn().expect("start dockerd");
        std::fs::write(&owner_file, child.id().to_string()).unwrap();
        let path = format!(
            "{}:{}",
            docker.parent().unwrap().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut engine = Engine {
            child: Some(child),
            docker,
            compose,
            host: format!("unix://{}", socket.display()),
            path,
            config_dir,
            bridge,
            log,
            owner_file,
        };
        engine.wait_until_up();
        engine
    }

    fn wait_until_up(&mut self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "dockerd exited ({status}) before it answered:\n{}",
                    tail_of(&self.log, 40)
                );
            }
            let answered = self
                .docker()
                .args(["version", "--format", "{{.Server.Version}}"])
                .output()
                .is_ok_and(|o| o.status.success());
            if answered {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not answer within {START_TIMEOUT:?}:\n{}",
                tail_of(&self.log, 40)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The environment of a client of this engine: nothing of the caller's but PATH.
    pub fn client_env(&self, command: &mut Command) {
        command
            .env_clear()
            .env("PATH", &self.path)
            .env("HOME", self.config_dir.parent().unwrap())
            .env("LANG", "C.UTF-8")
            .env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", &self.config_dir)
            .env("DOCKER_BUILDKIT", "1")
            .env("COMPOSE_DOCKER_CLI_BUILD", "1")
            .env("BUILDKIT_PROGRESS", "plain");
    }

    /// `docker …` against this engine.
    pub fn docker(&self) -> Command {
        let mut command = Command::new(&self.docker);
        self.client_env(&mut command);
        command
    }

    /// The engine's version, e.g. `20.10.24+dfsg1`.
    pub fn version(&self) -> String {
        run(self
            .docker()
            .args(["version", "--format", "{{.Server.Version}}"]))
        .trim()
        .to_owned()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if child.try_wait().ok().flatten().is_none() {
                eprintln!("[stack] dockerd did not stop within {STOP_TIMEOUT:?}: SIGKILL");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_file(&self.owner_file);
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
    }
}

/// The `docker` client of the same release as `dockerd` (Debian's docker.io puts them in
/// /usr/bin and /usr/sbin); another client in PATH (a newer static one, say) may not
/// build with BuildKit without its buildx plugin.
fn client_of(dockerd: &Path) -> PathBuf {
    let version = |program: &Path| {
        Command::new(program)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                // "Docker version 20.10.24+dfsg1, build 297e128"
                text.split_whitespace()
                    .nth(2)
                    .map(|v| v.trim_end_matches(',').to_owned())
            })
    };
    let wanted = version(dockerd).expect("dockerd --version");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let folders = [dockerd.parent(), Some(Path::new("/usr/bin"))]
        .into_iter()
        .flatten()
        .map(Path::to_path_buf)
        .chain(std::env::split_paths(&path));
    folders
        .map(|folder| folder.join("docker"))
        .find(|docker| docker.is_file() && version(docker).as_deref() == Some(&*wanted))
        .unwrap_or_else(|| {
            panic!(
                "no `docker` client of the engine's version {wanted} (Debian's docker.io \
                 has both)"
            )
        })
}

/// A /24 for the engine's bridge and a /17 for the networks Compose makes, in a
/// 10.N.0.0/16 that no address or route of this machine touches.
fn free_subnets() -> (String, String) {
    let used = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let seen = format!(
        "{}\n{}",
        used(&["-4", "-o", "addr"]),
        used(&["-4", "route"])
    );
    let n = (200..=254)
        .find(|n| !seen.contains(&format!(" 10.{n}.")) && !seen.contains(&format!("\n10.{n}.")))
        .expect("no free 10.N.0.0/16 (N in 200..=254) for the engine's networks");
    (format!("10.{n}.0.1/24"), format!("10.{n}.128.0/17"))
}
