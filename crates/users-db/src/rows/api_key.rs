//! An API key's row, as the keys' module and the per-request check read it.

use diesel::prelude::*;

use crate::schema::api_keys;

/// An API key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Insertable)]
#[diesel(table_name = api_keys)]
pub struct ApiKeyRow {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// SHA-256 (hex) of the key.
    pub key_hash: String,
    /// The key's first characters, what its owner knows it by.
    pub prefix: String,
    /// Space-separated; `None`: the user's own permissions, as they change.
    pub permissions: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

impl ApiKeyRow {
    /// Whether the key is past its expiry at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|at| at <= now_ms)
    }
}
