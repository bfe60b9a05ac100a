//! Google sign-in and account linking (CONTRACT.md §4, §6, §7): OpenID Connect with
//! PKCE S256, a nonce, the id_token verified against the provider's keys, a state that
//! is signed, bound to the browser by a cookie, and usable once.

use actix_web::cookie::{time, Cookie, SameSite};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;
use users_db::oauth::{self, PendingState};
use users_db::users::{self, NewUser, StoredUser, UserChanges};
use users_db::{is_unique_violation, DbError};
use users_domain::{EmailAddress, User, UserId};
use users_oauth::{GoogleClient, GoogleError, GoogleIdentity};

use crate::auth::{authenticate, bearer_token, CurrentUser};
use crate::body::urlencoded;
use crate::error::ApiError;
use crate::google::{Google, PROVIDER};
use crate::state::{now_ms, AppState};
use crate::tokens::{random_token, TokenError};

pub const CSRF_COOKIE: &str = "fastapiusersoauthcsrf";
pub const STATE_AUDIENCE: &str = "fastapi-users:oauth-state";
const SIGN_IN_CALLBACK: &str = "/auth/google/callback";
const ASSOCIATE_CALLBACK: &str = "/auth/associate/google/callback";

#[derive(Debug, Serialize, Deserialize)]
struct StateClaims {
    csrftoken: String,
    /// Id of the server-side row holding the PKCE verifier and the nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
    /// The user an association state was made for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    #[serde(default = "state_aud", skip_deserializing)]
    aud: String,
    exp: i64,
}

fn state_aud() -> String {
    STATE_AUDIENCE.to_owned()
}

fn google(state: &AppState) -> Result<&Google, ApiError> {
    state.google.as_ref().ok_or(ApiError::NotFound)
}

fn client(google: &Google) -> Result<GoogleClient, ApiError> {
    google.client().ok_or_else(|| {
        ApiError::Unavailable(
            "Google sign-in is not ready: the provider's configuration could not be loaded yet"
                .into(),
        )
    })
}

fn provider_error(e: GoogleError) -> ApiError {
    tracing::warn!(error = %e, "Google sign-in failed");
    match e {
        GoogleError::Unavailable(_) => ApiError::BadGateway("OAUTH_PROVIDER_UNAVAILABLE"),
        GoogleError::Discovery(_) => ApiError::BadGateway("OAUTH_PROVIDER_UNAVAILABLE"),
        GoogleError::Rejected(_) => ApiError::BadRequest("OAUTH_CODE_REJECTED"),
        GoogleError::InvalidIdToken(_) => ApiError::BadRequest("OAUTH_INVALID_ID_TOKEN"),
    }
}

fn redirect_uri(state: &AppState, path: &str) -> String {
    format!("{}{}", state.settings.public_url, path)
}

/// The state, its server-side row, and the cookie binding it to this browser.
async fn begin(
    state: &AppState,
    req: &HttpRequest,
    user: Option<UserId>,
    callback: &str,
) -> Result<HttpResponse, ApiError> {
    let google = google(state)?;
    let client = client(google)?;
    let scopes: Vec<String> =
        serde_urlencoded::from_str::<Vec<(String, String)>>(req.query_string())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, v)| k == "scopes" && !v.is_empty())
            .map(|(_, v)| v)
            .collect();
    let now = now_ms();
    let lifetime = state.settings.oauth_state_lifetime_seconds;
    let csrf = random_token(32);
    let (verifier, challenge) = users_oauth::pkce_pair();
    let pending = PendingState {
        id: random_token(32),
        pkce_verifier: verifier,
        nonce: users_oauth::random_nonce(),
        user_id: user.map(|u| u.to_string()),
        expires_at: now + lifetime * 1000,
    };
    let claims = StateClaims {
        csrftoken: csrf.clone(),
        jti: Some(pending.id.clone()),
        sub: user.map(|u| u.to_string()),
        aud: STATE_AUDIENCE.to_owned(),
        exp: now / 1000 + lifetime,
    };
    let signed = state.jwt.encode(&claims).map_err(ApiError::internal)?;
    let nonce = pending.nonce.clone();
    state
        .db(move |c| Ok(oauth::save_state(c, &pending, now)?))
        .await?;
    let url = client.authorization_url(
        &redirect_uri(state, callback),
        &signed,
        &nonce,
        &challenge,
        &scopes,
    );
    let cookie = Cookie::build(CSRF_COOKIE, csrf)
        .http_only(true)
        .max_age(time::Duration::seconds(lifetime))
        .path("/")
        .same_site(SameSite::Lax)
        .secure(state.settings.public_url.starts_with("https://"))
        .finish();
    Ok(HttpResponse::Ok()
        .cookie(cookie)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "authorization_url": url })))
}

