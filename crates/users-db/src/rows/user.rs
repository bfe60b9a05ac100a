//! A user's row as read, and the user it stands for: the users, sessions and sign-in
//! queries all return them.

use diesel::prelude::*;
use diesel::result::Error as DieselError;
use users_domain::{User, UserId};

use crate::schema::users;

/// The columns of a user that are read.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users)]
pub(crate) struct UserRow {
    pub(crate) id: String,
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
