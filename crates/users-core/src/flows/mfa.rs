//! A second factor (docs/second-factor.md): TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps,
//! one step of drift either way, each code accepted once), recovery codes, and the second
//! step of every sign-in for a user who has a factor.

use secrecy::SecretString;
use totp_rs::{Algorithm, Builder, Secret, Totp};
use users_db::mfa::{self, Factors, TotpConfirmation};
use users_db::sessions::EndSessions;
use users_db::users::{self, StoredUser};
use users_db::{DbError, Effects};
use users_domain::crypto::constant_time_eq;
use users_domain::{Timestamp, User, UserId};
use users_mail::SecurityChange;

use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::flows::auth::Authenticated;
use crate::flows::passkeys;
use crate::flows::reauth::{self, ReauthError};
use crate::flows::session::{self, Completed, SessionGrant, SignInMethod};
use crate::flows::sign_in;
use crate::outbox::{notice, OutboxItem};
use crate::throttle::{self, Limited, ThrottleError};
use crate::{Core, Counters, Fault};

// The second step's types, where the web layer and the tests import them.
pub use crate::flows::sign_in::{MfaRequired, SignIn, Transport, MFA_TOKEN_LIFETIME_SECS};

/// Bad codes an mfa_token survives.
pub const MFA_TOKEN_MAX_FAILURES: i64 = 5;
const RECOVERY_CODES: usize = 10;
const TOTP_STEP_SECS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("a second factor is enabled already")]
    AlreadyEnabled,
    #[error("wrong password")]
    BadPassword,
    /// No password given, and the session is not recent enough.
    #[error("sign in again first")]
    ReauthenticationRequired,
    /// The second step answers with the cookie, and the request comes from another
    /// site (login CSRF).
    #[error("cross-site request")]
    CsrfOriginMismatch,
    #[error("wrong, reused or expired code")]
    BadCode,
    /// No enrolment of this session is waiting for confirmation.
    #[error("no enrolment is pending")]
    NotPending,
    /// Expired, spent or unknown mfa_token.
    #[error("invalid mfa token")]
    TokenInvalid,
    #[error("locked")]
    Locked(Limited),
    #[error("no such user")]
    NotFound,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<DbError> for MfaError {
    fn from(e: DbError) -> Self {
        MfaError::Fault(e.into())
    }
}

impl From<ReauthError> for MfaError {
    fn from(e: ReauthError) -> Self {
        match e {
            ReauthError::BadPassword => MfaError::BadPassword,
            ReauthError::Required => MfaError::ReauthenticationRequired,
            ReauthError::Locked(l) => MfaError::Locked(l),
            ReauthError::Fault(f) => MfaError::Fault(f),
        }
    }
}

impl From<ThrottleError> for MfaError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Limited(l) => MfaError::Locked(l),
            ThrottleError::Fault(f) => MfaError::Fault(f),
        }
    }
}

/// What an authenticator app needs to enrol: shown once.
#[derive(Debug)]
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

fn totp(core: &Core, secret: &[u8], email: &str) -> Result<Totp, Fault> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(TOTP_STEP_SECS as u64)
        .with_secret(Secret::new(secret.to_vec().into_boxed_slice()))
        .with_issuer(Some(core.config.mfa_issuer.as_str()))
        .with_account_name(email.replace(':', ""))
        .build()
        .map_err(|e| Fault::Internal(format!("cannot build the TOTP: {e}")))
}

/// The time step of `code` at `now` (this step, or one either side), if it matches.
fn matching_step(totp: &Totp, code: &str, now: Timestamp) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let current = now.secs().div_euclid(TOTP_STEP_SECS);
    [current - 1, current, current + 1]
        .into_iter()
        .find(|step| {
            let expected = totp.generate((step * TOTP_STEP_SECS) as u64).to_string();
            constant_time_eq(expected.as_bytes(), code.as_bytes())
        })
}

fn qr_svg(uri: &str) -> Result<String, Fault> {
    let code = qrcode::QrCode::new(uri.as_bytes()).map_err(Fault::internal)?;
    Ok(code
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .build())
}

