//! `users-server import-fastapi-users` (docs/migrating-from-fastapi-users.md) from
//! databases made by the real fastapi-users 15
//! (tests/fixtures/fastapi_users/make_fixture.py), on SQLite and PostgreSQL, into both of
//! our backends: every row, password, token and OAuth account of the manifest checked
//! against what the old app did.
//!
//! The generator needs a Python venv with its requirements (from PyPI): made once under
//! the target folder (`.ci/run` makes it before the tests; venvs.rs). Where it cannot
//! be made, these tests say SKIPPED, except in CI, where they fail.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once, OnceLock};

use serde_json::{json, Value};

use crate::both_backends;
use crate::google::{sign_in, token_of};
use crate::helpers::*;
use crate::oidc_provider::{Identity, OidcProvider};

/// The old app's JWT_SECRET.
const OLD_SECRET: &str = "the-old-fastapi-users-app-secret-0123456789";

// ---------------------------------------------------------------------------------
// The generator: its venv, and the databases it makes
// ---------------------------------------------------------------------------------

/// The generator's python (`target/fastapi-users-venv`, see venvs.rs).
fn python() -> Option<PathBuf> {
    crate::venvs::FASTAPI_USERS.python()
}

/// A folder for this test process's fixtures, under cargo's tmp folder; those of test
/// processes that are gone are removed.
fn scratch(name: &str) -> PathBuf {
    static CLEAN: Once = Once::new();
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fastapi-users-fixtures");
    CLEAN.call_once(|| {
        for entry in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !Path::new("/proc").join(&pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    });
    let dir = root
        .join(std::process::id().to_string())
        .join(format!("{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// Runs the generator into an empty database at the SQLAlchemy `url`; the manifest.
fn generate(python: &Path, url: &str, bulk: usize) -> Value {
    let out = scratch("manifest").join("manifest.json");
    let status = std::process::Command::new(python)
        .arg(Path::new(crate::venvs::FIXTURES).join("fastapi_users/make_fixture.py"))
        .args([
            "--url",
            url,
            "--secret",
            OLD_SECRET,
            "--bulk",
            &bulk.to_string(),
        ])
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .output()
        .expect("run make_fixture.py");
    assert!(
        status.status.success(),
        "make_fixture.py failed: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&out).expect("manifest")).expect("JSON")
}

/// A source database and what is in it.
struct Fixture {
    /// The SQLAlchemy URL the old app used.
    url: String,
    manifest: Value,
    /// A PostgreSQL source is dropped with the fixture.
    _pg: Option<TestDatabase>,
}

impl Fixture {
    fn sqlite(bulk: usize) -> Option<Fixture> {
        let python = python()?;
        let path = scratch("sqlite").join("app.db");
        let url = format!("sqlite+aiosqlite:///{}", path.display());
        let manifest = generate(&python, &url, bulk);
        Some(Fixture {
            url,
            manifest,
            _pg: None,
        })
    }

    fn postgres() -> Option<Fixture> {
        let python = python()?;
        let database = TestDatabase::new(Backend::Postgres);
        // postgres://… → the asyncpg URL a FastAPI app would have
        let url = database
            .url
            .replacen("postgres://", "postgresql+asyncpg://", 1);
        let manifest = generate(&python, &url, 0);
        Some(Fixture {
            url,
            manifest,
            _pg: Some(database),
        })
    }

    /// The SQLite source of the whole test process, made once (read-only for the
    /// import, so every test can use it).
    async fn shared_sqlite() -> Option<&'static Fixture> {
        static SHARED: OnceLock<Option<Fixture>> = OnceLock::new();
        tokio::task::spawn_blocking(|| SHARED.get_or_init(|| Fixture::sqlite(0)).as_ref())
            .await
            .expect("fixture")
    }

    fn users(&self) -> &Vec<Value> {
        self.manifest["users"].as_array().expect("users")
    }

    fn user(&self, label: &str) -> &Value {
        self.users()
            .iter()
            .find(|u| u["label"] == label)
            .unwrap_or_else(|| panic!("no {label} in the manifest"))
    }

    /// The users fastapi-users made itself: the ones the import takes.
    fn importable(&self) -> impl Iterator<Item = &Value> {
        self.users().iter().filter(|u| u["edge"].is_null())
    }

    fn edge_rows(&self) -> impl Iterator<Item = &Value> {
        self.users().iter().filter(|u| !u["edge"].is_null())
    }

    /// `imported N, skipped M, conflicts K` of a first import.
    fn first_summary(&self) -> String {
        format!(
            "imported {}, skipped 0, conflicts {}",
            self.importable().count(),
            self.edge_rows().count()
        )
    }
}

// ---------------------------------------------------------------------------------
// Running the command, and looking at the result
// ---------------------------------------------------------------------------------

fn import(target: &TestDatabase, from: &str, extra: &[&str]) -> (i32, String, String) {
    import_with(target, from, extra, &[])
}

fn import_with(
    target: &TestDatabase,
    from: &str,
    extra: &[&str],
    vars: &[(&str, &str)],
) -> (i32, String, String) {
    let mut env = process_env(&target.url);
    for (k, v) in vars {
        env.insert((*k).into(), (*v).into());
    }
    let mut args = vec!["import-fastapi-users", "--from", from];
    args.extend_from_slice(extra);
    run_binary(&env, &args)
}

fn id_of(user: &Value) -> uuid::Uuid {
    uuid::Uuid::parse_str(user["id"].as_str().expect("id")).expect("uuid")
}

fn stored(target: &TestDatabase, user: &Value) -> Option<users_db::users::StoredUser> {
    let mut conn = target.pool().get().expect("conn");
    users_db::users::find_by_id(&mut conn, id_of(user)).expect("query")
}

fn count(target: &TestDatabase, table: &str) -> i64 {
    let mut sql = users_db::admin::SqlSession::open(&target.url).expect("session");
    sql.count(&format!("SELECT count(*) AS n FROM {table}"))
        .expect("count")
}

/// The target holds nothing: no file, or no tables.
fn assert_nothing_written(target: &TestDatabase, backend: Backend) {
    match backend {
        Backend::Sqlite => {
            let path = target.url.trim_start_matches("sqlite://");
            assert!(!Path::new(path).exists(), "{path} was created");
        }
        Backend::Postgres => {
            let mut sql = users_db::admin::SqlSession::open(&target.url).expect("session");
            assert!(!users_db::import::has_schema(sql.connection()).expect("query"));
        }
    }
}

/// What the output must show for the rows the import refuses: each id with its
/// reason; and no password material anywhere.
fn assert_reports(fixture: &Fixture, stdout: &str, stderr: &str) {
    let lines: Vec<&str> = stdout.lines().collect();
    for row in fixture.edge_rows() {
        let id = row["id"].as_str().expect("id");
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("user {id}: ")))
            .unwrap_or_else(|| panic!("no report for {}: {stdout}", row["label"]));
        let reason = match row["edge"].as_str().expect("edge") {
            "case_duplicate" => "differs only in case",
            "invalid_email" => "invalid email",
            "unknown_hash" => "unknown format",
            other => panic!("edge {other}"),
        };
        assert!(line.contains(reason), "{line}");
    }
    let case_first = fixture.user("case-first")["id"].as_str().expect("id");
    let case_duplicate = fixture.user("case-duplicate")["id"].as_str().expect("id");
    assert!(stdout.contains(&format!(
        "user {case_first}: the email differs only in case from that of user {case_duplicate}"
    )));
    for user in fixture.users() {
        let hash = user["hashed_password"].as_str().expect("hash");
        assert!(
            !stdout.contains(hash) && !stderr.contains(hash),
            "a hash was printed"
        );
        if let Some(password) = user["password"].as_str() {
            assert!(!stdout.contains(password) && !stderr.contains(password));
        }
    }
    for material in ["$argon2", "$2b$", "md5$"] {
        assert!(!stdout.contains(material) && !stderr.contains(material));
    }
}

/// Every row of the manifest as fastapi-users left it, in the target, as the import
/// should have written it; edge rows absent.
fn assert_rows(fixture: &Fixture, target: &TestDatabase) {
    for user in fixture.importable() {
        let s = stored(target, user).unwrap_or_else(|| panic!("{} missing", user["label"]));
        assert_eq!(s.user.email, user["email"].as_str().expect("email"));
        assert_eq!(s.user.is_active, user["is_active"] == true);
        assert_eq!(s.user.is_superuser, user["is_superuser"] == true);
        assert_eq!(s.user.is_verified, user["is_verified"] == true);
        assert_eq!(
            s.hashed_password,
            user["hashed_password"].as_str().expect("h")
        );
        assert_eq!(s.tokens_valid_after, 0);
    }
    for user in fixture.edge_rows() {
        assert!(stored(target, user).is_none(), "{} imported", user["label"]);
    }
    let mut conn = target.pool().get().expect("conn");
    let mut accounts = 0;
    for user in fixture.importable() {
        for account in user["oauth_accounts"].as_array().expect("accounts") {
            let name = account["oauth_name"].as_str().expect("name");
            let key = if name == "google" {
                "google".to_owned()
            } else {
                format!("oidc:{name}")
            };
            let linked = users_db::upstream::find_account(
                &mut conn,
                &key,
                account["account_id"].as_str().expect("account_id"),
            )
            .expect("query")
            .unwrap_or_else(|| panic!("{key} account of {} missing", user["label"]));
            assert_eq!(linked.user_id, user["id"].as_str().expect("id"));
            assert_eq!(
                linked.account_email,
                account["account_email"].as_str().expect("e")
            );
            accounts += 1;
        }
    }
    assert_eq!(accounts, 4);
    assert_eq!(count(target, "upstream_identities"), accounts);
    assert_eq!(count(target, "users"), fixture.importable().count() as i64);
}

/// The service on the imported database with the old app's secret and Google played
/// by a loopback provider: the old tokens, the old passwords (re-hashed on the way)
/// and the old Google accounts all work.
async fn assert_sign_ins(fixture: &Fixture, backend: Backend, target: Arc<TestDatabase>) {
    assert_eq!(fixture.manifest["secret"], OLD_SECRET);
    let provider = OidcProvider::start().await;
    let issuer = provider.issuer();
    let app = spawn_app_on(backend, target.clone(), |env| {
        env.insert("JWT_SECRET".into(), OLD_SECRET.into());
        env.insert("GOOGLE_CLIENT_ID".into(), OidcProvider::CLIENT_ID.into());
        env.insert(
            "GOOGLE_CLIENT_SECRET".into(),
            OidcProvider::CLIENT_SECRET.into(),
        );
        env.insert("GOOGLE_ISSUER_URL".into(), issuer);
    })
    .await;

    // the tokens the old app issued (HS256, the same secret, no sid)
    for user in fixture.users() {
        let Some(token) = user["token"].as_str() else {
            continue;
        };
        let r = app.me(token).await;
        if user["edge"].is_null() && user["is_active"] == true {
            let fields = ["id", "email", "is_active", "is_superuser", "is_verified"];
            let expected: serde_json::Map<String, Value> = fields
                .iter()
                .map(|f| (f.to_string(), user[*f].clone()))
                .collect();
            assert_json(r, 200, Value::Object(expected)).await;
        } else {
            // inactive (401 in the old app too), or not imported
            assert_eq!(r.status(), 401, "{}", user["label"]);
        }
    }

    // the old passwords, argon2id (m=65536,t=3,p=4) and bcrypt, re-hashed at login
    for user in fixture.importable() {
        let (Some(password), Some(kind)) = (user["password"].as_str(), user["hash_kind"].as_str())
        else {
            continue;
        };
        let email = user["email"].as_str().expect("email");
        let r = app.login(email, password).await;
        if user["is_active"] != true {
            assert_eq!(r.status(), 400, "{}", user["label"]);
            continue;
        }
        assert_eq!(r.status(), 200, "{} ({kind})", user["label"]);
        let rehashed = stored(&target, user).expect("user").hashed_password;
        assert!(
            rehashed.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"),
            "{} ({kind}) was not re-hashed",
            user["label"]
        );
        let token = app.token(email, password).await;
        assert_eq!(app.me(&token).await.status(), 200);
    }
    assert!(fixture.importable().any(|u| u["hash_kind"] == "bcrypt"));

    // Google accounts linked in the old app sign in to the same users
    for label in ["oauth-google-new", "oauth-linked"] {
        let user = fixture.user(label);
        let account = user["oauth_accounts"]
            .as_array()
            .expect("accounts")
            .iter()
            .find(|a| a["oauth_name"] == "google")
            .expect("a google account");
        let identity = Identity::new(
            account["account_id"].as_str().expect("sub"),
            account["account_email"].as_str().expect("email"),
        );
        let token = token_of(sign_in(&app, &provider, &identity).await).await;
        let me: Value = app.me(&token).await.json().await.expect("json");
        assert_eq!(me["id"], user["id"], "{label}");
        assert_eq!(me["email"], user["email"], "{label}");
    }
    app.handle.stop(true).await;
}

// ---------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------

async fn from_sqlite(backend: Backend) {
    let Some(fixture) = Fixture::shared_sqlite().await else {
        return;
    };
    let target = Arc::new(TestDatabase::new(backend));
    let (code, stdout, stderr) = import(&target, &fixture.url, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains(&fixture.first_summary()), "{stdout}");
    assert!(stdout.contains("oauth accounts: imported 4, skipped 0, conflicts 0"));
    assert_reports(fixture, &stdout, &stderr);
    assert_rows(fixture, &target);
    assert_sign_ins(fixture, backend, target.clone()).await;

    // again: nothing is imported twice, nothing imported is changed (the hashes
    // re-hashed by the logins stay as they are now)
    let before: Vec<String> = fixture
        .importable()
        .map(|u| stored(&target, u).expect("user").hashed_password)
        .collect();
    let (code, stdout, stderr) = import(&target, &fixture.url, &[]);
    assert_eq!(code, 0, "{stderr}");
    let importable = fixture.importable().count();
    let conflicts = fixture.edge_rows().count();
    assert!(
        stdout.contains(&format!(
            "imported 0, skipped {importable}, conflicts {conflicts}"
        )),
        "{stdout}"
    );
    assert!(stdout.contains("oauth accounts: imported 0, skipped 4, conflicts 0"));
    let after: Vec<String> = fixture
        .importable()
        .map(|u| stored(&target, u).expect("user").hashed_password)
        .collect();
    assert_eq!(before, after);
    assert_eq!(count(&target, "users"), importable as i64);
}

both_backends!(from_sqlite);

/// A PostgreSQL source (uuid and boolean columns, an asyncpg URL) into both backends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_postgres_into_both_backends() {
    let Some(fixture) = tokio::task::spawn_blocking(Fixture::postgres)
        .await
        .expect("fixture")
    else {
        return;
    };
    assert_eq!(fixture.manifest["database"]["backend"], "postgresql");
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let target = Arc::new(TestDatabase::new(backend));
        let (code, stdout, stderr) = import(&target, &fixture.url, &[]);
        assert_eq!(code, 0, "{backend:?}: {stdout}\n{stderr}");
        assert!(stdout.contains(&fixture.first_summary()), "{stdout}");
        assert_reports(&fixture, &stdout, &stderr);
        assert_rows(&fixture, &target);
        assert_sign_ins(&fixture, backend, target).await;
    }
}

