use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use users_db::users;
use users_domain::email::email_key;
use users_domain::EmailAddress;

use crate::auth::CurrentUser;
use crate::body::{form_fields, read_body, Fields, BODY_LIMIT};
use crate::error::ApiError;
use crate::hashing::Verification;
use crate::state::{now_ms, AppState};
use crate::tokens::token_hash;

const BAD_CREDENTIALS: ApiError = ApiError::BadRequest("LOGIN_BAD_CREDENTIALS");

/// `POST /auth/jwt/login`, an OAuth2 password form: 200 {access_token, token_type}.
///
/// Unknown emails are verified against a dummy hash and inactive users only after the
/// password check, so every failure costs one argon2 verification.
#[utoipa::path(post, path = "/auth/jwt/login", tag = "auth", request_body(content = crate::openapi::LoginForm, content_type = "application/x-www-form-urlencoded"), responses((status = 200, description = "Logged in", body = crate::openapi::BearerResponse), (status = 400, description = "LOGIN_BAD_CREDENTIALS", body = crate::openapi::ErrorDetail), (status = 422, description = "Malformed input", body = crate::openapi::ValidationError)))]
#[tracing::instrument(name = "login", skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    crate::limits::limit_ip(&state, &req, "login").await?;
    let body = read_body(payload, BODY_LIMIT).await?;
    let form = form_fields(req.headers(), body).await?;
    let mut f = Fields::form(&form, "body");
    let _ = f.optional_literal("grant_type", "password");
    let username = f.required_str("username");
    let password = f.required_password("password");
    f.finish()?;
    let (Some(username), Some(password)) = (username, password) else {
        return Err(ApiError::internal("validated fields missing"));
    };

    let key = EmailAddress::parse(&username)
        .map(|e| e.key())
        .unwrap_or_else(|_| email_key(&username));
    // the same for known and unknown addresses: a lock reveals nothing
    let had_failures = crate::limits::check_login_lock(&state, &key).await?;
    let lookup = key.clone();
    let stored = state
        .db(move |c| Ok(users::find_by_email_key(c, &lookup)?))
        .await?;
    let verification = state
        .hasher
        .verify(
            password.clone(),
            stored.as_ref().map(|s| s.hashed_password.clone()),
        )
        .await
        .map_err(ApiError::internal)?;
    let (Some(stored), Verification::Valid { needs_rehash }) = (stored, verification) else {
        tracing::info!("login failed");
        crate::metrics::Metrics::inc(&state.metrics.logins_failed);
        crate::limits::record_login_failure(&state, &key).await?;
        return Err(BAD_CREDENTIALS);
    };
    if !stored.user.is_active {
        tracing::info!(user_id = %stored.user.id, "login refused: inactive user");
        crate::metrics::Metrics::inc(&state.metrics.logins_failed);
        crate::limits::record_login_failure(&state, &key).await?;
        return Err(BAD_CREDENTIALS);
    }
    if had_failures {
        crate::limits::clear_login_failures(&state, &key).await?;
    }
    if needs_rehash {
        upgrade_hash(&state, &stored, password).await;
    }
    let token = state
        .jwt
        .issue_access(stored.user.id, now_ms())
        .map_err(ApiError::internal)?;
    tracing::info!(user_id = %stored.user.id, "login succeeded");
    crate::metrics::Metrics::inc(&state.metrics.logins_succeeded);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({ "access_token": token, "token_type": "bearer" })))
}

/// Re-hashes a password stored with other parameters (or bcrypt) after it verified.
/// Failure is logged, never fatal to the login.
async fn upgrade_hash(
    state: &AppState,
    stored: &users::StoredUser,
    password: secrecy::SecretString,
) {
    let id = stored.user.id;
    let old = stored.hashed_password.clone();
    let new = match state.hasher.hash(password).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(user_id = %id, error = %e, "password re-hash failed");
            return;
        }
    };
    match state
        .db(move |c| Ok(users::replace_hash_if_unchanged(c, id, &old, &new)?))
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

/// `POST /auth/jwt/logout`: revokes the presented token. 204.
#[utoipa::path(post, path = "/auth/jwt/logout", tag = "auth", security(("bearer" = [])), responses((status = 204, description = "The token is revoked"), (status = 401, description = "Missing, invalid, expired or revoked token; unknown or inactive user", body = crate::openapi::ErrorDetail)))]
#[tracing::instrument(name = "logout", skip_all)]
pub async fn logout(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let hash = token_hash(&user.token);
    let id = user.stored.user.id;
    let exp = user.claims.exp;
    let now = now_ms() / 1000;
    state
        .db(move |c| Ok(users_db::tokens::revoke(c, &hash, id, exp, now)?))
        .await?;
    tracing::info!(user_id = %id, "logged out; token revoked");
    Ok(HttpResponse::NoContent().finish())
}
