//! A second factor (docs/second-factor.md): TOTP with recovery codes, the second step of
//! sign-in, and the superuser's reset.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use users_core::flows::mfa;

use crate::answers::{Forbidden403, Locked429, Unauthorized401, UnknownUser404, Validation422};
use crate::auth::{mfa_cookie, CurrentUser, MFA_COOKIE};
use crate::bodies::{
    CodeRequest, MfaStatus, MfaVerify, RecoveryCodes, RefreshableToken, TotpEnrolRequest,
    TotpEnrolment,
};
use crate::client_ip::Client;
use crate::error::{ApiError, FieldError};
use crate::extract::ValidatedJson;
use crate::outcome::SignInWrite;
use crate::outcome::{SecondStepRefused, TotpCodeRefused, TotpConfirmRefused, TotpEnrolRefused};
use crate::routes::auth::signed_in;
use crate::routes::users::TargetUser;
use crate::state::AppState;

fn no_store(mut resp: actix_web::HttpResponseBuilder) -> actix_web::HttpResponseBuilder {
    resp.insert_header((header::CACHE_CONTROL, "no-store"));
    resp
}

/// `POST /auth/mfa/totp` {password?}: a new TOTP secret, pending until confirmed.
#[utoipa::path(
    post,
    path = "/auth/mfa/totp",
    tag = "mfa",
    security(("bearer" = [])),
    request_body = TotpEnrolRequest,
    responses(
        (
            status = 200,
            description = "The secret, its otpauth URI and QR code; pending until confirmed \
                           from this session",
            body = TotpEnrolment
        ),
        TotpEnrolRefused,
        Unauthorized401,
        SignInWrite,
        Validation422,
        Locked429,
    )
)]
#[tracing::instrument(name = "totp_enrol", skip_all)]
pub async fn totp_enrol(
    state: web::Data<AppState>,
    user: CurrentUser,
    ValidatedJson(body): ValidatedJson<TotpEnrolRequest>,
) -> Result<HttpResponse, ApiError> {
    let e = mfa::totp_enrol(&state.core, &user, body.password, state.now()).await?;
    Ok(no_store(HttpResponse::Ok()).json(TotpEnrolment {
        secret: e.secret,
        otpauth_uri: e.otpauth_uri,
        qr_svg: e.qr_svg,
    }))
}

/// `POST /auth/mfa/totp/confirm` {code}: ten recovery codes, shown once.
#[utoipa::path(
    post,
    path = "/auth/mfa/totp/confirm",
    tag = "mfa",
    security(("bearer" = [])),
    request_body = CodeRequest,
    responses(
        (
            status = 200,
            description = "TOTP is on; this session is aal 2 and the user's other sessions ended",
            body = RecoveryCodes
        ),
        TotpConfirmRefused,
        Unauthorized401,
        SignInWrite,
        Validation422,
    )
)]
#[tracing::instrument(name = "totp_confirm", skip_all)]
pub async fn totp_confirm(
    state: web::Data<AppState>,
    user: CurrentUser,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let recovery_codes =
        mfa::totp_confirm(&state.core, &user, &body.code, &client, state.now()).await?;
    Ok(no_store(HttpResponse::Ok()).json(RecoveryCodes { recovery_codes }))
}

