//! API keys (docs/roles-and-api-keys.md): stored as the key's SHA-256, never the key. A
//! revoked key's row is deleted, so the check of every request (see
//! [`crate::users::find_for_credentials`]) stops finding it at once.

use diesel::prelude::*;
use users_domain::UserId;

use crate::effects::transaction;
use crate::rows::user::{StoredUser, UserRow};

pub use crate::rows::api_key::ApiKeyRow;
use crate::schema::{api_keys, users};
use crate::{DbConnection, Effects};

/// Stores a new key of `row.user_id`, with its effects, marked when the user's address is
/// unproven (see [`crate::guards`]). `false` when the user does not exist (nothing is
/// written).
pub fn create(conn: &mut DbConnection, row: &ApiKeyRow, effects: &Effects) -> QueryResult<bool> {
    let user_id = UserId::parse_str(&row.user_id)
        .map_err(|e| diesel::result::Error::QueryBuilderError(Box::new(e)))?;
    transaction(conn, effects, |c| {
        if !crate::users::lock(c, user_id)? {
            return Ok(false);
        }
        let unverified = crate::guards::unverified(c, user_id)?;
        diesel::insert_into(api_keys::table)
            .values((row, api_keys::unverified_at_setup.eq(unverified)))
            .execute(c)?;
        Ok(true)
    })
}

/// The user's keys, newest first.
pub fn of_user(conn: &mut DbConnection, user_id: UserId) -> QueryResult<Vec<ApiKeyRow>> {
    api_keys::table
        .filter(api_keys::user_id.eq(user_id.to_string()))
        .order((api_keys::created_at.desc(), api_keys::id.desc()))
        .select(ApiKeyRow::as_select())
        .load(conn)
}

/// One key of the user's.
pub fn find_of_user(
    conn: &mut DbConnection,
    user_id: UserId,
    id: &str,
) -> QueryResult<Option<ApiKeyRow>> {
    api_keys::table
        .find(id)
        .filter(api_keys::user_id.eq(user_id.to_string()))
        .select(ApiKeyRow::as_select())
        .first(conn)
        .optional()
}

/// The key with this hash and its user.
pub fn find_by_hash(
    conn: &mut DbConnection,
    key_hash: &str,
) -> QueryResult<Option<(ApiKeyRow, StoredUser)>> {
    api_keys::table
        .inner_join(users::table)
        .filter(api_keys::key_hash.eq(key_hash))
        .select((ApiKeyRow::as_select(), UserRow::as_select()))
        .first::<(ApiKeyRow, UserRow)>(conn)
        .optional()?
        .map(|(k, u)| StoredUser::try_from(u).map(|u| (k, u)))
        .transpose()
}

/// Revokes (deletes) the user's key `id`, with its effects; whether there was one.
pub fn revoke(
    conn: &mut DbConnection,
    user_id: UserId,
    id: &str,
    effects: &Effects,
) -> QueryResult<bool> {
    transaction(conn, effects, |c| {
        let n = diesel::delete(
            api_keys::table
                .find(id)
                .filter(api_keys::user_id.eq(user_id.to_string())),
        )
        .execute(c)?;
        Ok(n > 0)
    })
}

/// Records the use of these keys at `now_ms`, those not recorded since
/// `stale_before_ms` (one conditional statement; a busy key is not written on every
/// request). Returns how many were.
pub fn touch_many(
    conn: &mut DbConnection,
    ids: &[String],
    now_ms: i64,
    stale_before_ms: i64,
) -> QueryResult<usize> {
    match conn {
        // a key another transaction holds (a revocation) is skipped, not waited for, as
        // the sessions' touch does (docs/sessions-and-tokens.md#last-use)
        DbConnection::Postgresql(pg) => diesel::sql_query(
            "UPDATE api_keys SET last_used_at = $1 WHERE id IN (SELECT id FROM api_keys \
                 WHERE id = ANY($2) AND (last_used_at IS NULL OR last_used_at < $3) \
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind::<diesel::sql_types::BigInt, _>(now_ms)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(ids)
        .bind::<diesel::sql_types::BigInt, _>(stale_before_ms)
        .execute(pg),
        DbConnection::Sqlite(_) => diesel::update(
            api_keys::table.filter(api_keys::id.eq_any(ids)).filter(
                api_keys::last_used_at
                    .is_null()
                    .or(api_keys::last_used_at.lt(stale_before_ms)),
            ),
        )
        .set(api_keys::last_used_at.eq(now_ms))
        .execute(conn),
    }
}
