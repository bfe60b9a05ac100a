//! Login throttling and per-IP rate limits, in the database so replicas share them.
//! Each operation is a handful of single-row statements in one transaction; the rows
//! are keyed so that concurrent requests serialise on the row, not on a table.

use diesel::prelude::*;

use crate::schema::{login_failures, rate_limits};
use crate::{is_unique_violation, DbConnection};

/// The failure record of an account key, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailures {
    pub failures: i64,
    /// Milliseconds until the key may try again, if it is locked now.
    pub locked_for_ms: Option<i64>,
}

pub fn login_failures(
    conn: &mut DbConnection,
    email_key: &str,
    now_ms: i64,
) -> QueryResult<Option<LoginFailures>> {
    let row: Option<(i64, i64)> = login_failures::table
        .find(email_key)
        .select((login_failures::failures, login_failures::locked_until))
        .first(conn)
        .optional()?;
    Ok(row.map(|(failures, locked_until)| LoginFailures {
        failures,
        locked_for_ms: (locked_until > now_ms).then(|| locked_until - now_ms),
    }))
}

/// Counts a failed login. From the `max_failures`-th consecutive failure on, the
/// account is locked for `lock_ms(failures)` milliseconds. Returns the new count.
pub fn record_login_failure(
    conn: &mut DbConnection,
    email_key: &str,
    now_ms: i64,
    max_failures: i64,
    lock_ms: impl Fn(i64) -> i64,
) -> QueryResult<i64> {
    conn.transaction(|c| {
        let updated = diesel::update(login_failures::table.find(email_key))
            .set((
                login_failures::failures.eq(login_failures::failures + 1i64),
                login_failures::updated_at.eq(now_ms),
            ))
            .execute(c)?;
        if updated == 0 {
            // a savepoint: losing the race fails the insert, not the transaction
            // (PostgreSQL aborts a transaction on any error)
            let inserted = c.transaction(|c| {
                diesel::insert_into(login_failures::table)
                    .values((
                        login_failures::email_key.eq(email_key),
                        login_failures::failures.eq(1i64),
                        login_failures::locked_until.eq(0i64),
                        login_failures::updated_at.eq(now_ms),
                    ))
                    .execute(c)
            });
            match inserted {
                Ok(_) => {}
                // another request inserted it first: count on its row
                Err(e) if is_unique_violation(&e) => {
                    diesel::update(login_failures::table.find(email_key))
                        .set(login_failures::failures.eq(login_failures::failures + 1i64))
                        .execute(c)?;
                }
                Err(e) => return Err(e),
            }
        }
        let failures: i64 = login_failures::table
            .find(email_key)
            .select(login_failures::failures)
            .first(c)?;
        if failures >= max_failures {
            diesel::update(login_failures::table.find(email_key))
                .set(login_failures::locked_until.eq(now_ms + lock_ms(failures)))
                .execute(c)?;
        }
        Ok(failures)
    })
}

/// An attempt reserved by [`begin_attempt`]: what it changed, so that it can be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reserved {
    /// The consecutive failures, this attempt included.
    pub failures: i64,
    /// The lock before the attempt (0: none) and after it (set when this attempt
    /// reached the limit).
    pub locked_until_before: i64,
    pub locked_until: i64,
}

/// What [`begin_attempt`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// Go on: the attempt is counted as a failure until it succeeds.
    Go(Reserved),
    /// The key is locked for this many more milliseconds: nothing was counted.
    Locked { for_ms: i64 },
}

/// Counts one attempt on the key's row, making the row when there is none; `Some(ms)`
/// when the key is locked for that long instead (nothing counted). Inside
/// [`begin_attempt`]'s transaction.
fn count_attempt(c: &mut DbConnection, email_key: &str, now_ms: i64) -> QueryResult<Option<i64>> {
    let count = |c: &mut DbConnection| {
        diesel::update(
            login_failures::table
                .find(email_key)
                .filter(login_failures::locked_until.le(now_ms)),
        )
        .set((
            login_failures::failures.eq(login_failures::failures + 1i64),
            login_failures::updated_at.eq(now_ms),
        ))
        .execute(c)
    };
    // the row may be missing (first attempt, or a success just forgot it) while
    // concurrent attempts insert or forget it: a few rounds settle it
    for _ in 0..4 {
        if count(c)? > 0 {
            return Ok(None);
        }
        let locked: Option<i64> = login_failures::table
            .find(email_key)
            .select(login_failures::locked_until)
            .first(c)
            .optional()?;
        match locked {
            Some(until) if until > now_ms => return Ok(Some(until - now_ms)),
            // a row another attempt made after ours was counted on a row a success
            // forgot (PostgreSQL re-reads a row only where it waited for it)
            Some(_) => continue,
            None => {}
        }
        // a savepoint: losing the race fails the insert, not the transaction
        // (PostgreSQL aborts a transaction on any error)
        let inserted = c.transaction(|c| {
            diesel::insert_into(login_failures::table)
                .values((
                    login_failures::email_key.eq(email_key),
                    login_failures::failures.eq(1i64),
                    login_failures::locked_until.eq(0i64),
                    login_failures::updated_at.eq(now_ms),
                ))
                .execute(c)
        });
        match inserted {
            // counted: the row it made holds this attempt
            Ok(_) => return Ok(None),
            // another attempt inserted it first: count on its row next round
            Err(e) if is_unique_violation(&e) => continue,
            Err(e) => return Err(e),
        }
    }
    // still contended after those rounds: refused for a moment rather than evaluated
    // uncounted
    Ok(Some(1000))
}

