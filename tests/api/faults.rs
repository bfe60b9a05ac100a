//! Database faults on a private PostgreSQL instance that the test starts itself
//! (initdb into a temp folder, its own port, run as the postgres user): the shared
//! server is never touched.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

struct PrivatePostgres {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn as_postgres(bin: &std::path::Path, tool: &str, args: &[&str]) -> std::process::Output {
    Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(tool))
        .args(args)
        .output()
        .expect("run a PostgreSQL tool as the postgres user")
}

impl PrivatePostgres {
    /// None when this machine cannot run one (no PostgreSQL binaries, not root).
    fn init() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .find(|p| p.join("initdb").exists())?;
        if Command::new("id").arg("-u").output().ok().map(|o| o.stdout) != Some(b"0\n".to_vec()) {
            return None;
        }
        let dir = tempfile::tempdir().expect("temp dir");
        Command::new("chown")
            .args(["postgres", dir.path().to_str()?])
            .status()
            .ok()?;
        let data = dir.path().join("data");
        let out = as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str()?,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = PrivatePostgres {
            bin,
            dir,
            port: free_port(),
        };
        pg.start();
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn start(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        let out = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-o", &opts, "-l", &log, "-w", "start"],
        );
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops it the hard way, as a crash or a killed container would.
    fn stop(&self) {
        let out = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
        assert!(
            out.status.success(),
            "pg_ctl stop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_postgres(
            &self.bin,
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "stop"],
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_costs_availability_never_data() {
    let Some(pg) = PrivatePostgres::init() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to run a private PostgreSQL"
        );
        eprintln!("SKIPPED: needs root and PostgreSQL's server binaries");
        return;
    };
    users_db::admin::SqlSession::open(&pg.url("postgres"))
        .expect("private server up")
        .execute("CREATE DATABASE users")
        .expect("create database");
    let url = pg.url("users");
    let database = Arc::new(TestDatabase::new(Backend::Sqlite)); // only its temp folder is used
    let app = Arc::new(
        spawn_app_on(Backend::Postgres, database, |env| {
            env.insert("DATABASE_URL".into(), url);
            env.insert("DATABASE_TIMEOUT_SECONDS".into(), "2".into());
        })
        .await,
    );

    // load: registrations with unique emails, recording every answer
    let results: Arc<Mutex<Vec<(String, u16, Instant)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (app, results, stop) = (app.clone(), results.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                i += 1;
                let email = format!("load-{w}-{i}-{}@example.com", uuid::Uuid::new_v4().simple());
                let status = match tokio::time::timeout(
                    Duration::from_secs(15),
                    app.register(&email, PASSWORD),
                )
                .await
                {
                    Ok(resp) => resp.status().as_u16(),
                    Err(_) => 0, // a hang
                };
                results
                    .lock()
                    .unwrap()
                    .push((email, status, Instant::now()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    pg.stop();
    let stopped_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(4)).await;
    pg.start();
    let started_at = Instant::now();
    // load goes on until registrations succeed again (or 20 s)
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let back = results
            .lock()
            .unwrap()
            .iter()
            .any(|(_, s, t)| *s == 201 && *t > started_at);
        if back || started_at.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }

    let results = results.lock().unwrap().clone();
    let mut by_status: HashMap<u16, usize> = HashMap::new();
    for (_, s, _) in &results {
        *by_status.entry(*s).or_default() += 1;
    }
    assert!(
        by_status.keys().all(|s| *s == 201 || *s == 503),
        "only 201s and 503s: {by_status:?}"
    );
    assert!(
        by_status.get(&503).copied().unwrap_or(0) > 0,
        "the outage was seen: {by_status:?}"
    );
    let during = results
        .iter()
        .filter(|(_, _, t)| *t > stopped_at && *t < started_at)
        .count();
    assert!(
        during > 0,
        "requests were answered during the outage (no hang)"
    );
    let first_back = results
        .iter()
        .filter(|(_, s, t)| *s == 201 && *t > started_at)
        .map(|(_, _, t)| t.duration_since(started_at))
        .min()
        .expect("201s again after the database came back");
    assert!(
        first_back < Duration::from_secs(10),
        "recovered in {first_back:?}"
    );

    eprintln!("outage test: {by_status:?}, registrations back {first_back:?} after the restart");
    // nothing that got a 201 was lost
    let created: Vec<&String> = results
        .iter()
        .filter(|(_, s, _)| *s == 201)
        .map(|(e, _, _)| e)
        .collect();
    assert!(created.len() > 4, "{by_status:?}");
    for email in created {
        assert_eq!(
            app.login(email, PASSWORD).await.status(),
            200,
            "{email} was registered (201) and must log in"
        );
    }
    assert_eq!(
        app.post_json(
            "/auth/register",
            &json!({"email": unique_email(), "password": PASSWORD}),
            None
        )
        .await
        .status(),
        201
    );
}
