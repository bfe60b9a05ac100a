//! Revocation of single access tokens (logout).

use diesel::prelude::*;
use users_domain::UserId;

use crate::schema::revoked_tokens;
use crate::{is_unique_violation, DbConnection, Effects};

/// Records `token_hash` as revoked until `expires_at` (seconds since the epoch), and
/// drops entries of tokens that have expired anyway, with `effects` when the token was
/// not revoked yet. Revoking twice is not an error: it returns `false`.
pub fn revoke(
    conn: &mut DbConnection,
    token_hash: &str,
    user_id: UserId,
    expires_at: i64,
    now: i64,
    effects: &Effects,
) -> QueryResult<bool> {
    crate::effects::transaction(conn, effects, |c| {
        diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(now)))
            .execute(c)?;
        // a savepoint: a token revoked twice at once fails its insert, not the
        // transaction (PostgreSQL aborts a transaction on any error)
        let inserted = c.transaction(|c| {
            diesel::insert_into(revoked_tokens::table)
                .values((
                    revoked_tokens::token_hash.eq(token_hash),
                    revoked_tokens::user_id.eq(user_id.to_string()),
                    revoked_tokens::expires_at.eq(expires_at),
                ))
                .execute(c)
        });
        match inserted {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e),
        }
    })
}
