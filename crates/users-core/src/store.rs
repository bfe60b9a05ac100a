//! The async side of the database: every query runs on the blocking pool with a pooled
//! connection, never on the async executor, and never holds a connection across an
//! `.await`. Requests wait for a connection in arrival order without holding a thread,
//! and the whole wait (for a turn, then for the pool) is bounded by one deadline.
//!
//! On SQLite, where one connection at a time may write, the calls that may write also
//! take turns in the process, in arrival order, before they take a connection
//! (docs/operations.md#sqlite-writers): a writer waiting for another one's commit is
//! woken when it ends, instead of sleeping in SQLite's busy handler (1 ms, 2 ms, 5 ms …
//! up to 100 ms a try), which made a burst of refreshes wait hundreds of milliseconds.
//! Reads that cannot write ([`Store::read`]) do not take a turn: WAL lets them run beside
//! the writer.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, Semaphore};
use users_db::{Database, DbConnection, DbError};

/// The pool and its gate. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    /// One permit per pooled connection.
    permits: Arc<Semaphore>,
    /// SQLite only: the writers' turn (see the module's comment).
    writer: Option<Arc<Mutex<()>>>,
    connections: usize,
    wait: Duration,
}

impl Store {
    pub fn new(db: Database, max_connections: u32, wait: Duration) -> Store {
        let connections = max_connections.max(1) as usize;
        let writer = db.url().is_sqlite().then(|| Arc::new(Mutex::new(())));
        Store {
            db,
            permits: Arc::new(Semaphore::new(connections)),
            writer,
            connections,
            wait,
        }
    }

    /// Whether the calls that may write take turns in the process (SQLite).
    pub fn takes_turns(&self) -> bool {
        self.writer.is_some()
    }

    /// The pool's size.
    pub fn connections(&self) -> usize {
        self.connections
    }

    /// How long a query may wait for a connection.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs `f` with a pooled connection on the blocking pool, in the caller's span. `f`
    /// may fail with any error that is a [`DbError`] (a repository function's Diesel
    /// error, say), so a closure is the repository call itself. On SQLite it waits for
    /// the writers' turn first: `f` may write.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        E: Into<DbError>,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        self.call(true, f).await
    }

    /// [`Store::run`] for a call that only reads: on SQLite it runs beside the writer,
    /// without waiting for the writers' turn. A write in `f` would still be correct
    /// (SQLite's own lock and `busy_timeout` hold), only slower under load.
    pub async fn read<T, E, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        E: Into<DbError>,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        self.call(false, f).await
    }

    async fn call<T, E, F>(&self, writes: bool, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        E: Into<DbError>,
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
    {
        // A child of the caller's span (a flow's) while traces are exported
        // (docs/operations.md#traces): the wait for a connection and the call. Disabled
        // at its call site otherwise, and then `Span::none()`; none either for a call
        // outside every span (background work, the token lookups' batches), which would
        // be a trace of its own at every poll.
        let caller = tracing::Span::current();
        let span = if caller.is_none() {
            tracing::Span::none()
        } else {
            tracing::debug_span!(
                "db",
                otel.kind = "client",
                db.system.name = if self.db.url().is_sqlite() {
                    "sqlite"
                } else {
                    "postgresql"
                },
            )
        };
        let wait = self.wait;
        let deadline = tokio::time::Instant::now() + wait;
        let turn = match self.writer.as_ref().filter(|_| writes) {
            Some(writer) => Some(
                tokio::time::timeout_at(deadline, writer.clone().lock_owned())
                    .await
                    .map_err(|_| DbError::Busy(wait))?,
            ),
            None => None,
        };
        let permit = tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| DbError::Busy(wait))?
            .map_err(|_| DbError::Other("the database gate is closed".into()))?;
        let db = self.db.clone();
        // entered on the blocking thread, so that what the call logs is in the caller's
        // span (the log shows the caller's; a disabled `db` span passes through)
        let span = if span.is_disabled() { caller } else { span };
        tokio::task::spawn_blocking(move || {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let outcome = span.in_scope(|| db.run(left, |c| f(c).map_err(Into::into)));
            drop(permit);
            drop(turn);
            outcome
        })
        .await
        .map_err(|e| DbError::Other(format!("blocking task failed: {e}")))?
    }
}
