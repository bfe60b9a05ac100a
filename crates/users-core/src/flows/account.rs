//! Reading and changing accounts: the current user's own changes and the superuser's.

use secrecy::{ExposeSecret, SecretString};
use users_db::users::{self, StoredUser, UserChanges};
use users_db::DbError;
use users_domain::email::email_key;
use users_domain::{EmailAddress, Timestamp, User, UserId};

use crate::outbox::OutboxItem;
use crate::{Core, Counters, Fault};

/// A change to a user (fastapi-users' `UserUpdate`). The flags are applied only when a
/// superuser makes the change.
#[derive(Default)]
pub struct Changes {
    pub email: Option<EmailAddress>,
    pub password: Option<SecretString>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub is_verified: Option<bool>,
}

/// Who makes a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The user, on their own account (`/users/me`): the flags are ignored.
    Owner,
    /// A superuser, on any account: every field may be set.
    Superuser(UserId),
}

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    #[error("password refused: {0}")]
    InvalidPassword(String),
    #[error("the email belongs to another user")]
    EmailAlreadyExists,
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<DbError> for UpdateError {
    fn from(e: DbError) -> Self {
        if e.is_unique_violation() {
            UpdateError::EmailAlreadyExists
        } else {
            UpdateError::Fault(e.into())
        }
    }
}

/// The user with this id, if any.
pub async fn find(core: &Core, id: UserId) -> Result<Option<StoredUser>, Fault> {
    Ok(core
        .store
        .run(move |c| Ok(users::find_by_id(c, id)?))
        .await?)
}

/// Applies `changes` to `target`. A new email clears `is_verified` (the same email,
/// in any case, changes nothing of it); a new password revokes every token issued
/// before it and mails a notice, in the same transaction.
pub async fn update(
    core: &Core,
    target: &StoredUser,
    changes: Changes,
    actor: Actor,
    now: Timestamp,
) -> Result<User, UpdateError> {
    let id = target.user.id;
    let current_key = email_key(&target.user.email);
    let new_email = changes.email.filter(|e| e.as_str() != target.user.email);

    if let Some(password) = &changes.password {
        let email = new_email
            .as_ref()
            .map_or(target.user.email.as_str(), |e| e.as_str());
        core.policy
            .check(password.expose_secret(), email)
            .map_err(|r| UpdateError::InvalidPassword(r.reason()))?;
    }

    let mut row = UserChanges::default();
    if let Some(email) = new_email {
        let key = email.key();
        if key != current_key {
            let lookup_key = key.clone();
            let taken = core
                .store
                .run(move |c| Ok(users::find_by_email_key(c, &lookup_key)?.is_some()))
                .await?;
            if taken {
                return Err(UpdateError::EmailAlreadyExists);
            }
            row.is_verified = Some(false);
        }
        row.email = Some(email.into_string());
        row.email_key = Some(key);
    }
    if let Actor::Superuser(_) = actor {
        if changes.is_verified.is_some() {
            row.is_verified = changes.is_verified;
        }
        row.is_active = changes.is_active;
        row.is_superuser = changes.is_superuser;
    }
    let mut effects = users_db::Effects::none();
    if let Some(password) = changes.password {
        row.hashed_password = Some(core.hasher.hash(password).await.map_err(Fault::from)?);
        row.tokens_valid_after = Some(now.millis());
        let email = row.email.as_deref().unwrap_or(&target.user.email);
        let mail = users_mail::Email::password_changed(&core.config.app_name, email);
        effects = OutboxItem::Email { email: mail }
            .effects(now)?
            .ending_sessions(end_every_session(id, now, "password_changed"));
    }
    if row.is_active == Some(false) && target.user.is_active {
        // a deactivated user, once reactivated, must sign in again
        row.tokens_valid_after = Some(now.millis());
        effects = effects.ending_sessions(end_every_session(id, now, "deactivated"));
    }
    let mails = effects.outbox.len();
    let updated = core
        .store
        .run(move |c| Ok(users::apply_update(c, id, &row, now.millis(), &effects)?))
        .await?
        .ok_or(UpdateError::NotFound)?;
    if mails > 0 {
        Counters::inc(&core.counters.mails_queued);
        core.outbox.wake();
    }
    tracing::info!(user_id = %id, "user updated");
    Ok(updated.user)
}

/// Every session of the user ends with the change.
pub(crate) fn end_every_session(
    user_id: UserId,
    now: Timestamp,
    reason: &'static str,
) -> users_db::sessions::EndSessions {
    users_db::sessions::EndSessions {
        user_id,
        except: None,
        now_ms: now.millis(),
        reason,
    }
}

/// Deletes a user (their sessions, links and revocations go with them); `false` when
/// there was none.
pub async fn delete(core: &Core, id: UserId, by: UserId, _now: Timestamp) -> Result<bool, Fault> {
    let deleted = core
        .store
        .run(move |c| Ok(users::delete(c, id, &users_db::Effects::none())?))
        .await?;
    if deleted {
        tracing::info!(user_id = %id, by = %by, "user deleted");
    }
    Ok(deleted)
}

/// One page of users in creation order, optionally only those whose email contains
/// `email_contains` (case-insensitive), with the total count.
pub async fn list(
    core: &Core,
    email_contains: Option<String>,
    page: i64,
    per_page: i64,
) -> Result<(Vec<User>, i64), Fault> {
    let (items, total) = core
        .store
        .run(move |c| {
            Ok(users::list(
                c,
                email_contains.as_deref(),
                (page - 1) * per_page,
                per_page,
            )?)
        })
        .await?;
    Ok((items.into_iter().map(|s| s.user).collect(), total))
}
