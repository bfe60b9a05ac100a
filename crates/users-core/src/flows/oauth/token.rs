//! `POST /oauth/token` (docs/oauth-provider.md): the authorization code (single use; a
//! replayed code ends every token issued from it), the refresh token of a grant (§8's
//! rotation and reuse detection, on the grant's own session), and client credentials.
//! Access tokens per RFC 9068, ID tokens per OpenID Connect Core, signed with the
//! client's algorithm.

use users_db::oauth::{self as db, CodeRow, GrantRow, Redeemed};
use users_db::sessions::NewSession;
use users_db::Happened;
use users_domain::crypto::{random_token, token_hash};
use users_domain::oauth::{amr, at_hash, is_code_verifier, pkce_s256_matches, scope_string};
use users_domain::{Timestamp, User};

use super::authorize::CodeData;
use super::clients::{self, Client, ClientAuth, Presented};
use super::{scopes_of, within, OAuthError, Params};
use crate::change::Change;
use crate::client::ClientInfo;
use crate::events::{Event, EventType};
use crate::flows::session::{self, RefreshError, RefreshOf};
use crate::signing::SigningAlgorithm;
use crate::tokens::{IdClaims, ProviderAccessClaims, RefreshKey, AT_JWT};
use crate::{Core, Fault};

/// A token response (RFC 6749 §5.1).
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenAnswer {
    pub access_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_token_type: Option<&'static str>,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The scopes that only make sense for a person.
const PERSON_SCOPES: [&str; 5] = ["openid", "email", "profile", "offline_access", "roles"];

/// `POST /oauth/token`.
#[tracing::instrument(level = "debug", name = "oauth::token::token", skip_all)]
pub async fn token(
    core: &Core,
    params: Params,
    auth: ClientAuth,
    from: &ClientInfo,
    now: Timestamp,
) -> Result<TokenAnswer, OAuthError> {
    if let Some(name) = params.repeated() {
        return Err(OAuthError::InvalidRequest(format!("`{name}` is repeated")));
    }
    let grant_type = params.require("grant_type")?.to_owned();
    let known = [
        super::GRANT_AUTHORIZATION_CODE,
        super::GRANT_REFRESH_TOKEN,
        super::GRANT_CLIENT_CREDENTIALS,
    ];
    if grant_type == super::GRANT_TOKEN_EXCHANGE {
        return token_exchange(core, &params, &auth, from, now).await;
    }
    if !known.contains(&grant_type.as_str()) {
        return Err(OAuthError::UnsupportedGrantType(format!(
            "grant_type `{grant_type}` is not supported"
        )));
    }
    // the client's row, and for a code the code's row and its person, in one trip
    let presented = Presented::of(&auth)?;
    let code_hash = match grant_type.as_str() {
        super::GRANT_AUTHORIZATION_CODE => params.get("code").map(token_hash),
        _ => None,
    };
    let id = presented.id.clone();
    let (row, code) = match code_hash {
        // client credentials and refreshes: the client's row alone, coalesced
        None => (core.client_rows.get(id).await?, None),
        Some(code_hash) => {
            // one statement; reads only: beside SQLite's writer, without waiting for the
            // writers' turn
            let found = core
                .store
                .read(move |c| db::find_exchange(c, &id, &code_hash))
                .await?;
            match found {
                Some((row, code)) => (
                    Some(row),
                    code.map(|(code, person)| (code, person.map(|p| p.user))),
                ),
                None => (None, None),
            }
        }
    };
    let client = clients::authenticate_with(core, &auth, &presented, row, from, now).await?;
    if !client.metadata.has_grant(&grant_type) {
        return Err(OAuthError::UnauthorizedClient(format!(
            "the client is not registered for the {grant_type} grant"
        )));
    }
    let answer = match grant_type.as_str() {
        super::GRANT_AUTHORIZATION_CODE => {
            code_grant(core, &client, &params, code, from, now).await?
        }
        super::GRANT_REFRESH_TOKEN => refresh_grant(core, &client, &params, from, now).await?,
        _ => client_credentials(core, &client, &params, now).await?,
    };
    Ok(answer)
}

/// What a person's tokens say of the sign-in behind them.
struct Person<'a> {
    user: &'a User,
    sid: &'a str,
    scopes: &'a [String],
    resource: Option<&'a str>,
    auth_time: i64,
    amr: Vec<String>,
    acr: String,
    nonce: Option<&'a str>,
    /// The `roles` claim, with scope `roles`.
    roles: Option<Vec<String>>,
}

