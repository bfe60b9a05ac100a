//! API keys (docs/roles-and-api-keys.md): credentials for scripts and CI, made with
//! re-authentication, shown once, stored as their SHA-256, revoked at once on every
//! replica. A key authenticates a request as its user through the same coalesced check
//! as an access token (`lookup.rs`, `flows::auth::authenticate`); [`verify`] is the
//! check for a caller that needs the key's permissions (the OAuth provider's token
//! exchange).

use secrecy::SecretString;
use users_db::api_keys::{self, ApiKeyRow};
use users_db::DbError;
use users_domain::access::{is_well_formed_api_key, new_api_key, shown_prefix};
use users_domain::crypto::token_hash;
use users_domain::{Timestamp, User, UserId};
use users_mail::SecurityChange;

use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::flows::auth::Authenticated;
use crate::flows::reauth::{self, ReauthError};
use crate::flows::roles;
use crate::outbox::notice;
use crate::{Core, Fault};

/// The longest lifetime a key may be given, in days.
pub const MAX_DAYS: i64 = 3650;

#[derive(Debug, thiserror::Error)]
pub enum ApiKeyError {
    /// Re-authentication: a wrong password.
    #[error("wrong password")]
    BadPassword,
    /// Re-authentication: no password, and no recent sign-in.
    #[error("sign in again first")]
    ReauthenticationRequired,
    #[error("locked")]
    Locked(crate::throttle::Limited),
    /// A permission asked for that the user's roles do not grant.
    #[error("permission not held")]
    PermissionNotHeld,
    /// No key of this user has this id.
    #[error("no such key")]
    NotFound,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<DbError> for ApiKeyError {
    fn from(e: DbError) -> Self {
        ApiKeyError::Fault(e.into())
    }
}

impl From<ReauthError> for ApiKeyError {
    fn from(e: ReauthError) -> Self {
        match e {
            ReauthError::BadPassword => ApiKeyError::BadPassword,
            ReauthError::Required => ApiKeyError::ReauthenticationRequired,
            ReauthError::Locked(l) => ApiKeyError::Locked(l),
            ReauthError::Fault(f) => ApiKeyError::Fault(f),
        }
    }
}

/// A key as its owner sees it (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub prefix: String,
    /// `None`: the user's own permissions, as they change.
    pub permissions: Option<Vec<String>>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

impl From<ApiKeyRow> for ApiKeyInfo {
    fn from(row: ApiKeyRow) -> ApiKeyInfo {
        ApiKeyInfo {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            permissions: row.permissions.as_deref().map(users_db::roles::split),
            created_at: Timestamp::from_millis(row.created_at),
            expires_at: row.expires_at.map(Timestamp::from_millis),
            last_used_at: row.last_used_at.map(Timestamp::from_millis),
        }
    }
}

/// A key just made: what is shown of it, and the key, shown this once (no `Debug`:
/// the key must reach no log).
#[derive(Clone)]
pub struct CreatedKey {
    pub info: ApiKeyInfo,
    pub key: String,
}

/// What a new key is asked with.
#[derive(Debug)]
pub struct NewApiKey {
    pub name: String,
    /// `None`: the user's permissions as they change.
    pub permissions: Option<Vec<String>>,
    /// 1..=[`MAX_DAYS`] (checked by the caller); `None`: it does not expire.
    pub expires_in_days: Option<i64>,
    /// Re-authentication (`flows::reauth`).
    pub password: Option<SecretString>,
}

/// Makes a key for the caller (`api_key.created`, and the notice mail), after
/// re-authentication; the permissions asked must be within the user's own.
#[tracing::instrument(level = "debug", name = "api_keys::create", skip_all)]
pub async fn create(
    core: &Core,
    auth: &Authenticated,
    new: NewApiKey,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<CreatedKey, ApiKeyError> {
    reauth::reauthenticate(core, auth, new.password, now).await?;
    let user = auth.user().clone();
    if let Some(asked) = &new.permissions {
        let held = roles::permissions_of(core, user.id).await?;
        if asked.iter().any(|p| !held.contains(p)) {
            return Err(ApiKeyError::PermissionNotHeld);
        }
    }
    let key = new_api_key();
    let row = ApiKeyRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.to_string(),
        name: new.name.clone(),
        key_hash: token_hash(&key),
        prefix: shown_prefix(&key),
        permissions: new.permissions.as_deref().map(users_db::roles::join),
        created_at: now.millis(),
        expires_at: new
            .expires_in_days
            .map(|days| now.plus_secs(days * 86_400).millis()),
        last_used_at: None,
    };
    let event = Event::new(EventType::ApiKeyCreated, Some(user.id))
        .with("api_key_id", row.id.clone())
        .with("name", row.name.clone())
        .with("prefix", row.prefix.clone());
    let mail = notice(
        core,
        &user.email,
        SecurityChange::ApiKeyCreated {
            name: new.name.clone(),
        },
        now,
    )?;
    let change = Change::new(vec![event], client, now).and(mail);
    let stored = row.clone();
    let created = core
        .apply(change, move |c, raised| {
            api_keys::create(c, &stored, raised.effects())
        })
        .await?;
    if !created {
        return Err(Fault::internal("the user of a new API key is gone").into());
    }
    tracing::info!(user_id = %user.id, api_key_id = %row.id, "API key created");
    Ok(CreatedKey {
        info: ApiKeyInfo::from(row),
        key,
    })
}

/// The user's keys, newest first.
#[tracing::instrument(level = "debug", name = "api_keys::list", skip_all)]
pub async fn list(core: &Core, user: UserId) -> Result<Vec<ApiKeyInfo>, Fault> {
    let rows = core.store.run(move |c| api_keys::of_user(c, user)).await?;
    Ok(rows.into_iter().map(ApiKeyInfo::from).collect())
}

/// Revokes the user's key `id` (`api_key.revoked`; `by` a superuser, or `None` for the
/// owner): it stops at once, on every replica.
#[tracing::instrument(level = "debug", name = "api_keys::revoke", skip_all)]
pub async fn revoke(
    core: &Core,
    user: UserId,
    id: &str,
    by: Option<UserId>,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), ApiKeyError> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(ApiKeyError::NotFound);
    }
    let key_id = id.to_owned();
    let Some(found) = core
        .store
        .run(move |c| api_keys::find_of_user(c, user, &key_id))
        .await?
    else {
        return Err(ApiKeyError::NotFound);
    };
    let event = Event::new(EventType::ApiKeyRevoked, Some(user))
        .by(by)
        .with("api_key_id", found.id.clone())
        .with("name", found.name.clone())
        .with("prefix", found.prefix.clone());
    let change = Change::new(vec![event], client, now);
    let key_id = found.id;
    let revoked = core
        .apply(change, move |c, raised| {
            api_keys::revoke(c, user, &key_id, raised.effects())
        })
        .await?;
    if !revoked {
        return Err(ApiKeyError::NotFound);
    }
    tracing::info!(user_id = %user, "API key revoked");
    Ok(())
}

