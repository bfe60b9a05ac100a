//! Access-token signing keys (asymmetric `JWT_ALGORITHM`), shared by every replica.

use diesel::prelude::*;

use crate::schema::signing_keys;
use crate::DbConnection;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys)]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    /// The PKCS#8 PEM, sealed.
    pub private_key_sealed: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub active_from: i64,
}

pub fn insert(conn: &mut DbConnection, row: &SigningKeyRow) -> QueryResult<()> {
    diesel::insert_into(signing_keys::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Every key of `algorithm`, oldest first.
pub fn of_algorithm(conn: &mut DbConnection, algorithm: &str) -> QueryResult<Vec<SigningKeyRow>> {
    signing_keys::table
        .filter(signing_keys::algorithm.eq(algorithm))
        .order((signing_keys::active_from.asc(), signing_keys::kid.asc()))
        .select(SigningKeyRow::as_select())
        .load(conn)
}