/// `--dry-run` reports what a run would do and writes nothing: not into an empty
/// target (not even our schema), nor into one that holds users, one of them with the
/// email of a fastapi-users user under another id.
async fn dry_run_writes_nothing(backend: Backend) {
    let Some(fixture) = Fixture::shared_sqlite().await else {
        return;
    };
    let target = TestDatabase::new(backend);
    let (code, stdout, stderr) = import(&target, &fixture.url, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "{} (dry run: nothing was written)",
            fixture.first_summary()
        )),
        "{stdout}"
    );
    assert!(stdout.contains("oauth accounts: imported 4, skipped 0, conflicts 0"));
    assert_reports(fixture, &stdout, &stderr);
    assert_nothing_written(&target, backend);

    // a user of ours has alice's email (another case, another id)
    let ours = uuid::Uuid::new_v4().to_string();
    {
        let db = users_db::Database::connect_and_migrate(
            users_db::DatabaseUrl::parse(&target.url).expect("url"),
            &users_db::PoolOptions::default(),
        )
        .expect("migrate");
        let mut conn = db.get().expect("conn");
        users_db::users::insert(
            &mut conn,
            &users_db::users::NewUser {
                id: ours.clone(),
                email: "ALICE@example.com".into(),
                email_key: "alice@example.com".into(),
                hashed_password: "!unusable".into(),
                is_active: true,
                is_superuser: false,
                is_verified: false,
                tokens_valid_after: 0,
                created_at: 1,
                updated_at: 1,
            },
        )
        .expect("insert");
    }
    let alice = fixture.user("alice")["id"].as_str().expect("id");
    let expected = format!(
        "imported {}, skipped 0, conflicts {}",
        fixture.importable().count() - 1,
        fixture.edge_rows().count() + 1
    );
    let taken = format!("user {alice}: the email belongs to another user here ({ours})");
    let (code, stdout, _) = import(&target, &fixture.url, &["--dry-run"]);
    assert_eq!(code, 0);
    assert!(stdout.contains(&format!("{expected} (dry run")), "{stdout}");
    assert!(stdout.contains(&taken), "{stdout}");
    assert_eq!(count(&target, "users"), 1);
    assert_eq!(count(&target, "upstream_identities"), 0);

    // for real: the same, and our user is left as it was
    let (code, stdout, _) = import(&target, &fixture.url, &[]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains(&expected) && !stdout.contains("dry run"),
        "{stdout}"
    );
    assert!(stdout.contains(&taken), "{stdout}");
    let mut conn = target.pool().get().expect("conn");
    let kept = users_db::users::find_by_email_key(&mut conn, "alice@example.com")
        .expect("query")
        .expect("ours");
    assert_eq!(kept.user.id.to_string(), ours);
    assert_eq!(kept.user.email, "ALICE@example.com");
    assert!(stored(&target, fixture.user("alice")).is_none());
    assert!(stored(&target, fixture.user("bob")).is_some());
}