/// `DELETE /auth/mfa/totp` {code}: TOTP and the recovery codes go.
#[utoipa::path(
    delete,
    path = "/auth/mfa/totp",
    tag = "mfa",
    security(("bearer" = [])),
    request_body = CodeRequest,
    responses(
        (status = 204, description = "TOTP and the recovery codes removed"),
        TotpCodeRefused,
        Unauthorized401,
        SignInWrite,
        Validation422,
        Locked429,
    )
)]
#[tracing::instrument(name = "totp_disable", skip_all)]
pub async fn totp_disable(
    state: web::Data<AppState>,
    user: CurrentUser,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    mfa::totp_disable(&state.core, &user, &body.code, &client, state.now()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /auth/mfa/recovery-codes` {code}: a new set; the old set dies.
#[utoipa::path(
    post,
    path = "/auth/mfa/recovery-codes",
    tag = "mfa",
    security(("bearer" = [])),
    request_body = CodeRequest,
    responses(
        (status = 200, description = "A new set of ten, shown once", body = RecoveryCodes),
        TotpCodeRefused,
        Unauthorized401,
        SignInWrite,
        Validation422,
        Locked429,
    )
)]
#[tracing::instrument(name = "recovery_codes", skip_all)]
pub async fn recovery_codes(
    state: web::Data<AppState>,
    user: CurrentUser,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<CodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let recovery_codes =
        mfa::regenerate_recovery_codes(&state.core, &user, &body.code, &client, state.now())
            .await?;
    Ok(no_store(HttpResponse::Ok()).json(RecoveryCodes { recovery_codes }))
}

/// `GET /auth/mfa`.
#[utoipa::path(
    get,
    path = "/auth/mfa",
    tag = "mfa",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's factors", body = MfaStatus),
        Unauthorized401,
    )
)]
pub async fn status(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    let f = mfa::factors(&state.core, user.user().id).await?;
    Ok(HttpResponse::Ok().json(MfaStatus {
        totp: f.totp,
        passkeys: f.passkeys,
        recovery_codes_left: f.recovery_codes_left,
    }))
}

/// The mfa_token of a second step: from the body, or for a sign-in started from one of
/// the service's pages, from its HttpOnly cookie (no token travels through a page).
/// `None` from neither.
pub fn mfa_token_of(req: &HttpRequest, given: Option<String>) -> Option<(String, bool)> {
    match given {
        Some(token) => Some((token, false)),
        None => req
            .cookie(MFA_COOKIE)
            .map(|c| c.value().to_owned())
            .filter(|v| !v.is_empty())
            .map(|v| (v, true)),
    }
}

/// `POST /auth/mfa/verify`: the second step of a sign-in; answers what the first step
/// would have.
#[utoipa::path(
    post,
    path = "/auth/mfa/verify",
    operation_id = "mfa_verify",
    tag = "mfa",
    request_body = MfaVerify,
    responses(
        (
            status = 200,
            description = "Signed in (aal 2): the Token, with a refresh token when \
                           offline_access was asked",
            body = RefreshableToken
        ),
        (
            status = 204,
            description = "Signed in through /auth/cookie/login (or a page): the cookie is set"
        ),
        SecondStepRefused,
        Validation422,
        Locked429,
    )
)]
#[tracing::instrument(name = "mfa_verify", skip_all)]
pub async fn verify(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<MfaVerify>,
) -> Result<HttpResponse, ApiError> {
    let given = body.mfa_token.clone();
    let proof = body.proof();
    let Some((mfa_token, from_cookie)) = mfa_token_of(&req, given) else {
        return Err(ApiError::Validation(vec![FieldError::new(
            "missing",
            vec![json!("body"), json!("mfa_token")],
            "Field required",
            Value::Null,
        )]));
    };
    let trusted = crate::auth::trusted_origin(req.headers(), &state);
    let (grant, transport) = mfa::verify(
        &state.core,
        &mfa_token,
        proof,
        &client,
        trusted,
        state.now(),
    )
    .await?;
    let mut resp = signed_in(&state, grant, transport);
    if from_cookie {
        let _ = resp.add_removal_cookie(&mfa_cookie(&state, ""));
    }
    Ok(resp)
}

/// `DELETE /users/{id}/mfa` (superusers): for a user who lost every factor.
#[utoipa::path(
    delete,
    path = "/users/{id}/mfa",
    operation_id = "reset_user_mfa",
    tag = "mfa",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id (a UUID)")),
    responses(
        (
            status = 204,
            description = "TOTP, recovery codes and passkeys removed; the user's sessions ended"
        ),
        Unauthorized401,
        Forbidden403,
        UnknownUser404,
    )
)]
#[tracing::instrument(name = "mfa_reset", skip_all)]
pub async fn reset(
    state: web::Data<AppState>,
    admin: CurrentUser,
    target: TargetUser,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    let (user, by) = (target.0.user.id, admin.user().id);
    mfa::reset(&state.core, user, by, &client, state.now()).await?;
    Ok(HttpResponse::NoContent().finish())
}
