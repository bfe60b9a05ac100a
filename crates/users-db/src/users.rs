//! The users table.

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use users_domain::{User, UserId};

use crate::effects::transaction;
use crate::schema::{revoked_tokens, users};
use crate::{DbConnection, Effects};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    id: String,
    email: String,
    hashed_password: String,
    is_active: bool,
    is_superuser: bool,
    is_verified: bool,
    tokens_valid_after: i64,
}

/// A user with what only the server's auth code may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    pub user: User,
    pub hashed_password: String,
    /// Milliseconds since the epoch; access tokens issued earlier are refused.
    pub tokens_valid_after: i64,
}

impl TryFrom<UserRow> for StoredUser {
    type Error = DieselError;
    fn try_from(row: UserRow) -> Result<Self, DieselError> {
        let id = UserId::parse_str(&row.id)
            .map_err(|e| DieselError::DeserializationError(Box::new(e)))?;
        Ok(StoredUser {
            user: User {
                id,
                email: row.email,
                is_active: row.is_active,
                is_superuser: row.is_superuser,
                is_verified: row.is_verified,
            },
            hashed_password: row.hashed_password,
            tokens_valid_after: row.tokens_valid_after,
        })
    }
}

/// A user to create. `email_key` is the lower-cased normalised email.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: String,
    pub email: String,
    pub email_key: String,
    pub hashed_password: String,
    pub is_active: bool,
    pub is_superuser: bool,
    pub is_verified: bool,
    pub tokens_valid_after: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Fields to change; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub email: Option<String>,
    pub email_key: Option<String>,
    pub hashed_password: Option<String>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub is_verified: Option<bool>,
    pub tokens_valid_after: Option<i64>,
    pub updated_at: Option<i64>,
}

impl UserChanges {
    fn is_empty(&self) -> bool {
        self.email.is_none()
            && self.email_key.is_none()
            && self.hashed_password.is_none()
            && self.is_active.is_none()
            && self.is_superuser.is_none()
            && self.is_verified.is_none()
            && self.tokens_valid_after.is_none()
    }
}

/// Inserts a user. A duplicate email surfaces as a unique violation
/// (see [`crate::is_unique_violation`]); nothing is written then.
pub fn insert(conn: &mut DbConnection, new: &NewUser) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(new)
        .execute(conn)
        .map(|_| ())
}

/// Creates a user with its effects, in one transaction. A duplicate email is a unique
/// violation and writes nothing.
pub fn create(conn: &mut DbConnection, new: &NewUser, effects: &Effects) -> QueryResult<()> {
    transaction(conn, effects, |c| insert(c, new))
}

pub fn find_by_id(conn: &mut DbConnection, id: UserId) -> QueryResult<Option<StoredUser>> {
    users::table
        .find(id.to_string())
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(StoredUser::try_from)
        .transpose()
}

pub fn find_by_email_key(conn: &mut DbConnection, key: &str) -> QueryResult<Option<StoredUser>> {
    users::table
        .filter(users::email_key.eq(key))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(StoredUser::try_from)
        .transpose()
}

/// What the check of an access token needs to know, found in one round trip.
#[derive(Debug, Clone)]
pub struct TokenCheck {
    pub user: StoredUser,
    /// That very token was revoked (logout of a token without a session).
    pub revoked: bool,
    /// The token's session, if it names one that belongs to the user.
    pub session: Option<crate::sessions::SessionRow>,
}

/// The user an access token names, whether that very token was revoked, and the
/// session it names (if any): one query for the check made on every authenticated
/// request.
pub fn find_for_token(
    conn: &mut DbConnection,
    id: UserId,
    token_hash: &str,
    session_id: Option<&str>,
) -> QueryResult<Option<TokenCheck>> {
    use crate::schema::sessions;
    let revoked = diesel::dsl::exists(
        revoked_tokens::table.filter(revoked_tokens::token_hash.eq(token_hash.to_owned())),
    );
    // no session has the empty id: a token without `sid` joins nothing
    let sid = session_id.unwrap_or_default().to_owned();
    users::table
        .left_join(sessions::table.on(sessions::id.eq(sid).and(sessions::user_id.eq(users::id))))
        .filter(users::id.eq(id.to_string()))
        .select((
            UserRow::as_select(),
            revoked,
            Option::<crate::sessions::SessionRow>::as_select(),
        ))
        .first::<(UserRow, bool, Option<crate::sessions::SessionRow>)>(conn)
        .optional()?
        .map(|(row, revoked, session)| {
            StoredUser::try_from(row).map(|user| TokenCheck {
                user,
                revoked,
                session,
            })
        })
        .transpose()
}

