//! API keys (docs/roles-and-api-keys.md): creation, a key as listed and as created once.

use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::{Fields, Validated};

/// `POST /users/me/api-keys`: a name, optionally permissions (within the user's own) and
/// a lifetime in days; the password, or a session younger than 10 minutes.
#[derive(ToSchema)]
pub struct ApiKeyCreate {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[schema(value_type = Option<Vec<String>>)]
    pub permissions: Option<Vec<String>>,
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
}

impl Validated for ApiKeyCreate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let name = f.required_text("name", 1, 100);
        let permissions = f.optional_access_names("permissions");
        let expires_in_days =
            f.optional_int("expires_in_days", 1, users_core::flows::api_keys::MAX_DAYS);
        let password = f.optional_password("password");
        Some(ApiKeyCreate {
            name: name?,
            permissions: permissions?,
            expires_in_days: expires_in_days?,
            password: password?,
        })
    }
}

/// An API key as listed (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyRead {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// The key's first 12 characters.
    pub prefix: String,
    /// `null`: the user's own permissions, as they change.
    pub permissions: Option<Vec<String>>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: users_domain::Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<users_domain::Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<users_domain::Timestamp>,
}

impl From<users_core::flows::api_keys::ApiKeyInfo> for ApiKeyRead {
    fn from(k: users_core::flows::api_keys::ApiKeyInfo) -> Self {
        ApiKeyRead {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            permissions: k.permissions,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A key just made: the key is shown this once (no `Debug`: it must reach no log).
#[derive(Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// `usr_` and 40 base62 characters; shown only here.
    pub key: String,
    pub prefix: String,
    pub permissions: Option<Vec<String>>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: users_domain::Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<users_domain::Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<users_domain::Timestamp>,
}

impl From<users_core::flows::api_keys::CreatedKey> for ApiKeyCreated {
    fn from(c: users_core::flows::api_keys::CreatedKey) -> Self {
        let k = c.info;
        ApiKeyCreated {
            id: k.id,
            name: k.name,
            key: c.key,
            prefix: k.prefix,
            permissions: k.permissions,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
        }
    }
}
