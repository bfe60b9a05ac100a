//! The mail outbox: rows written in the caller's transaction, claimed by workers with a
//! lease through one conditional UPDATE, so two replicas never both deliver a row.

use diesel::prelude::*;

use crate::effects::Happened;
use crate::schema::outbox;
use crate::{DbConnection, Effects};

pub use crate::rows::outbox::{NewOutboxRow, OutboxRow, FAILED, PENDING, SENT};

/// Queues rows that go with no other change (a forgot-password request, say).
pub fn enqueue(conn: &mut DbConnection, effects: &Effects) -> QueryResult<()> {
    crate::effects::transaction(conn, effects, |_| Ok(()))
}

/// Ids of pending rows of these kinds that are due and not leased by anyone, oldest
/// first.
pub fn due(
    conn: &mut DbConnection,
    kinds: &[&str],
    now_ms: i64,
    limit: i64,
) -> QueryResult<Vec<String>> {
    outbox::table
        .filter(outbox::kind.eq_any(kinds))
        .filter(outbox::status.eq(PENDING))
        .filter(outbox::next_attempt_at.le(now_ms))
        .filter(outbox::locked_until.le(now_ms))
        .order((outbox::next_attempt_at.asc(), outbox::id.asc()))
        .select(outbox::id)
        .limit(limit)
        .load(conn)
}

/// Takes the lease on a row; `false` when another worker got it first.
pub fn claim(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    now_ms: i64,
    lease_ms: i64,
) -> QueryResult<Option<OutboxRow>> {
    let n = diesel::update(
        outbox::table
            .find(id)
            .filter(outbox::status.eq(PENDING))
            .filter(outbox::locked_until.le(now_ms)),
    )
    .set((
        outbox::locked_by.eq(Some(worker)),
        outbox::locked_until.eq(now_ms + lease_ms),
    ))
    .execute(conn)?;
    if n == 0 {
        return Ok(None);
    }
    outbox::table
        .find(id)
        .select(OutboxRow::as_select())
        .first(conn)
        .optional()
}

/// Extends the lease of a row this worker holds while its delivery runs; `false` when
/// the row is no longer this worker's to deliver (finished, released, or taken by
/// another worker after the lease ran out). A released row (`locked_until` 0) is not
/// leased again, so a renewal that loses the race with the release changes nothing.
pub fn renew(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    now_ms: i64,
    lease_ms: i64,
) -> QueryResult<bool> {
    diesel::update(
        mine(id, worker)
            .filter(outbox::status.eq(PENDING))
            .filter(outbox::locked_until.ne(0i64)),
    )
    .set(outbox::locked_until.eq(now_ms + lease_ms))
    .execute(conn)
    .map(|n| n > 0)
}

fn mine<'a>(
    id: &'a str,
    worker: &'a str,
) -> diesel::dsl::Filter<
    diesel::dsl::Find<outbox::table, &'a str>,
    diesel::dsl::Eq<outbox::locked_by, Option<&'a str>>,
> {
    outbox::table
        .find(id)
        .filter(outbox::locked_by.eq(Some(worker)))
}

/// Delivered: the body (it may hold a token) is dropped.
pub fn mark_sent(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    now_ms: i64,
) -> QueryResult<bool> {
    diesel::update(mine(id, worker))
        .set((
            outbox::status.eq(SENT),
            outbox::payload.eq(None::<String>),
            outbox::finished_at.eq(Some(now_ms)),
            outbox::locked_until.eq(0i64),
            outbox::last_error.eq(None::<String>),
        ))
        .execute(conn)
        .map(|n| n > 0)
}

/// Nothing to deliver after all (e.g. the address belongs to no active user).
pub fn mark_dropped(conn: &mut DbConnection, id: &str, worker: &str) -> QueryResult<bool> {
    diesel::delete(mine(id, worker))
        .execute(conn)
        .map(|n| n > 0)
}

/// Replaces the payload of a row this worker holds, and writes `effects` with it: a
/// request resolved to a user records its event once, however often its mail is
/// retried. Returns whether the row was still this worker's.
pub fn announce(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    payload: &str,
    effects: &Effects,
) -> QueryResult<bool> {
    crate::effects::transaction(conn, effects, |c| {
        diesel::update(mine(id, worker))
            .set(outbox::payload.eq(Some(payload)))
            .execute(c)
            .map(|n| n > 0)
    })
}

