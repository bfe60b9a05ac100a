//! The users table. The lookups of the per-request credential check (an access token
//! or an API key, one at a time or in batches) are `credentials`.

mod credentials;

pub use credentials::*;

use diesel::prelude::*;
use users_domain::email::email_key;
use users_domain::{User, UserId};

use crate::effects::{or_taken, transaction, Happened};
use crate::guards::{self, Cleared};
use crate::rows::user::UserRow;
use crate::schema::users;
use crate::{DbConnection, Effects};

pub use crate::rows::user::StoredUser;

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

impl NewUser {
    /// `user`, with this password hash, created at `now_ms`. No token of theirs is
    /// refused for its age (`tokens_valid_after` 0).
    pub fn new(user: &User, hashed_password: String, now_ms: i64) -> NewUser {
        NewUser {
            id: user.id.to_string(),
            email: user.email.clone(),
            email_key: email_key(&user.email),
            hashed_password,
            is_active: user.is_active,
            is_superuser: user.is_superuser,
            is_verified: user.is_verified,
            tokens_valid_after: 0,
            created_at: now_ms,
            updated_at: now_ms,
        }
    }
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

/// The first statement of a transaction that reads before it writes, about one user: on
/// SQLite it takes the write lock (waiting for it, as `busy_timeout` allows) before
/// anything is read, so the transaction never fails for a write another connection
/// committed after its first read; on PostgreSQL it serialises the changes of one
/// user. Returns whether the user exists.
pub(crate) fn lock(conn: &mut DbConnection, id: UserId) -> QueryResult<bool> {
    diesel::update(users::table.find(id.to_string()))
        .set(users::updated_at.eq(users::updated_at))
        .execute(conn)
        .map(|n| n > 0)
}

/// Inserts a user. A duplicate email surfaces as a unique violation
/// (see [`crate::is_unique_violation`]); nothing is written then.
pub fn insert(conn: &mut DbConnection, new: &NewUser) -> QueryResult<()> {
    diesel::insert_into(users::table)
        .values(new)
        .execute(conn)
        .map(|_| ())
}

/// What [`create`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    Created,
    /// Another user has the email (in any case): nothing was written.
    EmailTaken,
}

impl Happened for Created {
    fn happened(&self) -> bool {
        *self == Created::Created
    }
}

/// Creates a user with its effects, in one transaction.
pub fn create(conn: &mut DbConnection, new: &NewUser, effects: &Effects) -> QueryResult<Created> {
    let created = transaction(conn, effects, |c| insert(c, new).map(|()| Created::Created));
    or_taken(created, Created::EmailTaken)
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

/// What [`apply_update`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Updated {
    /// The user as stored afterwards.
    Updated(StoredUser),
    /// No such user: nothing was written.
    NoSuchUser,
    /// The new email belongs to another user: nothing was written.
    EmailTaken,
}

impl Happened for Updated {
    fn happened(&self) -> bool {
        matches!(self, Updated::Updated(_))
    }
}

/// Applies `changes` and its effects in one transaction.
pub fn apply_update(
    conn: &mut DbConnection,
    id: UserId,
    changes: &UserChanges,
    now_ms: i64,
    effects: &Effects,
) -> QueryResult<Updated> {
    let updated = transaction(conn, effects, |c| {
        if !update(c, id, changes, now_ms)? {
            return Ok(Updated::NoSuchUser);
        }
        if changes.is_verified == Some(true) {
            guards::vouch_for_setup(c, id)?;
        }
        Ok(find_by_id(c, id)?.map_or(Updated::NoSuchUser, Updated::Updated))
    });
    or_taken(updated, Updated::EmailTaken)
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
/// transaction. The reset proves the address: what was set up while it was unproven
/// goes with it ([`guards::clear_unproven`]), and `effects` gets what was cleared.
/// Returns whether it changed (a token used meanwhile changes nothing).
pub fn reset_password_if_unchanged(
    conn: &mut DbConnection,
    id: UserId,
    old: &str,
    new: &str,
    now_ms: i64,
    effects: impl FnOnce(&Cleared) -> Result<Effects, String>,
) -> QueryResult<bool> {
    conn.transaction(|c| {
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
        .execute(c)?;
        if n == 0 {
            return Ok(false);
        }
        let cleared = guards::clear_unproven(c, id, now_ms)?;
        guards::effects_of(effects, &cleared)?.write(c)?;
        Ok(true)
    })
}

/// Marks a user verified, with its effects; returns whether it changed anything. The
/// verification proves the address: what was set up while it was unproven goes with it
/// ([`guards::clear_unproven`]), and `effects` gets what was cleared.
pub fn mark_verified(
    conn: &mut DbConnection,
    id: UserId,
    now_ms: i64,
    effects: impl FnOnce(&Cleared) -> Result<Effects, String>,
) -> QueryResult<bool> {
    conn.transaction(|c| {
        let n = diesel::update(
            users::table
                .find(id.to_string())
                .filter(users::is_verified.eq(false)),
        )
        .set((users::is_verified.eq(true), users::updated_at.eq(now_ms)))
        .execute(c)?;
        if n == 0 {
            return Ok(false);
        }
        let cleared = guards::clear_at_verification(c, id, now_ms)?;
        guards::effects_of(effects, &cleared)?.write(c)?;
        Ok(true)
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
