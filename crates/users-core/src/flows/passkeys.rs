//! Passkeys (WebAuthn, docs/second-factor.md) with webauthn-rs: registration of
//! discoverable credentials, passwordless sign-in (a passkey is both factors: `aal` 2), and
//! a passkey as the second step. Every ceremony's state lives in the database for five
//! minutes and is taken once; a signature counter that goes back (a cloned authenticator)
//! is refused.

use base64::Engine;
use secrecy::SecretString;
use serde_json::Value;
use users_db::passkeys::{self, Added, Ceremony, PasskeyRow};
use users_db::sessions::EndSessions;
use users_db::DbError;
use users_domain::crypto::random_token;
use users_domain::{Timestamp, UserId};
use users_mail::SecurityChange;
use webauthn_rs::prelude::{
    CredentialID, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential,
};
use webauthn_rs::Webauthn;

use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::flows::auth::Authenticated;
use crate::flows::reauth::{self, ReauthError};
use crate::flows::session::{Completed, SessionGrant, SignInMethod};
use crate::flows::sign_in;
use crate::outbox::notice;
use crate::{Core, Counters, Fault};

/// How long a ceremony may take.
pub const CEREMONY_SECS: i64 = 300;

#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    /// `WEBAUTHN_RP_ID` is needed (the public URL's host is an IP address).
    #[error("passkeys are not configured")]
    NotConfigured,
    /// Bad attestation or assertion, wrong origin or RP, spent, expired or foreign
    /// challenge, unknown or cloned credential.
    #[error("invalid passkey")]
    Invalid,
    #[error("no such passkey")]
    NotFound,
    #[error("invalid mfa token")]
    MfaTokenInvalid,
    /// Re-authentication: a wrong password.
    #[error("wrong password")]
    BadPassword,
    /// Re-authentication: no password, and no recent sign-in.
    #[error("sign in again first")]
    ReauthenticationRequired,
    #[error("locked")]
    Locked(crate::throttle::Limited),
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<DbError> for PasskeyError {
    fn from(e: DbError) -> Self {
        PasskeyError::Fault(e.into())
    }
}

impl From<ReauthError> for PasskeyError {
    fn from(e: ReauthError) -> Self {
        match e {
            ReauthError::BadPassword => PasskeyError::BadPassword,
            ReauthError::Required => PasskeyError::ReauthenticationRequired,
            ReauthError::Locked(l) => PasskeyError::Locked(l),
            ReauthError::Fault(f) => PasskeyError::Fault(f),
        }
    }
}

fn webauthn(core: &Core) -> Result<&Webauthn, PasskeyError> {
    core.webauthn.as_deref().ok_or(PasskeyError::NotConfigured)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A ceremony to hand to the browser: its id, and `publicKey` (the options).
#[derive(Debug)]
pub struct CeremonyOptions {
    pub challenge_id: String,
    pub public_key: Value,
}

/// `{"publicKey": {...}}` of webauthn-rs's options → the inner object.
fn public_key_of(options: &impl serde::Serialize) -> Result<Value, Fault> {
    let mut v = serde_json::to_value(options).map_err(Fault::internal)?;
    Ok(v.get_mut("publicKey")
        .map(Value::take)
        .unwrap_or(Value::Null))
}

async fn save(
    core: &Core,
    kind: &str,
    user: Option<UserId>,
    mfa_id: Option<String>,
    state: &impl serde::Serialize,
    now: Timestamp,
) -> Result<String, Fault> {
    let id = random_token(24);
    let row = Ceremony {
        id: id.clone(),
        kind: kind.to_owned(),
        user_id: user.map(|u| u.to_string()),
        mfa_id,
        state: serde_json::to_string(state).map_err(Fault::internal)?,
        expires_at: now.plus_secs(CEREMONY_SECS).millis(),
    };
    core.store
        .run(move |c| passkeys::save_ceremony(c, &row, now.millis()))
        .await?;
    Ok(id)
}

/// The ceremony `id` of `kind`, taken (it works once).
async fn take(
    core: &Core,
    id: &str,
    kind: &str,
    now: Timestamp,
) -> Result<Option<Ceremony>, Fault> {
    let id = id.to_owned();
    let row = core
        .store
        .run(move |c| passkeys::take_ceremony(c, &id, now.millis()))
        .await?;
    Ok(row.filter(|r| r.kind == kind))
}

async fn passkeys_of(core: &Core, user: UserId) -> Result<Vec<PasskeyRow>, Fault> {
    Ok(core.store.run(move |c| passkeys::of_user(c, user)).await?)
}

/// `POST /auth/passkeys/register/options`: a registration asking for a discoverable
/// credential with user verification; the user's passkeys are excluded. Needs
/// re-authentication (the password, or a recent sign-in).
#[tracing::instrument(level = "debug", name = "passkeys::register_options", skip_all)]
pub async fn register_options(
    core: &Core,
    auth: &Authenticated,
    password: Option<SecretString>,
    now: Timestamp,
) -> Result<CeremonyOptions, PasskeyError> {
    let webauthn = webauthn(core)?;
    reauth::reauthenticate(core, auth, password, now).await?;
    let user = auth.user();
    let exclude: Vec<CredentialID> = passkeys_of(core, user.id)
        .await?
        .iter()
        .filter_map(|p| serde_json::from_str::<Passkey>(&p.credential).ok())
        .map(|p| p.cred_id().clone())
        .collect();
    let (mut options, state) = webauthn
        .start_passkey_registration(
            user.id,
            &user.email,
            &user.email,
            (!exclude.is_empty()).then_some(exclude),
        )
        .map_err(|e| Fault::internal(format!("cannot start a registration: {e}")))?;
    // a passkey: discoverable (the state does not depend on this)
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.resident_key = Some(webauthn_rs_proto::ResidentKeyRequirement::Required);
        selection.require_resident_key = true;
    }
    let challenge_id = save(core, "register", Some(user.id), None, &state, now).await?;
    Ok(CeremonyOptions {
        challenge_id,
        public_key: public_key_of(&options)?,
    })
}

