//! Shared application state, injected into handlers (no global statics).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use users_db::{Database, DbConnection, DbError};
use users_domain::PasswordPolicy;

use crate::hashing::PasswordHasher;
use crate::outbox::OutboxSignal;
use crate::settings::Settings;
use crate::tokens::JwtKeys;

#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Database,
    pub settings: Arc<Settings>,
    pub jwt: JwtKeys,
    pub hasher: PasswordHasher,
    pub policy: PasswordPolicy,
    pub mailer: users_mail::Mailer,
    pub outbox_signal: OutboxSignal,
    /// `None` without `GOOGLE_CLIENT_ID`: the Google routes answer 404.
    pub google: Option<crate::google::Google>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// One permit per pooled connection: requests wait for a connection here, in FIFO
    /// order and without holding a thread, instead of as blocked threads inside the pool.
    pub db_permits: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// Runs `f` with a pooled connection on the blocking pool, in the caller's span.
    /// The wait for a connection is bounded by the pool's acquire timeout; the
    /// connection is never held across an `.await`.
    pub async fn db<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, DbError> + Send + 'static,
    {
        // One bound for the whole wait: for a permit, then for the pool's connection.
        let wait = self.settings.pool.acquire_timeout;
        let deadline = tokio::time::Instant::now() + wait;
        let permit = tokio::time::timeout_at(deadline, self.db_permits.clone().acquire_owned())
            .await
            .map_err(|_| DbError::Busy(wait))?
            .map_err(|_| DbError::Other("the database gate is closed".into()))?;
        let db = self.db.clone();
        let span = tracing::Span::current();
        actix_web::web::block(move || {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let outcome = span.in_scope(|| db.run(left, f));
            drop(permit);
            outcome
        })
        .await
        .map_err(|e| DbError::Other(format!("blocking task failed: {e}")))?
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