async fn user_of(core: &Core, id: UserId) -> Result<Option<StoredUser>, Fault> {
    Ok(core.store.run(move |c| users::find_by_id(c, id)).await?)
}

/// `POST /auth/mfa/totp`: a new secret, pending until confirmed from the same session.
/// Re-authentication first: the password, or a sign-in of the last ten minutes.
#[tracing::instrument(level = "debug", name = "mfa::totp_enrol", skip_all)]
pub async fn totp_enrol(
    core: &Core,
    auth: &Authenticated,
    password: Option<SecretString>,
    now: Timestamp,
) -> Result<TotpEnrolment, MfaError> {
    let user = auth.user().clone();
    let id = user.id;
    let existing = core.store.run(move |c| mfa::totp_of(c, id)).await?;
    if existing.is_some_and(|t| t.is_confirmed()) {
        return Err(MfaError::AlreadyEnabled);
    }
    reauth::reauthenticate(core, auth, password, now).await?;
    let mut secret = [0u8; 20];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
    let totp = totp(core, &secret, &user.email)?;
    let sealed = core
        .sealer
        .seal(&secret)
        .ok_or_else(|| Fault::internal("cannot seal the TOTP secret"))?;
    let sid = auth.session_id().map(str::to_owned);
    let started = core
        .store
        .run(move |c| mfa::start_totp(c, id, &sealed, sid.as_deref(), now.millis()))
        .await?;
    if !started {
        return Err(MfaError::AlreadyEnabled);
    }
    let otpauth_uri = totp.to_url().map_err(Fault::internal)?;
    tracing::info!(user_id = %id, "TOTP enrolment started");
    Ok(TotpEnrolment {
        secret: Secret::new(secret.to_vec().into_boxed_slice()).to_base32(),
        qr_svg: qr_svg(&otpauth_uri)?,
        otpauth_uri,
    })
}

/// The 32 symbols of recovery codes: Crockford's base-32 alphabet in lower case (no
/// `i`, `l`, `o`, `u`), so a byte's low five bits pick one without bias.
const RECOVERY_ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// One recovery code: 12 symbols of 5 bits (60 bits), as `xxxx-xxxx-xxxx`.
fn recovery_code() -> String {
    let mut bytes = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    let letters: String = bytes
        .iter()
        .map(|b| RECOVERY_ALPHABET[usize::from(b & 31)] as char)
        .collect();
    format!("{}-{}-{}", &letters[0..4], &letters[4..8], &letters[8..12])
}

fn new_recovery_codes(core: &Core) -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
    let hashes = codes.iter().map(|c| core.sealer.code_hash(c)).collect();
    (codes, hashes)
}