/// `GET /auth/google/authorize[?scopes=…]`.
#[utoipa::path(get, path = "/auth/google/authorize", tag = "google", params(("scopes" = Option<Vec<String>>, Query, description = "Extra scopes")), responses((status = 200, description = "The URL to send the browser to; sets the fastapiusersoauthcsrf cookie", body = crate::openapi::AuthorizationUrl), (status = 404, description = "Google sign-in is not configured", body = crate::openapi::ErrorDetail), (status = 503, description = "Google's configuration could not be loaded yet", body = crate::openapi::ErrorDetail)))]
pub async fn authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    begin(&state, &req, None, SIGN_IN_CALLBACK).await
}

/// `GET /auth/associate/google/authorize` (Bearer).
#[utoipa::path(get, path = "/auth/associate/google/authorize", tag = "google", security(("bearer" = [])), params(("scopes" = Option<Vec<String>>, Query, description = "Extra scopes")), responses((status = 200, description = "The URL to send the browser to; sets the fastapiusersoauthcsrf cookie", body = crate::openapi::AuthorizationUrl), (status = 401, description = "Missing, invalid, expired or revoked token; unknown or inactive user", body = crate::openapi::ErrorDetail), (status = 404, description = "Google sign-in is not configured", body = crate::openapi::ErrorDetail), (status = 503, description = "Not ready", body = crate::openapi::ErrorDetail)))]
pub async fn associate_authorize(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    google(&state)?;
    let user = current_user(&state, &req).await?;
    begin(&state, &req, Some(user.stored.user.id), ASSOCIATE_CALLBACK).await
}

async fn current_user(state: &AppState, req: &HttpRequest) -> Result<CurrentUser, ApiError> {
    let token = bearer_token(req).ok_or(ApiError::Unauthorized)?;
    authenticate(state, token).await
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The checks of CONTRACT.md §6, in order, then the exchange with the provider.
/// `for_user`: the current user on the associate callback.
async fn finish(
    state: &AppState,
    req: &HttpRequest,
    for_user: Option<UserId>,
    callback: &str,
) -> Result<GoogleIdentity, ApiError> {
    let google = google(state)?;
    let query = urlencoded(req.query_string().as_bytes());
    if let Some(error) = query.get("error") {
        return Err(ApiError::Detail(error.clone()));
    }
    let code = query
        .get("code")
        .filter(|c| !c.is_empty())
        .ok_or(ApiError::BadRequestGeneric)?;
    let raw_state = query
        .get("state")
        .ok_or(ApiError::BadRequest("ACCESS_TOKEN_DECODE_ERROR"))?;
    let claims: StateClaims = state
        .jwt
        .decode(raw_state, STATE_AUDIENCE, now_ms())
        .map_err(|e| match e {
            TokenError::Expired => ApiError::BadRequest("ACCESS_TOKEN_ALREADY_EXPIRED"),
            TokenError::Invalid => ApiError::BadRequest("ACCESS_TOKEN_DECODE_ERROR"),
        })?;
    let cookie = req
        .cookie(CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default();
    if cookie.is_empty() || !constant_time_eq(cookie.as_bytes(), claims.csrftoken.as_bytes()) {
        return Err(ApiError::BadRequest("OAUTH_INVALID_STATE"));
    }
    // A sign-in state on the associate callback, or one made for another user, and
    // an association state on the sign-in callback, are all refused.
    if claims.sub != for_user.map(|u| u.to_string()) {
        return Err(ApiError::BadRequestGeneric);
    }
    let client = client(google)?;
    let jti = claims
        .jti
        .ok_or(ApiError::BadRequest("OAUTH_INVALID_STATE"))?;
    let pending = state
        .db(move |c| Ok(oauth::take_state(c, &jti)?))
        .await?
        .filter(|p| p.user_id == for_user.map(|u| u.to_string()))
        .ok_or(ApiError::BadRequest("OAUTH_INVALID_STATE"))?;
    let (identity, _tokens) = client
        .sign_in(
            code,
            &redirect_uri(state, callback),
            &pending.pkce_verifier,
            &pending.nonce,
            now_ms() / 1000,
        )
        .await
        .map_err(provider_error)?;
    if identity.email.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::BadRequest("OAUTH_NOT_AVAILABLE_EMAIL"));
    }
    Ok(identity)
}