/// At most `max` mails of one kind to one address in any `window_ms`: a cap on what a
/// stream of requests can send to someone's inbox (docs/security.md).
#[derive(Debug, Clone)]
pub struct MailQuota {
    /// The user the mail goes to: their row is locked while the quota is counted, so two
    /// workers deciding at once decide one after the other.
    pub user_id: users_domain::UserId,
    pub email_key: String,
    /// `forgot_password` or `request_verify`.
    pub kind: String,
    pub now_ms: i64,
    pub window_ms: i64,
    pub max: i64,
}

/// What [`announce_within_quota`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announced {
    /// Within the quota: counted, the row's payload replaced and the effects written.
    Yes,
    /// Over the quota: nothing written; the mail is not to be sent.
    OverQuota,
    /// The row is no longer this worker's: nothing written.
    LeaseLost,
}

impl Happened for Announced {
    fn happened(&self) -> bool {
        *self == Announced::Yes
    }
}

/// [`announce`], for a request mail: only when the address is within its quota, which
/// then counts this mail; one transaction.
pub fn announce_within_quota(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    payload: &str,
    quota: &MailQuota,
    effects: &Effects,
) -> QueryResult<Announced> {
    use crate::schema::{mail_sends, users};
    conn.transaction(|c| {
        let locked = diesel::update(users::table.find(quota.user_id.to_string()))
            .set(users::updated_at.eq(users::updated_at))
            .execute(c)?;
        let sent: i64 = mail_sends::table
            .filter(mail_sends::email_key.eq(&quota.email_key))
            .filter(mail_sends::kind.eq(&quota.kind))
            .filter(mail_sends::sent_at.gt(quota.now_ms - quota.window_ms))
            .count()
            .get_result(c)?;
        if locked == 0 || sent >= quota.max {
            return Ok(Announced::OverQuota);
        }
        let mine = diesel::update(mine(id, worker))
            .set(outbox::payload.eq(Some(payload)))
            .execute(c)?;
        if mine == 0 {
            return Ok(Announced::LeaseLost);
        }
        diesel::insert_into(mail_sends::table)
            .values((
                mail_sends::id.eq(uuid::Uuid::new_v4().to_string()),
                mail_sends::email_key.eq(&quota.email_key),
                mail_sends::kind.eq(&quota.kind),
                mail_sends::sent_at.eq(quota.now_ms),
            ))
            .execute(c)?;
        effects.write(c)?;
        Ok(Announced::Yes)
    })
}

/// Forgets the mail counts older than `before_ms`.
pub fn purge_mail_sends(conn: &mut DbConnection, before_ms: i64) -> QueryResult<usize> {
    use crate::schema::mail_sends;
    diesel::delete(mail_sends::table.filter(mail_sends::sent_at.lt(before_ms))).execute(conn)
}

/// A temporary failure: try again at `next_attempt_at`.
pub fn mark_retry(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    next_attempt_at: i64,
    error: &str,
) -> QueryResult<bool> {
    diesel::update(mine(id, worker))
        .set((
            outbox::attempts.eq(outbox::attempts + 1i64),
            outbox::next_attempt_at.eq(next_attempt_at),
            outbox::locked_until.eq(0i64),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)
        .map(|n| n > 0)
}

/// Given up: kept for the record, without its body.
pub fn mark_failed(
    conn: &mut DbConnection,
    id: &str,
    worker: &str,
    now_ms: i64,
    error: &str,
) -> QueryResult<bool> {
    diesel::update(mine(id, worker))
        .set((
            outbox::status.eq(FAILED),
            outbox::payload.eq(None::<String>),
            outbox::attempts.eq(outbox::attempts + 1i64),
            outbox::finished_at.eq(Some(now_ms)),
            outbox::locked_until.eq(0i64),
            outbox::last_error.eq(Some(error)),
        ))
        .execute(conn)
        .map(|n| n > 0)
}

/// Forgets finished rows older than `before_ms`.
pub fn purge_finished(conn: &mut DbConnection, before_ms: i64) -> QueryResult<usize> {
    diesel::delete(
        outbox::table
            .filter(outbox::status.ne(PENDING))
            .filter(outbox::finished_at.lt(Some(before_ms))),
    )
    .execute(conn)
}

/// Rows of these kinds still waiting to be delivered.
pub fn pending_count(conn: &mut DbConnection, kinds: &[&str]) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::kind.eq_any(kinds))
        .filter(outbox::status.eq(PENDING))
        .count()
        .get_result(conn)
}

/// Every row of a status (tests and operations).
pub fn by_status(conn: &mut DbConnection, status: &str) -> QueryResult<Vec<OutboxRow>> {
    outbox::table
        .filter(outbox::status.eq(status))
        .order(outbox::created_at.asc())
        .select(OutboxRow::as_select())
        .load(conn)
}
