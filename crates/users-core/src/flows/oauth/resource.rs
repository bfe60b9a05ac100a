//! What the provider's tokens open (docs/oauth-provider.md): userinfo, introspection
//! (RFC 7662), revocation (RFC 7009) and RP-initiated sign-out. A token is live while
//! its signature and expiry hold, its `jti` was not revoked, and, for a person's, its
//! grant's session is live and its user active.

use serde_json::{json, Map, Value};
use users_db::oauth as db;
use users_db::users::{Credential, TokenKey, TokenScope};
use users_domain::oauth::parse_scope;
use users_domain::Timestamp;

use super::clients::{self, ClientAuth, Presented};
use super::{OAuthError, Params};
use crate::client::ClientInfo;
use crate::flows::auth;
use crate::flows::session::{self, Ending};
use crate::tokens::{ProviderAccessClaims, RefreshKey, TokenError};
use crate::{Core, Fault};

/// A provider access token that is live, with its user when it is a person's.
#[derive(Debug, Clone)]
pub struct LiveToken {
    pub claims: ProviderAccessClaims,
    pub user: Option<users_domain::User>,
}

impl LiveToken {
    pub fn scopes(&self) -> Vec<String> {
        parse_scope(&self.claims.scope).unwrap_or_default()
    }
}

/// Decodes a provider access token, reloading the keys once for a kid made elsewhere.
async fn decode(
    core: &Core,
    token: &str,
    now: Timestamp,
) -> Result<Option<ProviderAccessClaims>, Fault> {
    let issuer = &core.config.public_url;
    match core
        .keys
        .decode_provider_access(&core.verified_tokens, token, issuer, now)
    {
        Ok(c) => Ok(Some(c)),
        Err(TokenError::UnknownKey) => {
            if core.keys.reload_for(token).await? {
                Ok(core
                    .keys
                    .decode_provider_access(&core.verified_tokens, token, issuer, now)
                    .ok())
            } else {
                Ok(None)
            }
        }
        Err(_) => Ok(None),
    }
}

/// A provider access token if it is live now; `None` otherwise.
#[tracing::instrument(level = "debug", name = "oauth::resource::live_access_token", skip_all)]
pub async fn live_access_token(
    core: &Core,
    token: &str,
    now: Timestamp,
) -> Result<Option<LiveToken>, Fault> {
    let Some(claims) = decode(core, token, now).await? else {
        return Ok(None);
    };
    let jti = claims.jti.clone();
    if claims.sid.is_none() && claims.sub != claims.client_id {
        // an API key exchanged for a token (RFC 8693): live while its user is active and
        // it was not revoked
        let Ok(user_id) = users_domain::UserId::parse_str(&claims.sub) else {
            return Ok(None);
        };
        let (revoked, user) = core
            .store
            .run(move |c| {
                Ok::<_, users_db::DbError>((
                    db::is_revoked(c, &jti)?,
                    users_db::users::find_by_id(c, user_id)?,
                ))
            })
            .await?;
        return Ok(match user {
            Some(u) if u.user.is_active && !revoked => Some(LiveToken {
                claims,
                user: Some(u.user),
            }),
            _ => None,
        });
    }
    let Some(sid) = claims.sid.clone() else {
        // a client's own token: live unless revoked, or its client deleted
        let client_id = claims.client_id.clone();
        let (revoked, client) = core
            .store
            .run(move |c| {
                Ok::<_, users_db::DbError>((
                    db::is_revoked(c, &jti)?,
                    db::find_client(c, &client_id)?,
                ))
            })
            .await?;
        return Ok((!revoked && client.is_some()).then_some(LiveToken { claims, user: None }));
    };
    // a person's: live while its grant's session is (a grant's session has the client's
    // id as its method) and its user active, and its jti not revoked; asked through the
    // coalesced check every authenticated request makes (`lookup.rs`)
    let Ok(user_id) = users_domain::UserId::parse_str(&claims.sub) else {
        return Ok(None);
    };
    let at = core.config.liveness(now);
    let key = Credential::Grant {
        key: TokenKey {
            user_id,
            scope: TokenScope::Session(sid),
        },
        jti,
    };
    let Some(check) = core.lookups.check(key, now.millis()).await? else {
        return Ok(None);
    };
    let method = db::grant_method(&claims.client_id);
    let live = !check.revoked
        && check.user.user.is_active
        && check
            .session
            .as_ref()
            .is_some_and(|s| s.is_live(at) && s.method == method);
    Ok(live.then_some(LiveToken {
        claims,
        user: Some(check.user.user),
    }))
}

