//! An outbox row as read and as written; its first write, which every change's effects
//! make (see `Effects`), needs nothing else of the outbox.

use diesel::prelude::*;

use crate::schema::outbox;
use crate::DbConnection;

/// What a row is waiting for, or how it ended.
pub const PENDING: &str = "pending";
pub const SENT: &str = "sent";
pub const FAILED: &str = "failed";

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: String,
    pub kind: String,
    pub payload: Option<String>,
    pub status: String,
    pub attempts: i64,
    pub created_at: i64,
}

/// A row to deliver as soon as possible: `payload` is what the worker turns into a mail
/// (JSON, owned by the caller).
#[derive(Debug, Clone)]
pub struct NewOutboxRow {
    pub id: String,
    pub kind: String,
    pub payload: String,
    pub created_at: i64,
}

/// Writes `row` as pending and due at once, inside the caller's transaction.
pub(crate) fn insert(conn: &mut DbConnection, row: &NewOutboxRow) -> QueryResult<()> {
    diesel::insert_into(outbox::table)
        .values((
            outbox::id.eq(&row.id),
            outbox::kind.eq(&row.kind),
            outbox::payload.eq(Some(&row.payload)),
            outbox::status.eq(PENDING),
            outbox::attempts.eq(0i64),
            outbox::next_attempt_at.eq(row.created_at),
            outbox::locked_until.eq(0i64),
            outbox::created_at.eq(row.created_at),
        ))
        .execute(conn)
        .map(|_| ())
}
