//! Sessions: one row per sign-in (docs/sessions-and-tokens.md). Ending a session sets
//! `ended_at`; the row stays until purged, so a refresh token of an ended session is
//! recognised as such. Refresh tokens rotate in batches that lock their sessions first, so
//! two replicas refreshing the same token at once cannot both win.

use std::collections::HashMap;

use diesel::prelude::*;
use users_domain::UserId;

use crate::effects::transaction;
use crate::rows::session::end_all_in;
use crate::rows::user::{StoredUser, UserRow};
use crate::schema::{sessions, users};
use crate::{DbConnection, Effects};

pub use crate::rows::session::{EndSessions, Liveness, SessionRow};

/// A session to start.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = sessions)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub method: String,
    pub aal: i64,
    pub refresh_key_salt: Option<String>,
    pub second_factor: Option<String>,
}

pub fn create(conn: &mut DbConnection, new: &NewSession, effects: &Effects) -> QueryResult<()> {
    transaction(conn, effects, |c| {
        diesel::insert_into(sessions::table)
            .values(new)
            .execute(c)
            .map(|_| ())
    })
}

/// A completed sign-in: the session to start, and what the sign-in used up.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub session: NewSession,
    /// The account key whose failed attempts the sign-in forgets.
    pub clear_failures: Option<String>,
    /// The second step's challenge (the mfa_token's row) that the sign-in spends: if
    /// another request spent it first, nothing is written.
    pub spend_challenge: Option<String>,
}

/// Starts the session of a completed sign-in with its effects, forgetting the account's
/// failures and spending its challenge, in one transaction (one write per sign-in), and
/// reads the names of the user's roles there (what its access token carries). `None`
/// when the challenge was spent already (then nothing is written).
pub fn sign_in(
    conn: &mut DbConnection,
    done: &SignedIn,
    effects: &Effects,
) -> QueryResult<Option<Vec<String>>> {
    transaction(conn, effects, |c| {
        if let Some(id) = &done.spend_challenge {
            if !crate::mfa::spend_challenge(c, id)? {
                return Ok(None);
            }
        }
        diesel::insert_into(sessions::table)
            .values(&done.session)
            .execute(c)?;
        if let Some(key) = &done.clear_failures {
            crate::limits::clear_login_failures(c, key)?;
        }
        role_names(c, &done.session.user_id).map(Some)
    })
}

/// The names of the roles of a user, sorted (the `roles` claim of an access token).
pub fn role_names(conn: &mut DbConnection, user_id: &str) -> QueryResult<Vec<String>> {
    use crate::schema::user_roles;
    user_roles::table
        .filter(user_roles::user_id.eq(user_id))
        .order(user_roles::role_name.asc())
        .select(user_roles::role_name)
        .load(conn)
}

pub fn find(conn: &mut DbConnection, id: &str) -> QueryResult<Option<SessionRow>> {
    sessions::table
        .find(id)
        .select(SessionRow::as_select())
        .first(conn)
        .optional()
}

/// What a refresh reads of a session: the row, its user, the names of the user's roles.
pub type SessionWithUser = (SessionRow, StoredUser, Vec<String>);

/// Sessions, their users and the names of the users' roles, sorted, in one query (what
/// a batch of rotations reads: docs/sessions-and-tokens.md#rotations), by session id.
/// An id with no session is not in the map.
pub fn find_many_with_user(
    conn: &mut DbConnection,
    ids: &[String],
) -> QueryResult<HashMap<String, SessionWithUser>> {
    use crate::schema::user_roles;
    // one row per session and role (one with no role name for a user with none)
    macro_rules! rows_where {
        ($filter:expr) => {
            sessions::table
                .inner_join(users::table.left_join(user_roles::table))
                .filter($filter)
                .order((sessions::id.asc(), user_roles::role_name.asc()))
                .select((
                    SessionRow::as_select(),
                    UserRow::as_select(),
                    user_roles::role_name.nullable(),
                ))
                .load::<(SessionRow, UserRow, Option<String>)>(conn)?
        };
    }
    // One id (a refresh that arrives alone) is read with `=`: SQLite's statement cache
    // keeps that statement, where it prepares an `IN` list of any length anew each time.
    let rows = match ids {
        [id] => rows_where!(sessions::id.eq(id)),
        _ => rows_where!(sessions::id.eq_any(ids)),
    };
    let mut found: HashMap<String, SessionWithUser> = HashMap::with_capacity(ids.len());
    for (session, user, role) in rows {
        if let Some((_, _, roles)) = found.get_mut(&session.id) {
            roles.extend(role);
            continue;
        }
        let user = StoredUser::try_from(user)?;
        found.insert(
            session.id.clone(),
            (session, user, role.into_iter().collect()),
        );
    }
    Ok(found)
}

/// The live sessions of a user, newest first.
pub fn live_of_user(
    conn: &mut DbConnection,
    user_id: UserId,
    at: Liveness,
) -> QueryResult<Vec<SessionRow>> {
    sessions::table
        .filter(sessions::user_id.eq(user_id.to_string()))
        .filter(sessions::ended_at.is_null())
        .filter(sessions::expires_at.gt(at.now_ms))
        .filter(sessions::last_used_at.gt(at.now_ms - at.idle_ms))
        .order((sessions::created_at.desc(), sessions::id.desc()))
        .select(SessionRow::as_select())
        .load(conn)
}

