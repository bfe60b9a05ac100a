//! What a password sign-in reads, in one round trip: the attempt reserved against the
//! account's lock, the user, and the user's factors (docs/security.md).

use diesel::prelude::*;

use crate::limits::{self, Attempt};
use crate::mfa::{self, Factors};
use crate::users::{self, StoredUser};
use crate::DbConnection;

/// The attempt, and the user with that email key and their factors, when there is one
/// and the attempt may go on.
pub type FirstFactorRead = (Attempt, Option<(StoredUser, Factors)>);

/// Reserves the attempt ([`limits::begin_attempt`]) and, unless the key is locked,
/// reads the user and their factors.
pub fn first_factor(
    conn: &mut DbConnection,
    email_key: &str,
    now_ms: i64,
    max_failures: i64,
    lock_ms: impl Fn(i64) -> i64,
) -> QueryResult<FirstFactorRead> {
    let attempt = limits::begin_attempt(conn, email_key, now_ms, max_failures, lock_ms)?;
    if let Attempt::Locked { .. } = attempt {
        return Ok((attempt, None));
    }
    let Some(user) = users::find_by_email_key(conn, email_key)? else {
        return Ok((attempt, None));
    };
    let factors = mfa::factors_of(conn, user.user.id)?;
    Ok((attempt, Some((user, factors))))
}
