use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;
use users_db::users;
use users_domain::UserId;

use crate::accounts::{update_user, UserUpdate};
use crate::auth::CurrentUser;
use crate::body::{read_json_object, urlencoded, Fields};
use crate::error::ApiError;
use crate::state::AppState;

pub const DEFAULT_PER_PAGE: i64 = 50;
pub const MAX_PER_PAGE: i64 = 100;

async fn parse_update(payload: web::Payload) -> Result<UserUpdate, ApiError> {
    let obj = read_json_object(payload).await?;
    let mut f = Fields::json(&obj);
    let password = f.optional_password("password");
    let email = f.optional_email("email");
    let is_active = f.optional_bool("is_active");
    let is_superuser = f.optional_bool("is_superuser");
    let is_verified = f.optional_bool("is_verified");
    f.finish()?;
    Ok(UserUpdate {
        email: email.flatten(),
        password: password.flatten(),
        is_active: is_active.flatten(),
        is_superuser: is_superuser.flatten(),
        is_verified: is_verified.flatten(),
    })
}

/// `GET /users/me`.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])), responses((status = 200, description = "The current user", body = crate::openapi::UserRead), (status = 401, description = "Missing, invalid, expired or revoked token; unknown or inactive user", body = crate::openapi::ErrorDetail)))]
pub async fn me(user: CurrentUser) -> HttpResponse {
    HttpResponse::Ok().json(user.stored.user)
}

/// `PATCH /users/me` {email?, password?}: the flags in the body are ignored.
#[utoipa::path(patch, path = "/users/me", tag = "users", security(("bearer" = [])), request_body = crate::openapi::UserUpdate, responses((status = 200, description = "Updated", body = crate::openapi::UserRead), (status = 400, description = "UPDATE_USER_EMAIL_ALREADY_EXISTS or UPDATE_USER_INVALID_PASSWORD {code, reason}", body = crate::openapi::BadRequestBody), (status = 401, description = "Missing, invalid, expired or revoked token; unknown or inactive user", body = crate::openapi::ErrorDetail), (status = 422, description = "Malformed input", body = crate::openapi::ValidationError)))]
#[tracing::instrument(name = "update_me", skip_all)]
pub async fn update_me(
    state: web::Data<AppState>,
    user: CurrentUser,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let update = parse_update(payload).await?;
    let updated = update_user(&state, &user.stored, update, false).await?;
    Ok(HttpResponse::Ok().json(updated))
}

/// The superuser check comes before the id is even parsed: a non-superuser learns
/// nothing about which ids exist.
fn target_id(user: &CurrentUser, raw: &str) -> Result<UserId, ApiError> {
    user.require_superuser()?;
    UserId::parse_str(raw).map_err(|_| ApiError::NotFound)
}

async fn load(state: &AppState, id: UserId) -> Result<users::StoredUser, ApiError> {
    state
        .db(move |c| Ok(users::find_by_id(c, id)?))
        .await?
        .ok_or(ApiError::NotFound)
}

/// `GET /users/{id}` (superuser).
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path, description = "The user's id (a UUID)")), responses((status = 200, description = "The user", body = crate::openapi::UserRead), (status = 401, description = "Missing, invalid, expired or revoked token; unknown or inactive user", body = crate::openapi::ErrorDetail), (status = 403, description = "Not a superuser", body = crate::openapi::ErrorDetail), (status = 404, description = "Unknown or malformed id", body = crate::openapi::ErrorDetail)))]
pub async fn get_user(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = target_id(&user, &path)?;
    Ok(HttpResponse::Ok().json(load(&state, id).await?.user))
}

/// `PATCH /users/{id}` (superuser): every field may be set.
#[utoipa::path(patch, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path, description = "The user's id (a UUID)")), request_body = crate::openapi::UserUpdate, responses((status = 200, description = "Updated", body = crate::openapi::UserRead), (status = 400, description = "UPDATE_USER_EMAIL_ALREADY_EXISTS or UPDATE_USER_INVALID_PASSWORD {code, reason}", body = crate::openapi::BadRequestBody), (status = 401, description = "Missing, invalid, expired or revoked token; unknown or inactive user", body = crate::openapi::ErrorDetail), (status = 403, description = "Not a superuser", body = crate::openapi::ErrorDetail), (status = 404, description = "Unknown or malformed id", body = crate::openapi::ErrorDetail), (status = 422, description = "Malformed input", body = crate::openapi::ValidationError)))]
#[tracing::instrument(name = "update_user", skip_all)]
pub async fn patch_user(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = target_id(&user, &path)?;
    let target = load(&state, id).await?;
    let update = parse_update(payload).await?;
    let updated = update_user(&state, &target, update, true).await?;
    Ok(HttpResponse::Ok().json(updated))
}

/// `DELETE /users/{id}` (superuser): 204.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", security(("bearer" = [])), params(("id" = String, Path, description = "The user's id (a UUID)")), responses((status = 204, description = "Deleted"), (status = 401, description = "Missing, invalid, expired or revoked token; unknown or inactive user", body = crate::openapi::ErrorDetail), (status = 403, description = "Not a superuser", body = crate::openapi::ErrorDetail), (status = 404, description = "Unknown or malformed id", body = crate::openapi::ErrorDetail)))]
#[tracing::instrument(name = "delete_user", skip_all)]
pub async fn delete_user(
    state: web::Data<AppState>,
    user: CurrentUser,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = target_id(&user, &path)?;
    if state.db(move |c| Ok(users::delete(c, id)?)).await? {
        tracing::info!(user_id = %id, by = %user.stored.user.id, "user deleted");
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::NotFound)
    }
}

/// `GET /users?page=&per_page=&email=` (superuser): a page of users in creation order,
/// optionally only those whose email contains `email` (case-insensitive).
#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])), params(("page" = Option<i64>, Query, minimum = 1, description = "1-based page (default 1)"), ("per_page" = Option<i64>, Query, minimum = 1, maximum = 100, description = "Users per page (default 50)"), ("email" = Option<String>, Query, description = "Only users whose email contains this (case-insensitive)")), responses((status = 200, description = "A page of users in creation order", body = crate::openapi::UserPage), (status = 401, description = "Missing, invalid, expired or revoked token; unknown or inactive user", body = crate::openapi::ErrorDetail), (status = 403, description = "Not a superuser", body = crate::openapi::ErrorDetail), (status = 422, description = "Malformed input", body = crate::openapi::ValidationError)))]
pub async fn list_users(
    state: web::Data<AppState>,
    user: CurrentUser,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    user.require_superuser()?;
    let query = urlencoded(req.query_string().as_bytes());
    let mut f = Fields::form(&query, "query");
    let page = f.optional_int("page", 1, 1_000_000);
    let per_page = f.optional_int("per_page", 1, MAX_PER_PAGE);
    let email = f.optional_str("email");
    f.finish()?;
    let page = page.flatten().unwrap_or(1);
    let per_page = per_page.flatten().unwrap_or(DEFAULT_PER_PAGE);
    let email = email.flatten();
    let (items, total) = state
        .db(move |c| {
            Ok(users::list(
                c,
                email.as_deref(),
                (page - 1) * per_page,
                per_page,
            )?)
        })
        .await?;
    let items: Vec<_> = items.into_iter().map(|s| s.user).collect();
    Ok(HttpResponse::Ok().json(json!({
        "items": items,
        "total": total,
        "page": page,
        "per_page": per_page,
    })))
}