fn algorithm(client: &Client) -> SigningAlgorithm {
    SigningAlgorithm::parse(&client.metadata.id_token_signed_response_alg)
        .filter(|a| *a != SigningAlgorithm::Hs256)
        .unwrap_or(SigningAlgorithm::Rs256)
}

fn resource_of(params: &Params) -> Result<Option<String>, OAuthError> {
    match params.get("resource") {
        None => Ok(None),
        Some(r) if r.starts_with("fastapi-users:") => Err(OAuthError::InvalidTarget(
            "this resource is the service's own".into(),
        )),
        Some(r) => match url::Url::parse(r) {
            Ok(u) if u.fragment().is_none() => Ok(Some(r.to_owned())),
            _ => Err(OAuthError::InvalidTarget(
                "`resource` must be an absolute URI without a fragment".into(),
            )),
        },
    }
}

/// What of `scopes` a person's token may hold now: the standard scopes, and the
/// permissions their roles grant (docs/roles-and-api-keys.md); the rest are dropped.
/// With scope `roles`, the names of their roles for the `roles` claim.
async fn held_by_person(
    core: &Core,
    user: &User,
    scopes: &[String],
) -> Result<(Vec<String>, Option<Vec<String>>), Fault> {
    let standard = |s: &str| users_domain::oauth::STANDARD_SCOPES.contains(&s);
    let needs_roles = scopes.iter().any(|s| !standard(s) || s == "roles");
    if !needs_roles {
        return Ok((scopes.to_vec(), None));
    }
    let held = crate::flows::roles::of_user(core, user.id).await?;
    let kept: Vec<String> = scopes
        .iter()
        .filter(|s| standard(s) || held.permissions.contains(s))
        .cloned()
        .collect();
    let roles = kept.iter().any(|s| s == "roles").then_some(held.roles);
    Ok((kept, roles))
}

/// The access token (and, with `openid`, the ID token) of a person's grant.
async fn mint_for_person(
    core: &Core,
    client: &Client,
    p: &Person<'_>,
    now: Timestamp,
) -> Result<(String, Option<String>), Fault> {
    let lifetime = core.config.oauth_access_token_lifetime_seconds;
    let alg = algorithm(client);
    let issuer = core.config.public_url.clone();
    let access = ProviderAccessClaims {
        iss: issuer.clone(),
        sub: p.user.id.to_string(),
        aud: p
            .resource
            .map(str::to_owned)
            .unwrap_or_else(|| client.client_id.clone()),
        exp: now.secs() + lifetime,
        iat: now.secs(),
        jti: random_token(16),
        client_id: client.client_id.clone(),
        scope: scope_string(p.scopes),
        auth_time: Some(p.auth_time),
        sid: Some(p.sid.to_owned()),
        acr: Some(p.acr.clone()),
        amr: Some(p.amr.clone()),
        roles: p.roles.clone(),
    };
    let access_token = core.keys.sign(alg, AT_JWT, &access, now).await?;
    if !p.scopes.iter().any(|s| s == "openid") {
        return Ok((access_token, None));
    }
    let with_email = p.scopes.iter().any(|s| s == "email");
    let id = IdClaims {
        iss: issuer,
        sub: p.user.id.to_string(),
        aud: client.client_id.clone(),
        exp: now.secs() + lifetime,
        iat: now.secs(),
        auth_time: p.auth_time,
        nonce: p.nonce.map(str::to_owned),
        at_hash: Some(at_hash(&access_token, alg == SigningAlgorithm::EdDsa)),
        sid: Some(p.sid.to_owned()),
        amr: p.amr.clone(),
        acr: p.acr.clone(),
        email: with_email.then(|| p.user.email.clone()),
        email_verified: with_email.then_some(p.user.is_verified),
        roles: p.roles.clone(),
    };
    let id_token = core.keys.sign(alg, "JWT", &id, now).await?;
    Ok((access_token, Some(id_token)))
}

