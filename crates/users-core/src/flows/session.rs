//! Sessions (docs/sessions-and-tokens.md): one starts at every sign-in; access tokens carry
//! its id as `sid`; refresh tokens rotate with reuse detection; a user sees their live
//! sessions and ends them.

use users_db::sessions::{self, EndSessions, NewSession, SessionRow};
use users_db::DbError;
use users_domain::{Timestamp, User, UserId};

// where the web layer has always found it
use crate::change::Change;
pub use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::rotations::{Rotating, Step};
use crate::tokens::RefreshKey;
use crate::{Core, Counters, Fault};

/// How the user proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInMethod {
    /// `password`, `google`, `oidc:<name>`, `github`, `passkey`.
    pub name: String,
    /// 1, or 2 after a second factor or with a passkey.
    pub aal: i64,
    /// How the second step was made (`otp`, `hwk`, `rec`), for the provider's `amr`.
    pub second_factor: Option<&'static str>,
}

impl SignInMethod {
    pub fn password() -> SignInMethod {
        SignInMethod {
            name: "password".to_owned(),
            aal: 1,
            second_factor: None,
        }
    }
}

/// What a sign-in (or a refresh) hands out.
#[derive(Debug)]
pub struct SessionGrant {
    pub user: User,
    pub session_id: String,
    pub access_token: String,
    /// Only when asked for (`offline_access`) or when refreshing.
    pub refresh_token: Option<String>,
    /// Seconds the access token lives.
    pub expires_in: i64,
}

/// A live session as its owner sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    pub expires_at: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub method: String,
    pub aal: i64,
    pub current: bool,
}

fn info(row: SessionRow, current: Option<&str>) -> SessionInfo {
    SessionInfo {
        current: current == Some(row.id.as_str()),
        id: row.id,
        created_at: Timestamp::from_millis(row.created_at),
        last_used_at: Timestamp::from_millis(row.last_used_at),
        expires_at: Timestamp::from_millis(row.expires_at),
        ip: row.ip,
        user_agent: row.user_agent,
        method: row.method,
        aal: row.aal,
    }
}

/// A completed sign-in: who, how, from where, what they asked for, and the account key
/// whose failed attempts it forgets.
#[derive(Debug)]
pub(crate) struct Completed<'a> {
    pub user: User,
    pub method: SignInMethod,
    pub client: &'a ClientInfo,
    pub offline_access: bool,
    /// The key of `throttle`'s attempt count (the user's email key); `None` for a
    /// sign-in that counted none (a passkey).
    pub failures_of: Option<String>,
}

/// Starts a session for a completed sign-in and issues its access token, and a refresh
/// token when `offline_access` was asked for. The session, its event and forgetting the
/// account's failed attempts are one write.
pub(crate) async fn start(
    core: &Core,
    done: Completed<'_>,
    now: Timestamp,
) -> Result<SessionGrant, Fault> {
    start_spending(core, done, None, now)
        .await?
        .ok_or_else(|| Fault::internal("a sign-in without a challenge was refused"))
}

/// [`start`] for a second step: the same write also spends the challenge `challenge`
/// (the mfa_token's row); `None` when another request spent it first.
pub(crate) async fn start_spending(
    core: &Core,
    done: Completed<'_>,
    challenge: Option<String>,
    now: Timestamp,
) -> Result<Option<SessionGrant>, Fault> {
    let Completed {
        user,
        method,
        client,
        offline_access,
        failures_of,
    } = done;
    let id = uuid::Uuid::new_v4();
    let salt = offline_access.then(RefreshKey::new_salt);
    let user_agent = client
        .user_agent
        .as_ref()
        .map(|ua| ua.chars().take(256).collect::<String>());
    let session = NewSession {
        id: id.to_string(),
        user_id: user.id.to_string(),
        created_at: now.millis(),
        last_used_at: now.millis(),
        expires_at: now.plus_secs(core.config.session_lifetime_seconds).millis(),
        ip: client.ip.clone(),
        user_agent,
        method: method.name,
        aal: method.aal,
        refresh_key_salt: salt.clone(),
        second_factor: method.second_factor.map(str::to_owned),
    };
    let event = Event::new(EventType::LoginSucceeded, Some(user.id))
        .with("method", session.method.clone())
        .with("aal", session.aal)
        .with("session_id", session.id.clone());
    let done = sessions::SignedIn {
        session,
        clear_failures: failures_of,
        spend_challenge: challenge,
    };
    let change = Change::new(vec![event], client, now);
    let started = core
        .apply(change, move |c, raised| {
            sessions::sign_in(c, &done, raised.effects())
        })
        .await?;
    let Some(roles) = started else {
        return Ok(None);
    };
    Counters::inc(&core.counters.sessions_started);
    let session = Minted {
        id: &id.to_string(),
        salt: salt.as_deref(),
        counter: 0,
        roles: &roles,
    };
    grant(core, user, session, now).map(Some)
}

