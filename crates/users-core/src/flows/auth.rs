//! Password sign-in, sign-out, and the check every authenticated request goes through.

use secrecy::SecretString;
use users_db::users::{self, StoredUser};
use users_domain::email::email_key;
use users_domain::{EmailAddress, Timestamp, User};

use crate::hashing::Verification;
use crate::throttle::{self, Limited, ThrottleError};
use crate::tokens::{token_hash, AccessClaims};
use crate::{Core, Counters, Fault};

/// An authenticated, active user and the access token that proved it.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub stored: StoredUser,
    pub token: String,
    pub claims: AccessClaims,
}

impl Authenticated {
    pub fn user(&self) -> &User {
        &self.stored.user
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, expired or revoked token; unknown or inactive user.
    #[error("unauthorized")]
    Unauthorized,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<users_db::DbError> for AuthError {
    fn from(e: users_db::DbError) -> Self {
        AuthError::Fault(e.into())
    }
}

/// The user an access token names, loaded now, so that deactivation, deletion,
/// promotion and revocation apply to existing tokens at once. One round trip.
pub async fn authenticate(
    core: &Core,
    token: String,
    now: Timestamp,
) -> Result<Authenticated, AuthError> {
    let claims = core
        .tokens
        .decode_access(&token, now)
        .map_err(|_| AuthError::Unauthorized)?;
    let id = users_domain::UserId::parse_str(&claims.sub).map_err(|_| AuthError::Unauthorized)?;
    let hash = token_hash(&token);
    let found = core
        .store
        .run(move |c| Ok(users::find_for_token(c, id, &hash)?))
        .await?;
    let Some((stored, revoked)) = found else {
        return Err(AuthError::Unauthorized);
    };
    if revoked || !stored.user.is_active {
        return Err(AuthError::Unauthorized);
    }
    if claims.issued_at_ms(core.tokens.access_lifetime_seconds) < stored.tokens_valid_after {
        return Err(AuthError::Unauthorized);
    }
    Ok(Authenticated {
        stored,
        token,
        claims,
    })
}

/// What a password sign-in presents (OAuth2's password grant: `username` is the email).
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

/// A successful sign-in.
#[derive(Debug)]
pub struct SignedIn {
    pub user: User,
    pub access_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Wrong password, unknown email or inactive user: indistinguishable on purpose.
    #[error("bad credentials")]
    BadCredentials,
    /// Too many consecutive failures of this account.
    #[error("locked")]
    Locked(Limited),
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<ThrottleError> for LoginError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Limited(l) => LoginError::Locked(l),
            ThrottleError::Fault(f) => LoginError::Fault(f),
        }
    }
}

impl From<users_db::DbError> for LoginError {
    fn from(e: users_db::DbError) -> Self {
        LoginError::Fault(e.into())
    }
}

/// Signs in with an email and a password. Unknown emails are verified against a dummy
/// hash and inactive users refused only after the password check, so every failure
/// costs one argon2 verification; the lock is checked the same way for known and
/// unknown addresses, so it reveals nothing either.
pub async fn login(
    core: &Core,
    credentials: Credentials,
    now: Timestamp,
) -> Result<SignedIn, LoginError> {
    let Credentials { username, password } = credentials;
    let key = EmailAddress::parse(&username)
        .map(|e| e.key())
        .unwrap_or_else(|_| email_key(&username));
    let had_failures = throttle::check_login_lock(core, &key, now).await?;
    let lookup = key.clone();
    let stored = core
        .store
        .run(move |c| Ok(users::find_by_email_key(c, &lookup)?))
        .await?;
    let verification = core
        .hasher
        .verify(
            password.clone(),
            stored.as_ref().map(|s| s.hashed_password.clone()),
        )
        .await
        .map_err(Fault::from)?;
    let (Some(stored), Verification::Valid { needs_rehash }) = (stored, verification) else {
        tracing::info!("login failed");
        Counters::inc(&core.counters.logins_failed);
        throttle::record_login_failure(core, &key, now).await?;
        return Err(LoginError::BadCredentials);
    };
    if !stored.user.is_active {
        tracing::info!(user_id = %stored.user.id, "login refused: inactive user");
        Counters::inc(&core.counters.logins_failed);
        throttle::record_login_failure(core, &key, now).await?;
        return Err(LoginError::BadCredentials);
    }
    if had_failures {
        throttle::clear_login_failures(core, &key).await?;
    }
    if needs_rehash {
        upgrade_hash(core, &stored, password).await;
    }
    let access_token = core
        .tokens
        .issue_access(stored.user.id, now)
        .map_err(Fault::internal)?;
    tracing::info!(user_id = %stored.user.id, "login succeeded");
    Counters::inc(&core.counters.logins_succeeded);
    Ok(SignedIn {
        user: stored.user,
        access_token,
    })
}

/// Re-hashes a password stored with other parameters (or bcrypt) after it verified.
/// Failure is logged, never fatal to the login.
async fn upgrade_hash(core: &Core, stored: &StoredUser, password: SecretString) {
    let id = stored.user.id;
    let old = stored.hashed_password.clone();
    let new = match core.hasher.hash(password).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(user_id = %id, error = %e, "password re-hash failed");
            return;
        }
    };
    match core
        .store
        .run(move |c| Ok(users::replace_hash_if_unchanged(c, id, &old, &new)?))
        .await
    {
        Ok(true) => {
            tracing::info!(user_id = %id, "password hash upgraded to the current parameters")
        }
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(user_id = %id, error = %e, "storing the re-hashed password failed")
        }
    }
}

/// Revokes the presented token (kept, as a SHA-256, until it would have expired), on
/// every replica sharing the database.
pub async fn logout(core: &Core, auth: &Authenticated, now: Timestamp) -> Result<(), Fault> {
    let hash = token_hash(&auth.token);
    let id = auth.stored.user.id;
    let exp = auth.claims.exp;
    core.store
        .run(move |c| {
            Ok(users_db::revocations::revoke(
                c,
                &hash,
                id,
                exp,
                now.secs(),
            )?)
        })
        .await?;
    tracing::info!(user_id = %id, "logged out; token revoked");
    Ok(())
}
