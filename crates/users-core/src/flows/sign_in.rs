//! What every sign-in shares, whatever proved the first factor (a password, a provider,
//! a passkey's first step): the session when the user has no second factor, else the
//! second step's challenge (an mfa_token, docs/second-factor.md); and the record of a
//! failed attempt. Password sign-in (`auth`), provider sign-in (`oauth`), the second
//! step (`mfa`) and passkeys (`passkeys`) build on this; it builds on none of them.

use users_db::limits::Reserved;
use users_db::mfa::{self, Factors, MfaChallenge};
use users_domain::crypto::{random_token, token_hash};
use users_domain::{Timestamp, User, UserId};

use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::flows::session::{self, Completed, SessionGrant, SignInMethod};
use crate::{Core, Fault};

/// How long an mfa_token lives.
pub const MFA_TOKEN_LIFETIME_SECS: i64 = 300;

/// What a sign-in hands out: tokens or a cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Bearer,
    Cookie,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Bearer => "bearer",
            Transport::Cookie => "cookie",
        }
    }

    /// The transport a challenge row recorded.
    pub(crate) fn parse(s: &str) -> Transport {
        if s == "cookie" {
            Transport::Cookie
        } else {
            Transport::Bearer
        }
    }
}

/// A first factor that succeeded: who, how, from where, and what they asked for.
#[derive(Debug)]
pub struct FirstFactor {
    pub user: User,
    pub method: SignInMethod,
    pub client: ClientInfo,
    pub offline_access: bool,
    pub transport: Transport,
    /// The user's factors, when the first factor read them already.
    pub factors: Option<Factors>,
    /// The attempt a password reserved against the account's lock (its key, and what it
    /// changed): forgotten when the sign-in completes, given back when a second step is
    /// pending, so that a correct password neither clears nor adds to the count.
    pub attempt: Option<(String, Reserved)>,
}

/// The outcome of a first factor.
#[derive(Debug)]
pub enum SignIn {
    /// No second factor: the session started.
    Done(SessionGrant),
    /// The user has a factor: finish with `POST /auth/mfa/verify`.
    SecondFactor(MfaRequired),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaRequired {
    /// Five minutes, single use.
    pub mfa_token: String,
    /// Of `totp`, `recovery_code`, `passkey`: those the user has.
    pub methods: Vec<&'static str>,
}

fn methods(f: &Factors) -> Vec<&'static str> {
    let mut m = Vec::new();
    if f.totp {
        m.push("totp");
    }
    if f.recovery_codes_left > 0 {
        m.push("recovery_code");
    }
    if f.passkeys > 0 {
        m.push("passkey");
    }
    m
}

/// After a first factor: the session, or the second step when the user has a factor.
pub(crate) async fn complete_first_factor(
    core: &Core,
    first: FirstFactor,
    now: Timestamp,
) -> Result<SignIn, Fault> {
    let id = first.user.id;
    let factors = match first.factors {
        Some(f) => f,
        None => core.store.run(move |c| mfa::factors_of(c, id)).await?,
    };
    if !factors.any() {
        let done = Completed {
            user: first.user,
            method: first.method,
            client: &first.client,
            offline_access: first.offline_access,
            failures_of: first.attempt.map(|(key, _)| key),
        };
        return Ok(SignIn::Done(session::start(core, done, now).await?));
    }
    let mfa_token = random_token(32);
    let row = MfaChallenge {
        id: token_hash(&mfa_token),
        user_id: id.to_string(),
        method: first.method.name,
        transport: first.transport.as_str().to_owned(),
        offline_access: first.offline_access,
        ip: first.client.ip,
        user_agent: first.client.user_agent,
        failures: 0,
        expires_at: now.plus_secs(MFA_TOKEN_LIFETIME_SECS).millis(),
    };
    let give_back = first.attempt;
    core.store
        .run(move |c| {
            mfa::create_challenge(
                c,
                &row,
                now.millis(),
                give_back.as_ref().map(|(k, r)| (k.as_str(), r)),
            )
        })
        .await?;
    tracing::info!(user_id = %id, "first factor accepted; second factor required");
    Ok(SignIn::SecondFactor(MfaRequired {
        mfa_token,
        methods: methods(&factors),
    }))
}

/// The live challenge of an mfa_token (`None`: expired, spent or unknown).
pub(crate) async fn live_challenge(
    core: &Core,
    mfa_token: &str,
    now: Timestamp,
) -> Result<Option<MfaChallenge>, Fault> {
    let id = token_hash(mfa_token);
    Ok(core
        .store
        .run(move |c| mfa::find_challenge(c, &id, now.millis()))
        .await?)
}

/// Records a failed sign-in: of a known user, or (`None`) of an address no user has,
/// which is not stored.
pub(crate) async fn failed(
    core: &Core,
    user: Option<UserId>,
    reason: &'static str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(), Fault> {
    let event = Event::new(EventType::LoginFailed, user).with("reason", reason);
    core.record(vec![event], client, now).await
}
