use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use secrecy::{ExposeSecret, SecretString};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// Any key that fits in a bigint; only needs to be unique to this service.
const MIGRATION_LOCK_KEY: i64 = 0x7573_6572_735f_6d67; // "users_mg"

/// A connection on which a statement succeeded this recently is handed out without a
/// ping (the window HikariCP uses). Under load every check-out falls in it, which saves
/// a round trip per request; an idle connection is still pinged before use.
const VALIDATION_BYPASS: Duration = Duration::from_millis(500);

/// A connection to either backend. Queries written once against the portable schema
/// run on both; code that needs backend-specific SQL matches on the variant.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

/// A parsed `DATABASE_URL`. The URL may hold a password: it is kept secret and never
/// appears in `Debug` output or logs; [`DatabaseUrl::redacted`] is what gets logged.
#[derive(Clone)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(SecretString),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl DatabaseUrl {
    /// Accepts `sqlite://<path>` (relative or absolute: `sqlite:///abs/file.db`),
    /// `sqlite:<path>`, and `postgres://…` / `postgresql://…`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let url = url.trim();
        if let Some(rest) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = rest.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("a sqlite URL needs a file path, e.g. sqlite://users.db".into());
            }
            if path == ":memory:" {
                return Err("an in-memory SQLite database would lose every user at restart and cannot be shared by the pool's connections; give a file path".into());
            }
            return Ok(DatabaseUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(SecretString::from(url.to_owned())));
        }
        Err("expected sqlite://<path> or postgres://user:pass@host:port/db".into())
    }

    /// A form safe to log: the SQLite path, or the PostgreSQL URL without credentials.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => {
                let url = url.expose_secret();
                let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
                let host = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
                let host = host.split('?').next().unwrap_or(host);
                format!("{scheme}://{host}")
            }
        }
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, DatabaseUrl::Sqlite(_))
    }
}

/// Sizing and timeouts of the pool.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    pub max_connections: u32,
    /// How long a caller waits for a connection before giving up (the 503 bound).
    pub acquire_timeout: Duration,
    /// SQLite only: how long a statement waits on a locked database.
    pub sqlite_busy_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            sqlite_busy_timeout: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database is unavailable: {0}")]
    Unavailable(#[from] r2d2::Error),
    #[error("database query failed: {0}")]
    Query(#[from] DieselError),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("cannot open the database: {0}")]
    Open(String),
    /// Every connection stayed busy for the whole acquire timeout.
    #[error("no database connection became free within {0:?}")]
    Busy(Duration),
    /// Not the database's fault: a failed blocking task, a value that cannot be stored.
    #[error("{0}")]
    Other(String),
}

impl DbError {
    /// A unique index refused the write (a duplicate email, an account linked already).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Query(e) if is_unique_violation(e))
    }

    /// True when the database could not be reached (as opposed to a query that failed).
    pub fn is_unavailable(&self) -> bool {
        match self {
            DbError::Unavailable(_) | DbError::Busy(_) => true,
            DbError::Query(DieselError::DatabaseError(_, info))
                if info.message().contains("database is locked") =>
            {
                true
            }
            _ => self.is_connection_lost(),
        }
    }

    /// True when the statement failed because the connection itself is gone: the
    /// connection must not go back into the pool.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            DbError::Query(DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)) => {
                true
            }
            DbError::Query(DieselError::DatabaseError(_, info)) => {
                // libpq reports a dropped server connection as an unknown error kind
                let m = info.message();
                m.contains("server closed the connection")
                    || m.contains("terminating connection")
                    || m.contains("no connection to the server")
                    || m.contains("could not receive data")
                    || m.contains("could not send data")
            }
            _ => false,
        }
    }
}

/// The transaction was chosen to end so that another could go on (PostgreSQL's
/// deadlock detector, or a serialization failure): running it again may succeed.
pub fn is_transaction_conflict(e: &DieselError) -> bool {
    match e {
        DieselError::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        DieselError::DatabaseError(_, info) => info.message().contains("deadlock detected"),
        _ => false,
    }
}

