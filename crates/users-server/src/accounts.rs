//! Account operations shared by the HTTP routes and the command line.

use secrecy::{ExposeSecret, SecretString};
use users_db::users::{self, NewUser, StoredUser, UserChanges};
use users_db::{is_unique_violation, DbError};
use users_domain::{EmailAddress, User, UserId};

use crate::error::ApiError;
use crate::state::{now_ms, AppState};

/// Refuses a password the policy does not accept, with the route's error code.
pub fn check_password(
    state: &AppState,
    password: &SecretString,
    email: &str,
    code: &'static str,
) -> Result<(), ApiError> {
    state
        .policy
        .check(password.expose_secret(), email)
        .map_err(|rejection| ApiError::InvalidPassword {
            code,
            reason: rejection.reason(),
        })
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("password refused: {0}")]
    InvalidPassword(String),
    #[error("a user with this email already exists")]
    AlreadyExists,
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Creates an account: password policy first, then the (case-insensitive) duplicate
/// check, then the hash, then one INSERT; a racing duplicate is caught by the unique
/// index and writes nothing.
pub async fn create_user(
    state: &AppState,
    email: EmailAddress,
    password: SecretString,
    is_superuser: bool,
    is_verified: bool,
) -> Result<User, CreateError> {
    state
        .policy
        .check(password.expose_secret(), email.as_str())
        .map_err(|r| CreateError::InvalidPassword(r.reason()))?;
    let key = email.key();
    let lookup_key = key.clone();
    let exists = state
        .db(move |c| Ok(users::find_by_email_key(c, &lookup_key)?.is_some()))
        .await
        .map_err(ApiError::from)?;
    if exists {
        return Err(CreateError::AlreadyExists);
    }
    let hashed_password = state
        .hasher
        .hash(password)
        .await
        .map_err(ApiError::internal)?;
    let now = now_ms();
    let user = User {
        id: UserId::new_v4(),
        email: email.into_string(),
        is_active: true,
        is_superuser,
        is_verified,
    };
    let row = NewUser {
        id: user.id.to_string(),
        email: user.email.clone(),
        email_key: key,
        hashed_password,
        is_active: user.is_active,
        is_superuser: user.is_superuser,
        is_verified: user.is_verified,
        tokens_valid_after: 0,
        created_at: now,
        updated_at: now,
    };
    match state.db(move |c| Ok(users::insert(c, &row)?)).await {
        Ok(()) => Ok(user),
        Err(DbError::Query(e)) if is_unique_violation(&e) => Err(CreateError::AlreadyExists),
        Err(e) => Err(ApiError::from(e).into()),
    }
}

/// A validated update request (fastapi-users' `UserUpdate`).
#[derive(Debug, Default)]
pub struct UserUpdate {
    pub email: Option<EmailAddress>,
    pub password: Option<SecretString>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub is_verified: Option<bool>,
}