/// The code grant; `found`: the code's row and its person's, read with the client's.
async fn code_grant(
    core: &Core,
    client: &Client,
    params: &Params,
    found: Option<(CodeRow, Option<User>)>,
    from: &ClientInfo,
    now: Timestamp,
) -> Result<TokenAnswer, OAuthError> {
    let (hash, row, data, person) = code_of_request(client, params, found)?;
    users_domain::UserId::parse_str(&row.user_id).map_err(Fault::internal)?;
    let user = person
        .filter(|u| u.is_active)
        .ok_or_else(|| OAuthError::InvalidGrant("the person's account is not active".into()))?;
    let offline = data.scopes.iter().any(|s| s == "offline_access")
        && client.metadata.has_grant(super::GRANT_REFRESH_TOKEN);
    let salt = offline.then(RefreshKey::new_salt);
    let (session, grant, amr) =
        session_and_grant(core, client, &row.user_id, &data, &salt, from, now);
    let sid = session.id.clone();
    let event = Event::new(EventType::OauthCodeReused, Some(user.id))
        .with("client_id", client.client_id.clone());
    let change = Change::new(vec![event], from, now);
    // the redemptions that arrive while one commits are committed together
    // (docs/oauth-provider.md#how-a-code-is-redeemed); answered once committed
    let (replayed, committed) = core.raise(change)?;
    let redemption = db::Redemption {
        code_hash: hash,
        browser_session: data.browser_session.clone(),
        now_ms: now.millis(),
        session,
        grant,
        replayed,
    };
    let redeemed = core.redemptions.get(redemption).await?;
    if redeemed.happened() {
        committed.count(core);
    }
    started(redeemed, client, &user)?;
    let (scopes, roles) = held_by_person(core, &user, &data.scopes).await?;
    let person = Person {
        user: &user,
        sid: &sid,
        scopes: &scopes,
        resource: data.resource.as_deref(),
        auth_time: data.auth_time,
        amr,
        acr: data.aal.to_string(),
        nonce: data.nonce.as_deref(),
        roles,
    };
    let (access_token, id_token) = mint_for_person(core, client, &person, now).await?;
    let refresh_token = match (&salt, uuid::Uuid::parse_str(&sid)) {
        (Some(salt), Ok(id)) => Some(core.refresh_key.token(id, salt, 0)),
        _ => None,
    };
    tracing::info!(client_id = %client.client_id, user_id = %user.id, session_id = %sid, "authorization code exchanged");
    Ok(TokenAnswer {
        access_token,
        issued_token_type: None,
        token_type: "Bearer",
        expires_in: core.config.oauth_access_token_lifetime_seconds,
        scope: scope_string(&scopes),
        id_token,
        refresh_token,
    })
}