both_backends!(dry_run_writes_nothing);

/// A run killed after its first batch (the abort stands in for a kill: the batch's
/// transaction is committed, nothing after it runs) is finished by the next run.
async fn an_interrupted_import_is_finished_by_the_next_run(backend: Backend) {
    let Some(fixture) = Fixture::shared_sqlite().await else {
        return;
    };
    let target = TestDatabase::new(backend);
    let (code, _, _) = import_with(
        &target,
        &fixture.url,
        &["--batch-size", "5"],
        &[("USERS_IMPORT_ABORT_AFTER_BATCHES", "1")],
    );
    assert_ne!(code, 0, "the process was aborted");
    let first = count(&target, "users");
    assert!(
        (1..=5).contains(&first),
        "{first} users after one batch of 5"
    );

    let (code, stdout, stderr) = import(&target, &fixture.url, &["--batch-size", "5"]);
    assert_eq!(code, 0, "{stderr}");
    let importable = fixture.importable().count() as i64;
    assert!(
        stdout.contains(&format!(
            "imported {}, skipped {first}, conflicts {}",
            importable - first,
            fixture.edge_rows().count()
        )),
        "{stdout}"
    );
    assert_rows(fixture, &target);
}

both_backends!(an_interrupted_import_is_finished_by_the_next_run);

