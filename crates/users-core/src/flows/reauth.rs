//! Re-authentication for sensitive changes (docs/security.md): adding or removing a
//! passkey, starting TOTP, making an API key. A stolen access token alone must not
//! become a lasting way in, so such a change needs the password again, or a session
//! signed in moments ago.

use secrecy::SecretString;
use users_domain::Timestamp;

use crate::flows::auth::Authenticated;
use crate::hashing::Verification;
use crate::throttle::{self, Limited, ThrottleError};
use crate::{Core, Fault};

/// How recent a sign-in must be to stand in for the password.
pub const RECENT_SIGN_IN_SECS: i64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum ReauthError {
    /// A password was given and it is wrong (or the user has none).
    #[error("wrong password")]
    BadPassword,
    /// No password was given and the session was not signed in recently enough (or
    /// the token has no session).
    #[error("sign in again first")]
    Required,
    #[error("locked")]
    Locked(Limited),
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<ThrottleError> for ReauthError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Limited(l) => ReauthError::Locked(l),
            ThrottleError::Fault(f) => ReauthError::Fault(f),
        }
    }
}

impl From<users_db::DbError> for ReauthError {
    fn from(e: users_db::DbError) -> Self {
        ReauthError::Fault(e.into())
    }
}

/// Passes with the right `password` (whatever the session's age; a wrong one counts
/// toward the account's lock like a failed sign-in), or without one when the request's
/// session was signed in less than [`RECENT_SIGN_IN_SECS`] ago.
#[tracing::instrument(level = "debug", name = "reauth::reauthenticate", skip_all)]
pub async fn reauthenticate(
    core: &Core,
    auth: &Authenticated,
    password: Option<SecretString>,
    now: Timestamp,
) -> Result<(), ReauthError> {
    let stored = &auth.stored;
    if let Some(password) = password {
        let key = users_domain::email::email_key(&stored.user.email);
        let attempt = throttle::begin_attempt(core, &key, now).await?;
        let verification = core
            .hasher
            .verify(password, Some(stored.hashed_password.clone()))
            .await
            .map_err(Fault::from)?;
        if !matches!(verification, Verification::Valid { .. }) {
            tracing::info!(user_id = %stored.user.id, "re-authentication with a wrong password");
            return Err(ReauthError::BadPassword);
        }
        throttle::undo_attempt(core, &key, attempt).await?;
        return Ok(());
    }
    let Some(sid) = auth.session_id().map(str::to_owned) else {
        return Err(ReauthError::Required);
    };
    let session = core
        .store
        .run(move |c| users_db::sessions::find(c, &sid))
        .await?;
    match session {
        Some(s) if now.millis() - s.created_at < RECENT_SIGN_IN_SECS * 1000 => Ok(()),
        _ => Err(ReauthError::Required),
    }
}