/// A key that checks out: its user, and the permissions it holds now.
#[derive(Debug, Clone)]
pub struct VerifiedKey {
    pub user: User,
    pub key_id: String,
    /// The key's permissions that the user's roles still grant; all of the user's own
    /// for a key made without a list. Sorted.
    pub permissions: Vec<String>,
}

/// Checks an API key string: its format and checksum first (a malformed key costs no
/// database read), then the key (not revoked, not expired) and its user (active).
/// `None` for any refusal. For callers that need the key's permissions (the OAuth
/// provider's token exchange); the first-party routes authenticate keys through
/// `flows::auth::authenticate`.
#[tracing::instrument(level = "debug", name = "api_keys::verify", skip_all)]
pub async fn verify(core: &Core, key: &str, now: Timestamp) -> Result<Option<VerifiedKey>, Fault> {
    if !is_well_formed_api_key(key) {
        return Ok(None);
    }
    let hash = token_hash(key);
    let found = core
        .store
        .run(move |c| -> Result<_, DbError> {
            let Some((row, stored)) = api_keys::find_by_hash(c, &hash)? else {
                return Ok(None);
            };
            let held = users_db::roles::of_user(c, stored.user.id)?;
            Ok(Some((row, stored, held)))
        })
        .await?;
    let Some((row, stored, held)) = found else {
        return Ok(None);
    };
    if row.is_expired(now.millis()) || !stored.user.is_active {
        return Ok(None);
    }
    let mut held: Vec<String> = held.iter().flat_map(|r| r.permission_list()).collect();
    held.sort_unstable();
    held.dedup();
    let permissions = match row.permissions.as_deref().map(users_db::roles::split) {
        None => held,
        Some(own) => own.into_iter().filter(|p| held.contains(p)).collect(),
    };
    Ok(Some(VerifiedKey {
        user: stored.user,
        key_id: row.id,
        permissions,
    }))
}
