//! What the operations endpoints ask of the database (docs/operations.md): whether it
//! answers and is migrated, and how much the outbox holds. The web layer reaches the
//! database only through here and the flows.

use std::time::Duration;

use crate::outbox::Channel;
use crate::Core;

/// Why the service is not ready, in words for the caller (never a connection string or a
/// server message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    SchemaNotUpToDate,
    Unreachable,
}

impl NotReady {
    pub fn reason(self) -> &'static str {
        match self {
            NotReady::SchemaNotUpToDate => "the database schema is not up to date",
            NotReady::Unreachable => "the database is unreachable",
        }
    }
}

/// Whether the database answers within `within` and is fully migrated. Blocking work runs
/// on the blocking pool, outside the queue of `Store::run` (readiness must answer while
/// requests wait for connections).
pub async fn readiness(core: &Core, within: Duration) -> Result<(), NotReady> {
    let db = core.store.database().clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut conn = db.get_within(within)?;
        let outcome = users_db::check_ready(&mut conn);
        conn.record(&outcome);
        outcome
    })
    .await;
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready");
            Err(match e {
                users_db::DbError::Migration(_) => NotReady::SchemaNotUpToDate,
                _ => NotReady::Unreachable,
            })
        }
        Err(_) => Err(NotReady::Unreachable),
    }
}

/// Mails and webhook deliveries waiting in the outbox, if the database answers within
/// `within`.
pub async fn outbox_backlog(core: &Core, within: Duration) -> Option<(i64, i64)> {
    let db = core.store.database().clone();
    tokio::task::spawn_blocking(move || -> Option<(i64, i64)> {
        let mut conn = db.get_within(within).ok()?;
        let mails = users_db::outbox::pending_count(&mut conn, Channel::Mail.kinds()).ok()?;
        let hooks = users_db::outbox::pending_count(&mut conn, Channel::Webhooks.kinds()).ok()?;
        Some((mails, hooks))
    })
    .await
    .ok()
    .flatten()
}