/// Records the use of these sessions at `now_ms`, those not recorded since
/// `stale_before_ms`. Returns how many were.
///
/// On PostgreSQL a session whose row another transaction holds (a batch of rotations,
/// an ending) is skipped, not waited for: the touch never waits on a lock, so it can
/// neither hold up the token checks it follows nor close a circle of waits with a
/// batch that locks its sessions in id order; the next check touches it again
/// (docs/sessions-and-tokens.md#last-use).
pub fn touch_many(
    conn: &mut DbConnection,
    ids: &[String],
    now_ms: i64,
    stale_before_ms: i64,
) -> QueryResult<usize> {
    match conn {
        DbConnection::Postgresql(pg) => diesel::sql_query(
            "UPDATE sessions SET last_used_at = $1 WHERE id IN (SELECT id FROM sessions \
                 WHERE id = ANY($2) AND last_used_at < $3 FOR UPDATE SKIP LOCKED)",
        )
        .bind::<diesel::sql_types::BigInt, _>(now_ms)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(ids)
        .bind::<diesel::sql_types::BigInt, _>(stale_before_ms)
        .execute(pg),
        DbConnection::Sqlite(_) => diesel::update(
            sessions::table
                .filter(sessions::id.eq_any(ids))
                .filter(sessions::last_used_at.lt(stale_before_ms)),
        )
        .set(sessions::last_used_at.eq(now_ms))
        .execute(conn),
    }
}

/// Rotates the refresh token: the counter moves from `from_counter` to the next one,
/// only if it still is `from_counter` and the session was not ended. Returns whether
/// this call won.
pub fn rotate(
    conn: &mut DbConnection,
    id: &str,
    from_counter: i64,
    now_ms: i64,
) -> QueryResult<bool> {
    diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::refresh_counter.eq(from_counter))
            .filter(sessions::ended_at.is_null()),
    )
    .set((
        sessions::refresh_counter.eq(from_counter + 1),
        sessions::refreshed_at.eq(Some(now_ms)),
        sessions::last_used_at.eq(now_ms),
    ))
    .execute(conn)
    .map(|n| n > 0)
}

/// Locks the sessions of `ids` for a batch of rotations, in the order of their ids (two
/// batches, on one replica or two, then never wait on each other in a circle). On
/// SQLite, where the batch's `BEGIN IMMEDIATE` holds the whole file, there is nothing
/// more to lock.
pub fn lock_in_order(conn: &mut DbConnection, ids: &[String]) -> QueryResult<()> {
    if let DbConnection::Postgresql(pg) = conn {
        sessions::table
            .filter(sessions::id.eq_any(ids))
            .order(sessions::id.asc())
            .select(sessions::id)
            .for_update()
            .load::<String>(pg)?;
    }
    Ok(())
}

/// Moves the refresh counter of each of `ids` on by one, as rotated at `now_ms`, in one
/// statement; the caller holds their locks ([`lock_in_order`]) and read their counters
/// after taking them. Returns how many rows it changed.
pub fn rotate_all(conn: &mut DbConnection, ids: &[String], now_ms: i64) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(
        sessions::table
            .filter(sessions::id.eq_any(ids))
            .filter(sessions::ended_at.is_null()),
    )
    .set((
        sessions::refresh_counter.eq(sessions::refresh_counter + 1),
        sessions::refreshed_at.eq(Some(now_ms)),
        sessions::last_used_at.eq(now_ms),
    ))
    .execute(conn)
}

/// Raises a session's assurance level (a completed second factor).
pub fn set_aal(conn: &mut DbConnection, id: &str, aal: i64) -> QueryResult<bool> {
    diesel::update(sessions::table.find(id))
        .set(sessions::aal.eq(aal))
        .execute(conn)
        .map(|n| n > 0)
}

/// Ends one live session of `user_id`, with its effects. Returns whether there was one.
pub fn end(
    conn: &mut DbConnection,
    id: &str,
    user_id: UserId,
    at: Liveness,
    reason: &'static str,
    effects: &Effects,
) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        let n = diesel::update(
            sessions::table
                .find(id)
                .filter(sessions::user_id.eq(user_id.to_string()))
                .filter(sessions::ended_at.is_null())
                .filter(sessions::expires_at.gt(at.now_ms))
                .filter(sessions::last_used_at.gt(at.now_ms - at.idle_ms)),
        )
        .set((
            sessions::ended_at.eq(Some(at.now_ms)),
            sessions::end_reason.eq(Some(reason)),
        ))
        .execute(c)?;
        Ok(n > 0)
    })
}

/// Ends every session of a user but `except`, with the effects when there was one to
/// end. Returns how many.
pub fn end_all(
    conn: &mut DbConnection,
    end: &EndSessions,
    effects: &Effects,
) -> QueryResult<usize> {
    conn.transaction(|c| {
        let n = end_all_in(c, end)?;
        if n > 0 {
            effects.write(c)?;
        }
        Ok(n)
    })
}

/// Forgets sessions that ended or expired before `before_ms`.
pub fn purge(conn: &mut DbConnection, before_ms: i64) -> QueryResult<usize> {
    diesel::delete(
        sessions::table.filter(
            sessions::ended_at
                .lt(before_ms)
                .or(sessions::expires_at.lt(before_ms)),
        ),
    )
    .execute(conn)
}