fn clear_csrf_cookie(resp: &mut actix_web::HttpResponseBuilder) {
    let mut gone = Cookie::build(CSRF_COOKIE, "")
        .path("/")
        .http_only(true)
        .finish();
    gone.make_removal();
    resp.cookie(gone);
}

/// `GET /auth/google/callback?code&state`: 200 Token (or a redirect, see
/// `OAUTH_SUCCESS_REDIRECT_URL`).
#[utoipa::path(get, path = "/auth/google/callback", tag = "google", params(("code" = Option<String>, Query), ("state" = Option<String>, Query), ("error" = Option<String>, Query)), responses((status = 200, description = "Signed in", body = crate::openapi::BearerResponse), (status = 302, description = "Signed in; redirect to OAUTH_SUCCESS_REDIRECT_URL#access_token=…"), (status = 400, description = "See the README for the codes, in order", body = crate::openapi::ErrorDetail), (status = 404, description = "Google sign-in is not configured", body = crate::openapi::ErrorDetail), (status = 502, description = "OAUTH_PROVIDER_UNAVAILABLE", body = crate::openapi::ErrorDetail), (status = 503, description = "Not ready", body = crate::openapi::ErrorDetail)))]
#[tracing::instrument(name = "google_callback", skip_all)]
pub async fn callback(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    google(&state)?;
    crate::limits::limit_ip(&state, &req, "oauth-callback").await?;
    let identity = finish(&state, &req, None, SIGN_IN_CALLBACK).await?;
    let user = sign_in_user(&state, identity).await?;
    if !user.is_active {
        return Err(ApiError::BadRequest("LOGIN_BAD_CREDENTIALS"));
    }
    let token = state
        .jwt
        .issue_access(user.id, now_ms())
        .map_err(ApiError::internal)?;
    tracing::info!(user_id = %user.id, "signed in with Google");
    let mut resp = match &state.settings.oauth_success_redirect_url {
        Some(url) => {
            let mut r = HttpResponse::Found();
            r.insert_header((
                header::LOCATION,
                format!("{url}#access_token={token}&token_type=bearer"),
            ));
            r
        }
        None => HttpResponse::Ok(),
    };
    resp.insert_header((header::CACHE_CONTROL, "no-store"));
    clear_csrf_cookie(&mut resp);
    Ok(match &state.settings.oauth_success_redirect_url {
        Some(_) => resp.finish(),
        None => resp.json(json!({ "access_token": token, "token_type": "bearer" })),
    })
}

/// `GET /auth/associate/google/callback?code&state` (Bearer): 200 the current user.
#[utoipa::path(get, path = "/auth/associate/google/callback", tag = "google", security(("bearer" = [])), params(("code" = Option<String>, Query), ("state" = Option<String>, Query), ("error" = Option<String>, Query)), responses((status = 200, description = "Linked; the current user", body = crate::openapi::UserRead), (status = 400, description = "See the README for the codes, in order", body = crate::openapi::ErrorDetail), (status = 401, description = "Missing, invalid, expired or revoked token; unknown or inactive user", body = crate::openapi::ErrorDetail), (status = 404, description = "Google sign-in is not configured", body = crate::openapi::ErrorDetail), (status = 502, description = "OAUTH_PROVIDER_UNAVAILABLE", body = crate::openapi::ErrorDetail), (status = 503, description = "Not ready", body = crate::openapi::ErrorDetail)))]
#[tracing::instrument(name = "google_associate_callback", skip_all)]
pub async fn associate_callback(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    google(&state)?;
    crate::limits::limit_ip(&state, &req, "oauth-callback").await?;
    let user = current_user(&state, &req).await?;
    let id = user.stored.user.id;
    let identity = finish(&state, &req, Some(id), ASSOCIATE_CALLBACK).await?;
    let email = identity.email.clone().unwrap_or_default();
    let subject = identity.subject.clone();
    let result = state
        .db(move |c| match oauth::find_account(c, PROVIDER, &subject)? {
            Some(account) if account.user_id == id.to_string() => {
                oauth::touch(c, &account.id, &email, now_ms())?;
                Ok(true)
            }
            Some(_) => Ok(false),
            None => {
                oauth::link(c, id, PROVIDER, &subject, &email, now_ms())?;
                Ok(true)
            }
        })
        .await;
    match result {
        Ok(true) => {
            tracing::info!(user_id = %id, "Google account linked");
            let mut resp = HttpResponse::Ok();
            clear_csrf_cookie(&mut resp);
            Ok(resp.json(user.stored.user))
        }
        Ok(false) => Err(ApiError::BadRequest("OAUTH_ACCOUNT_ALREADY_LINKED")),
        Err(DbError::Query(e)) if is_unique_violation(&e) => {
            Err(ApiError::BadRequest("OAUTH_ACCOUNT_ALREADY_LINKED"))
        }
        Err(e) => Err(e.into()),
    }
}