/// The code of a token request, checked against its authorization request (redirect
/// URI, PKCE verifier, resource), from `found` (the code's row and its person's, read
/// with the client's): its hash, its row, what it keeps and the person.
fn code_of_request(
    client: &Client,
    params: &Params,
    found: Option<(CodeRow, Option<User>)>,
) -> Result<(String, db::CodeRow, CodeData, Option<User>), OAuthError> {
    let code = params.require("code")?;
    let verifier = params.require("code_verifier")?;
    let hash = token_hash(code);
    let (row, person) = found
        .filter(|(r, _)| r.client_id == client.client_id && r.code_hash == hash)
        .ok_or_else(|| {
            OAuthError::InvalidGrant("the code is unknown, expired or not this client's".into())
        })?;
    let data: CodeData = serde_json::from_str(&row.data).map_err(Fault::internal)?;
    match params.get("redirect_uri") {
        Some(uri) if uri != data.redirect_uri => {
            return Err(OAuthError::InvalidGrant(
                "`redirect_uri` is not the one of the authorization request".into(),
            ))
        }
        None if data.redirect_uri_given => {
            return Err(OAuthError::InvalidRequest(
                "`redirect_uri` is required: the authorization request named one".into(),
            ))
        }
        _ => {}
    }
    if !is_code_verifier(verifier) || !pkce_s256_matches(verifier, &data.code_challenge) {
        return Err(OAuthError::InvalidGrant(
            "`code_verifier` does not match the code_challenge".into(),
        ));
    }
    if let Some(r) = resource_of(params)? {
        if data.resource.as_deref() != Some(r.as_str()) {
            return Err(OAuthError::InvalidTarget(
                "`resource` is not the one of the authorization request".into(),
            ));
        }
    }
    Ok((hash, row, data, person))
}

/// The session and the grant a redeemed code starts (a new session id), and the
/// sign-in's `amr`.
fn session_and_grant(
    core: &Core,
    client: &Client,
    user_id: &str,
    data: &CodeData,
    salt: &Option<String>,
    from: &ClientInfo,
    now: Timestamp,
) -> (NewSession, GrantRow, Vec<String>) {
    let sid = uuid::Uuid::new_v4();
    let amr = amr(&data.method, data.second_factor.as_deref());
    let user_agent = from
        .user_agent
        .as_ref()
        .map(|ua| ua.chars().take(256).collect::<String>());
    let session = NewSession {
        id: sid.to_string(),
        user_id: user_id.to_owned(),
        created_at: now.millis(),
        last_used_at: now.millis(),
        expires_at: now.plus_secs(core.config.session_lifetime_seconds).millis(),
        ip: from.ip.clone(),
        user_agent,
        method: db::grant_method(&client.client_id),
        aal: data.aal,
        refresh_key_salt: salt.clone(),
        second_factor: data.second_factor.clone(),
    };
    let grant = GrantRow {
        session_id: sid.to_string(),
        client_id: client.client_id.clone(),
        user_id: user_id.to_owned(),
        scope: scope_string(&data.scopes),
        resource: data.resource.clone(),
        auth_time: data.auth_time,
        amr: amr.join(" "),
        created_at: now.millis(),
    };
    (session, grant, amr)
}

/// Whether a code's redemption started its grant; the error of a code that did not (a
/// replayed one ended the grant it started).
fn started(redeemed: Redeemed, client: &Client, user: &User) -> Result<(), OAuthError> {
    match redeemed {
        Redeemed::Started => Ok(()),
        Redeemed::Invalid => Err(OAuthError::InvalidGrant(
            "the code has expired, or the sign-in it was issued in has ended".into(),
        )),
        Redeemed::Replayed { .. } => {
            tracing::warn!(client_id = %client.client_id, user_id = %user.id, "an authorization code was presented twice; the grant it started is ended");
            Err(OAuthError::InvalidGrant(
                "the code was used already; every token issued from it is revoked".into(),
            ))
        }
    }
}

