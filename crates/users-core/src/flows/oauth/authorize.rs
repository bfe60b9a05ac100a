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
use users_domain::crypto::{constant_time_eq, random_token, token_hash};
use users_domain::oauth::{is_s256_challenge, redirect_uri_matches};
use users_domain::{Timestamp, UserId};

use super::clients::{self, Client};
use super::{scopes_of, within, Params};
use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::flows::auth;
use crate::{Core, Fault};

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

/// An authorization request whose client and redirect URI are known good: every
/// further error can go back to the client.
#[derive(Debug, Clone)]
struct Bound {
    client: Client,
    redirect_uri: String,
    redirect_uri_given: bool,
    state: Option<String>,
}

/// A request that passed every check.
#[derive(Debug, Clone)]
struct Valid {
    bound: Bound,
    scopes: Vec<String>,
    code_challenge: String,
    nonce: Option<String>,
    resource: Option<String>,
    prompt_none: bool,
    prompt_login: bool,
    prompt_consent: bool,
    max_age: Option<i64>,
    login_hint: Option<String>,
}

/// An error to send back to the client.
struct Back(&'static str, String);

fn back(code: &'static str, description: impl Into<String>) -> Back {
    Back(code, description.into())
}

impl Bound {
    /// An error before the person answered: back to the client, or for a client
    /// registered without a token, a page (its redirect URIs are nobody's word).
    fn refuse(&self, issuer: &str, e: Back) -> Authorized {
        if self.client.metadata.registered_openly {
            return Authorized::Page(format!("The request was refused: {} ({}).", e.1, e.0));
        }
        self.error(issuer, e)
    }

    fn error(&self, issuer: &str, e: Back) -> Authorized {
        let mut pairs = vec![("error", e.0.to_owned()), ("error_description", e.1)];
        if let Some(s) = &self.state {
            pairs.push(("state", s.clone()));
        }
        pairs.push(("iss", issuer.to_owned()));
        Authorized::Redirect(with_query(&self.redirect_uri, &pairs))
    }
}

/// `uri` with `pairs` appended to its query.
fn with_query(uri: &str, pairs: &[(&str, String)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => uri.to_owned(),
    }
}

/// The client and redirect URI of a request, or the page that says why not.
async fn bind(core: &Core, params: &Params) -> Result<Result<Bound, String>, Fault> {
    for name in ["client_id", "redirect_uri"] {
        if params.0.iter().filter(|(k, _)| k == name).count() > 1 {
            return Ok(Err(format!("The request names `{name}` more than once.")));
        }
    }
    let Some(client_id) = params.get("client_id") else {
        return Ok(Err("The request has no `client_id`.".into()));
    };
    let Some(client) = clients::get(core, client_id).await? else {
        return Ok(Err(
            "No application is registered with this client_id.".into()
        ));
    };
    let registered = &client.metadata.redirect_uris;
    let redirect_uri = match params.get("redirect_uri") {
        Some(asked) => match registered.iter().any(|r| redirect_uri_matches(r, asked)) {
            true => asked.to_owned(),
            false => {
                return Ok(Err(
                    "The redirect_uri is not one the application registered.".into(),
                ))
            }
        },
        None => match registered.as_slice() {
            [only] => only.clone(),
            _ => return Ok(Err(
                "The request has no redirect_uri, and the application registered more than one."
                    .into(),
            )),
        },
    };
    Ok(Ok(Bound {
        client,
        redirect_uri,
        redirect_uri_given: params.get("redirect_uri").is_some(),
        state: params.get("state").map(str::to_owned),
    }))
}

/// Checks the rest of a bound request.
fn validate(bound: Bound, params: &Params) -> Result<Valid, Box<(Bound, Back)>> {
    let fail = |bound: Bound, e: Back| Err(Box::new((bound, e)));
    if let Some(name) = params.repeated() {
        return fail(
            bound,
            back("invalid_request", format!("`{name}` is repeated")),
        );
    }
    match params.get("response_type") {
        None => {
            return fail(
                bound,
                back("invalid_request", "`response_type` is required"),
            )
        }
        Some("code") => {}
        Some(other) => {
            return fail(
                bound,
                back(
                    "unsupported_response_type",
                    format!("response_type `{other}` is not supported (only `code`)"),
                ),
            )
        }
    }
    if !bound
        .client
        .metadata
        .has_grant(super::GRANT_AUTHORIZATION_CODE)
    {
        return fail(
            bound,
            back(
                "unauthorized_client",
                "the client is not registered for the authorization_code grant",
            ),
        );
    }
    let Some(challenge) = params.get("code_challenge") else {
        return fail(
            bound,
            back("invalid_request", "`code_challenge` is required (PKCE)"),
        );
    };
    match params.get("code_challenge_method") {
        Some("S256") => {}
        Some(other) => {
            return fail(
                bound,
                back(
                    "invalid_request",
                    format!("code_challenge_method `{other}` is not supported (only S256)"),
                ),
            )
        }
        None => {
            return fail(
                bound,
                back("invalid_request", "`code_challenge_method` must be S256"),
            )
        }
    }
    if !is_s256_challenge(challenge) {
        return fail(
            bound,
            back(
                "invalid_request",
                "`code_challenge` is not the base64url SHA-256 of a verifier",
            ),
        );
    }
    let allowed = bound.client.metadata.scopes();
    let scopes = match params.get("scope") {
        Some(s) => match scopes_of(s) {
            Ok(v) => v,
            Err(e) => return fail(bound, back("invalid_scope", e.description())),
        },
        None => allowed.clone(),
    };
    let scopes = match within(&scopes, &allowed) {
        Ok(s) => s,
        Err(outside) => {
            return fail(
                bound,
                back(
                    "invalid_scope",
                    format!("the client may not ask for scope `{outside}`"),
                ),
            )
        }
    };
    let resource = match params.get("resource") {
        None => None,
        Some(r) => {
            if r.starts_with("fastapi-users:") {
                return fail(
                    bound,
                    back("invalid_target", "this resource is the service's own"),
                );
            }
            match url::Url::parse(r) {
                Ok(u) if u.fragment().is_none() => Some(r.to_owned()),
                _ => {
                    return fail(
                        bound,
                        back(
                            "invalid_target",
                            "`resource` must be an absolute URI without a fragment",
                        ),
                    )
                }
            }
        }
    };
    let prompts: Vec<&str> = params
        .get("prompt")
        .map(|p| p.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    if let Some(p) = prompts
        .iter()
        .find(|p| !matches!(**p, "none" | "login" | "consent" | "select_account"))
    {
        return fail(
            bound,
            back("invalid_request", format!("prompt `{p}` is not supported")),
        );
    }
    let prompt_none = prompts.contains(&"none");
    if prompt_none && prompts.len() > 1 {
        return fail(
            bound,
            back("invalid_request", "prompt `none` goes with no other value"),
        );
    }
    let max_age = match params.get("max_age") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return fail(
                    bound,
                    back(
                        "invalid_request",
                        "`max_age` must be a whole number of seconds",
                    ),
                )
            }
        },
    };
    let nonce = params.get("nonce").map(str::to_owned);
    if nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return fail(bound, back("invalid_request", "`nonce` is too long"));
    }
    Ok(Valid {
        code_challenge: challenge.to_owned(),
        scopes,
        nonce,
        resource,
        prompt_none,
        prompt_login: prompts.contains(&"login"),
        prompt_consent: prompts.contains(&"consent"),
        max_age,
        login_hint: params.get("login_hint").map(str::to_owned),
        bound,
    })
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
    // a request coming back from the sign-in page: the stored parameters, and since when
    // a sign-in counts as made for it
    let marker = query.get(LOGIN_MARKER).map(str::to_owned);
    let (params, signed_in_since) = match query.get(LOGIN_MARKER) {
        Some(id) => {
            let id = id.to_owned();
            let now_ms = now.millis();
            let row = core
                .store
                .run(move |c| db::find_request(c, &id, "login", now_ms))
                .await?;
            match row {
                Some(r) => {
                    let params: Params =
                        serde_json::from_str(&r.params).map_err(Fault::internal)?;
                    (params, Some(r.created_at))
                }
                None => return Ok(Authorized::Page(
                    "This sign-in request has expired. Go back to the application and start again."
                        .into(),
                )),
            }
        }
        None => (
            Params(
                query
                    .0
                    .into_iter()
                    .filter(|(k, _)| KNOWN.contains(&k.as_str()))
                    .collect(),
            ),
            None,
        ),
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
            let marker = random_token(24);
            let row = RequestRow {
                id: marker.clone(),
                kind: "login".into(),
                client_id: valid.bound.client.client_id.clone(),
                params: serde_json::to_string(&params).map_err(Fault::internal)?,
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
            return Ok(Authorized::SignIn {
                return_to: format!("/oauth/authorize?{LOGIN_MARKER}={marker}"),
                login_hint: valid.login_hint.clone(),
            });
        }
    };
    let needs_consent = if valid.bound.client.metadata.skip_consent {
        false
    } else if valid.prompt_consent {
        true
    } else {
        let client_id = valid.bound.client.client_id.clone();
        let consent = core
            .store
            .run(move |c| db::find_consent(c, user_id, &client_id))
            .await?;
        match consent {
            Some(c) => {
                let granted = users_domain::oauth::parse_scope(&c.scopes).unwrap_or_default();
                valid.scopes.iter().any(|s| !granted.contains(s))
            }
            None => true,
        }
    };
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
        let id = random_token(24);
        let row = RequestRow {
            id: id.clone(),
            kind: "consent".into(),
            client_id: valid.bound.client.client_id.clone(),
            params: serde_json::to_string(&params).map_err(Fault::internal)?,
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
        return Ok(Authorized::Consent { request_id: id });
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
    let change = Change::new(events, client, now);
    let issued = core
        .apply(change, move |c, raised| {
            db::issue_code(c, &row, &issue, raised.effects())
        })
        .await?;
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

/// What the consent page shows.
#[derive(Debug, Clone)]
pub struct ConsentView {
    pub request_id: String,
    pub csrf: String,
    pub client_name: String,
    pub client_uri: Option<String>,
    /// The host the person will be sent back to.
    pub redirect_host: String,
    /// Where the decision redirects, as a CSP source: the redirect URI's origin, or its
    /// scheme (`com.example.app:`) for a native app.
    pub redirect_target: String,
    pub scopes: Vec<String>,
    pub user_email: String,
}

/// Why the consent page cannot be shown or answered.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// Unknown, expired or answered already.
    #[error("this request has expired or was answered already")]
    Expired,
    /// The browser is not signed in as the person the request is for.
    #[error("not signed in as the person this request is for")]
    NotSignedIn,
    /// The form's CSRF token is not the request's.
    #[error("the form does not belong to this request")]
    Forged,
    #[error(transparent)]
    Fault(#[from] Fault),
}

async fn consent_request(
    core: &Core,
    request_id: &str,
    cookie: Option<String>,
    now: Timestamp,
) -> Result<(RequestRow, Valid, UserId, SessionRow), ConsentError> {
    let id = request_id.to_owned();
    let now_ms = now.millis();
    let row = core
        .store
        .run(move |c| db::find_request(c, &id, "consent", now_ms))
        .await
        .map_err(Fault::from)?
        .ok_or(ConsentError::Expired)?;
    let (user_id, session) = browser_session(core, cookie, now)
        .await?
        .ok_or(ConsentError::NotSignedIn)?;
    if row.user_id.as_deref() != Some(user_id.to_string().as_str()) {
        return Err(ConsentError::NotSignedIn);
    }
    let params: Params = serde_json::from_str(&row.params).map_err(Fault::internal)?;
    let bound = match bind(core, &params).await? {
        Ok(b) => b,
        Err(_) => return Err(ConsentError::Expired),
    };
    let valid = validate(bound, &params).map_err(|_| ConsentError::Expired)?;
    Ok((row, valid, user_id, session))
}

/// `GET /oauth/consent?request=`.
#[tracing::instrument(level = "debug", name = "oauth::authorize::consent_view", skip_all)]
pub async fn consent_view(
    core: &Core,
    request_id: &str,
    cookie: Option<String>,
    now: Timestamp,
) -> Result<ConsentView, ConsentError> {
    let (row, valid, user_id, _) = consent_request(core, request_id, cookie, now).await?;
    let user = core
        .store
        .run(move |c| users_db::users::find_by_id(c, user_id))
        .await
        .map_err(Fault::from)?
        .ok_or(ConsentError::NotSignedIn)?;
    let metadata = &valid.bound.client.metadata;
    Ok(ConsentView {
        request_id: row.id,
        csrf: row.csrf.unwrap_or_default(),
        client_name: metadata
            .display_name(&valid.bound.client.client_id)
            .to_owned(),
        client_uri: metadata.client_uri.clone(),
        redirect_host: url::Url::parse(&valid.bound.redirect_uri)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| valid.bound.redirect_uri.clone()),
        redirect_target: url::Url::parse(&valid.bound.redirect_uri)
            .map(|u| match u.scheme() {
                "http" | "https" => u.origin().ascii_serialization(),
                scheme => format!("{scheme}:"),
            })
            .unwrap_or_default(),
        scopes: valid.scopes,
        user_email: user.user.email,
    })
}