/// What one access-token check asks: the user the token names, the token's hash, and
/// the session it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenKey {
    pub user_id: UserId,
    pub token_hash: String,
    pub session_id: Option<String>,
}

/// [`find_for_token`] for many tokens at once, in the order of `keys`. On PostgreSQL
/// one statement answers every key (users and sessions by `= ANY($1)`, prepared once per
/// connection), and a second one the revocations, only when a token without a session
/// is among them (a token with a session is ended with its session, never revoked
/// alone). On SQLite, in-process, each key is its own cached statement.
pub fn find_for_tokens(
    conn: &mut DbConnection,
    keys: &[TokenKey],
) -> QueryResult<Vec<Option<TokenCheck>>> {
    use crate::schema::sessions;
    use crate::sessions::SessionRow;
    if matches!(conn, DbConnection::Sqlite(_)) || keys.len() == 1 {
        return keys
            .iter()
            .map(|k| find_for_token(conn, k.user_id, &k.token_hash, k.session_id.as_deref()))
            .collect();
    }
    let mut user_ids: Vec<String> = keys.iter().map(|k| k.user_id.to_string()).collect();
    user_ids.sort_unstable();
    user_ids.dedup();
    let mut session_ids: Vec<String> = keys.iter().filter_map(|k| k.session_id.clone()).collect();
    session_ids.sort_unstable();
    session_ids.dedup();
    let rows: Vec<(UserRow, Option<SessionRow>)> = users::table
        .left_join(
            sessions::table.on(sessions::user_id
                .eq(users::id)
                .and(sessions::id.eq_any(session_ids))),
        )
        .filter(users::id.eq_any(user_ids))
        .select((UserRow::as_select(), Option::<SessionRow>::as_select()))
        .load(conn)?;
    let unscoped: Vec<String> = keys
        .iter()
        .filter(|k| k.session_id.is_none())
        .map(|k| k.token_hash.clone())
        .collect();
    let revoked: Vec<String> = if unscoped.is_empty() {
        Vec::new()
    } else {
        revoked_tokens::table
            .select(revoked_tokens::token_hash)
            .filter(revoked_tokens::token_hash.eq_any(unscoped))
            .load(conn)?
    };
    keys.iter()
        .map(|k| {
            let id = k.user_id.to_string();
            let mine = rows.iter().filter(|(u, _)| u.id == id);
            let mut user = None;
            let mut session = None;
            for (u, s) in mine {
                user.get_or_insert(u);
                if let Some(s) = s.as_ref().filter(|s| Some(&s.id) == k.session_id.as_ref()) {
                    session = Some(s.clone());
                }
            }
            user.map(|u| {
                StoredUser::try_from(u.clone()).map(|user| TokenCheck {
                    user,
                    revoked: revoked.contains(&k.token_hash),
                    session,
                })
            })
            .transpose()
        })
        .collect()
}

/// Applies `changes`; returns whether the user exists. A new email that another user
/// already has surfaces as a unique violation and changes nothing.
pub fn update(
    conn: &mut DbConnection,
    id: UserId,
    changes: &UserChanges,
    now_ms: i64,
) -> QueryResult<bool> {
    if changes.is_empty() {
        return Ok(find_by_id(conn, id)?.is_some());
    }
    let changes = UserChanges {
        updated_at: Some(now_ms),
        ..changes.clone()
    };
    let n = diesel::update(users::table.find(id.to_string()))
        .set(&changes)
        .execute(conn)?;
    Ok(n > 0)
}