/// Why userinfo refuses.
#[derive(Debug, thiserror::Error)]
pub enum UserinfoError {
    /// 401 `invalid_token`.
    #[error("invalid_token")]
    InvalidToken,
    /// 403 `insufficient_scope`: no `openid`.
    #[error("insufficient_scope")]
    InsufficientScope,
    #[error(transparent)]
    Fault(#[from] Fault),
}

/// `GET|POST /oauth/userinfo`.
#[tracing::instrument(level = "debug", name = "oauth::resource::userinfo", skip_all)]
pub async fn userinfo(core: &Core, token: &str, now: Timestamp) -> Result<Value, UserinfoError> {
    let live = live_access_token(core, token, now)
        .await?
        .ok_or(UserinfoError::InvalidToken)?;
    let scopes = live.scopes();
    let Some(user) = live
        .user
        .as_ref()
        .filter(|_| scopes.iter().any(|s| s == "openid"))
    else {
        return Err(UserinfoError::InsufficientScope);
    };
    let mut out = Map::new();
    out.insert("sub".into(), json!(user.id.to_string()));
    if scopes.iter().any(|s| s == "email") {
        out.insert("email".into(), json!(user.email));
        out.insert("email_verified".into(), json!(user.is_verified));
    }
    if scopes.iter().any(|s| s == "roles") {
        let roles = crate::flows::roles::role_names_of(core, user.id).await?;
        out.insert("roles".into(), json!(roles));
    }
    Ok(Value::Object(out))
}

fn inactive() -> Value {
    json!({"active": false})
}

/// `POST /oauth/introspect`: any confidential client authenticates.
#[tracing::instrument(level = "debug", name = "oauth::resource::introspect", skip_all)]
pub async fn introspect(
    core: &Core,
    params: Params,
    auth: ClientAuth,
    from: &ClientInfo,
    now: Timestamp,
) -> Result<Value, OAuthError> {
    let presented = Presented::of(&auth)?;
    // A client's own access token (client credentials) is checked in memory first;
    // whether it was revoked and its client still exists is then read while the client
    // who asks is read (each coalesced with the other requests' reads).
    let own = match params.get("token") {
        Some(t) => decode(core, t, now)
            .await?
            .filter(|c| c.sid.is_none() && c.sub == c.client_id),
        None => None,
    };
    let probe = own.as_ref().map(|c| (c.jti.clone(), c.client_id.clone()));
    let row = core.client_rows.get(presented.id.clone());
    let (row, own_live) = match probe {
        None => (row.await?, None),
        Some(probe) => {
            let (row, live) = tokio::join!(row, core.client_tokens.get(probe));
            (row?, Some(live?))
        }
    };
    let client = clients::authenticate_with(core, &auth, &presented, row, from, now).await?;
    if client.metadata.is_public() {
        return Err(OAuthError::UnauthorizedClient(
            "only a confidential client may introspect".into(),
        ));
    }
    let token = params.require("token")?.to_owned();
    let issuer = core.config.public_url.clone();
    let live = match (own, own_live) {
        (Some(claims), Some(true)) => Some(LiveToken { claims, user: None }),
        (Some(_), _) => return Ok(inactive()),
        (None, _) => live_access_token(core, &token, now).await?,
    };
    if let Some(live) = live {
        let c = live.claims;
        let mut out = json!({
            "active": true,
            "scope": c.scope,
            "client_id": c.client_id,
            "sub": c.sub,
            "token_type": "access_token",
            "exp": c.exp,
            "iat": c.iat,
            "iss": c.iss,
            "aud": c.aud,
        });
        if let Some(user) = live.user {
            out["username"] = json!(user.email);
        }
        return Ok(out);
    }
    if token.matches('.').count() == 2 {
        // one of the service's own access tokens (Parts one and two)
        return match auth::authenticate(core, token, now).await {
            Ok(a) => Ok(json!({
                "active": true,
                "scope": "",
                "client_id": Value::Null,
                "sub": a.user().id.to_string(),
                "username": a.user().email,
                "token_type": "access_token",
                "exp": a.claims.exp,
                "iat": a.claims.iat.map(|i| i as i64),
                "iss": issuer,
                "aud": crate::tokens::AUTH_AUDIENCE,
            })),
            Err(auth::AuthError::Unauthorized) => Ok(inactive()),
            Err(auth::AuthError::Fault(f)) => Err(f.into()),
        };
    }
    // a grant's refresh token
    introspect_refresh_token(core, &token, issuer, now).await
}

/// What introspection says of a grant's refresh token: active while its grant's session
/// is live, its user active and the token the session's current one.
async fn introspect_refresh_token(
    core: &Core,
    token: &str,
    issuer: String,
    now: Timestamp,
) -> Result<Value, OAuthError> {
    let Some(claim) = RefreshKey::parse(token) else {
        return Ok(inactive());
    };
    let sid = claim.session_id.to_string();
    let state = core
        .store
        .run(move |c| db::find_grant(c, &sid, None))
        .await?;
    let at = core.config.liveness(now);
    let live = state.filter(|s| {
        s.session.is_live(at)
            && s.user.user.is_active
            && s.session.refresh_counter == claim.counter
            && s.session
                .refresh_key_salt
                .as_ref()
                .is_some_and(|salt| core.refresh_key.verify(&claim, salt))
    });
    Ok(match live {
        Some(s) => json!({
            "active": true,
            "scope": s.grant.scope,
            "client_id": s.grant.client_id,
            "sub": s.user.user.id.to_string(),
            "username": s.user.user.email,
            "token_type": "refresh_token",
            "exp": s.session.expires_at / 1000,
            "iat": s.grant.created_at / 1000,
            "iss": issuer,
            "aud": s.grant.client_id,
        }),
        None => inactive(),
    })
}

/// `POST /oauth/revoke`: a refresh token of the client ends its grant; an access token
/// of the client stops at once; anything else is left alone, with the same answer.
#[tracing::instrument(level = "debug", name = "oauth::resource::revoke", skip_all)]
pub async fn revoke(
    core: &Core,
    params: Params,
    auth: ClientAuth,
    from: &ClientInfo,
    now: Timestamp,
) -> Result<(), OAuthError> {
    let client = clients::authenticate(core, &auth, from, now).await?;
    let token = params.require("token")?.to_owned();
    if let Some(claims) = decode(core, &token, now).await? {
        if claims.client_id == client.client_id {
            let now_ms = now.millis();
            let expires = claims.exp.saturating_mul(1000);
            core.store
                .run(move |c| db::revoke_jti(c, &claims.jti, expires, now_ms))
                .await?;
            tracing::info!(client_id = %client.client_id, "access token revoked");
        }
        return Ok(());
    }
    let Some(claim) = RefreshKey::parse(&token) else {
        return Ok(());
    };
    let sid = claim.session_id.to_string();
    let state = core
        .store
        .run(move |c| db::find_grant(c, &sid, None))
        .await?;
    let Some(state) = state else {
        return Ok(());
    };
    let theirs = state.grant.client_id == client.client_id
        && state
            .session
            .refresh_key_salt
            .as_ref()
            .is_some_and(|salt| core.refresh_key.verify(&claim, salt));
    if theirs {
        let ending = Ending {
            reason: "token_revoked",
            by: None,
            client: from,
        };
        session::end(core, state.user.user.id, &state.session.id, ending, now).await?;
    }
    Ok(())
}

/// Where `GET /oauth/logout` sends the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedOut {
    /// Signed out; 302 to the client's registered post-logout URI (with `state`).
    Redirect(String),
    /// Signed out; a page says so.
    Page,
    /// Not signed out: no ID token of this person came with the request, so it may be
    /// another site's doing (a sign-out is only made for the app that holds the hint).
    NotSignedOut,
}

