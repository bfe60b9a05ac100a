//! Password reset and email verification (CONTRACT.md §4, §5).

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use crate::accounts::{reset_password, verify_user, ResetError, VerifyError};
use crate::body::{read_json_object, Fields};
use crate::error::ApiError;
use crate::outbox::{enqueue, OutboxItem};
use crate::state::AppState;

fn json_null(status: actix_web::http::StatusCode) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(Value::Null)
}

async fn email_field(payload: web::Payload) -> Result<String, ApiError> {
    let obj = read_json_object(payload).await?;
    let mut f = Fields::json(&obj);
    let email = f.required_email("email");
    f.finish()?;
    email
        .map(|e| e.into_string())
        .ok_or_else(|| ApiError::internal("validated field missing"))
}

/// Queues the request and answers 202 `null` whatever the address: the same work for
/// every address, so neither the answer nor its timing tells whether it is known.
async fn queue(state: &AppState, item: OutboxItem) -> Result<HttpResponse, ApiError> {
    state.db(move |c| enqueue(c, &item)).await?;
    crate::metrics::Metrics::inc(&state.metrics.mails_queued);
    state.outbox_signal.wake();
    Ok(json_null(actix_web::http::StatusCode::ACCEPTED))
}

/// `POST /auth/forgot-password` {email}: 202 null.
#[utoipa::path(post, path = "/auth/forgot-password", tag = "mail", request_body = crate::openapi::EmailBody, responses((status = 202, description = "Accepted (whether or not the address is known)", body = crate::openapi::Null), (status = 422, description = "Malformed input", body = crate::openapi::ValidationError)))]
#[tracing::instrument(name = "forgot_password", skip_all)]
pub async fn forgot_password(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    crate::limits::limit_ip(&state, &req, "forgot-password").await?;
    let email = email_field(payload).await?;
    queue(&state, OutboxItem::ForgotPassword { email }).await
}

/// `POST /auth/request-verify-token` {email}: 202 null.
#[utoipa::path(post, path = "/auth/request-verify-token", tag = "mail", request_body = crate::openapi::EmailBody, responses((status = 202, description = "Accepted (whether or not the address is known)", body = crate::openapi::Null), (status = 422, description = "Malformed input", body = crate::openapi::ValidationError)))]
#[tracing::instrument(name = "request_verify_token", skip_all)]
pub async fn request_verify_token(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    crate::limits::limit_ip(&state, &req, "request-verify-token").await?;
    let email = email_field(payload).await?;
    queue(&state, OutboxItem::RequestVerify { email }).await
}

/// `POST /auth/reset-password` {token, password}: 200 null.
#[utoipa::path(post, path = "/auth/reset-password", tag = "mail", request_body = crate::openapi::ResetPasswordBody, responses((status = 200, description = "Password changed", body = crate::openapi::Null), (status = 400, description = "RESET_PASSWORD_BAD_TOKEN or RESET_PASSWORD_INVALID_PASSWORD {code, reason}", body = crate::openapi::BadRequestBody), (status = 422, description = "Malformed input", body = crate::openapi::ValidationError)))]
#[tracing::instrument(name = "reset_password", skip_all)]
pub async fn reset(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    crate::limits::limit_ip(&state, &req, "reset-password").await?;
    let obj = read_json_object(payload).await?;
    let mut f = Fields::json(&obj);
    let token = f.required_str("token");
    let password = f.required_password("password");
    f.finish()?;
    let (Some(token), Some(password)) = (token, password) else {
        return Err(ApiError::internal("validated fields missing"));
    };
    match reset_password(&state, &token, password).await {
        Ok(()) => Ok(json_null(actix_web::http::StatusCode::OK)),
        Err(ResetError::BadToken) => Err(ApiError::BadRequest("RESET_PASSWORD_BAD_TOKEN")),
        Err(ResetError::InvalidPassword(reason)) => Err(ApiError::InvalidPassword {
            code: "RESET_PASSWORD_INVALID_PASSWORD",
            reason,
        }),
        Err(ResetError::Api(e)) => Err(e),
    }
}

/// `POST /auth/verify` {token}: 200 User.
#[utoipa::path(post, path = "/auth/verify", tag = "mail", request_body = crate::openapi::VerifyBody, responses((status = 200, description = "Verified", body = crate::openapi::UserRead), (status = 400, description = "VERIFY_USER_BAD_TOKEN or VERIFY_USER_ALREADY_VERIFIED", body = crate::openapi::ErrorDetail), (status = 422, description = "Malformed input", body = crate::openapi::ValidationError)))]
#[tracing::instrument(name = "verify", skip_all)]
pub async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    crate::limits::limit_ip(&state, &req, "verify").await?;
    let obj = read_json_object(payload).await?;
    let mut f = Fields::json(&obj);
    let token = f.required_str("token");
    f.finish()?;
    let Some(token) = token else {
        return Err(ApiError::internal("validated field missing"));
    };
    match verify_user(&state, &token).await {
        Ok(user) => Ok(HttpResponse::Ok().json(user)),
        Err(VerifyError::BadToken) => Err(ApiError::BadRequest("VERIFY_USER_BAD_TOKEN")),
        Err(VerifyError::AlreadyVerified) => {
            Err(ApiError::BadRequest("VERIFY_USER_ALREADY_VERIFIED"))
        }
        Err(VerifyError::Api(e)) => Err(e),
    }
}