/// Sources that cannot be read: a clear message naming what is wrong, a non-zero exit,
/// and nothing written (the target is not even created).
async fn unreadable_sources_write_nothing(backend: Backend) {
    let target = TestDatabase::new(backend);
    let dir = tempfile::tempdir().expect("dir");
    let sqlite_with = |name: &str, sql: &str| -> String {
        let path = dir.path().join(name);
        let mut session =
            users_db::admin::SqlSession::open(&format!("sqlite://{}", path.display()))
                .expect("sqlite");
        session.execute(sql).expect("ddl");
        format!("sqlite:///{}", path.display())
    };
    let full_user =
        "CREATE TABLE \"user\" (id CHAR(36) NOT NULL PRIMARY KEY, email VARCHAR(320) NOT NULL, \
                     hashed_password VARCHAR(1024) NOT NULL, is_active BOOLEAN NOT NULL, \
                     is_superuser BOOLEAN NOT NULL, is_verified BOOLEAN NOT NULL);";
    let not_a_database = dir.path().join("notes.txt");
    std::fs::write(
        &not_a_database,
        "these are not the users you are looking for\n".repeat(100),
    )
    .expect("write");
    let cases: Vec<(String, &str)> = vec![
        (
            sqlite_with("other.db", "CREATE TABLE accounts (id TEXT);"),
            "has no table \"user\"",
        ),
        (
            sqlite_with(
                "partial.db",
                "CREATE TABLE \"user\" (id CHAR(36) PRIMARY KEY, email VARCHAR(320), is_active BOOLEAN);",
            ),
            "the table \"user\" has no column \"hashed_password\", \"is_superuser\", \"is_verified\"",
        ),
        (
            sqlite_with(
                "oauth.db",
                &format!(
                    "{full_user} CREATE TABLE oauth_account (id CHAR(36), user_id CHAR(36), oauth_name VARCHAR(100));"
                ),
            ),
            "the table \"oauth_account\" has no column \"account_id\", \"account_email\"",
        ),
        (
            format!("sqlite:///{}", not_a_database.display()),
            "is not a SQLite database",
        ),
        (
            format!("sqlite:///{}", dir.path().join("missing.db").display()),
            "no such file",
        ),
        (
            format!(
                "postgresql+asyncpg://postgres:secret-pw@127.0.0.1:{}/app",
                free_port()
            ),
            "cannot connect to postgres://127.0.0.1:",
        ),
    ];
    for (url, message) in &cases {
        let (code, stdout, stderr) = import(&target, url, &[]);
        assert_eq!(code, 1, "{url}: {stdout}\n{stderr}");
        assert!(stderr.contains(message), "{url}: {stderr}");
        assert!(stderr.contains("nothing was written"), "{stderr}");
        assert!(!stderr.contains("secret-pw"), "{stderr}");
        assert!(stdout.is_empty(), "{stdout}");
        assert_nothing_written(&target, backend);
    }
    // a PostgreSQL database without fastapi-users' tables
    let empty = TestDatabase::new(Backend::Postgres);
    let url = empty.url.replacen("postgres://", "postgresql://", 1);
    let (code, _, stderr) = import(&target, &url, &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("has no table \"user\""), "{stderr}");
    // not a URL of either
    for url in ["mysql+aiomysql://u@h/db", "sqlite://", "app.db"] {
        let (code, _, stderr) = import(&target, url, &[]);
        assert_eq!(code, 2, "{url}");
        assert!(stderr.contains("--from"), "{stderr}");
    }
    assert_nothing_written(&target, backend);
    // the source files are as they were: opened read-only
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("dir").count(),
        4,
        "no file was created beside the sources"
    );
}