/// Runs `f` in one transaction that writes, and once more when the database ended it
/// for a conflict with another ([`is_transaction_conflict`]).
pub fn in_write_transaction<T>(
    conn: &mut DbConnection,
    mut f: impl FnMut(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    match write_transaction(conn, &mut f) {
        Err(DbError::Query(e)) if is_transaction_conflict(&e) => write_transaction(conn, f),
        other => other,
    }
}

/// A transaction that reads, then writes. On SQLite it begins `IMMEDIATE`: it takes the
/// write lock at once (waiting for it as any writer does), where a deferred one would
/// fail at its first write, without waiting, when another process committed since its
/// read.
fn write_transaction<T>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?
        }
        DbConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction(c)?,
    }
    match f(conn) {
        Ok(value) => {
            match conn {
                DbConnection::Sqlite(c) => AnsiTransactionManager::commit_transaction(c)?,
                DbConnection::Postgresql(c) => AnsiTransactionManager::commit_transaction(c)?,
            }
            Ok(value)
        }
        Err(e) => {
            let rolled_back = match conn {
                DbConnection::Sqlite(c) => AnsiTransactionManager::rollback_transaction(c),
                DbConnection::Postgresql(c) => AnsiTransactionManager::rollback_transaction(c),
            };
            match rolled_back {
                Ok(()) | Err(DieselError::BrokenTransactionManager) => Err(e),
                Err(rollback) => Err(rollback.into()),
            }
        }
    }
}

pub fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// A connection as the pool holds it: the backend connection plus what the pool needs
/// to know about its health. Dereferences to [`DbConnection`].
pub struct Conn {
    inner: DbConnection,
    /// When a statement last succeeded on it (or it was opened).
    last_ok: Instant,
    /// A statement failed because the connection is gone: drop it on return.
    lost: bool,
}

impl Conn {
    fn new(inner: DbConnection) -> Self {
        Conn {
            inner,
            last_ok: Instant::now(),
            lost: false,
        }
    }

    /// Records the outcome of work done on the connection: success proves it alive, a
    /// lost connection is discarded when it goes back to the pool.
    pub fn record<T>(&mut self, outcome: &Result<T, DbError>) {
        match outcome {
            Ok(_) => self.last_ok = Instant::now(),
            Err(e) if e.is_connection_lost() => self.lost = true,
            Err(_) => {}
        }
    }
}

impl Deref for Conn {
    type Target = DbConnection;
    fn deref(&self) -> &DbConnection {
        &self.inner
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut DbConnection {
        &mut self.inner
    }
}

/// The pool's connection manager: opens the backend named by the URL scheme.
pub struct Manager {
    url: DatabaseUrl,
    busy_timeout_ms: u128,
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        self.open().map(Conn::new)
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        if !conn.lost && conn.last_ok.elapsed() < VALIDATION_BYPASS {
            return Ok(());
        }
        conn.inner.ping().map_err(diesel::r2d2::Error::QueryError)?;
        conn.last_ok = Instant::now();
        Ok(())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.lost || conn.inner.is_broken()
    }
}

impl Manager {
    fn open(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let path = path.to_str().ok_or_else(|| {
                    diesel::r2d2::Error::ConnectionError(ConnectionError::InvalidConnectionUrl(
                        "the SQLite path is not valid UTF-8".into(),
                    ))
                })?;
                let mut conn = diesel::SqliteConnection::establish(path)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // busy_timeout first so the WAL switch itself waits for other openers.
                // synchronous=FULL: a committed registration survives a power loss too.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                    self.busy_timeout_ms
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
            DatabaseUrl::Postgres(url) => diesel::PgConnection::establish(url.expose_secret())
                .map(DbConnection::Postgresql)
                .map_err(diesel::r2d2::Error::ConnectionError),
        }
    }
}

pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// The connection pool. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<Manager>,
    url: DatabaseUrl,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").field("url", &self.url).finish()
    }
}