/// A passkey as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyInfo {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

impl From<PasskeyRow> for PasskeyInfo {
    fn from(p: PasskeyRow) -> Self {
        PasskeyInfo {
            id: p.id,
            name: p.name,
            created_at: Timestamp::from_millis(p.created_at),
            last_used_at: p.last_used_at.map(Timestamp::from_millis),
        }
    }
}

/// What the browser sends to finish a registration.
#[derive(Debug)]
pub struct Registration<'a> {
    /// The ceremony the registration options started.
    pub challenge_id: &'a str,
    /// A name for the passkey (its first 64 characters; `Passkey` when blank).
    pub name: Option<&'a str>,
    /// The browser's attestation.
    pub credential: &'a Value,
}

/// `POST /auth/passkeys/register`: finishes a registration the same user started, with
/// re-authentication again. The user's first passkey ends their other sessions (a
/// passkey is a second factor: what was signed in without it must sign in again); the
/// owner is told by mail.
#[tracing::instrument(level = "debug", name = "passkeys::register", skip_all)]
pub async fn register(
    core: &Core,
    auth: &Authenticated,
    password: Option<SecretString>,
    registration: Registration<'_>,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<PasskeyInfo, PasskeyError> {
    let Registration {
        challenge_id,
        name,
        credential,
    } = registration;
    let webauthn = webauthn(core)?;
    reauth::reauthenticate(core, auth, password, now).await?;
    let user = auth.user();
    let ceremony = take(core, challenge_id, "register", now)
        .await?
        .filter(|c| c.user_id.as_deref() == Some(user.id.to_string().as_str()))
        .ok_or(PasskeyError::Invalid)?;
    let state: PasskeyRegistration =
        serde_json::from_str(&ceremony.state).map_err(Fault::internal)?;
    let response: RegisterPublicKeyCredential =
        serde_json::from_value(credential.clone()).map_err(|_| PasskeyError::Invalid)?;
    let passkey = webauthn
        .finish_passkey_registration(&response, &state)
        .map_err(|e| {
            tracing::info!(user_id = %user.id, error = %e, "passkey registration refused");
            PasskeyError::Invalid
        })?;
    let name = name
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(|n| n.chars().take(64).collect::<String>())
        .unwrap_or_else(|| "Passkey".to_owned());
    let row = PasskeyRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user.id.to_string(),
        credential_id: b64(passkey.cred_id()),
        name,
        credential: serde_json::to_string(&passkey).map_err(Fault::internal)?,
        sign_count: 0,
        created_at: now.millis(),
        last_used_at: None,
    };
    let info = PasskeyInfo::from(row.clone());
    let event = Event::new(EventType::PasskeyAdded, Some(user.id))
        .with("passkey_id", info.id.clone())
        .with("name", info.name.clone());
    let added = SecurityChange::PasskeyAdded {
        name: info.name.clone(),
    };
    let change = Change::new(vec![event], client, now).and(notice(core, &user.email, added, now)?);
    let others = EndSessions {
        user_id: user.id,
        except: auth.session_id().map(str::to_owned),
        now_ms: now.millis(),
        reason: "passkey_added",
        grants: false,
    };
    let added = core
        .apply(change, move |c, raised| {
            passkeys::add(c, &row, &others, raised.effects())
        })
        .await?;
    match added {
        Added::First => {
            tracing::info!(user_id = %user.id, "first passkey: the other sessions ended")
        }
        Added::Another => {}
        Added::AlreadyRegistered => return Err(PasskeyError::Invalid),
    }
    tracing::info!(user_id = %user.id, passkey_id = %info.id, "passkey registered");
    Ok(info)
}

