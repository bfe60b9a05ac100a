//! The async side of the database: every query runs on the blocking pool with a pooled
//! connection, never on the async executor, and never holds a connection across an
//! `.await`. Requests wait for a connection in arrival order without holding a thread,
//! and the whole wait (for a turn, then for the pool) is bounded by one deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use users_db::{Database, DbConnection, DbError};

/// The pool and its gate. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    db: Database,
    /// One permit per pooled connection.
    permits: Arc<Semaphore>,
    connections: usize,
    wait: Duration,
}

impl Store {
    pub fn new(db: Database, max_connections: u32, wait: Duration) -> Store {
        let connections = max_connections.max(1) as usize;
        Store {
            db,
            permits: Arc::new(Semaphore::new(connections)),
            connections,
            wait,
        }
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
    /// error, say), so a closure is the repository call itself.
    pub async fn run<T, E, F>(&self, f: F) -> Result<T, DbError>
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
            outcome
        })
        .await
        .map_err(|e| DbError::Other(format!("blocking task failed: {e}")))?
    }
}
