//! `GET /oauth/authorize` and the consent page (docs/oauth-provider.md): the
//! authorization code flow with PKCE S256 only. An unknown client or an unregistered
//! redirect URI is answered with a page, never a redirect; every other error goes back
//! to the client with `error`, `error_description`, `state` and `iss` (RFC 9207).
//!
//! A person who must sign in first is sent to the hosted `/login` page with a
//! `return_to` of this request, stored as a one-time marker (`oauth_requests`, kind
//! `login`): a session started after the marker satisfies `prompt=login` and `max_age`.
//! One who must decide is sent to `/oauth/consent?request=<id>` (kind `consent`, with a
//! CSRF token); the decision issues the code, remembers the consent and spends the
//! request in one transaction.

use serde::{Deserialize, Serialize};
use users_db::oauth::{self as db, CodeIssue, CodeRow, RequestRow};
use users_db::sessions::SessionRow;
use users_domain::crypto::{random_token, token_hash};
use users_domain::{Timestamp, UserId};

use super::Params;
use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::flows::auth;
use crate::{Core, Fault};

mod consent;
mod request;

pub use consent::{consent_view, decide, ConsentError, ConsentView};
use request::{back, bind, validate, with_query, Valid};

/// How long a login marker or a consent request lives.
pub const REQUEST_LIFETIME_SECS: i64 = 600;
/// The parameter that carries a login marker back to `/oauth/authorize`.
pub const LOGIN_MARKER: &str = "login_request";

/// What `/oauth/authorize` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorized {
    /// 400, a page saying what is wrong: no redirect URI can be trusted.
    Page(String),
    /// 302 to the client's redirect URI, with a code or an error.
    Redirect(String),
    /// 302 to the hosted sign-in page, which comes back to `return_to` (a path).
    SignIn {
        return_to: String,
        login_hint: Option<String>,
    },
    /// 302 to the consent page of this request.
    Consent { request_id: String },
}

/// The parameters of an authorization request that are kept with it (the rest are
/// ignored, RFC 6749 §3.1).
const KNOWN: [&str; 12] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
    "max_age",
    "login_hint",
    "resource",
];
/// The longest query an authorization request may have.
const MAX_QUERY_BYTES: usize = 4096;

/// What a code keeps of its request and sign-in, for the token endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CodeData {
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    /// Seconds.
    pub auth_time: i64,
    pub method: String,
    pub second_factor: Option<String>,
    pub aal: i64,
    /// The browser session the code was issued in: it must still be live at redemption.
    pub browser_session: String,
    /// Whether the request named its `redirect_uri` (then the token request must too).
    pub redirect_uri_given: bool,
}

/// The cookie's live session and its user, if the request has one.
async fn browser_session(
    core: &Core,
    cookie: Option<String>,
    now: Timestamp,
) -> Result<Option<(UserId, SessionRow)>, Fault> {
    let Some(token) = cookie else {
        return Ok(None);
    };
    let authenticated = match auth::authenticate(core, token, now).await {
        Ok(a) => a,
        Err(auth::AuthError::Unauthorized) => return Ok(None),
        Err(auth::AuthError::Fault(f)) => return Err(f),
    };
    // the session as the token's check read it (live, the user's): no second read
    let user_id = authenticated.user().id;
    Ok(authenticated.session.map(|r| (user_id, r)))
}