/// `GET /auth/passkeys`.
#[tracing::instrument(level = "debug", name = "passkeys::list", skip_all)]
pub async fn list(core: &Core, user: UserId) -> Result<Vec<PasskeyInfo>, PasskeyError> {
    webauthn(core)?;
    Ok(passkeys_of(core, user)
        .await?
        .into_iter()
        .map(PasskeyInfo::from)
        .collect())
}

/// `DELETE /auth/passkeys/{id}`, with re-authentication; the owner is told by mail.
#[tracing::instrument(level = "debug", name = "passkeys::remove", skip_all)]
pub async fn remove(
    core: &Core,
    auth: &Authenticated,
    password: Option<SecretString>,
    id: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), PasskeyError> {
    webauthn(core)?;
    reauth::reauthenticate(core, auth, password, now).await?;
    let user = auth.user().id;
    let event = Event::new(EventType::PasskeyRemoved, Some(user)).with("passkey_id", id);
    let notice = notice(
        core,
        &auth.user().email,
        SecurityChange::PasskeyRemoved,
        now,
    )?;
    let change = Change::new(vec![event], client, now).and(notice);
    let id = id.to_owned();
    let removed = core
        .apply(change, move |c, raised| {
            passkeys::remove(c, user, &id, raised.effects())
        })
        .await?;
    if !removed {
        return Err(PasskeyError::NotFound);
    }
    tracing::info!(user_id = %user, "passkey removed");
    Ok(())
}

/// `POST /auth/passkeys/login/options`: without an mfa_token, a passwordless sign-in
/// with any discoverable passkey; with one, a second step with the user's passkeys.
#[tracing::instrument(level = "debug", name = "passkeys::login_options", skip_all)]
pub async fn login_options(
    core: &Core,
    mfa_token: Option<&str>,
    now: Timestamp,
) -> Result<CeremonyOptions, PasskeyError> {
    let webauthn = webauthn(core)?;
    let Some(mfa_token) = mfa_token else {
        let (options, state) = webauthn
            .start_discoverable_authentication()
            .map_err(|e| Fault::internal(format!("cannot start a sign-in: {e}")))?;
        let challenge_id = save(core, "login", None, None, &state, now).await?;
        return Ok(CeremonyOptions {
            challenge_id,
            public_key: public_key_of(&options)?,
        });
    };
    let challenge = sign_in::live_challenge(core, mfa_token, now)
        .await?
        .ok_or(PasskeyError::MfaTokenInvalid)?;
    let user = UserId::parse_str(&challenge.user_id).map_err(|_| PasskeyError::MfaTokenInvalid)?;
    let credentials: Vec<Passkey> = passkeys_of(core, user)
        .await?
        .iter()
        .filter_map(|p| serde_json::from_str(&p.credential).ok())
        .collect();
    if credentials.is_empty() {
        return Err(PasskeyError::Invalid);
    }
    let (options, state) = webauthn
        .start_passkey_authentication(&credentials)
        .map_err(|e| Fault::internal(format!("cannot start a second step: {e}")))?;
    let challenge_id = save(core, "mfa", Some(user), Some(challenge.id), &state, now).await?;
    Ok(CeremonyOptions {
        challenge_id,
        public_key: public_key_of(&options)?,
    })
}

/// Checks an assertion's counter and records the use; `false` for a counter that went
/// back (a cloned authenticator).
async fn record_use(
    core: &Core,
    row: &PasskeyRow,
    mut passkey: Passkey,
    result: &webauthn_rs::prelude::AuthenticationResult,
    now: Timestamp,
) -> Result<bool, Fault> {
    passkey.update_credential(result);
    let credential = serde_json::to_string(&passkey).map_err(Fault::internal)?;
    let (id, counter) = (row.id.clone(), i64::from(result.counter()));
    let recorded = core
        .store
        .run(move |c| passkeys::record_use(c, &id, counter, &credential, now.millis()))
        .await?;
    if !recorded {
        tracing::warn!(user_id = %row.user_id, passkey_id = %row.id,
            "a passkey's signature counter went back: a cloned authenticator? refused");
    }
    Ok(recorded)
}

