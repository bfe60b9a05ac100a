//! Passkeys (docs/second-factor.md): registering and removing them, and signing in with
//! one.

use actix_web::{web, HttpRequest, HttpResponse};
use users_core::flows::passkeys;

use crate::answers::{Locked429, Unauthorized401, Validation422};
use crate::auth::CurrentUser;
use crate::bodies::{
    BearerToken, CeremonyOptions, PasskeyLogin, PasskeyLoginOptions, PasskeyRead, PasskeyRegister,
    Reauthentication,
};
use crate::client_ip::Client;
use crate::error::{ApiError, ErrorDetail};
use crate::extract::{OptionalJson, ValidatedJson};
use crate::outcome::SignInWrite;
use crate::outcome::{
    PasskeyLoginOptionsRefused, PasskeyLoginRefused, PasskeyReauthRefused, PasskeyRegisterRefused,
    PasskeysOff,
};
use crate::routes::auth::signed_in;
use crate::state::AppState;

/// `POST /auth/passkeys/register/options` {password?}.
#[utoipa::path(
    post,
    path = "/auth/passkeys/register/options",
    tag = "passkeys",
    security(("bearer" = [])),
    request_body(
        content = Reauthentication,
        description = "Optional: without the password, the session must have signed in less \
                       than 10 minutes ago"
    ),
    responses(
        (
            status = 200,
            description = "A registration ceremony (discoverable credential, user \
                           verification); five minutes, single use",
            body = CeremonyOptions
        ),
        PasskeyReauthRefused,
        Unauthorized401,
        SignInWrite,
        Validation422,
        Locked429,
    )
)]
pub async fn register_options(
    state: web::Data<AppState>,
    user: CurrentUser,
    OptionalJson(body): OptionalJson<Reauthentication>,
) -> Result<HttpResponse, ApiError> {
    let options =
        passkeys::register_options(&state.core, &user, body.password, state.now()).await?;
    Ok(HttpResponse::Ok().json(CeremonyOptions::from(options)))
}

/// `POST /auth/passkeys/register` {challenge_id, name, credential, password?}: 201.
#[utoipa::path(
    post,
    path = "/auth/passkeys/register",
    operation_id = "passkey_register",
    tag = "passkeys",
    security(("bearer" = [])),
    request_body = PasskeyRegister,
    responses(
        (
            status = 201,
            description = "Registered; the user's first passkey ends their other sessions",
            body = PasskeyRead
        ),
        PasskeyRegisterRefused,
        Unauthorized401,
        SignInWrite,
        Validation422,
        Locked429,
    )
)]
#[tracing::instrument(name = "passkey_register", skip_all)]
pub async fn register(
    state: web::Data<AppState>,
    user: CurrentUser,
    Client(client): Client,
    ValidatedJson(body): ValidatedJson<PasskeyRegister>,
) -> Result<HttpResponse, ApiError> {
    let passkey = passkeys::register(
        &state.core,
        &user,
        body.password,
        passkeys::Registration {
            challenge_id: &body.challenge_id,
            name: body.name.as_deref(),
            credential: &body.credential,
        },
        &client,
        state.now(),
    )
    .await?;
    Ok(HttpResponse::Created().json(PasskeyRead::from(passkey)))
}

/// `GET /auth/passkeys`.
#[utoipa::path(
    get,
    path = "/auth/passkeys",
    operation_id = "list_passkeys",
    tag = "passkeys",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user's passkeys", body = [PasskeyRead]),
        Unauthorized401,
        PasskeysOff,
    )
)]
pub async fn list(state: web::Data<AppState>, user: CurrentUser) -> Result<HttpResponse, ApiError> {
    let list = passkeys::list(&state.core, user.user().id).await?;
    Ok(HttpResponse::Ok().json(list.into_iter().map(PasskeyRead::from).collect::<Vec<_>>()))
}

/// `DELETE /auth/passkeys/{id}` {password?}: 204; 404.
#[utoipa::path(
    delete,
    path = "/auth/passkeys/{id}",
    tag = "passkeys",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The passkey's id")),
    request_body(
        content = Reauthentication,
        description = "Optional: without the password, the session must have signed in less \
                       than 10 minutes ago"
    ),
    responses(
        (status = 204, description = "Removed"),
        PasskeyReauthRefused,
        Unauthorized401,
        SignInWrite,
        (
            status = 404,
            description = "`Not Found`: no passkey of the user has this id",
            body = ErrorDetail
        ),
        Validation422,
        Locked429,
    )
)]
#[tracing::instrument(name = "passkey_remove", skip_all)]
pub async fn remove(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    Client(client): Client,
    OptionalJson(body): OptionalJson<Reauthentication>,
) -> Result<HttpResponse, ApiError> {
    passkeys::remove(&state.core, &user, body.password, &id, &client, state.now()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /auth/passkeys/login/options` {} or {mfa_token}.
#[utoipa::path(
    post,
    path = "/auth/passkeys/login/options",
    tag = "passkeys",
    request_body = PasskeyLoginOptions,
    responses(
        (
            status = 200,
            description = "A sign-in ceremony: any discoverable passkey, or (with mfa_token) \
                           the user's passkeys as the second step",
            body = CeremonyOptions
        ),
        PasskeyLoginOptionsRefused,
        Validation422,
    )
)]
pub async fn login_options(
    state: web::Data<AppState>,
    req: HttpRequest,
    ValidatedJson(body): ValidatedJson<PasskeyLoginOptions>,
) -> Result<HttpResponse, ApiError> {
    // a second step of a sign-in started from a page has its mfa_token in a cookie;
    // `{"mfa_token": null}`-less bodies from other callers stay passwordless sign-ins
    let cookie = body.mfa_token.is_none() && body.second_step;
    let mfa_token = if cookie {
        crate::routes::mfa::mfa_token_of(&req, None).map(|(t, _)| t)
    } else {
        body.mfa_token
    };
    if cookie && mfa_token.is_none() {
        return Err(passkeys::PasskeyError::MfaTokenInvalid.into());
    }
    let options = passkeys::login_options(&state.core, mfa_token.as_deref(), state.now()).await?;
    Ok(HttpResponse::Ok().json(CeremonyOptions::from(options)))
}

/// `POST /auth/passkeys/login` {challenge_id, credential, scope?}: a passwordless
/// sign-in (both factors: aal 2).
#[utoipa::path(
    post,
    path = "/auth/passkeys/login",
    operation_id = "passkey_login",
    tag = "passkeys",
    request_body = PasskeyLogin,
    responses(
        (
            status = 200,
            description = "Signed in: the Token (a refresh token too with scope=offline_access)",
            body = BearerToken
        ),
        (
            status = 204,
            description = "Signed in with transport=cookie: the session cookie is set"
        ),
        PasskeyLoginRefused,
        Validation422,
    )
)]
#[tracing::instrument(name = "passkey_login", skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    client: Client,
    ValidatedJson(body): ValidatedJson<PasskeyLogin>,
) -> Result<HttpResponse, ApiError> {
    let (offline_access, transport) = (body.offline_access(), body.transport());
    let grant = passkeys::login(
        &state.core,
        &body.challenge_id,
        &body.credential,
        client.0,
        offline_access,
        state.now(),
    )
    .await?;
    Ok(signed_in(&state, grant, transport))
}