/// `GET /oauth/logout` (RP-Initiated Logout 1.0): with an `id_token_hint` of ours whose
/// person is the browser's (or with no browser session left), ends the browser's session
/// and goes back to a post-logout redirect URI registered for the hint's client.
#[tracing::instrument(level = "debug", name = "oauth::resource::logout", skip_all)]
pub async fn logout(
    core: &Core,
    params: Params,
    cookie: Option<String>,
    from: &ClientInfo,
    now: Timestamp,
) -> Result<SignedOut, Fault> {
    let hint = params.get("id_token_hint").and_then(|t| {
        core.keys
            .decode_id_token_hint(t, &core.config.public_url, now)
            .ok()
    });
    let Some(hint) = hint else {
        return Ok(SignedOut::NotSignedOut);
    };
    let browser = match cookie {
        Some(token) => match auth::authenticate(core, token, now).await {
            Ok(a) => Some(a),
            Err(auth::AuthError::Unauthorized) => None,
            Err(auth::AuthError::Fault(f)) => return Err(f),
        },
        None => None,
    };
    if let Some(a) = &browser {
        if a.user().id.to_string() != hint.sub {
            return Ok(SignedOut::NotSignedOut);
        }
        if let Some(sid) = a.session_id() {
            let ending = Ending {
                reason: "logout",
                by: None,
                client: from,
            };
            session::end(core, a.user().id, sid, ending, now).await?;
        }
    }
    let Some(uri) = params.get("post_logout_redirect_uri") else {
        return Ok(SignedOut::Page);
    };
    let Some(client) = clients::get(core, &hint.aud).await? else {
        return Ok(SignedOut::Page);
    };
    if !client
        .metadata
        .post_logout_redirect_uris
        .iter()
        .any(|r| r == uri)
    {
        return Ok(SignedOut::Page);
    }
    let mut target = match url::Url::parse(uri) {
        Ok(u) => u,
        Err(_) => return Ok(SignedOut::Page),
    };
    if let Some(state) = params.get("state") {
        target.query_pairs_mut().append_pair("state", state);
    }
    Ok(SignedOut::Redirect(target.to_string()))
}