/// `GET /oauth/authorize` with its query, and the `fastapiusersauth` cookie if any.
#[tracing::instrument(level = "debug", name = "oauth::authorize::authorize", skip_all)]
pub async fn authorize(
    core: &Core,
    query: Params,
    cookie: Option<String>,
    now: Timestamp,
) -> Result<Authorized, Fault> {
    let issuer = core.config.public_url.clone();
    let size: usize = query.0.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    if size > MAX_QUERY_BYTES {
        return Ok(Authorized::Page("The request is too long.".into()));
    }
    let marker = query.get(LOGIN_MARKER).map(str::to_owned);
    let (params, signed_in_since) = match request_params(core, query, now).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let bound = match bind(core, &params).await? {
        Ok(b) => b,
        Err(page) => return Ok(Authorized::Page(page)),
    };
    let valid = match validate(bound, &params) {
        Ok(v) => v,
        Err(refused) => {
            let (bound, e) = *refused;
            return Ok(bound.refuse(&issuer, e));
        }
    };
    let session = browser_session(core, cookie, now).await?;
    let fresh_enough = |s: &SessionRow| {
        let made_for_this = signed_in_since.is_some_and(|since| s.created_at >= since);
        if made_for_this {
            return true;
        }
        if valid.prompt_login {
            return false;
        }
        match valid.max_age {
            Some(age) => now.millis() - s.created_at <= age.saturating_mul(1000),
            None => true,
        }
    };
    let (user_id, session) = match session {
        Some((u, s)) if fresh_enough(&s) => (u, s),
        _ => {
            if valid.prompt_none {
                return Ok(valid.bound.refuse(
                    &issuer,
                    back("login_required", "the person is not signed in"),
                ));
            }
            return send_to_sign_in(core, &valid, &params, now).await;
        }
    };
    let needs_consent = needs_consent(core, &valid, user_id).await?;
    if let Some(id) = marker {
        // the marker did its work: a sign-in made for this request; once
        core.store.run(move |c| db::spend_request(c, &id)).await?;
    }
    if needs_consent {
        if valid.prompt_none {
            return Ok(valid.bound.refuse(
                &issuer,
                back("consent_required", "the person has not allowed this yet"),
            ));
        }
        return ask_consent(core, &valid, &params, user_id, &session, now).await;
    }
    let client = ClientInfo::default();
    issue_code(
        core,
        &valid,
        user_id,
        &session,
        CodeIssue::default(),
        &client,
        now,
    )
    .await
    .map(|r| r.unwrap_or_else(|| Authorized::Page("This request was already answered.".into())))
}

/// The parameters of a request and, for one coming back from the sign-in page (its
/// marker), the stored parameters and since when a sign-in counts as made for it; the
/// page to answer when the marker expired.
async fn request_params(
    core: &Core,
    query: Params,
    now: Timestamp,
) -> Result<Result<(Params, Option<i64>), Authorized>, Fault> {
    let Some(id) = query.get(LOGIN_MARKER) else {
        let known = query
            .0
            .into_iter()
            .filter(|(k, _)| KNOWN.contains(&k.as_str()))
            .collect();
        return Ok(Ok((Params(known), None)));
    };
    let id = id.to_owned();
    let now_ms = now.millis();
    let row = core
        .store
        .read(move |c| db::find_request(c, &id, "login", now_ms))
        .await?;
    match row {
        Some(r) => {
            let params: Params = serde_json::from_str(&r.params).map_err(Fault::internal)?;
            Ok(Ok((params, Some(r.created_at))))
        }
        None => Ok(Err(Authorized::Page(
            "This sign-in request has expired. Go back to the application and start again.".into(),
        ))),
    }
}

/// Stores the request as a login marker and sends the person to the sign-in page, which
/// comes back with it.
async fn send_to_sign_in(
    core: &Core,
    valid: &Valid,
    params: &Params,
    now: Timestamp,
) -> Result<Authorized, Fault> {
    let marker = random_token(24);
    let row = RequestRow {
        id: marker.clone(),
        kind: "login".into(),
        client_id: valid.bound.client.client_id.clone(),
        params: serde_json::to_string(params).map_err(Fault::internal)?,
        user_id: None,
        session_id: None,
        csrf: None,
        created_at: now.millis(),
        expires_at: now.plus_secs(REQUEST_LIFETIME_SECS).millis(),
    };
    let now_ms = now.millis();
    core.store
        .run(move |c| db::insert_request(c, &row, now_ms))
        .await?;
    Ok(Authorized::SignIn {
        return_to: format!("/oauth/authorize?{LOGIN_MARKER}={marker}"),
        login_hint: valid.login_hint.clone(),
    })
}

