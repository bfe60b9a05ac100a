//! Password sign-in, sign-out, and the check every authenticated request goes through.

use secrecy::SecretString;
use users_db::limits::Attempt;
use users_db::sessions::SessionRow;
use users_db::users::{self, Credential, StoredUser, TokenKey, TokenScope};
use users_domain::access::{is_well_formed_api_key, looks_like_api_key};
use users_domain::crypto::token_hash;
use users_domain::email::email_key;
use users_domain::{EmailAddress, Timestamp, User};

use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::flows::session::{self, SignInMethod};
use crate::flows::sign_in::{self, failed, FirstFactor, SignIn, Transport};
use crate::hashing::Verification;
use crate::throttle::{self, Limited, ThrottleError};
use crate::tokens::{AccessClaims, TokenError};
use crate::{Core, Counters, Fault};

/// An authenticated, active user and the access token (or API key) that proved it.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub stored: StoredUser,
    pub token: String,
    /// The access token's claims. For an API key: its user as `sub`, its expiry (or
    /// none) as `exp`, and no session.
    pub claims: AccessClaims,
    /// The id of the API key that authenticated the request, when it was one.
    pub api_key: Option<String>,
    /// The token's session as the check read it (`None` for a token without one and an
    /// API key).
    pub session: Option<SessionRow>,
}

impl Authenticated {
    pub fn user(&self) -> &User {
        &self.stored.user
    }

    /// The session the token belongs to (none for tokens minted by fastapi-users).
    pub fn session_id(&self) -> Option<&str> {
        self.claims.sid.as_deref()
    }

