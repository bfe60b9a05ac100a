//! Refresh-token rotations, committed together (docs/sessions-and-tokens.md#rotations):
//! the refreshes that arrive while a batch commits are queued (`coalesce.rs`) and the
//! next batch checks and rotates them all in one transaction, so a burst of refreshes
//! costs one commit (one WAL flush) instead of one each. A request is answered only
//! after its batch committed, so a rotated token is as durable as before; a batch that
//! fails spends nothing of any of its requests.
//!
//! Two batches (here or on another replica) lock sessions in the order of their ids, so
//! they never wait on each other in a circle; a transaction PostgreSQL ends anyway (a
//! deadlock with another writer of the same rows) runs once more. On SQLite the batch's
//! `BEGIN IMMEDIATE`, in the writers' turn, holds the file instead.

use std::collections::HashMap;

use users_db::sessions::{self, Liveness, SessionRow, SessionWithUser};
use users_db::{in_write_transaction, DbConnection, DbError};
use users_domain::User;

use crate::tokens::{RefreshClaim, RefreshKey};

/// The most rotations one transaction holds locked.
pub(crate) const MAX_ROTATIONS: usize = 128;

/// One refresh to check and rotate.
#[derive(Debug, Clone)]
pub struct Rotating {
    pub(crate) key: RefreshKey,
    pub(crate) claim: RefreshClaim,
    /// Whose sessions the token may be of: `None`, the service's own sessions (§8's
    /// `/auth/jwt/refresh`); a client's id, that client's grants (`/oauth/token`).
    pub(crate) client_id: Option<String>,
    pub(crate) at: Liveness,
}

impl Rotating {
    /// Whether a session signed in by `method` may be refreshed by this token's caller:
    /// the two kinds never cross.
    fn accepts(&self, method: &str) -> bool {
        match &self.client_id {
            None => !method.starts_with("oauth:"),
            Some(client_id) => method.strip_prefix("oauth:") == Some(client_id.as_str()),
        }
    }
}

/// What a batch found of one refresh token's session, and whether it rotated it.
#[derive(Debug)]
pub enum Step {
    Invalid,
    /// The token was the current one and this batch moved the counter on.
    Rotated {
        user: User,
        salt: String,
        counter: i64,
        roles: Vec<String>,
    },
    /// The token checks out but is not (or no longer) the current one.
    Behind {
        user: User,
        salt: String,
        current: i64,
        refreshed_at: Option<i64>,
        roles: Vec<String>,
    },
}

/// Checks and rotates `items` in one transaction; one step per item, in their order.
/// The transaction locks the batch's sessions, reads them with their users and roles
/// in one query, decides every item here, and rotates the winners in one statement:
/// five statements for the whole batch, whatever its size.
pub(crate) fn rotate_batch(c: &mut DbConnection, items: &[Rotating]) -> Result<Vec<Step>, DbError> {
    let mut ids: Vec<String> = items
        .iter()
        .map(|i| i.claim.session_id.to_string())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let now_ms = items.iter().map(|i| i.at.now_ms).max().unwrap_or_default();
    if let [item] = items {
        return rotate_one(c, item, &ids);
    }
    in_write_transaction(c, |c| {
        sessions::lock_in_order(c, &ids)?;
        let found = sessions::find_many_with_user(c, &ids)?;
        let mut counters = counters_of(&found);
        let mut rotate = Vec::new();
        let steps: Vec<Step> = items
            .iter()
            .map(|item| step(item, &found, &mut counters, &mut rotate, now_ms))
            .collect();
        let rotated = sessions::rotate_all(c, &rotate, now_ms)?;
        if rotated != rotate.len() {
            // the rows are locked: this cannot be, and nothing of the batch is kept
            return Err(DbError::Other(format!(
                "a batch rotated {rotated} of {} sessions",
                rotate.len()
            )));
        }
        Ok(steps)
    })
}

/// A batch of one, as a rotation ran before batches: the read, then an `UPDATE` on the
/// counter it read, each in autocommit (two statements where a transaction takes five);
/// when another request moved the counter in between, the session is read again.
fn rotate_one(c: &mut DbConnection, item: &Rotating, ids: &[String]) -> Result<Vec<Step>, DbError> {
    let found = sessions::find_many_with_user(c, ids)?;
    let mut counters = counters_of(&found);
    let mut rotate = Vec::new();
    let first = step(item, &found, &mut counters, &mut rotate, item.at.now_ms);
    let Some(id) = rotate.first() else {
        return Ok(vec![first]);
    };
    if sessions::rotate(c, id, item.claim.counter, item.at.now_ms)? {
        return Ok(vec![first]);
    }
    // rotated by another request at the same instant: decide on the row as it is now
    let now = sessions::find_many_with_user(c, ids)?;
    let mut counters = counters_of(&now);
    let again = step(item, &now, &mut counters, &mut Vec::new(), item.at.now_ms);
    Ok(vec![match again {
        // the counter moved between the two reads: this is not the current token
        Step::Rotated { .. } => Step::Invalid,
        other => other,
    }])
}

/// Each session's counter as read.
fn counters_of(found: &HashMap<String, SessionWithUser>) -> HashMap<&str, Counter> {
    found
        .iter()
        .map(|(id, (row, _, _))| (id.as_str(), Counter::of(row)))
        .collect()
}

/// Where a session's refresh counter is within a batch: as read, then as this batch
/// moved it.
struct Counter {
    current: i64,
    refreshed_at: Option<i64>,
}

impl Counter {
    fn of(row: &SessionRow) -> Counter {
        Counter {
            current: row.refresh_counter,
            refreshed_at: row.refreshed_at,
        }
    }
}

/// One refresh of a batch, decided on its session as read under the batch's lock: the
/// current token rotates (its session goes into `rotate`); a second refresh of the same
/// session in the batch finds the counter moved on by the first, as two tabs do.
fn step(
    item: &Rotating,
    found: &HashMap<String, SessionWithUser>,
    counters: &mut HashMap<&str, Counter>,
    rotate: &mut Vec<String>,
    now_ms: i64,
) -> Step {
    let id = item.claim.session_id.to_string();
    let (Some((session, stored, roles)), Some(counter)) =
        (found.get(&id), counters.get_mut(id.as_str()))
    else {
        return Step::Invalid;
    };
    let Some(salt) = session.refresh_key_salt.clone() else {
        return Step::Invalid;
    };
    if !item.key.verify(&item.claim, &salt)
        || !item.accepts(&session.method)
        || !session.is_live(item.at)
        || !stored.user.is_active
    {
        return Step::Invalid;
    }
    let (user, roles) = (stored.user.clone(), roles.clone());
    let presented = item.claim.counter;
    if presented == counter.current {
        counter.current += 1;
        counter.refreshed_at = Some(now_ms);
        rotate.push(id);
        return Step::Rotated {
            user,
            salt,
            counter: presented + 1,
            roles,
        };
    }
    if presented > counter.current {
        return Step::Invalid;
    }
    Step::Behind {
        user,
        salt,
        current: counter.current,
        refreshed_at: counter.refreshed_at,
        roles,
    }
}
