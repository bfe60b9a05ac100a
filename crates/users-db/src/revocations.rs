//! Revocation of single access tokens (logout).

use diesel::prelude::*;
use users_domain::UserId;

use crate::schema::revoked_tokens;
use crate::{is_unique_violation, DbConnection};

/// Records `token_hash` as revoked until `expires_at` (seconds since the epoch), and
/// drops entries of tokens that have expired anyway. Revoking twice is not an error.
pub fn revoke(
    conn: &mut DbConnection,
    token_hash: &str,
    user_id: UserId,
    expires_at: i64,
    now: i64,
) -> QueryResult<()> {
    diesel::delete(revoked_tokens::table.filter(revoked_tokens::expires_at.lt(now)))
        .execute(conn)?;
    let inserted = diesel::insert_into(revoked_tokens::table)
        .values((
            revoked_tokens::token_hash.eq(token_hash),
            revoked_tokens::user_id.eq(user_id.to_string()),
            revoked_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Ok(()),
        Err(e) => Err(e),
    }
}