/// Applies `changes` and its effects in one transaction; the user as stored afterwards,
/// or `None` when there is no such user (then nothing is written). A new email another
/// user has is a unique violation and writes nothing.
pub fn apply_update(
    conn: &mut DbConnection,
    id: UserId,
    changes: &UserChanges,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<Option<StoredUser>> {
    transaction(conn, effects, |c| {
        if !update(c, id, changes, now_ms)? {
            return Ok(None);
        }
        find_by_id(c, id)
    })
}

/// Replaces the password hash only if it is still `old` (a re-hash at login must not
/// overwrite a password changed meanwhile). Does not revoke tokens: same password.
pub fn replace_hash_if_unchanged(
    conn: &mut DbConnection,
    id: UserId,
    old: &str,
    new: &str,
) -> QueryResult<bool> {
    let n = diesel::update(
        users::table
            .find(id.to_string())
            .filter(users::hashed_password.eq(old)),
    )
    .set(users::hashed_password.eq(new))
    .execute(conn)?;
    Ok(n > 0)
}

/// Sets a new password if the current hash is still `old` (a reset token is bound to
/// it), revoking every access token issued before `now_ms`, with its effects, in one
/// transaction. Returns whether it changed (a token used meanwhile changes nothing).
pub fn set_password_if_unchanged(
    conn: &mut DbConnection,
    id: UserId,
    old: &str,
    new: &str,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        set_password_if_unchanged_in(c, id, old, new, now_ms)
    })
}

fn set_password_if_unchanged_in(
    conn: &mut DbConnection,
    id: UserId,
    old: &str,
    new: &str,
    now_ms: i64,
) -> QueryResult<bool> {
    let n = diesel::update(
        users::table
            .find(id.to_string())
            .filter(users::hashed_password.eq(old)),
    )
    .set((
        users::hashed_password.eq(new),
        users::tokens_valid_after.eq(now_ms),
        users::updated_at.eq(now_ms),
    ))
    .execute(conn)?;
    Ok(n > 0)
}

/// Marks a user verified, with its effects; returns whether it changed anything.
pub fn mark_verified(
    conn: &mut DbConnection,
    id: UserId,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        let n = diesel::update(
            users::table
                .find(id.to_string())
                .filter(users::is_verified.eq(false)),
        )
        .set((users::is_verified.eq(true), users::updated_at.eq(now_ms)))
        .execute(c)?;
        Ok(n > 0)
    })
}

/// Deletes a user (their revoked tokens and linked accounts go with them), with its
/// effects. Returns whether it existed.
pub fn delete(conn: &mut DbConnection, id: UserId, effects: &Effects) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        let n = diesel::delete(users::table.find(id.to_string())).execute(c)?;
        Ok(n > 0)
    })
}

/// One page of users in a stable order (creation time, then id), optionally only those
/// whose email contains `email_contains` (case-insensitive), with the total count.
pub fn list(
    conn: &mut DbConnection,
    email_contains: Option<&str>,
    offset: i64,
    limit: i64,
) -> QueryResult<(Vec<StoredUser>, i64)> {
    let pattern = email_contains.map(|s| format!("%{}%", escape_like(&s.to_lowercase())));
    let mut count_q = users::table.into_boxed();
    let mut page_q = users::table.into_boxed();
    if let Some(p) = &pattern {
        count_q = count_q.filter(users::email_key.like(p.clone()).escape('\\'));
        page_q = page_q.filter(users::email_key.like(p.clone()).escape('\\'));
    }
    let total: i64 = count_q.count().get_result(conn)?;
    let rows: Vec<UserRow> = page_q
        .order((users::created_at.asc(), users::id.asc()))
        .offset(offset)
        .limit(limit)
        .select(UserRow::as_select())
        .load(conn)?;
    let users = rows
        .into_iter()
        .map(StoredUser::try_from)
        .collect::<QueryResult<Vec<_>>>()?;
    Ok((users, total))
}

fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Number of users (used by the CLI and tests).
pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}
