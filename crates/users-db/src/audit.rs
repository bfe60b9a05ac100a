//! The audit log: security events, written with the change they describe (through
//! `Effects`), read newest first with keyset pagination, forgotten after the
//! retention period.

use diesel::prelude::*;

use crate::schema::audit_events;
use crate::DbConnection;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditRow {
    /// A UUIDv7: its text order is time order.
    pub id: String,
    pub at: i64,
    pub event_type: String,
    pub user_id: Option<String>,
    pub actor_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// JSON.
    pub data: String,
}

pub(crate) fn insert(conn: &mut DbConnection, row: &AuditRow) -> QueryResult<()> {
    diesel::insert_into(audit_events::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub user_id: Option<String>,
    pub event_type: Option<String>,
    /// Only events older than this one (the previous page's last id).
    pub before: Option<String>,
    pub limit: i64,
}

/// A page of events, newest first.
pub fn list(conn: &mut DbConnection, q: &AuditQuery) -> QueryResult<Vec<AuditRow>> {
    let mut query = audit_events::table.into_boxed();
    if let Some(user) = &q.user_id {
        query = query.filter(audit_events::user_id.eq(user.clone()));
    }
    if let Some(t) = &q.event_type {
        query = query.filter(audit_events::event_type.eq(t.clone()));
    }
    if let Some(before) = &q.before {
        query = query.filter(audit_events::id.lt(before.clone()));
    }
    query
        .order(audit_events::id.desc())
        .limit(q.limit)
        .select(AuditRow::as_select())
        .load(conn)
}

/// Forgets events older than `before_ms`.
pub fn purge(conn: &mut DbConnection, before_ms: i64) -> QueryResult<usize> {
    diesel::delete(audit_events::table.filter(audit_events::at.lt(before_ms))).execute(conn)
}