async fn refresh_grant(
    core: &Core,
    client: &Client,
    params: &Params,
    from: &ClientInfo,
    now: Timestamp,
) -> Result<TokenAnswer, OAuthError> {
    let token = params.require("refresh_token")?;
    let invalid = || {
        OAuthError::InvalidGrant(
            "the refresh token is unknown, expired, ended or not this client's".into(),
        )
    };
    // the grant and the scope asked for are checked before the rotation, which then
    // spends the token only for an answer that succeeds
    let claim = RefreshKey::parse(token).ok_or_else(invalid)?;
    let sid = claim.session_id.to_string();
    let grant = core
        .store
        .read(move |c| db::find_grant(c, &sid, None))
        .await?
        .filter(|g| g.grant.client_id == client.client_id)
        .ok_or_else(invalid)?;
    let granted = scopes_of(&grant.grant.scope)?;
    let scopes = match params.get("scope") {
        None => granted,
        Some(s) => within(&scopes_of(s)?, &granted).map_err(|outside| {
            OAuthError::InvalidScope(format!(
                "scope `{outside}` was not granted; a refresh may narrow, never widen"
            ))
        })?,
    };
    let of = RefreshOf::Grant {
        client_id: &client.client_id,
    };
    let rotated = match session::rotate(core, token, of, from, now).await {
        Ok(r) => r,
        Err(RefreshError::Invalid) => return Err(invalid()),
        Err(RefreshError::Reused) => {
            return Err(OAuthError::InvalidGrant(
                "the refresh token was used already; the grant is ended".into(),
            ))
        }
        Err(RefreshError::Fault(f)) => return Err(f.into()),
    };
    let amr: Vec<String> = grant.grant.amr.split(' ').map(str::to_owned).collect();
    let (scopes, roles) = held_by_person(core, &rotated.user, &scopes).await?;
    let person = Person {
        user: &rotated.user,
        sid: &rotated.session_id,
        scopes: &scopes,
        resource: grant.grant.resource.as_deref(),
        auth_time: grant.grant.auth_time,
        amr,
        acr: grant.session.aal.to_string(),
        nonce: None,
        roles,
    };
    let (access_token, id_token) = mint_for_person(core, client, &person, now).await?;
    let refresh_token = uuid::Uuid::parse_str(&rotated.session_id)
        .ok()
        .map(|id| core.refresh_key.token(id, &rotated.salt, rotated.counter));
    Ok(TokenAnswer {
        access_token,
        issued_token_type: None,
        token_type: "Bearer",
        expires_in: core.config.oauth_access_token_lifetime_seconds,
        scope: scope_string(&scopes),
        id_token,
        refresh_token,
    })
}

async fn client_credentials(
    core: &Core,
    client: &Client,
    params: &Params,
    now: Timestamp,
) -> Result<TokenAnswer, OAuthError> {
    if client.metadata.is_public() {
        return Err(OAuthError::UnauthorizedClient(
            "a public client cannot use client_credentials".into(),
        ));
    }
    let allowed: Vec<String> = client
        .metadata
        .scopes()
        .into_iter()
        .filter(|s| !PERSON_SCOPES.contains(&s.as_str()))
        .collect();
    let scopes = match params.get("scope") {
        None => allowed,
        Some(s) => within(&scopes_of(s)?, &allowed).map_err(|outside| {
            OAuthError::InvalidScope(format!(
                "scope `{outside}` is not one this client may hold for itself"
            ))
        })?,
    };
    // a permission is held only when the client's roles grant it; dropped otherwise
    let standard = |s: &str| users_domain::oauth::STANDARD_SCOPES.contains(&s);
    let scopes = if scopes.iter().all(|s| standard(s)) {
        scopes
    } else {
        let held = clients::roles_of(core, &client.client_id).await?;
        scopes
            .into_iter()
            .filter(|s| standard(s) || held.permissions.contains(s))
            .collect()
    };
    let resource = resource_of(params)?;
    let lifetime = core.config.oauth_access_token_lifetime_seconds;
    let claims = ProviderAccessClaims {
        iss: core.config.public_url.clone(),
        sub: client.client_id.clone(),
        aud: resource.unwrap_or_else(|| client.client_id.clone()),
        exp: now.secs() + lifetime,
        iat: now.secs(),
        jti: random_token(16),
        client_id: client.client_id.clone(),
        scope: scope_string(&scopes),
        auth_time: None,
        sid: None,
        acr: None,
        amr: None,
        roles: None,
    };
    let access_token = core
        .keys
        .sign(algorithm(client), AT_JWT, &claims, now)
        .await?;
    Ok(TokenAnswer {
        access_token,
        issued_token_type: None,
        token_type: "Bearer",
        expires_in: lifetime,
        scope: scope_string(&scopes),
        id_token: None,
        refresh_token: None,
    })
}

