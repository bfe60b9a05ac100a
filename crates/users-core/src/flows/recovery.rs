//! Password reset and email verification (docs/password-reset-and-verification.md): the
//! requests for mail, and the checks of the tokens those mails carry. The tokens themselves
//! are made by the worker at send time (see `worker.rs`) with `tokens.rs`.

use secrecy::{ExposeSecret, SecretString};
use users_db::users;
use users_domain::email::email_key;
use users_domain::{EmailAddress, Timestamp, User, UserId};

use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::guards::Why;
use crate::hashing::Verification;
use crate::outbox::OutboxItem;
use crate::{Core, Fault};

/// Queues a reset mail for `email` and returns at once, whatever the address: the same
/// work for every address, so neither the answer nor its timing tells whether it is
/// known. The worker sends a mail only to an active user.
pub async fn forgot_password(
    core: &Core,
    email: EmailAddress,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), Fault> {
    queue(
        core,
        OutboxItem::ForgotPassword {
            email: email.into_string(),
            client: client.clone(),
            announced: false,
        },
        client,
        now,
    )
    .await
}

/// Queues a verification mail for `email` (sent only to an active, unverified user).
pub async fn request_verification(
    core: &Core,
    email: EmailAddress,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), Fault> {
    queue(
        core,
        OutboxItem::RequestVerify {
            email: email.into_string(),
            client: client.clone(),
            announced: false,
        },
        client,
        now,
    )
    .await
}

/// The user a token's `sub` names, if it is an id and such a user exists.
async fn user_named(core: &Core, sub: &str) -> Result<Option<users::StoredUser>, Fault> {
    let Ok(id) = UserId::parse_str(sub) else {
        return Ok(None);
    };
    Ok(core.store.run(move |c| users::find_by_id(c, id)).await?)
}

/// Writes `item` alone; its event comes when the worker resolves it.
async fn queue(
    core: &Core,
    item: OutboxItem,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), Fault> {
    let change = Change::new(Vec::new(), client, now).and(item.effects(now)?);
    core.apply(change, |c, raised| {
        users_db::outbox::enqueue(c, raised.effects())
    })
    .await
}

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    /// Invalid, expired, used or stale token; unknown or inactive user.
    #[error("bad reset token")]
    BadToken,
    /// The policy refused the new password; the token stays usable.
    #[error("password refused: {0}")]
    InvalidPassword(String),
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<users_db::DbError> for ResetError {
    fn from(e: users_db::DbError) -> Self {
        ResetError::Fault(e.into())
    }
}

/// Completes a password reset: a valid, unexpired reset token whose fingerprint still
/// matches the current password hash, for an active user; a password the policy
/// accepts. The new hash, the revocation of every earlier access token and the
/// "password changed" mail are one transaction, which also spends the token.
pub async fn reset_password(
    core: &Core,
    token: &str,
    password: SecretString,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), ResetError> {
    let claims = core
        .tokens
        .decode_reset(token, now)
        .map_err(|_| ResetError::BadToken)?;
    let stored = user_named(core, &claims.sub)
        .await?
        .ok_or(ResetError::BadToken)?;
    let id = stored.user.id;
    // fastapi-users' fingerprint: an argon2 (or bcrypt) hash of the stored hash
    let fingerprint = core
        .hasher
        .verify(
            SecretString::from(stored.hashed_password.clone()),
            Some(claims.password_fgpt),
        )
        .await
        .map_err(Fault::from)?;
    if !matches!(fingerprint, Verification::Valid { .. }) || !stored.user.is_active {
        return Err(ResetError::BadToken);
    }
    core.policy
        .check(password.expose_secret(), &stored.user.email)
        .map_err(|r| ResetError::InvalidPassword(r.reason()))?;
    let new_hash = core.hasher.hash(password).await.map_err(Fault::from)?;
    let old_hash = stored.hashed_password;
    let mail = users_mail::Email::password_changed(&core.config.app_name, &stored.user.email);
    let event = Event::new(EventType::PasswordChanged, Some(id)).with("via", "reset");
    let effects = OutboxItem::Email { email: mail }
        .effects(now)?
        .ending_sessions(super::account::end_every_session(id, now, "password_reset"));
    let change = Change::new(vec![event], client, now).and(effects);
    let changed = core
        .apply(change, move |c, raised| {
            // the mail proved the address: what was set up while it was unproven goes too
            let effects = raised.with_cleared(id, Why::UnverifiedAtSetup);
            users::reset_password_if_unchanged(c, id, &old_hash, &new_hash, now.millis(), effects)
        })
        .await?;
    if !changed {
        return Err(ResetError::BadToken); // the token was used meanwhile
    }
    tracing::info!(user_id = %id, "password reset; earlier tokens revoked");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Invalid or expired token, unknown user, or a token made for an address the user
    /// no longer has.
    #[error("bad verification token")]
    BadToken,
    #[error("already verified")]
    AlreadyVerified,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<users_db::DbError> for VerifyError {
    fn from(e: users_db::DbError) -> Self {
        VerifyError::Fault(e.into())
    }
}

/// Verifies the email of the user a verification token names, if the token was made
/// for the user's current email.
pub async fn verify_email(
    core: &Core,
    token: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<User, VerifyError> {
    let claims = core
        .tokens
        .decode_verify(token, now)
        .map_err(|_| VerifyError::BadToken)?;
    let stored = user_named(core, &claims.sub)
        .await?
        .ok_or(VerifyError::BadToken)?;
    let id = stored.user.id;
    if email_key(&claims.email) != email_key(&stored.user.email) {
        return Err(VerifyError::BadToken);
    }
    if stored.user.is_verified {
        return Err(VerifyError::AlreadyVerified);
    }
    let event = Event::new(EventType::EmailVerified, Some(id));
    let changed = core
        .apply(Change::new(vec![event], client, now), move |c, raised| {
            // the mail proved the address: what was set up while it was unproven goes
            let effects = raised.with_cleared(id, Why::UnverifiedAtSetup);
            users::mark_verified(c, id, now.millis(), effects)
        })
        .await?;
    if !changed {
        return Err(VerifyError::AlreadyVerified);
    }
    tracing::info!(user_id = %id, "email verified");
    Ok(User {
        is_verified: true,
        ..stored.user
    })
}