both_backends!(unreadable_sources_write_nothing);

/// An app without the OAuth extension has no `oauth_account` table: its users are
/// imported all the same. Ids are stored in their canonical (lower-case) form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_without_oauth_accounts() {
    let target = TestDatabase::new(Backend::Sqlite);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("app.db");
    let id = uuid::Uuid::new_v4();
    let hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$qxPC4ArIfkEMgrHIsM8xRL+GKFSNB84hMi9p3YUf0y0";
    users_db::admin::SqlSession::open(&format!("sqlite://{}", path.display()))
        .expect("sqlite")
        .execute(&format!(
            "CREATE TABLE \"user\" (id CHAR(36) NOT NULL PRIMARY KEY, email VARCHAR(320) NOT NULL, \
             hashed_password VARCHAR(1024) NOT NULL, is_active BOOLEAN NOT NULL, \
             is_superuser BOOLEAN NOT NULL, is_verified BOOLEAN NOT NULL); \
             INSERT INTO \"user\" VALUES ('{}', 'Solo@Example.com', '{hash}', 1, 0, 1);",
            id.to_string().to_uppercase()
        ))
        .expect("source");
    let (code, stdout, stderr) = import(&target, &format!("sqlite:///{}", path.display()), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("imported 1, skipped 0, conflicts 0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("oauth accounts: none (the source has no oauth_account table)"),
        "{stdout}"
    );
    let user = stored(&target, &json!({ "id": id.to_string() })).expect("imported");
    assert_eq!(user.user.email, "Solo@example.com");
    assert!(user.user.is_active && !user.user.is_superuser && user.user.is_verified);
    assert_eq!(user.hashed_password, hash);
}

/// The import rate: 100,000 users made by fastapi-users' bulk insert, into each of our
/// backends (the figure in docs/migrating-from-fastapi-users.md). Run it with
/// `cargo test --release --test api import::rate_of_100k -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow: a measurement, not a check"]
async fn rate_of_100k() {
    const BULK: usize = 100_000;
    let Some(fixture) = tokio::task::spawn_blocking(|| Fixture::sqlite(BULK))
        .await
        .expect("fixture")
    else {
        return;
    };
    let total = fixture.users().len() + BULK;
    let mut rates = HashMap::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let target = TestDatabase::new(backend);
        let started = std::time::Instant::now();
        let (code, stdout, stderr) = import(&target, &fixture.url, &[]);
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains(&format!(
            "imported {}, skipped 0",
            fixture.importable().count() + BULK
        )));
        assert_eq!(
            count(&target, "users"),
            (fixture.importable().count() + BULK) as i64
        );
        let rate = total as f64 / seconds;
        eprintln!(
            "{backend:?}: {total} users in {seconds:.2} s = {rate:.0} users/s (process: {})",
            stderr.trim()
        );
        rates.insert(format!("{backend:?}"), json!(rate.round()));
    }
    eprintln!("{}", json!(rates));
}
