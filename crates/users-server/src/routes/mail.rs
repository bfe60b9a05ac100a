//! Password reset and email verification (docs/password-reset-and-verification.md).

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde_json::Value;
use users_core::flows::recovery;

use crate::answers::Validation422;
use crate::bodies::{EmailRequest, ResetPassword, UserRead, VerifyToken};
use crate::client_ip::Client;
use crate::error::{ApiError, Null};
use crate::extract::ValidatedJson;
use crate::outcome::{ResetRefused, VerifyRefused};
use crate::state::AppState;

fn json_null(status: StatusCode) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Value::Null)
}

/// `POST /auth/forgot-password` {email}: 202 null.
#[utoipa::path(
    post,
    path = "/auth/forgot-password",
    tag = "mail",
    request_body = EmailRequest,
    responses(
        (
            status = 202,
            description = "Accepted (whether or not the address is known)",
            body = Null
        ),
        Validation422,
    )
)]
#[tracing::instrument(name = "forgot_password", skip_all)]
pub async fn forgot_password(
    state: web::Data<AppState>,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    recovery::forgot_password(&state.core, body.email, &client, state.now()).await?;
    Ok(json_null(StatusCode::ACCEPTED))
}

/// `POST /auth/request-verify-token` {email}: 202 null.
#[utoipa::path(
    post,
    path = "/auth/request-verify-token",
    tag = "mail",
    request_body = EmailRequest,
    responses(
        (
            status = 202,
            description = "Accepted (whether or not the address is known)",
            body = Null
        ),
        Validation422,
    )
)]
#[tracing::instrument(name = "request_verify_token", skip_all)]
pub async fn request_verify_token(
    state: web::Data<AppState>,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<EmailRequest>,
) -> Result<HttpResponse, ApiError> {
    recovery::request_verification(&state.core, body.email, &client, state.now()).await?;
    Ok(json_null(StatusCode::ACCEPTED))
}

/// `POST /auth/reset-password` {token, password}: 200 null.
#[utoipa::path(
    post,
    path = "/auth/reset-password",
    tag = "mail",
    request_body = ResetPassword,
    responses(
        (status = 200, description = "Password changed", body = Null),
        ResetRefused,
        Validation422,
    )
)]
#[tracing::instrument(name = "reset_password", skip_all)]
pub async fn reset(
    state: web::Data<AppState>,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<ResetPassword>,
) -> Result<HttpResponse, ApiError> {
    recovery::reset_password(
        &state.core,
        &body.token,
        body.password,
        &client,
        state.now(),
    )
    .await?;
    Ok(json_null(StatusCode::OK))
}

/// `POST /auth/verify` {token}: 200 User.
#[utoipa::path(
    post,
    path = "/auth/verify",
    tag = "mail",
    request_body = VerifyToken,
    responses(
        (status = 200, description = "Verified", body = UserRead),
        VerifyRefused,
        Validation422,
    )
)]
#[tracing::instrument(name = "verify", skip_all)]
pub async fn verify(
    state: web::Data<AppState>,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<VerifyToken>,
) -> Result<HttpResponse, ApiError> {
    let user = recovery::verify_email(&state.core, &body.token, &client, state.now()).await?;
    Ok(HttpResponse::Ok().json(UserRead::from(user)))
}