/// `POST /auth/passkeys/login`: a passwordless sign-in (method `passkey`, `aal` 2).
#[tracing::instrument(level = "debug", name = "passkeys::login", skip_all)]
pub async fn login(
    core: &Core,
    challenge_id: &str,
    credential: &Value,
    client: ClientInfo,
    offline_access: bool,
    now: Timestamp,
) -> Result<SessionGrant, PasskeyError> {
    let outcome = login_inner(core, challenge_id, credential, client, offline_access, now).await;
    match &outcome {
        Ok(_) => Counters::inc(&core.counters.passkey_sign_ins),
        Err(PasskeyError::Invalid) => Counters::inc(&core.counters.passkey_failures),
        Err(_) => {}
    }
    outcome
}

async fn login_inner(
    core: &Core,
    challenge_id: &str,
    credential: &Value,
    client: ClientInfo,
    offline_access: bool,
    now: Timestamp,
) -> Result<SessionGrant, PasskeyError> {
    let webauthn = webauthn(core)?;
    let ceremony = take(core, challenge_id, "login", now)
        .await?
        .ok_or(PasskeyError::Invalid)?;
    let state: DiscoverableAuthentication =
        serde_json::from_str(&ceremony.state).map_err(Fault::internal)?;
    let response: PublicKeyCredential =
        serde_json::from_value(credential.clone()).map_err(|_| PasskeyError::Invalid)?;
    let (user_id, credential_id) = webauthn
        .identify_discoverable_authentication(&response)
        .map_err(|_| PasskeyError::Invalid)?;
    let credential_id = b64(credential_id);
    let row = core
        .store
        .run(move |c| passkeys::by_credential(c, &credential_id))
        .await?
        .filter(|p| p.user_id == user_id.to_string())
        .ok_or(PasskeyError::Invalid)?;
    let passkey: Passkey = serde_json::from_str(&row.credential).map_err(Fault::internal)?;
    let used = match webauthn.finish_discoverable_authentication_v2(&response, state, &passkey) {
        Ok(result) => record_use(core, &row, passkey, &result, now).await?,
        Err(e) => {
            tracing::info!(user_id = %user_id, error = %e, "passkey sign-in refused");
            false
        }
    };
    if !used {
        sign_in::failed(core, Some(user_id), "bad_credentials", &client, now).await?;
        return Err(PasskeyError::Invalid);
    }
    let user = core
        .store
        .run(move |c| users_db::users::find_by_id(c, user_id))
        .await?
        .filter(|u| u.user.is_active)
        .ok_or(PasskeyError::Invalid)?;
    // a passkey is both factors: no second step
    let done = Completed {
        user: user.user,
        method: SignInMethod {
            name: "passkey".to_owned(),
            aal: 2,
            second_factor: None,
        },
        client: &client,
        offline_access,
        failures_of: None,
    };
    let grant = crate::flows::session::start(core, done, now).await?;
    tracing::info!(user_id = %user_id, session_id = %grant.session_id, "signed in with a passkey");
    Ok(grant)
}

/// A passkey as the second step of the mfa challenge `mfa_id`: whether the assertion is
/// valid for a ceremony started for that very challenge.
pub(crate) async fn finish_second_step(
    core: &Core,
    challenge_id: &str,
    credential: &Value,
    mfa_id: &str,
    user: UserId,
    now: Timestamp,
) -> Result<bool, Fault> {
    let Some(webauthn) = core.webauthn.as_deref() else {
        return Ok(false);
    };
    let Some(ceremony) = take(core, challenge_id, "mfa", now)
        .await?
        .filter(|c| c.mfa_id.as_deref() == Some(mfa_id))
        .filter(|c| c.user_id.as_deref() == Some(user.to_string().as_str()))
    else {
        return Ok(false);
    };
    let state: PasskeyAuthentication =
        serde_json::from_str(&ceremony.state).map_err(Fault::internal)?;
    let Ok(response) = serde_json::from_value::<PublicKeyCredential>(credential.clone()) else {
        return Ok(false);
    };
    let credential_id = b64(response.raw_id.as_ref());
    let Some(row) = core
        .store
        .run(move |c| passkeys::by_credential(c, &credential_id))
        .await?
        .filter(|p| p.user_id == user.to_string())
    else {
        return Ok(false);
    };
    let passkey: Passkey = serde_json::from_str(&row.credential).map_err(Fault::internal)?;
    match webauthn.finish_passkey_authentication(&response, &state) {
        Ok(result) => record_use(core, &row, passkey, &result, now).await,
        Err(e) => {
            tracing::info!(user_id = %user, error = %e, "passkey second step refused");
            Ok(false)
        }
    }
}
