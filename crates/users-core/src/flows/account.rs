//! Reading and changing accounts: the current user's own changes and the superuser's.

use secrecy::{ExposeSecret, SecretString};
use users_db::users::{self, StoredUser, Updated, UserChanges};
use users_db::{DbError, Effects};
use users_domain::email::email_key;
use users_domain::{EmailAddress, Timestamp, User, UserId};

use users_mail::SecurityChange;

use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::outbox::{notice, OutboxItem};
use crate::{Core, Fault};

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
        UpdateError::Fault(e.into())
    }
}

/// The user with this id, if any.
#[tracing::instrument(level = "debug", name = "account::find", skip_all)]
pub async fn find(core: &Core, id: UserId) -> Result<Option<StoredUser>, Fault> {
    Ok(core.store.run(move |c| users::find_by_id(c, id)).await?)
}

/// Applies `changes` to `target`. A new email clears `is_verified` (the same email,
/// in any case, changes nothing of it); a new password revokes every token issued
/// before it and mails a notice, in the same transaction.
#[tracing::instrument(level = "debug", name = "account::update", skip_all)]
pub async fn update(
    core: &Core,
    target: &StoredUser,
    changes: Changes,
    actor: Actor,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<User, UpdateError> {
    let id = target.user.id;
    let new_email = changes
        .email
        .clone()
        .filter(|e| e.as_str() != target.user.email);
    if let Some(password) = &changes.password {
        let email = new_email
            .as_ref()
            .map_or(target.user.email.as_str(), |e| e.as_str());
        core.policy
            .check(password.expose_secret(), email)
            .map_err(|r| UpdateError::InvalidPassword(r.reason()))?;
    }
    let mut row = row_of(core, target, new_email, &changes, actor).await?;
    let by = match actor {
        Actor::Owner => None,
        Actor::Superuser(admin) => Some(admin),
    };
    let events = events_of(&target.user, &row, changes.password.is_some(), by);
    let mut effects = email_notices(core, &target.user, &row, now)?;
    if let Some(password) = changes.password {
        row.hashed_password = Some(core.hasher.hash(password).await.map_err(Fault::from)?);
        row.tokens_valid_after = Some(now.millis());
        let email = row.email.as_deref().unwrap_or(&target.user.email);
        let mail = users_mail::Email::password_changed(&core.config.app_name, email);
        effects = effects
            .and(OutboxItem::Email { email: mail }.effects(now)?)
            .ending_sessions(end_every_session(id, now, "password_changed"));
    }
    if row.is_active == Some(false) && target.user.is_active {
        // a deactivated user, once reactivated, must sign in again
        row.tokens_valid_after = Some(now.millis());
        effects = effects.ending_sessions(end_every_session(id, now, "deactivated"));
    }
    let change = Change::new(events, client, now).and(effects);
    let updated = core
        .apply(change, move |c, raised| {
            users::apply_update(c, id, &row, now.millis(), raised.effects())
        })
        .await?;
    match updated {
        Updated::Updated(user) => {
            tracing::info!(user_id = %id, "user updated");
            Ok(user.user)
        }
        Updated::NoSuchUser => Err(UpdateError::NotFound),
        Updated::EmailTaken => Err(UpdateError::EmailAlreadyExists),
    }
}

/// The columns a change sets, but the password's: a new email (unverified unless only
/// its case changed), and the flags when a superuser makes it.
async fn row_of(
    core: &Core,
    target: &StoredUser,
    new_email: Option<EmailAddress>,
    changes: &Changes,
    actor: Actor,
) -> Result<UserChanges, UpdateError> {
    let mut row = UserChanges::default();
    if let Some(email) = new_email {
        let key = email.key();
        if key != email_key(&target.user.email) {
            let lookup_key = key.clone();
            let taken = core
                .store
                .run(move |c| users::find_by_email_key(c, &lookup_key).map(|u| u.is_some()))
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
    Ok(row)
}

/// `user.updated` when a field changes, `password.changed` for a new password.
fn events_of(user: &User, row: &UserChanges, password: bool, by: Option<UserId>) -> Vec<Event> {
    let id = user.id;
    let mut events = Vec::new();
    let fields = changed_fields(user, row, password);
    if !fields.is_empty() {
        events.push(
            Event::new(EventType::UserUpdated, Some(id))
                .by(by)
                .with("fields", fields),
        );
    }
    if password {
        let via = if by.is_some_and(|b| b != id) {
            "admin"
        } else {
            "self"
        };
        events.push(
            Event::new(EventType::PasswordChanged, Some(id))
                .by(by)
                .with("via", via),
        );
    }
    events
}

/// A new email: both addresses hear of it, the old one in case it was not the owner's
/// doing.
fn email_notices(
    core: &Core,
    user: &User,
    row: &UserChanges,
    now: Timestamp,
) -> Result<Effects, Fault> {
    let Some(new) = row.email.as_deref().filter(|e| *e != user.email) else {
        return Ok(Effects::none());
    };
    let from = SecurityChange::EmailChangedFrom {
        new: new.to_owned(),
    };
    Ok(notice(core, &user.email, from, now)?.and(notice(
        core,
        new,
        SecurityChange::EmailChangedTo,
        now,
    )?))
}

/// The names of the fields a change sets to something new (never their values).
fn changed_fields(user: &User, row: &UserChanges, password: bool) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if row.email.as_deref().is_some_and(|e| e != user.email) {
        fields.push("email");
    }
    if password {
        fields.push("password");
    }
    let flags = [
        ("is_active", row.is_active, user.is_active),
        ("is_superuser", row.is_superuser, user.is_superuser),
        ("is_verified", row.is_verified, user.is_verified),
    ];
    for (name, new, old) in flags {
        if new.is_some_and(|n| n != old) {
            fields.push(name);
        }
    }
    fields
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
        grants: true,
    }
}

/// Deletes a user (their sessions, links and revocations go with them); `false` when
/// there was none.
#[tracing::instrument(level = "debug", name = "account::delete", skip_all)]
pub async fn delete(
    core: &Core,
    id: UserId,
    by: UserId,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<bool, Fault> {
    let event = Event::new(EventType::UserDeleted, Some(id)).by(Some(by));
    let change = Change::new(vec![event], client, now);
    let deleted = core
        .apply(change, move |c, raised| {
            users::delete(c, id, raised.effects())
        })
        .await?;
    if deleted {
        tracing::info!(user_id = %id, by = %by, "user deleted");
    }
    Ok(deleted)
}

/// One page of users in creation order, optionally only those whose email contains
/// `email_contains` (case-insensitive), with the total count.
#[tracing::instrument(level = "debug", name = "account::list", skip_all)]
pub async fn list(
    core: &Core,
    email_contains: Option<String>,
    page: i64,
    per_page: i64,
) -> Result<(Vec<User>, i64), Fault> {
    let (items, total) = core
        .store
        .run(move |c| {
            users::list(
                c,
                email_contains.as_deref(),
                (page - 1) * per_page,
                per_page,
            )
        })
        .await?;
    Ok((items.into_iter().map(|s| s.user).collect(), total))
}