/// Counts an attempt for `email_key` *before* it is evaluated, unless the key is locked:
/// one conditional statement decides, so however many attempts arrive at once, no more
/// than the limit are ever evaluated. From the `max_failures`-th on, the key is locked
/// for `lock_ms(failures)`. A success then forgets the failures
/// ([`clear_login_failures`]); a correct first factor with a second step pending gives
/// its attempt back ([`undo_attempt`]); a failure has been counted already.
pub fn begin_attempt(
    conn: &mut DbConnection,
    email_key: &str,
    now_ms: i64,
    max_failures: i64,
    lock_ms: impl Fn(i64) -> i64,
) -> QueryResult<Attempt> {
    conn.transaction(|c| {
        if let Some(for_ms) = count_attempt(c, email_key, now_ms)? {
            return Ok(Attempt::Locked { for_ms });
        }
        let (failures, before): (i64, i64) = login_failures::table
            .find(email_key)
            .select((login_failures::failures, login_failures::locked_until))
            .first(c)?;
        let mut until = before;
        if failures >= max_failures {
            until = now_ms + lock_ms(failures);
            diesel::update(login_failures::table.find(email_key))
                .set(login_failures::locked_until.eq(until))
                .execute(c)?;
        }
        Ok(Attempt::Go(Reserved {
            failures,
            locked_until_before: before,
            locked_until: until,
        }))
    })
}

/// Gives back an attempt that succeeded without completing a sign-in (a correct password
/// with a second step pending): the count goes back, and the lock it set, unless another
/// attempt has moved the lock since.
pub fn undo_attempt(
    conn: &mut DbConnection,
    email_key: &str,
    reserved: &Reserved,
) -> QueryResult<()> {
    diesel::update(
        login_failures::table
            .find(email_key)
            .filter(login_failures::failures.gt(0i64)),
    )
    .set(login_failures::failures.eq(login_failures::failures - 1i64))
    .execute(conn)?;
    if reserved.locked_until != reserved.locked_until_before {
        diesel::update(
            login_failures::table
                .find(email_key)
                .filter(login_failures::locked_until.eq(reserved.locked_until)),
        )
        .set(login_failures::locked_until.eq(reserved.locked_until_before))
        .execute(conn)?;
    }
    Ok(())
}

/// A successful login forgets the failures. The row stays (at zero) rather than going:
/// attempts that arrive meanwhile keep counting on it instead of racing to insert a new
/// one; rows untouched for a day are purged.
pub fn clear_login_failures(conn: &mut DbConnection, email_key: &str) -> QueryResult<()> {
    diesel::update(
        login_failures::table.find(email_key).filter(
            login_failures::failures
                .ne(0i64)
                .or(login_failures::locked_until.ne(0i64)),
        ),
    )
    .set((
        login_failures::failures.eq(0i64),
        login_failures::locked_until.eq(0i64),
    ))
    .execute(conn)
    .map(|_| ())
}

/// Counts a hit in `bucket`'s current window of `window_ms`; returns the milliseconds
/// until the window ends when the hit is over `limit`.
pub fn hit(
    conn: &mut DbConnection,
    bucket: &str,
    now_ms: i64,
    window_ms: i64,
    limit: i64,
) -> QueryResult<Option<i64>> {
    let window = now_ms - now_ms.rem_euclid(window_ms);
    conn.transaction(|c| {
        let mut counted = diesel::update(
            rate_limits::table
                .find(bucket)
                .filter(rate_limits::window_start.eq(window)),
        )
        .set(rate_limits::hits.eq(rate_limits::hits + 1i64))
        .execute(c)?;
        if counted == 0 {
            // a new window for an existing bucket
            counted = diesel::update(rate_limits::table.find(bucket))
                .set((
                    rate_limits::window_start.eq(window),
                    rate_limits::hits.eq(1i64),
                ))
                .execute(c)?;
        }
        if counted == 0 {
            // a savepoint, as above
            let inserted = c.transaction(|c| {
                diesel::insert_into(rate_limits::table)
                    .values((
                        rate_limits::bucket.eq(bucket),
                        rate_limits::window_start.eq(window),
                        rate_limits::hits.eq(1i64),
                    ))
                    .execute(c)
            });
            match inserted {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => {
                    diesel::update(rate_limits::table.find(bucket))
                        .set(rate_limits::hits.eq(rate_limits::hits + 1i64))
                        .execute(c)?;
                }
                Err(e) => return Err(e),
            }
        }
        let hits: i64 = rate_limits::table
            .find(bucket)
            .select(rate_limits::hits)
            .first(c)?;
        Ok((hits > limit).then(|| window + window_ms - now_ms))
    })
}

/// Forgets windows and failure counts nobody has touched since `before_ms`.
pub fn purge(conn: &mut DbConnection, before_ms: i64) -> QueryResult<usize> {
    let a = diesel::delete(rate_limits::table.filter(rate_limits::window_start.lt(before_ms)))
        .execute(conn)?;
    let b = diesel::delete(
        login_failures::table
            .filter(login_failures::updated_at.lt(before_ms))
            .filter(login_failures::locked_until.lt(before_ms)),
    )
    .execute(conn)?;
    Ok(a + b)
}
