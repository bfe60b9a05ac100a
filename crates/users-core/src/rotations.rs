//! Refresh-token rotations, committed together (docs/sessions-and-tokens.md#rotations):
//! the refreshes that arrive while a batch commits are queued (`coalesce.rs`) and the
//! next batch checks and rotates them all in one transaction, so a burst of refreshes
//! costs one commit (one WAL flush) instead of one each. A request is answered only
//! after its batch committed, so a rotated token is as durable as before; a batch that
//! fails spends nothing of any of its requests.
//!
//! Two batches (here or on another replica) lock sessions in the order of their ids, so
//! they never wait on each other in a circle; a transaction PostgreSQL ends anyway (a
//! deadlock with another writer of the same rows) runs once more.

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
pub(crate) fn rotate_batch(c: &mut DbConnection, items: &[Rotating]) -> Result<Vec<Step>, DbError> {
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|&i| items[i].claim.session_id);
    let mut ids: Vec<String> = order
        .iter()
        .map(|&i| items[i].claim.session_id.to_string())
        .collect();
    ids.dedup();
    in_write_transaction(c, |c| {
        let found = sessions::find_many_with_user(c, &ids)?;
        let mut steps: Vec<Option<Step>> = items.iter().map(|_| None).collect();
        for &i in &order {
            steps[i] = Some(step(c, &items[i], &found)?);
        }
        Ok(steps.into_iter().flatten().collect())
    })
}

/// One refresh of a batch: its session as the batch read it, checked, and rotated when
/// the claim is the current token. A second refresh of the same session in the batch
/// finds the counter moved on by the first and reads the row again.
fn step(
    c: &mut DbConnection,
    item: &Rotating,
    found: &HashMap<String, SessionWithUser>,
) -> Result<Step, DbError> {
    let id = item.claim.session_id.to_string();
    let Some((session, stored, roles)) = found.get(&id) else {
        return Ok(Step::Invalid);
    };
    let Some(salt) = session.refresh_key_salt.clone() else {
        return Ok(Step::Invalid);
    };
    if !item.key.verify(&item.claim, &salt)
        || !item.accepts(&session.method)
        || !session.is_live(item.at)
        || !stored.user.is_active
    {
        return Ok(Step::Invalid);
    }
    let (user, roles) = (stored.user.clone(), roles.clone());
    let counter = item.claim.counter;
    if counter == session.refresh_counter && sessions::rotate(c, &id, counter, item.at.now_ms)? {
        return Ok(Step::Rotated {
            user,
            salt,
            counter: counter + 1,
            roles,
        });
    }
    // rotated already (by this batch, or by another at the same instant): see where
    // it is now
    let row: SessionRow = match sessions::find(c, &id)? {
        Some(r) if r.ended_at.is_none() => r,
        _ => return Ok(Step::Invalid),
    };
    if counter > row.refresh_counter {
        return Ok(Step::Invalid);
    }
    Ok(Step::Behind {
        user,
        salt,
        current: row.refresh_counter,
        refreshed_at: row.refreshed_at,
        roles,
    })
}