/// The subject token type of an API key (docs/roles-and-api-keys.md).
pub const API_KEY_TOKEN_TYPE: &str = "urn:users:params:oauth:token-type:api-key";
/// The issued token type of an exchange.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// `grant_type=urn:ietf:params:oauth:grant-type:token-exchange` (RFC 8693): an API key
/// for a short-lived access token of its user, which resource servers verify offline.
/// A client may authenticate (then `aud` defaults to its id), or none at all.
async fn token_exchange(
    core: &Core,
    params: &Params,
    auth: &ClientAuth,
    from: &ClientInfo,
    now: Timestamp,
) -> Result<TokenAnswer, OAuthError> {
    let presented = auth.basic.is_some() || auth.form_id.is_some() || auth.form_secret.is_some();
    let client = if presented {
        Some(clients::authenticate(core, auth, from, now).await?)
    } else {
        None
    };
    let subject = exchanged_api_key(params)?;
    let key = crate::flows::api_keys::verify(core, subject, now)
        .await?
        .ok_or_else(|| {
            OAuthError::InvalidRequest(
                "the subject token is not a live API key of an active user".into(),
            )
        })?;
    // its use is recorded, at most once a minute, as a request with it would be
    let (ids, now_ms) = (vec![key.key_id.clone()], now.millis());
    core.store
        .run(move |c| users_db::api_keys::touch_many(c, &ids, now_ms, now_ms - 60_000))
        .await?;
    let scopes = match params.get("scope") {
        None => key.permissions.clone(),
        Some(s) => within(&scopes_of(s)?, &key.permissions).map_err(|outside| {
            OAuthError::InvalidScope(format!("the key does not hold `{outside}`"))
        })?,
    };
    let resource = resource_of(params)?;
    let aud = resource
        .or_else(|| client.as_ref().map(|c| c.client_id.clone()))
        .unwrap_or_else(|| core.config.public_url.clone());
    let lifetime = core.config.oauth_access_token_lifetime_seconds;
    let claims = ProviderAccessClaims {
        iss: core.config.public_url.clone(),
        sub: key.user.id.to_string(),
        aud,
        exp: now.secs() + lifetime,
        iat: now.secs(),
        jti: random_token(16),
        client_id: client
            .as_ref()
            .map(|c| c.client_id.clone())
            .unwrap_or_else(|| format!("{EXCHANGED_PREFIX}{}", key.key_id)),
        scope: scope_string(&scopes),
        auth_time: None,
        sid: None,
        acr: None,
        amr: None,
        roles: None,
    };
    let alg = client
        .as_ref()
        .map(algorithm)
        .unwrap_or(SigningAlgorithm::Rs256);
    let access_token = core.keys.sign(alg, AT_JWT, &claims, now).await?;
    Ok(TokenAnswer {
        access_token,
        issued_token_type: Some(ACCESS_TOKEN_TYPE),
        token_type: "Bearer",
        expires_in: lifetime,
        scope: scope_string(&scopes),
        id_token: None,
        refresh_token: None,
    })
}

/// The API key of an RFC 8693 exchange request (`subject_token`), whose types must be
/// an API key in, an access token out.
fn exchanged_api_key(params: &Params) -> Result<&str, OAuthError> {
    let subject = params.require("subject_token")?;
    match params.get("subject_token_type") {
        Some(API_KEY_TOKEN_TYPE) => {}
        Some(other) => {
            return Err(OAuthError::InvalidRequest(format!(
                "subject_token_type `{other}` is not supported (only {API_KEY_TOKEN_TYPE})"
            )))
        }
        None => {
            return Err(OAuthError::InvalidRequest(
                "`subject_token_type` is required".into(),
            ))
        }
    }
    if let Some(t) = params.get("requested_token_type") {
        if t != ACCESS_TOKEN_TYPE {
            return Err(OAuthError::InvalidRequest(format!(
                "requested_token_type `{t}` is not supported"
            )));
        }
    }
    Ok(subject)
}

/// The `client_id` of a token exchanged without a client: the key's id after this.
pub const EXCHANGED_PREFIX: &str = "api_key:";