    /// Whether an API key authenticated the request (not a sign-in's access token).
    pub fn by_api_key(&self) -> bool {
        self.api_key.is_some()
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

/// The user an access token names, loaded now with the token's session, so that
/// deactivation, deletion, promotion, revocation and ended sessions apply to existing
/// tokens at once, on every replica. One round trip, shared with the requests checked
/// at the same moment (`lookup.rs`); about once a minute per session, a second records
/// its use.
#[tracing::instrument(level = "debug", name = "auth::authenticate", skip_all)]
pub async fn authenticate(
    core: &Core,
    token: String,
    now: Timestamp,
) -> Result<Authenticated, AuthError> {
    if looks_like_api_key(&token) {
        return authenticate_key(core, token, now).await;
    }
    let claims = match core.tokens.decode_access(&token, now) {
        Ok(claims) => claims,
        // a key made by another replica (a rotation) that this one has not loaded yet
        Err(TokenError::UnknownKey) => match &core.tokens.ring {
            Some(ring) if ring.reload_for_unknown_kid().await? => core
                .tokens
                .decode_access(&token, now)
                .map_err(|_| AuthError::Unauthorized)?,
            _ => return Err(AuthError::Unauthorized),
        },
        Err(_) => return Err(AuthError::Unauthorized),
    };
    let id = users_domain::UserId::parse_str(&claims.sub).map_err(|_| AuthError::Unauthorized)?;
    let scope = match &claims.sid {
        Some(sid) => TokenScope::Session(sid.clone()),
        None => TokenScope::Unscoped {
            token_hash: token_hash(&token),
        },
    };
    let key = Credential::Token(TokenKey { user_id: id, scope });
    let liveness = core.config.liveness(now);
    let check = core
        .lookups
        .check(key, now.millis())
        .await?
        .ok_or(AuthError::Unauthorized)?;
    if check.revoked || !check.user.user.is_active {
        return Err(AuthError::Unauthorized);
    }
    let session = match claims.sid {
        Some(_) => match check.session {
            Some(s) if s.is_live(liveness) => Some(s),
            _ => return Err(AuthError::Unauthorized),
        },
        None => None,
    };
    // A token with a session lives and dies with it; `tokens_valid_after` is for the
    // tokens without one (minted by fastapi-users), which nothing else can end.
    if claims.sid.is_none()
        && claims.issued_at_ms(core.tokens.access_lifetime_seconds) < check.user.tokens_valid_after
    {
        return Err(AuthError::Unauthorized);
    }
    Ok(Authenticated {
        stored: check.user,
        token,
        claims,
        api_key: None,
        session,
    })
}

/// An API key (docs/roles-and-api-keys.md): its format and checksum are checked here,
/// before any database read; then its hash goes through the same coalesced lookup as
/// an access token's session. Revoked (deleted), expired, or of an inactive user:
/// refused like a bad token.
async fn authenticate_key(
    core: &Core,
    token: String,
    now: Timestamp,
) -> Result<Authenticated, AuthError> {
    if !is_well_formed_api_key(&token) {
        return Err(AuthError::Unauthorized);
    }
    let key = Credential::ApiKey {
        key_hash: token_hash(&token),
    };
    let check = core
        .lookups
        .check(key, now.millis())
        .await?
        .ok_or(AuthError::Unauthorized)?;
    let Some(api_key) = check.api_key else {
        return Err(AuthError::Unauthorized);
    };
    if api_key.is_expired(now.millis()) || !check.user.user.is_active {
        return Err(AuthError::Unauthorized);
    }
    let claims = AccessClaims {
        sub: check.user.user.id.to_string(),
        exp: api_key
            .expires_at
            .map_or(i64::MAX, |ms| ms.div_euclid(1000)),
        sid: None,
        iat: None,
        iat_ms: Some(api_key.created_at),
    };
    Ok(Authenticated {
        stored: check.user,
        token,
        claims,
        api_key: Some(api_key.id),
        session: None,
    })
}

/// What a password sign-in presents (OAuth2's password grant: `username` is the email).
pub struct Credentials {
    pub username: String,
    pub password: SecretString,
}

/// A password sign-in: the credentials, where it comes from, and whether a refresh
/// token is wanted (the OAuth2 scope `offline_access`).
pub struct Login {
    pub credentials: Credentials,
    pub client: ClientInfo,
    pub offline_access: bool,
    /// What a completed sign-in hands out (also after a second step).
    pub transport: Transport,
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

/// Signs in with an email and a password. One read reserves the attempt against the
/// account's lock and finds the user and their factors; unknown emails (and accounts
/// without a usable password) are verified against a dummy hash and inactive users
/// refused only after the password check, so every failure costs one argon2
/// verification; the lock works the same for known and unknown addresses, so it
/// reveals nothing either. The session, its event and forgetting the failures are one
/// write.
#[tracing::instrument(level = "debug", name = "auth::login", skip_all)]
pub async fn login(core: &Core, login: Login, now: Timestamp) -> Result<SignIn, LoginError> {
    let Login {
        credentials: Credentials { username, password },
        client,
        offline_access,
        transport,
    } = login;
    let key = EmailAddress::parse(&username)
        .map(|e| e.key())
        .unwrap_or_else(|_| email_key(&username));
    let max = core.config.login_max_failures;
    let read_key = key.clone();
    let (attempt, found) = core
        .store
        .run(move |c| {
            users_db::sign_in::first_factor(c, &read_key, now.millis(), max, |f| {
                throttle::lock_ms(f, max)
            })
        })
        .await?;
    let reserved = match attempt {
        Attempt::Go(reserved) => reserved,
        Attempt::Locked { for_ms } => {
            let user = find(core, &key).await?.map(|s| s.user.id);
            failed(core, user, "locked", &client, now).await?;
            return Err(throttle::locked(for_ms).into());
        }
    };
    if reserved.failures >= max {
        tracing::warn!(
            failures = reserved.failures,
            "login throttled after consecutive failures"
        );
    }
    let verification = core
        .hasher
        .verify(
            password.clone(),
            found.as_ref().map(|(s, _)| s.hashed_password.clone()),
        )
        .await
        .map_err(Fault::from)?;
    let needs_rehash = match (&found, verification) {
        (Some((s, _)), Verification::Valid { needs_rehash }) if s.user.is_active => needs_rehash,
        (known, verification) => {
            let user = known.as_ref().map(|(s, _)| s.user.id);
            if matches!(verification, Verification::Valid { .. }) {
                tracing::info!(user_id = ?user, "login refused: inactive user");
            } else {
                tracing::info!("login failed");
            }
            Counters::inc(&core.counters.logins_failed);
            failed(core, user, "bad_credentials", &client, now).await?;
            return Err(LoginError::BadCredentials);
        }
    };
    let Some((stored, factors)) = found else {
        return Err(LoginError::BadCredentials);
    };
    if needs_rehash {
        upgrade_hash(core, &stored, password).await;
    }
    let user_id = stored.user.id;
    let first = FirstFactor {
        user: stored.user,
        method: SignInMethod::password(),
        client,
        offline_access,
        transport,
        factors: Some(factors),
        attempt: Some((key, reserved)),
    };
    let outcome = sign_in::complete_first_factor(core, first, now).await?;
    if let SignIn::Done(grant) = &outcome {
        tracing::info!(user_id = %user_id, session_id = %grant.session_id, "login succeeded");
    }
    Counters::inc(&core.counters.logins_succeeded);
    Ok(outcome)
}

/// The user with this email key, if any.
async fn find(core: &Core, key: &str) -> Result<Option<StoredUser>, Fault> {
    let key = key.to_owned();
    Ok(core
        .store
        .run(move |c| users::find_by_email_key(c, &key))
        .await?)
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
        .run(move |c| users::replace_hash_if_unchanged(c, id, &old, &new))
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

/// Ends the token's session, so every token of it fails at once on every replica; a
/// token without a session (minted by fastapi-users) is revoked alone (kept, as a
/// SHA-256, until it would have expired).
#[tracing::instrument(level = "debug", name = "auth::logout", skip_all)]
pub async fn logout(
    core: &Core,
    auth: &Authenticated,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), Fault> {
    let id = auth.stored.user.id;
    if let Some(sid) = auth.session_id() {
        let ending = session::Ending {
            reason: "logout",
            by: None,
            client,
        };
        session::end(core, id, sid, ending, now).await?;
        tracing::info!(user_id = %id, "logged out; session ended");
        return Ok(());
    }
    let hash = token_hash(&auth.token);
    let exp = auth.claims.exp;
    let change = Change::new(
        vec![Event::new(EventType::LoggedOut, Some(id))],
        client,
        now,
    );
    core.apply(change, move |c, raised| {
        users_db::revocations::revoke(c, &hash, id, exp, now.secs(), raised.effects())
    })
    .await?;
    tracing::info!(user_id = %id, "logged out; token revoked");
    Ok(())
}
