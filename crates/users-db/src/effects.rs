//! What a change writes besides itself, in its own transaction: the audit events that
//! describe it, the mails and webhook deliveries it causes (outbox rows) and the
//! sessions it ends. A rolled-back change leaves none of them behind, and a committed
//! one never lacks them.

use diesel::prelude::*;

use crate::audit::{self, AuditRow};
use crate::rows::outbox::{self, NewOutboxRow};
use crate::rows::session::{end_all_in, EndSessions};
use crate::DbConnection;

/// Rows that go with a change. Built by the caller (the flows), written by the
/// transaction functions of this crate only when the change itself happened.
#[derive(Debug, Clone, Default)]
pub struct Effects {
    pub events: Vec<AuditRow>,
    pub outbox: Vec<NewOutboxRow>,
    /// A password change, a deactivation: the user's sessions end with it.
    pub end_sessions: Option<EndSessions>,
}

impl Effects {
    pub fn none() -> Effects {
        Effects::default()
    }

    pub fn with_outbox(mut self, row: NewOutboxRow) -> Effects {
        self.outbox.push(row);
        self
    }

    pub fn ending_sessions(mut self, end: EndSessions) -> Effects {
        self.end_sessions = Some(end);
        self
    }

    /// These effects, and those of `other`.
    pub fn and(mut self, other: Effects) -> Effects {
        self.events.extend(other.events);
        self.outbox.extend(other.outbox);
        if other.end_sessions.is_some() {
            self.end_sessions = other.end_sessions;
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.outbox.is_empty() && self.end_sessions.is_none()
    }

    pub(crate) fn write(&self, conn: &mut DbConnection) -> QueryResult<()> {
        for event in &self.events {
            audit::insert(conn, event)?;
        }
        for row in &self.outbox {
            outbox::insert(conn, row)?;
        }
        if let Some(end) = &self.end_sessions {
            end_all_in(conn, end)?;
        }
        Ok(())
    }
}

/// Whether a change happened, so that its effects are written with it (here) and
/// counted once it committed (by the caller). Every outcome of a change with effects
/// says so: `false`, `None`, an outcome naming what stopped it.
pub trait Happened {
    fn happened(&self) -> bool;
}

impl Happened for bool {
    fn happened(&self) -> bool {
        *self
    }
}

impl<T> Happened for Option<T> {
    fn happened(&self) -> bool {
        self.is_some()
    }
}

impl Happened for () {
    fn happened(&self) -> bool {
        true
    }
}

/// How many rows a change touched: it happened when there was one.
impl Happened for usize {
    fn happened(&self) -> bool {
        *self > 0
    }
}

/// `result`, with a refusal by a unique index (a duplicate email, an account linked
/// already) as the outcome `taken`. Outside the transaction that failed: on PostgreSQL
/// a failed statement aborts its transaction, which must roll back first.
pub(crate) fn or_taken<T>(result: QueryResult<T>, taken: T) -> QueryResult<T> {
    match result {
        Err(e) if crate::is_unique_violation(&e) => Ok(taken),
        other => other,
    }
}

/// Runs `change` in a transaction and writes `effects` with it if it happened.
pub(crate) fn transaction<T: Happened>(
    conn: &mut DbConnection,
    effects: &Effects,
    change: impl FnOnce(&mut DbConnection) -> QueryResult<T>,
) -> QueryResult<T> {
    conn.transaction(|c| {
        let outcome = change(c)?;
        if outcome.happened() {
            effects.write(c)?;
        }
        Ok(outcome)
    })
}