impl Database {
    /// Builds the pool without waiting for the database: connections are opened
    /// lazily, so a server can start while PostgreSQL is still coming up.
    pub fn connect_lazy(url: DatabaseUrl, opts: &PoolOptions) -> Result<Self, DbError> {
        if let DatabaseUrl::Sqlite(path) = &url {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                if !parent.is_dir() {
                    return Err(DbError::Open(format!(
                        "the folder {} of the SQLite file does not exist",
                        parent.display()
                    )));
                }
            }
        }
        let manager = Manager {
            url: url.clone(),
            busy_timeout_ms: opts.sqlite_busy_timeout.as_millis(),
        };
        let pool = r2d2::Pool::builder()
            .max_size(opts.max_connections.max(1))
            .min_idle(Some(0))
            .connection_timeout(opts.acquire_timeout)
            .test_on_check_out(true)
            .error_handler(Box::new(LogErrors))
            .build_unchecked(manager);
        Ok(Database { pool, url })
    }

    /// Opens the pool and runs the embedded migrations (idempotent; safe when several
    /// processes start at once on the same database).
    pub fn connect_and_migrate(url: DatabaseUrl, opts: &PoolOptions) -> Result<Self, DbError> {
        let db = Self::connect_lazy(url, opts)?;
        let mut conn = db.get()?;
        run_migrations(&mut conn)?;
        Ok(db)
    }

    /// A connection, waiting at most `timeout` (shorter than the pool's, for probes).
    pub fn get_within(&self, timeout: Duration) -> Result<PooledConnection, DbError> {
        Ok(self.pool.get_timeout(timeout)?)
    }

    /// A connection from the pool, waiting at most the configured acquire timeout.
    pub fn get(&self) -> Result<PooledConnection, DbError> {
        Ok(self.pool.get()?)
    }

    /// Runs `f` on a pooled connection, waiting at most `wait` for one (blocking: call it
    /// off the async executor), and records the outcome, so that a connection found dead
    /// is not handed out again.
    pub fn run<T>(
        &self,
        wait: Duration,
        f: impl FnOnce(&mut DbConnection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let mut conn = self.get_within(wait)?;
        let outcome = f(&mut conn);
        conn.record(&outcome);
        outcome
    }

    pub fn url(&self) -> &DatabaseUrl {
        &self.url
    }

    /// (connections open, of which idle).
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }
}

#[derive(Debug)]
struct LogErrors;

impl r2d2::HandleError<diesel::r2d2::Error> for LogErrors {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        tracing::warn!(error = %error, "database connection failed");
    }
}

/// Applies every pending migration of the connection's backend.
pub fn run_migrations(conn: &mut DbConnection) -> Result<(), DbError> {
    let mig = |e: Box<dyn std::error::Error + Send + Sync>| DbError::Migration(e.to_string());
    match conn {
        DbConnection::Postgresql(pg) => {
            // Several replicas may start together: serialise them on an advisory lock.
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(pg)?;
            let result = pg
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|_| ())
                .map_err(mig);
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                .execute(pg)?;
            result
        }
        DbConnection::Sqlite(lite) => {
            // SQLite has no advisory locks; a process racing another one sees the other's
            // tables appear mid-way, rolls back and finds nothing pending on the retry.
            let mut last = None;
            for attempt in 0..5u64 {
                match lite.run_pending_migrations(SQLITE_MIGRATIONS) {
                    Ok(_) => return Ok(()),
                    Err(e) => {
                        last = Some(e);
                        std::thread::sleep(Duration::from_millis(100 * (attempt + 1)));
                    }
                }
            }
            Err(last
                .map(mig)
                .unwrap_or_else(|| DbError::Migration("unknown".into())))
        }
    }
}

/// Ready to serve: the database answers and has every migration this binary knows.
pub fn check_ready(conn: &mut DbConnection) -> Result<(), DbError> {
    // A real round trip, whatever the pool's check-out skipped: this is the probe.
    conn.ping()?;
    let pending = match conn {
        DbConnection::Postgresql(pg) => pg.has_pending_migration(POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(lite) => lite.has_pending_migration(SQLITE_MIGRATIONS),
    }
    .map_err(|e| DbError::Migration(e.to_string()))?;
    if pending {
        return Err(DbError::Migration("migrations are pending".into()));
    }
    Ok(())
}

/// Names of the embedded migrations of each backend (a test checks they match).
pub fn migration_names() -> (Vec<String>, Vec<String>) {
    use diesel::migration::MigrationSource;
    let names = |src: &EmbeddedMigrations| -> Vec<String> {
        MigrationSource::<diesel::sqlite::Sqlite>::migrations(src)
            .map(|ms| ms.iter().map(|m| m.name().to_string()).collect())
            .unwrap_or_default()
    };
    let pg = MigrationSource::<diesel::pg::Pg>::migrations(&POSTGRES_MIGRATIONS)
        .map(|ms| ms.iter().map(|m| m.name().to_string()).collect())
        .unwrap_or_default();
    (names(&SQLITE_MIGRATIONS), pg)
}