/// Applies an update to `target`. `privileged` (a superuser on `/users/{id}`) may set
/// the flags; `/users/me` ignores them. A new email clears `is_verified`; a password
/// change revokes every token issued before it.
pub async fn update_user(
    state: &AppState,
    target: &StoredUser,
    update: UserUpdate,
    privileged: bool,
) -> Result<User, ApiError> {
    let id = target.user.id;
    let current_key = users_domain::email::email_key(&target.user.email);
    let new_email = update.email.filter(|e| e.as_str() != target.user.email);

    if let Some(password) = &update.password {
        let email = new_email
            .as_ref()
            .map_or(target.user.email.as_str(), |e| e.as_str());
        check_password(state, password, email, "UPDATE_USER_INVALID_PASSWORD")?;
    }

    let mut changes = UserChanges::default();
    if let Some(email) = new_email {
        let key = email.key();
        if key != current_key {
            let lookup_key = key.clone();
            let taken = state
                .db(move |c| Ok(users::find_by_email_key(c, &lookup_key)?.is_some()))
                .await?;
            if taken {
                return Err(ApiError::BadRequest("UPDATE_USER_EMAIL_ALREADY_EXISTS"));
            }
            changes.is_verified = Some(false);
        }
        changes.email = Some(email.into_string());
        changes.email_key = Some(key);
    }
    if privileged {
        if update.is_verified.is_some() {
            changes.is_verified = update.is_verified;
        }
        changes.is_active = update.is_active;
        changes.is_superuser = update.is_superuser;
    }
    if let Some(password) = update.password {
        changes.hashed_password = Some(
            state
                .hasher
                .hash(password)
                .await
                .map_err(ApiError::internal)?,
        );
    }

    let password_changed = changes.hashed_password.is_some();
    let app_name = state.settings.app_name.clone();
    let result = state
        .db(move |c| {
            use diesel::Connection;
            c.transaction::<_, DbError, _>(|c| {
                if password_changed {
                    changes.tokens_valid_after = Some(now_ms());
                }
                if !users::update(c, id, &changes, now_ms())? {
                    return Ok(None);
                }
                let updated = users::find_by_id(c, id)?;
                if let (true, Some(u)) = (password_changed, &updated) {
                    let mail = users_mail::Email::password_changed(&app_name, &u.user.email);
                    crate::outbox::enqueue(c, &crate::outbox::OutboxItem::Email { email: mail })?;
                }
                Ok(updated)
            })
        })
        .await;
    if password_changed {
        crate::metrics::Metrics::inc(&state.metrics.mails_queued);
        state.outbox_signal.wake();
    }
    match result {
        Ok(Some(stored)) => {
            tracing::info!(user_id = %id, "user updated");
            Ok(stored.user)
        }
        Ok(None) => Err(ApiError::NotFound),
        Err(DbError::Query(e)) if is_unique_violation(&e) => {
            Err(ApiError::BadRequest("UPDATE_USER_EMAIL_ALREADY_EXISTS"))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("bad reset token")]
    BadToken,
    #[error("password refused: {0}")]
    InvalidPassword(String),
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Completes a password reset: a valid, unexpired reset token whose fingerprint still
/// matches the current password hash, for an active user; a password the policy
/// accepts (a refused one leaves the token usable). The new hash, the revocation of
/// every earlier access token and the "password changed" mail are one transaction.
pub async fn reset_password(
    state: &AppState,
    token: &str,
    password: SecretString,
) -> Result<(), ResetError> {
    use crate::tokens::{ResetClaims, RESET_AUDIENCE};
    let claims: ResetClaims = state
        .jwt
        .decode(token, RESET_AUDIENCE, now_ms())
        .map_err(|_| ResetError::BadToken)?;
    let id = UserId::parse_str(&claims.sub).map_err(|_| ResetError::BadToken)?;
    let stored = state
        .db(move |c| Ok(users::find_by_id(c, id)?))
        .await
        .map_err(ApiError::from)?
        .ok_or(ResetError::BadToken)?;
    // fastapi-users' fingerprint: an argon2 (or bcrypt) hash of the stored hash
    let fingerprint_ok = state
        .hasher
        .verify(
            SecretString::from(stored.hashed_password.clone()),
            Some(claims.password_fgpt),
        )
        .await
        .map_err(ApiError::internal)?;
    if !matches!(fingerprint_ok, crate::hashing::Verification::Valid { .. })
        || !stored.user.is_active
    {
        return Err(ResetError::BadToken);
    }
    state
        .policy
        .check(password.expose_secret(), &stored.user.email)
        .map_err(|r| ResetError::InvalidPassword(r.reason()))?;
    let new_hash = state
        .hasher
        .hash(password)
        .await
        .map_err(ApiError::internal)?;
    let old_hash = stored.hashed_password;
    let mail = crate::outbox::OutboxItem::Email {
        email: users_mail::Email::password_changed(&state.settings.app_name, &stored.user.email),
    };
    let changed = state
        .db(move |c| {
            use diesel::Connection;
            c.transaction::<bool, DbError, _>(|c| {
                if !users::set_password_if_unchanged(c, id, &old_hash, &new_hash, now_ms())? {
                    return Ok(false);
                }
                crate::outbox::enqueue(c, &mail)?;
                Ok(true)
            })
        })
        .await
        .map_err(ApiError::from)?;
    if !changed {
        return Err(ResetError::BadToken); // the token was used meanwhile
    }
    crate::metrics::Metrics::inc(&state.metrics.mails_queued);
    state.outbox_signal.wake();
    tracing::info!(user_id = %id, "password reset; earlier tokens revoked");
    Ok(())
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("bad verification token")]
    BadToken,
    #[error("already verified")]
    AlreadyVerified,
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// Verifies the email of the user a verification token names, if the token was made
/// for the user's current email.
pub async fn verify_user(state: &AppState, token: &str) -> Result<User, VerifyError> {
    use crate::tokens::{VerifyClaims, VERIFY_AUDIENCE};
    let claims: VerifyClaims = state
        .jwt
        .decode(token, VERIFY_AUDIENCE, now_ms())
        .map_err(|_| VerifyError::BadToken)?;
    let id = UserId::parse_str(&claims.sub).map_err(|_| VerifyError::BadToken)?;
    let stored = state
        .db(move |c| Ok(users::find_by_id(c, id)?))
        .await
        .map_err(ApiError::from)?
        .ok_or(VerifyError::BadToken)?;
    if users_domain::email::email_key(&claims.email)
        != users_domain::email::email_key(&stored.user.email)
    {
        return Err(VerifyError::BadToken);
    }
    if stored.user.is_verified {
        return Err(VerifyError::AlreadyVerified);
    }
    let changed = state
        .db(move |c| Ok(users::mark_verified(c, id, now_ms())?))
        .await
        .map_err(ApiError::from)?;
    if !changed {
        return Err(VerifyError::AlreadyVerified);
    }
    tracing::info!(user_id = %id, "email verified");
    Ok(User {
        is_verified: true,
        ..stored.user
    })
}