/// `POST /auth/mfa/totp/confirm`: the first code confirms the enrolment of this very
/// session; ten recovery codes come back (shown once, stored hashed); this session
/// becomes `aal` 2 and the user's other sessions end.
#[tracing::instrument(level = "debug", name = "mfa::totp_confirm", skip_all)]
pub async fn totp_confirm(
    core: &Core,
    auth: &Authenticated,
    code: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<Vec<String>, MfaError> {
    let user = auth.user().clone();
    let id = user.id;
    let pending = core
        .store
        .run(move |c| mfa::totp_of(c, id))
        .await?
        .filter(|t| !t.is_confirmed())
        .filter(|t| {
            t.pending_session_id.as_deref() == auth.session_id() && auth.session_id().is_some()
        })
        .ok_or(MfaError::NotPending)?;
    let secret = core.sealer.open(&pending.secret_sealed).ok_or_else(|| {
        Fault::internal("the TOTP secret does not open (was JWT_SECRET changed?)")
    })?;
    let step =
        matching_step(&totp(core, &secret, &user.email)?, code, now).ok_or(MfaError::BadCode)?;
    let (codes, hashes) = new_recovery_codes(core);
    let confirmation = TotpConfirmation {
        session_id: auth.session_id().map(str::to_owned),
        step,
        recovery_code_hashes: hashes,
        end_others: EndSessions {
            user_id: id,
            except: auth.session_id().map(str::to_owned),
            now_ms: now.millis(),
            reason: "mfa_enabled",
            grants: false,
        },
        now_ms: now.millis(),
    };
    let event = Event::new(EventType::MfaEnabled, Some(id)).with("method", "totp");
    let notice = notice(core, &user.email, SecurityChange::TotpEnabled, now)?;
    let change = Change::new(vec![event], client, now).and(notice);
    let confirmed = core
        .apply(change, move |c, raised| {
            mfa::confirm_totp(c, id, &confirmation, raised.effects())
        })
        .await?;
    if !confirmed {
        return Err(MfaError::NotPending);
    }
    Counters::inc(&core.counters.mfa_enabled);
    tracing::info!(user_id = %id, "TOTP enabled; other sessions ended");
    Ok(codes)
}

/// A TOTP code or a recovery code of the user, used up if it is valid. The attempt counts
/// toward the account's lock like a sign-in's: a stolen token must not turn into
/// unlimited guesses at the second factor.
async fn use_code(
    core: &Core,
    user: &User,
    code: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<bool, MfaError> {
    let key = users_domain::email::email_key(&user.email);
    let attempt = throttle::begin_attempt(core, &key, now).await?;
    let valid = match use_code_totp_only(core, user, code, now).await? {
        true => true,
        false => use_recovery_code(core, user, code, client, now).await?,
    };
    if valid {
        throttle::undo_attempt(core, &key, attempt).await?;
    } else {
        Counters::inc(&core.counters.mfa_failures);
    }
    Ok(valid)
}

async fn use_recovery_code(
    core: &Core,
    user: &User,
    code: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<bool, Fault> {
    let id = user.id;
    let hash = core.sealer.code_hash(code);
    let left = core
        .store
        .run(move |c| mfa::recovery_codes_left(c, id))
        .await?;
    let mail = users_mail::Email::recovery_code_used(&core.config.app_name, &user.email, left - 1);
    let event =
        Event::new(EventType::MfaRecoveryCodeUsed, Some(id)).with("left", (left - 1).max(0));
    let change =
        Change::new(vec![event], client, now).and(OutboxItem::Email { email: mail }.effects(now)?);
    let used = core
        .apply(change, move |c, raised| {
            mfa::use_recovery_code(c, id, &hash, now.millis(), raised.effects())
        })
        .await?;
    if used {
        tracing::info!(user_id = %id, "a recovery code was used");
    }
    Ok(used)
}

/// `DELETE /auth/mfa/totp`: with a valid code, TOTP and the recovery codes go.
#[tracing::instrument(level = "debug", name = "mfa::totp_disable", skip_all)]
pub async fn totp_disable(
    core: &Core,
    auth: &Authenticated,
    code: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), MfaError> {
    let user = auth.user();
    if !use_code(core, user, code, client, now).await? {
        return Err(MfaError::BadCode);
    }
    let id = user.id;
    let event = Event::new(EventType::MfaDisabled, Some(id)).with("method", "totp");
    let notice = notice(core, &user.email, SecurityChange::TotpDisabled, now)?;
    let change = Change::new(vec![event], client, now).and(notice);
    let disabled = core
        .apply(change, move |c, raised| {
            mfa::disable_totp(c, id, raised.effects())
        })
        .await?;
    if !disabled {
        return Err(MfaError::BadCode);
    }
    tracing::info!(user_id = %id, "TOTP disabled");
    Ok(())
}

/// `POST /auth/mfa/recovery-codes`: with a valid code, a new set; the old set dies.
#[tracing::instrument(level = "debug", name = "mfa::regenerate_recovery_codes", skip_all)]
pub async fn regenerate_recovery_codes(
    core: &Core,
    auth: &Authenticated,
    code: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<Vec<String>, MfaError> {
    let user = auth.user();
    if !use_code(core, user, code, client, now).await? {
        return Err(MfaError::BadCode);
    }
    let (codes, hashes) = new_recovery_codes(core);
    let id = user.id;
    core.store
        .run(move |c| mfa::replace_recovery_codes(c, id, &hashes, now.millis(), &Effects::none()))
        .await?;
    tracing::info!(user_id = %id, "recovery codes replaced");
    Ok(codes)
}

/// `GET /auth/mfa`.
#[tracing::instrument(level = "debug", name = "mfa::factors", skip_all)]
pub async fn factors(core: &Core, user: UserId) -> Result<Factors, Fault> {
    Ok(core.store.run(move |c| mfa::factors_of(c, user)).await?)
}

/// `DELETE /users/{id}/mfa` (superusers, for a user who lost every factor): removes
/// TOTP, recovery codes and passkeys, and ends the user's sessions.
#[tracing::instrument(level = "debug", name = "mfa::reset", skip_all)]
pub async fn reset(
    core: &Core,
    user: UserId,
    by: UserId,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), MfaError> {
    let end = EndSessions {
        user_id: user,
        except: None,
        now_ms: now.millis(),
        reason: "mfa_reset",
        grants: true,
    };
    let event = Event::new(EventType::MfaDisabled, Some(user))
        .by(Some(by))
        .with("method", "all");
    let change = Change::new(vec![event], client, now);
    let done = core
        .apply(change, move |c, raised| {
            mfa::reset(c, &end, raised.effects())
        })
        .await?;
    if !done {
        return Err(MfaError::NotFound);
    }
    tracing::warn!(user_id = %user, by = %by, "every second factor removed by a superuser");
    Ok(())
}

/// What finishes a sign-in's second step.
pub enum Proof {
    Totp(String),
    RecoveryCode(String),
    /// A passkey assertion for the ceremony `challenge_id`.
    Passkey {
        challenge_id: String,
        credential: serde_json::Value,
    },
}

/// `POST /auth/mfa/verify`: finishes a sign-in with its second factor, and answers what
/// the first step would have (the session, `aal` 2). Each code is counted before it is
/// evaluated, twice: against the mfa_token (at most five, however many arrive at once)
/// and against the account's lock (however they are interleaved with sign-ins). A
/// second step that answers with the cookie refuses a request from another site
/// (`trusted_origin` false).
#[tracing::instrument(level = "debug", name = "mfa::verify", skip_all)]
pub async fn verify(
    core: &Core,
    mfa_token: &str,
    proof: Proof,
    client: &ClientInfo,
    trusted_origin: bool,
    now: Timestamp,
) -> Result<(SessionGrant, Transport), MfaError> {
    let challenge = sign_in::live_challenge(core, mfa_token, now)
        .await?
        .ok_or(MfaError::TokenInvalid)?;
    let id = challenge.id.clone();
    let transport = Transport::parse(&challenge.transport);
    if transport == Transport::Cookie && !trusted_origin {
        return Err(MfaError::CsrfOriginMismatch);
    }
    let user_id = UserId::parse_str(&challenge.user_id).map_err(|_| MfaError::TokenInvalid)?;
    let stored = user_of(core, user_id)
        .await?
        .filter(|u| u.user.is_active)
        .ok_or(MfaError::TokenInvalid)?;
    let lookup = id.clone();
    core.store
        .run(move |c| mfa::reserve_attempt(c, &lookup, now.millis(), MFA_TOKEN_MAX_FAILURES))
        .await?
        .ok_or(MfaError::TokenInvalid)?;
    let key = users_domain::email::email_key(&stored.user.email);
    if let Err(e) = throttle::begin_attempt(core, &key, now).await {
        if matches!(e, ThrottleError::Limited(_)) {
            sign_in::failed(core, Some(user_id), "locked", client, now).await?;
        }
        return Err(e.into());
    }
    let second_factor = match &proof {
        Proof::Totp(_) => "otp",
        Proof::RecoveryCode(_) => "rec",
        Proof::Passkey { .. } => "hwk",
    };
    let ok = proves(core, proof, &stored.user, &id, client, now).await?;
    if !ok {
        Counters::inc(&core.counters.mfa_failures);
        sign_in::failed(core, Some(user_id), "mfa_failed", client, now).await?;
        let lookup = id.clone();
        core.store
            .run(move |c| mfa::drop_if_exhausted(c, &lookup, MFA_TOKEN_MAX_FAILURES))
            .await?;
        return Err(MfaError::BadCode);
    }
    let method = SignInMethod {
        name: challenge.method.clone(),
        aal: 2,
        second_factor: Some(second_factor),
    };
    // the session is the first step's; the event, this request's
    let session_client = ClientInfo {
        ip: challenge.ip.clone(),
        user_agent: challenge.user_agent.clone(),
        request_id: client.request_id.clone(),
    };
    let done = Completed {
        user: stored.user,
        method,
        client: &session_client,
        offline_access: challenge.offline_access,
        failures_of: Some(key),
    };
    let grant = session::start_spending(core, done, Some(id), now)
        .await?
        .ok_or(MfaError::TokenInvalid)?;
    Counters::inc(&core.counters.mfa_successes);
    tracing::info!(user_id = %user_id, session_id = %grant.session_id, "second factor accepted");
    Ok((grant, transport))
}

/// Whether `proof` is a second factor of `user` for the challenge `mfa_id` (a code is
/// used up, a passkey's counter moves on).
async fn proves(
    core: &Core,
    proof: Proof,
    user: &User,
    mfa_id: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<bool, Fault> {
    match proof {
        Proof::Totp(code) => use_code_totp_only(core, user, &code, now).await,
        Proof::RecoveryCode(code) => use_recovery_code(core, user, &code, client, now).await,
        Proof::Passkey {
            challenge_id,
            credential,
        } => {
            let user = user.id;
            passkeys::finish_second_step(core, &challenge_id, &credential, mfa_id, user, now).await
        }
    }
}

/// A TOTP code only (the `code` of the second step).
async fn use_code_totp_only(
    core: &Core,
    user: &User,
    code: &str,
    now: Timestamp,
) -> Result<bool, Fault> {
    let id = user.id;
    let Some(totp_row) = core
        .store
        .run(move |c| mfa::totp_of(c, id))
        .await?
        .filter(|t| t.is_confirmed())
    else {
        return Ok(false);
    };
    let secret = core.sealer.open(&totp_row.secret_sealed).ok_or_else(|| {
        Fault::internal("the TOTP secret does not open (was JWT_SECRET changed?)")
    })?;
    match matching_step(&totp(core, &secret, &user.email)?, code, now) {
        Some(step) => Ok(core
            .store
            .run(move |c| mfa::use_totp_step(c, id, step))
            .await?),
        None => Ok(false),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every one of the 32 symbols turns up, nothing else does, and none of the letters
    /// that read as digits.
    #[test]
    fn recovery_codes_use_32_symbols_evenly() {
        let mut seen = [0usize; 128];
        for _ in 0..2000 {
            let code = recovery_code();
            assert_eq!(code.len(), 14, "{code}");
            let parts: Vec<&str> = code.split('-').collect();
            assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [4, 4, 4]);
            for c in code.chars().filter(|c| *c != '-') {
                seen[c as usize] += 1;
            }
        }
        let used: Vec<char> = (0u8..128)
            .filter(|c| seen[usize::from(*c)] > 0)
            .map(char::from)
            .collect();
        assert_eq!(used.len(), 32, "{used:?}");
        assert!(used.iter().all(|c| RECOVERY_ALPHABET.contains(&(*c as u8))));
        for c in ['i', 'l', 'o', 'u'] {
            assert!(!used.contains(&c), "{c}");
        }
        // 24,000 symbols over 32: each near 750; a modulo bias (31 symbols from a byte)
        // would show as one symbol with about twice the others' share
        let counts: Vec<usize> = used.iter().map(|c| seen[*c as usize]).collect();
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*max < min * 2, "{min}..{max}");
    }

    /// RFC 6238 Appendix B, SHA-1 (the 8-digit codes' last six digits).
    #[test]
    fn totp_codes_are_rfc_6238() {
        let totp = Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(8)
            .with_secret(Secret::new(
                b"12345678901234567890".to_vec().into_boxed_slice(),
            ))
            .with_step_duration(30)
            .build()
            .unwrap();
        for (time, code) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(totp.generate(time).to_string(), code, "{time}");
        }
    }
}