/// `POST /oauth/consent`: the person's decision. Answers the redirect to the client.
#[tracing::instrument(level = "debug", name = "oauth::authorize::decide", skip_all)]
pub async fn decide(
    core: &Core,
    request_id: &str,
    csrf: &str,
    allow: bool,
    cookie: Option<String>,
    client: &ClientInfo,
    now: Timestamp,
) -> Result<String, ConsentError> {
    let (row, valid, user_id, session) = consent_request(core, request_id, cookie, now).await?;
    let expected = row.csrf.clone().unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), csrf.as_bytes()) {
        return Err(ConsentError::Forged);
    }
    let issuer = core.config.public_url.clone();
    if !allow {
        let id = row.id.clone();
        let spent = core
            .store
            .run(move |c| db::spend_request(c, &id))
            .await
            .map_err(Fault::from)?;
        if !spent {
            return Err(ConsentError::Expired);
        }
        return match valid.bound.error(
            &issuer,
            back("access_denied", "the person did not allow the request"),
        ) {
            Authorized::Redirect(to) => Ok(to),
            _ => Err(ConsentError::Expired),
        };
    }
    let issue = CodeIssue {
        remember: Some(valid.scopes.join(" ")),
        spend_request: Some(row.id.clone()),
    };
    match issue_code(core, &valid, user_id, &session, issue, client, now).await? {
        Some(Authorized::Redirect(to)) => Ok(to),
        _ => Err(ConsentError::Expired),
    }
}