/// The user a verified Google identity signs in as: the linked one; else, with
/// `GOOGLE_ASSOCIATE_BY_EMAIL` and a verified Google email, the user with that email;
/// else a new user (created with the link in one transaction).
async fn sign_in_user(state: &AppState, identity: GoogleIdentity) -> Result<User, ApiError> {
    let raw_email = identity.email.clone().unwrap_or_default();
    let email = EmailAddress::parse(&raw_email)
        .map_err(|_| ApiError::BadRequest("OAUTH_NOT_AVAILABLE_EMAIL"))?;
    let subject = identity.subject.clone();
    let associate_by_email = state
        .google
        .as_ref()
        .is_some_and(|g| g.settings.associate_by_email);
    let account_email = email.as_str().to_owned();

    // 1. a linked account
    let (lookup_subject, lookup_email) = (subject.clone(), account_email.clone());
    let linked: Option<StoredUser> = state
        .db(move |c| {
            Ok(oauth::linked_user(
                c,
                PROVIDER,
                &lookup_subject,
                Some(&lookup_email),
                now_ms(),
            )?)
        })
        .await?;
    if let Some(user) = linked {
        return Ok(user.user);
    }

    // 2. an existing user with that email
    let key = email.key();
    let existing = state
        .db(move |c| Ok(users::find_by_email_key(c, &key)?))
        .await?;
    if let Some(existing) = existing {
        if !associate_by_email || !identity.email_verified {
            return Err(ApiError::BadRequest("OAUTH_USER_ALREADY_EXISTS"));
        }
        if !existing.user.is_active {
            return Err(ApiError::BadRequest("LOGIN_BAD_CREDENTIALS"));
        }
        let id = existing.user.id;
        let was_verified = existing.user.is_verified;
        let (s, e) = (subject.clone(), account_email.clone());
        let linked = state
            .db(move |c| {
                use diesel::Connection;
                c.transaction::<_, DbError, _>(|c| {
                    oauth::link(c, id, PROVIDER, &s, &e, now_ms())?;
                    if !was_verified {
                        // Someone may have registered this address before its owner
                        // (pre-account takeover): the owner, proven by Google, takes
                        // the account; the unproven password and its sessions go.
                        let changes = UserChanges {
                            hashed_password: Some(unusable_password()),
                            is_verified: Some(true),
                            tokens_valid_after: Some(now_ms()),
                            ..Default::default()
                        };
                        users::update(c, id, &changes, now_ms())?;
                    }
                    Ok(users::find_by_id(c, id)?)
                })
            })
            .await;
        return match linked {
            Ok(Some(u)) => {
                tracing::info!(user_id = %id, cleared_password = !was_verified, "Google account linked by verified email");
                Ok(u.user)
            }
            Ok(None) => Err(ApiError::BadRequest("OAUTH_USER_ALREADY_EXISTS")),
            Err(DbError::Query(e)) if is_unique_violation(&e) => {
                Err(ApiError::BadRequest("OAUTH_USER_ALREADY_EXISTS"))
            }
            Err(e) => Err(e.into()),
        };
    }

    // 3. a new user, linked
    let now = now_ms();
    let new = NewUser {
        id: UserId::new_v4().to_string(),
        email: email.as_str().to_owned(),
        email_key: email.key(),
        hashed_password: unusable_password(),
        is_active: true,
        is_superuser: false,
        is_verified: false,
        tokens_valid_after: 0,
        created_at: now,
        updated_at: now,
    };
    let s = subject.clone();
    match state
        .db(move |c| Ok(oauth::create_linked_user(c, &new, PROVIDER, &s)?))
        .await
    {
        Ok(user) => {
            tracing::info!(user_id = %user.user.id, "user created through Google");
            Ok(user.user)
        }
        // a concurrent first sign-in of the same Google account, or the email taken meanwhile
        Err(DbError::Query(e)) if is_unique_violation(&e) => {
            let s = subject.clone();
            let raced = state
                .db(move |c| Ok(oauth::linked_user(c, PROVIDER, &s, None, now_ms())?))
                .await?;
            raced
                .map(|u| u.user)
                .ok_or(ApiError::BadRequest("OAUTH_USER_ALREADY_EXISTS"))
        }
        Err(e) => Err(e.into()),
    }
}

/// A password hash no password matches (not a PHC string): the account signs in
/// through Google, or after a password reset.
fn unusable_password() -> String {
    format!("!unusable-{}", random_token(24))
}