/// Whether the person must decide: not for a client that skips consent; always with
/// `prompt=consent`; otherwise when a scope asked for is not in their earlier consent.
async fn needs_consent(core: &Core, valid: &Valid, user_id: UserId) -> Result<bool, Fault> {
    if valid.bound.client.metadata.skip_consent {
        return Ok(false);
    }
    if valid.prompt_consent {
        return Ok(true);
    }
    let client_id = valid.bound.client.client_id.clone();
    let consent = core
        .store
        .read(move |c| db::find_consent(c, user_id, &client_id))
        .await?;
    Ok(match consent {
        Some(c) => {
            let granted = users_domain::oauth::parse_scope(&c.scopes).unwrap_or_default();
            valid.scopes.iter().any(|s| !granted.contains(s))
        }
        None => true,
    })
}

/// Stores the request as a consent request (with its CSRF token) and sends the person
/// to the consent page.
async fn ask_consent(
    core: &Core,
    valid: &Valid,
    params: &Params,
    user_id: UserId,
    session: &SessionRow,
    now: Timestamp,
) -> Result<Authorized, Fault> {
    let id = random_token(24);
    let row = RequestRow {
        id: id.clone(),
        kind: "consent".into(),
        client_id: valid.bound.client.client_id.clone(),
        params: serde_json::to_string(params).map_err(Fault::internal)?,
        user_id: Some(user_id.to_string()),
        session_id: Some(session.id.clone()),
        csrf: Some(random_token(24)),
        created_at: now.millis(),
        expires_at: now.plus_secs(REQUEST_LIFETIME_SECS).millis(),
    };
    let now_ms = now.millis();
    core.store
        .run(move |c| db::insert_request(c, &row, now_ms))
        .await?;
    Ok(Authorized::Consent { request_id: id })
}

/// Issues the code of a valid request and answers the redirect that carries it;
/// `None` when the consent request it spends was spent already.
async fn issue_code(
    core: &Core,
    valid: &Valid,
    user_id: UserId,
    session: &SessionRow,
    issue: CodeIssue,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<Option<Authorized>, Fault> {
    let code = random_token(32);
    let data = CodeData {
        redirect_uri: valid.bound.redirect_uri.clone(),
        code_challenge: valid.code_challenge.clone(),
        nonce: valid.nonce.clone(),
        scopes: valid.scopes.clone(),
        resource: valid.resource.clone(),
        auth_time: session.created_at / 1000,
        method: session.method.clone(),
        second_factor: session.second_factor.clone(),
        aal: session.aal,
        browser_session: session.id.clone(),
        redirect_uri_given: valid.bound.redirect_uri_given,
    };
    let row = CodeRow {
        code_hash: token_hash(&code),
        client_id: valid.bound.client.client_id.clone(),
        user_id: user_id.to_string(),
        data: serde_json::to_string(&data).map_err(Fault::internal)?,
        created_at: now.millis(),
        expires_at: now
            .plus_secs(core.config.oauth_code_lifetime_seconds)
            .millis(),
        used_at: None,
        grant_session_id: None,
    };
    let events = if issue.remember.is_some() {
        vec![Event::new(EventType::OauthConsentGranted, Some(user_id))
            .with("client_id", valid.bound.client.client_id.clone())
            .with("scopes", valid.scopes.clone())]
    } else {
        Vec::new()
    };
    let issued = if events.is_empty() && db::issued_alone(&row, &issue) {
        // stored with the codes of concurrent authorizations, one commit for them
        // (docs/oauth-provider.md#how-a-code-is-issued)
        core.code_issues.get(row).await?
    } else {
        let change = Change::new(events, client, now);
        core.apply(change, move |c, raised| {
            db::issue_code(c, &row, &issue, raised.effects())
        })
        .await?
    };
    if !issued {
        return Ok(None);
    }
    let mut pairs = vec![("code", code)];
    if let Some(s) = &valid.bound.state {
        pairs.push(("state", s.clone()));
    }
    pairs.push(("iss", core.config.public_url.clone()));
    Ok(Some(Authorized::Redirect(with_query(
        &valid.bound.redirect_uri,
        &pairs,
    ))))
}