/// What the tokens of a grant are made of: the session, its refresh key's salt and
/// counter, and the names of the user's roles (the access token's `roles`).
struct Minted<'a> {
    id: &'a str,
    salt: Option<&'a str>,
    counter: i64,
    roles: &'a [String],
}

fn grant(
    core: &Core,
    user: User,
    session: Minted<'_>,
    now: Timestamp,
) -> Result<SessionGrant, Fault> {
    let Minted {
        id: session_id,
        salt,
        counter,
        roles,
    } = session;
    let access_token = core
        .tokens
        .issue_access(user.id, Some(session_id), roles, now)
        .map_err(Fault::internal)?;
    let refresh_token = match (salt, uuid::Uuid::parse_str(session_id)) {
        (Some(salt), Ok(sid)) => Some(core.refresh_key.token(sid, salt, counter)),
        _ => None,
    };
    Ok(SessionGrant {
        user,
        session_id: session_id.to_owned(),
        access_token,
        refresh_token,
        expires_in: core.tokens.access_lifetime_seconds,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// Malformed, unknown, expired, of an ended session, of an inactive or deleted
    /// user, or not a refresh token at all.
    #[error("invalid refresh token")]
    Invalid,
    /// A spent token presented after the reuse interval: the session has been ended.
    #[error("refresh token reused")]
    Reused,
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<DbError> for RefreshError {
    fn from(e: DbError) -> Self {
        RefreshError::Fault(e.into())
    }
}

/// Rotates a refresh token: the current one gets the next token and a new access
/// token of the same session. The one spent just before, within
/// `REFRESH_REUSE_INTERVAL_SECONDS` of its rotation, gets the session's current token
/// (two tabs refreshing at once converge on one); any older one, or that one later, is
/// theft: the session ends. A failed rotation spends nothing.
#[tracing::instrument(level = "debug", name = "session::refresh", skip_all)]
pub async fn refresh(
    core: &Core,
    token: &str,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<SessionGrant, RefreshError> {
    let r = rotate(core, token, RefreshOf::FirstParty, client, now).await?;
    let session = Minted {
        id: &r.session_id,
        salt: Some(&r.salt),
        counter: r.counter,
        roles: &r.roles,
    };
    grant(core, r.user, session, now).map_err(Into::into)
}

/// Whose refresh tokens a rotation accepts: the service's own sessions (§8's
/// `/auth/jwt/refresh`), or the grants of one client of the provider (`/oauth/token`).
/// The two never cross.
#[derive(Debug, Clone, Copy)]
pub(crate) enum RefreshOf<'a> {
    FirstParty,
    Grant { client_id: &'a str },
}

/// A rotation's result: the session's user, and its refresh token's salt and counter.
#[derive(Debug)]
pub(crate) struct Rotated {
    pub user: User,
    pub session_id: String,
    pub salt: String,
    pub counter: i64,
    /// The names of the user's roles now.
    pub roles: Vec<String>,
}

/// The rotation of [`refresh`], for either kind of session; counted.
pub(crate) async fn rotate(
    core: &Core,
    token: &str,
    of: RefreshOf<'_>,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<Rotated, RefreshError> {
    let outcome = refresh_inner(core, token, of, client, now).await;
    let counter = match &outcome {
        Ok((_, Rotation::Rotated)) => &core.counters.refreshes_rotated,
        Ok((_, Rotation::Converged)) => &core.counters.refreshes_converged,
        Err(RefreshError::Reused) => &core.counters.refresh_reuse_detected,
        Err(RefreshError::Invalid) => &core.counters.refreshes_invalid,
        Err(RefreshError::Fault(_)) => return outcome.map(|(g, _)| g),
    };
    Counters::inc(counter);
    outcome.map(|(g, _)| g)
}

enum Rotation {
    Rotated,
    Converged,
}

async fn refresh_inner(
    core: &Core,
    token: &str,
    of: RefreshOf<'_>,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(Rotated, Rotation), RefreshError> {
    let claim = RefreshKey::parse(token).ok_or(RefreshError::Invalid)?;
    let sid = claim.session_id.to_string();
    let presented = claim.counter;
    // checked and rotated in a batch with the refreshes that arrive beside it: one
    // transaction, one commit for all (docs/sessions-and-tokens.md#rotations)
    let rotating = Rotating {
        key: core.refresh_key.clone(),
        claim,
        client_id: match of {
            RefreshOf::FirstParty => None,
            RefreshOf::Grant { client_id } => Some(client_id.to_owned()),
        },
        at: core.config.liveness(now),
    };
    let step = core.rotations.get(rotating).await?;
    let (user, salt, current, refreshed_at, roles) = match step {
        Step::Invalid => return Err(RefreshError::Invalid),
        Step::Rotated {
            user,
            salt,
            counter,
            roles,
        } => {
            tracing::info!(user_id = %user.id, session_id = %sid, "refresh token rotated");
            let rotated = Rotated {
                user,
                session_id: sid,
                salt,
                counter,
                roles,
            };
            return Ok((rotated, Rotation::Rotated));
        }
        Step::Behind {
            user,
            salt,
            current,
            refreshed_at,
            roles,
        } => (user, salt, current, refreshed_at, roles),
    };
    let interval_ms = core.config.refresh_reuse_interval_seconds * 1000;
    let just_spent =
        presented == current - 1 && refreshed_at.is_some_and(|at| now.millis() - at <= interval_ms);
    if just_spent {
        let rotated = Rotated {
            user,
            session_id: sid,
            salt,
            counter: current,
            roles,
        };
        return Ok((rotated, Rotation::Converged));
    }
    // an older token, or the last one too late: someone else has this session's tokens
    end_reused(core, sid, user.id, client, now).await
}

/// Ends the session whose spent refresh token was presented again (an older one, or the
/// last one after the reuse interval), with its event.
async fn end_reused(
    core: &Core,
    sid: String,
    user_id: UserId,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<(Rotated, Rotation), RefreshError> {
    let (id, at) = (sid.clone(), core.config.liveness(now));
    let event =
        Event::new(EventType::RefreshTokenReused, Some(user_id)).with("session_id", sid.clone());
    let change = Change::new(vec![event], client, now);
    core.apply(change, move |c, raised| {
        sessions::end(
            c,
            &id,
            user_id,
            at,
            "refresh_token_reused",
            raised.effects(),
        )
    })
    .await?;
    tracing::warn!(user_id = %user_id, session_id = %sid, "a spent refresh token was presented again; the session is ended");
    Err(RefreshError::Reused)
}

/// The user's live sessions, newest first; `current` marks the caller's.
#[tracing::instrument(level = "debug", name = "session::list", skip_all)]
pub async fn list(
    core: &Core,
    user_id: UserId,
    current: Option<&str>,
    now: Timestamp,
) -> Result<Vec<SessionInfo>, Fault> {
    let at = core.config.liveness(now);
    let rows = core
        .store
        .run(move |c| sessions::live_of_user(c, user_id, at))
        .await?;
    Ok(rows.into_iter().map(|r| info(r, current)).collect())
}

/// Who ends sessions, and why.
#[derive(Debug, Clone, Copy)]
pub struct Ending<'a> {
    /// `logout` (recorded as `user.logged_out`), `signed_out_by_user`, …
    pub reason: &'static str,
    /// The superuser who does it, when not the user.
    pub by: Option<UserId>,
    pub client: &'a ClientInfo,
}

fn ending_event(user_id: UserId, ending: &Ending<'_>) -> Event {
    let kind = if ending.reason == "logout" {
        EventType::LoggedOut
    } else {
        EventType::SessionEnded
    };
    Event::new(kind, Some(user_id))
        .by(ending.by)
        .with("reason", ending.reason)
}

/// Ends one live session of the user; `false` when they have none with that id.
#[tracing::instrument(level = "debug", name = "session::end", skip_all)]
pub async fn end(
    core: &Core,
    user_id: UserId,
    session_id: &str,
    ending: Ending<'_>,
    now: Timestamp,
) -> Result<bool, Fault> {
    let reason = ending.reason;
    let (id, at) = (session_id.to_owned(), core.config.liveness(now));
    let event = ending_event(user_id, &ending).with("session_id", session_id);
    let change = Change::new(vec![event], ending.client, now);
    let ended = core
        .apply(change, move |c, raised| {
            sessions::end(c, &id, user_id, at, reason, raised.effects())
        })
        .await?;
    if ended {
        tracing::info!(user_id = %user_id, session_id = %session_id, reason, "session ended");
    }
    Ok(ended)
}

/// Ends every session of the user but `except` (sign out everywhere else; or, with
/// `None`, everywhere).
#[tracing::instrument(level = "debug", name = "session::end_all", skip_all)]
pub async fn end_all(
    core: &Core,
    user_id: UserId,
    except: Option<&str>,
    ending: Ending<'_>,
    now: Timestamp,
) -> Result<usize, Fault> {
    let reason = ending.reason;
    let end = EndSessions {
        user_id,
        except: except.map(str::to_owned),
        now_ms: now.millis(),
        reason,
        // the person's own "sign out everywhere" leaves the apps they let in (they end
        // one by one, docs/oauth-provider.md); a superuser's ends them too
        grants: ending.by.is_some(),
    };
    let scope = if except.is_some() { "others" } else { "all" };
    let event = ending_event(user_id, &ending).with("sessions", scope);
    let change = Change::new(vec![event], ending.client, now);
    let n = core
        .apply(change, move |c, raised| {
            sessions::end_all(c, &end, raised.effects())
        })
        .await?;
    tracing::info!(user_id = %user_id, ended = n, reason, "sessions ended");
    Ok(n)
}
