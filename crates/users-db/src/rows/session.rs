//! A session's row, when a session counts as live, and the ending of a user's sessions
//! that a change (a password change, a new second factor, a takeover) makes inside its
//! own transaction.

use diesel::prelude::*;
use users_domain::UserId;

use crate::schema::sessions;
use crate::DbConnection;

/// A session as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = sessions)]
pub struct SessionRow {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub method: String,
    pub aal: i64,
    pub refresh_key_salt: Option<String>,
    pub refresh_counter: i64,
    pub refreshed_at: Option<i64>,
    /// How the second step was made (`otp`, `hwk`), when there was one.
    pub second_factor: Option<String>,
}

/// When sessions count as live: not ended, not past `expires_at`, used within
/// `idle_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Liveness {
    pub now_ms: i64,
    pub idle_ms: i64,
}

impl SessionRow {
    pub fn is_live(&self, at: Liveness) -> bool {
        self.ended_at.is_none()
            && self.expires_at > at.now_ms
            && self.last_used_at > at.now_ms - at.idle_ms
    }
}

/// The `method` of the provider's grants (`oauth:<client_id>`), as a LIKE pattern.
pub const GRANT_METHOD_LIKE: &str = "oauth:%";

/// Every session of a user, but `except`, ends (inside a change's transaction).
#[derive(Debug, Clone)]
pub struct EndSessions {
    pub user_id: UserId,
    pub except: Option<String>,
    pub now_ms: i64,
    pub reason: &'static str,
    /// Whether the grants of the provider (sessions `oauth:<client_id>`) end too.
    pub grants: bool,
}

/// Ends every session of `end.user_id` but `end.except`, inside the caller's
/// transaction; how many.
pub(crate) fn end_all_in(conn: &mut DbConnection, end: &EndSessions) -> QueryResult<usize> {
    let theirs = sessions::table
        .filter(sessions::user_id.eq(end.user_id.to_string()))
        .filter(sessions::ended_at.is_null())
        // no session has the empty id: "but none"
        .filter(sessions::id.ne(end.except.clone().unwrap_or_default()));
    let ended = (
        sessions::ended_at.eq(Some(end.now_ms)),
        sessions::end_reason.eq(Some(end.reason)),
    );
    if end.grants {
        diesel::update(theirs).set(ended).execute(conn)
    } else {
        diesel::update(theirs.filter(sessions::method.not_like(GRANT_METHOD_LIKE)))
            .set(ended)
            .execute(conn)
    }
}
