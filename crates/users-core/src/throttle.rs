//! Abuse limits, kept in the database so every replica enforces the same counts:
//! per-account login throttling (OWASP ASVS 2.2.1, NIST 800-63B: at most 100
//! consecutive failures) and per-IP request budgets.

use users_db::limits::{Attempt, Reserved};
use users_domain::Timestamp;

use crate::{Core, Fault};

/// Refused for a while: try again in `retry_after_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after_secs: u64,
}

impl Limited {
    fn from_ms(ms: i64) -> Limited {
        Limited {
            retry_after_secs: ms.div_euclid(1000) as u64 + 1,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ThrottleError {
    #[error("too many requests")]
    Limited(Limited),
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<users_db::DbError> for ThrottleError {
    fn from(e: users_db::DbError) -> Self {
        ThrottleError::Fault(e.into())
    }
}

/// The lock after `failures` consecutive failures (from the `max`-th on): 30 s,
/// doubling, at most 15 minutes.
pub fn lock_ms(failures: i64, max: i64) -> i64 {
    let exp = (failures - max).clamp(0, 20) as u32;
    (30_000i64 << exp).min(15 * 60 * 1000)
}

/// Counts one request of `client` (an IP address, as text) against its budget for
/// `route`; refused past `RATE_LIMIT_PER_IP_PER_MINUTE`.
pub async fn hit(
    core: &Core,
    route: &'static str,
    client: &str,
    now: Timestamp,
) -> Result<(), ThrottleError> {
    let limit = core.config.rate_limit_per_ip_per_minute;
    if limit == 0 {
        return Ok(());
    }
    let bucket = format!("{route}|{client}");
    let over = core
        .store
        .run(move |c| users_db::limits::hit(c, &bucket, now.millis(), 60_000, limit))
        .await?;
    match over {
        Some(ms) => {
            tracing::warn!(route, "rate limit reached for a client IP");
            Err(ThrottleError::Limited(Limited::from_ms(ms)))
        }
        None => Ok(()),
    }
}

/// What refuses an attempt at an account key that is locked.
pub(crate) fn locked(for_ms: i64) -> ThrottleError {
    ThrottleError::Limited(Limited::from_ms(for_ms))
}

/// Counts an attempt at an account's password or second factor *before* it is
/// evaluated (`users_db::limits::begin_attempt`): refused while the key is locked, and
/// however many attempts arrive at once, at most `LOGIN_MAX_FAILURES` in a row are
/// evaluated. A completed sign-in forgets the count (in its own write, see
/// `flows::session`); a correct first factor with a second step pending gives its
/// attempt back ([`undo_attempt`]); a failure is counted already.
pub(crate) async fn begin_attempt(
    core: &Core,
    email_key: &str,
    now: Timestamp,
) -> Result<Reserved, ThrottleError> {
    let key = email_key.to_owned();
    let max = core.config.login_max_failures;
    let attempt = core
        .store
        .run(move |c| {
            users_db::limits::begin_attempt(c, &key, now.millis(), max, |f| lock_ms(f, max))
        })
        .await?;
    match attempt {
        Attempt::Go(reserved) => {
            if reserved.failures >= max {
                tracing::warn!(
                    failures = reserved.failures,
                    "login throttled after consecutive failures"
                );
            }
            Ok(reserved)
        }
        Attempt::Locked { for_ms } => Err(locked(for_ms)),
    }
}

/// Gives back an attempt whose credential was right but did not complete a sign-in.
pub(crate) async fn undo_attempt(
    core: &Core,
    email_key: &str,
    reserved: Reserved,
) -> Result<(), Fault> {
    let key = email_key.to_owned();
    core.store
        .run(move |c| users_db::limits::undo_attempt(c, &key, &reserved))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_grow_to_fifteen_minutes() {
        assert_eq!(lock_ms(10, 10), 30_000);
        assert_eq!(lock_ms(11, 10), 60_000);
        assert_eq!(lock_ms(13, 10), 240_000);
        assert_eq!(lock_ms(15, 10), 900_000);
        assert_eq!(lock_ms(99, 10), 900_000);
    }
}
