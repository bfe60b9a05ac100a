use actix_web::http::header;
use actix_web::{web, HttpResponse};
use users_core::flows::auth::{self, Credentials};

use crate::auth::CurrentUser;
use crate::bodies::{BearerToken, LoginForm};
use crate::error::ApiError;
use crate::extract::ValidatedForm;
use crate::state::AppState;

/// `POST /auth/jwt/login`, an OAuth2 password form: 200 {access_token, token_type}.
#[utoipa::path(post, path = "/auth/jwt/login", tag = "auth", request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"), responses((status = 200, description = "Logged in", body = BearerToken), (status = 400, description = "LOGIN_BAD_CREDENTIALS", body = crate::error::ErrorDetail), (status = 422, description = "Malformed input", body = crate::error::ValidationError), (status = 429, description = "Too many failed logins of this account", body = crate::error::ErrorDetail)))]
#[tracing::instrument(name = "login", skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    ValidatedForm(form): ValidatedForm<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    let credentials = Credentials {
        username: form.username,
        password: form.password,
    };
    let signed_in = auth::login(&state.core, credentials, state.now()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(BearerToken::new(signed_in.access_token)))
}

/// `POST /auth/jwt/logout`: revokes the presented token. 204.
#[utoipa::path(post, path = "/auth/jwt/logout", tag = "auth", security(("bearer" = [])), responses((status = 204, description = "The token is revoked"), (status = 401, description = "Missing, invalid, expired or revoked token; unknown or inactive user", body = crate::error::ErrorDetail)))]
#[tracing::instrument(name = "logout", skip_all)]
pub async fn logout(
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, ApiError> {
    auth::logout(&state.core, &user, state.now()).await?;
    Ok(HttpResponse::NoContent().finish())
}
