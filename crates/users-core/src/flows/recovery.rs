//! Password reset and email verification (docs/password-reset-and-verification.md): the
//! requests for mail; their resolution when the mail worker takes them (the user, the
//! quota, the request's event, the token minted at send time: `worker.rs` only claims,
//! retries and sends); and the checks of the tokens those mails carry.

use secrecy::{ExposeSecret, SecretString};
use users_db::outbox::{self, Announced, MailQuota};
use users_db::users::{self, StoredUser};
use users_domain::email::email_key;
use users_domain::{EmailAddress, Timestamp, User, UserId};
use users_mail::Email;

use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::guards::Why;
use crate::hashing::Verification;
use crate::outbox::{with_token, OutboxItem};
use crate::{Core, Counters, Fault};

/// Queues a reset mail for `email` and returns at once, whatever the address: the same
/// work for every address, so neither the answer nor its timing tells whether it is
/// known. The worker sends a mail only to an active user.
#[tracing::instrument(level = "debug", name = "recovery::forgot_password", skip_all)]
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
#[tracing::instrument(level = "debug", name = "recovery::request_verification", skip_all)]
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

/// At most this many reset mails, and as many verification mails, go to one address in
/// any [`MAIL_QUOTA_WINDOW_MS`]: a stream of requests cannot flood an inbox, and two
/// requests in a row still mail twice (docs/security.md).
pub const MAIL_QUOTA: i64 = 3;
pub const MAIL_QUOTA_WINDOW_MS: i64 = 15 * 60 * 1000;

/// What the mail worker does with a row it holds.
pub(crate) enum Resolved {
    Send(Email),
    /// Nothing to send: no such active user, nothing to verify, or over the quota.
    Drop,
}

/// The outbox row a mail worker holds (its lease), which a resolved request marks
/// announced.
pub(crate) struct Held<'a> {
    pub(crate) row: &'a str,
    pub(crate) worker: &'a str,
}

/// A forgot-password request, when the worker takes it: a reset mail for an active
/// user, with a token minted now.
pub(crate) async fn resolve_reset(
    core: &Core,
    held: &Held<'_>,
    email: String,
    client: ClientInfo,
    announced: bool,
    now: Timestamp,
) -> Result<Resolved, String> {
    let Some(user) = lookup(core, &email).await? else {
        return Ok(Resolved::Drop);
    };
    if !user.user.is_active {
        return Ok(Resolved::Drop);
    }
    if !announced {
        let event = Event::new(EventType::PasswordResetRequested, Some(user.user.id));
        let done = OutboxItem::ForgotPassword {
            email,
            client: client.clone(),
            announced: true,
        };
        if !announce(core, held, done, &user, event, &client, now).await? {
            return Ok(Resolved::Drop);
        }
    }
    // fastapi-users' fingerprint: a hash of the stored hash, so that any password
    // change kills the token
    let fgpt = core
        .hasher
        .hash(SecretString::from(user.hashed_password.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let c = &core.config;
    let expires = now.plus_secs(c.reset_token_lifetime_seconds);
    let token = core
        .tokens
        .issue_reset(user.user.id, fgpt, expires)
        .map_err(|e| e.to_string())?;
    Ok(Resolved::Send(Email::reset_password(
        &c.app_name,
        &user.user.email,
        &with_token(&c.reset_password_url, &token),
        minutes(c.reset_token_lifetime_seconds),
    )))
}

/// A verification request, when the worker takes it: a verification mail for an
/// active, unverified user, with a token minted now for the address they have now.
pub(crate) async fn resolve_verification(
    core: &Core,
    held: &Held<'_>,
    email: String,
    client: ClientInfo,
    announced: bool,
    now: Timestamp,
) -> Result<Resolved, String> {
    let Some(user) = lookup(core, &email).await? else {
        return Ok(Resolved::Drop);
    };
    if !user.user.is_active || user.user.is_verified {
        return Ok(Resolved::Drop);
    }
    if !announced {
        let event = Event::new(EventType::EmailVerificationRequested, Some(user.user.id));
        let done = OutboxItem::RequestVerify {
            email,
            client: client.clone(),
            announced: true,
        };
        if !announce(core, held, done, &user, event, &client, now).await? {
            return Ok(Resolved::Drop);
        }
    }
    let c = &core.config;
    let expires = now.plus_secs(c.verify_token_lifetime_seconds);
    let token = core
        .tokens
        .issue_verify(user.user.id, &user.user.email, expires)
        .map_err(|e| e.to_string())?;
    Ok(Resolved::Send(Email::verify_email(
        &c.app_name,
        &user.user.email,
        &with_token(&c.verify_url, &token),
        minutes(c.verify_token_lifetime_seconds),
    )))
}

/// Admits the mail of a request that resolved to a user, if the address is within its
/// quota ([`MAIL_QUOTA`] of the kind in [`MAIL_QUOTA_WINDOW_MS`]); then records the
/// request's event and marks the row `done` (announced), so that a retry neither counts
/// nor records it again. `false`: over the quota, nothing to send.
async fn announce(
    core: &Core,
    held: &Held<'_>,
    done: OutboxItem,
    user: &StoredUser,
    event: Event,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<bool, String> {
    let quota = MailQuota {
        user_id: user.user.id,
        email_key: email_key(&user.user.email),
        kind: done.kind().to_owned(),
        now_ms: now.millis(),
        window_ms: MAIL_QUOTA_WINDOW_MS,
        max: MAIL_QUOTA,
    };
    let payload = serde_json::to_string(&done).map_err(|e| e.to_string())?;
    let (id, worker) = (held.row.to_owned(), held.worker.to_owned());
    let announced = core
        .apply(Change::new(vec![event], client, now), move |c, raised| {
            let effects = raised.effects();
            outbox::announce_within_quota(c, &id, &worker, &payload, &quota, effects)
        })
        .await
        .map_err(|e| e.to_string())?;
    match announced {
        Announced::Yes => Ok(true),
        Announced::OverQuota => {
            Counters::inc(&core.counters.mails_over_quota);
            tracing::warn!(kind = %done.kind(), "mail not sent: the address had its quota of this kind");
            Ok(false)
        }
        Announced::LeaseLost => Err("the row's lease was lost".to_owned()),
    }
}

/// The user with this address, if any.
async fn lookup(core: &Core, email: &str) -> Result<Option<StoredUser>, String> {
    let key = email_key(email);
    core.store
        .run(move |c| users::find_by_email_key(c, &key))
        .await
        .map_err(|e| e.to_string())
}

/// A token's lifetime as the mail states it.
fn minutes(seconds: i64) -> u64 {
    (seconds.max(60) / 60) as u64
}

/// The user a token's `sub` names, if it is an id and such a user exists.
async fn user_named(core: &Core, sub: &str) -> Result<Option<StoredUser>, Fault> {
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
#[tracing::instrument(level = "debug", name = "recovery::reset_password", skip_all)]
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
#[tracing::instrument(level = "debug", name = "recovery::verify_email", skip_all)]
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
