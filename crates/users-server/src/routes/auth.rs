//! Password sign-in and sign-out, with the Bearer transport (`/auth/jwt`) and the cookie
//! transport (`/auth/cookie`) of fastapi-users, and refresh-token rotation.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::ExposeSecret;
use users_core::flows::auth::{self, Credentials, Login};
use users_core::flows::mfa::{SignIn, Transport};
use users_core::flows::session::{self, SessionGrant};

use crate::answers::{Locked429, Unauthorized401, Validation422};
use crate::auth::{CurrentUser, AUTH_COOKIE};
use crate::bodies::{BearerToken, LoginForm, RefreshRequest, RefreshableToken};
use crate::client_ip::Client;
use crate::error::{ApiError, ErrorDetail};
use crate::extract::{ValidatedBody, ValidatedForm};
use crate::outcome::{CrossSite, LoginRefused, RefreshRefused};
use crate::outcome::{SignInWrite, SignInWriteCrossSite};
use crate::state::AppState;

fn login_of(form: LoginForm, client: Client, transport: Transport) -> Login {
    // the cookie carries an access token only
    let offline_access = transport == Transport::Bearer && form.offline_access();
    Login {
        credentials: Credentials {
            username: form.username,
            password: form.password,
        },
        client: client.0,
        offline_access,
        transport,
    }
}

/// What a completed sign-in answers, by transport: the Token, or 204 and the cookie.
pub fn signed_in(state: &AppState, grant: SessionGrant, transport: Transport) -> HttpResponse {
    match transport {
        Transport::Bearer => token_response(grant),
        Transport::Cookie => {
            let lifetime = state.core.tokens.access_lifetime_seconds;
            HttpResponse::NoContent()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .insert_header((
                    header::SET_COOKIE,
                    auth_cookie(state, &grant.access_token, lifetime),
                ))
                .finish()
        }
    }
}

/// The answer of a first factor: signed in, or 400 `LOGIN_MFA_REQUIRED` with the
/// mfa_token for the second step.
pub fn first_factor_response(
    state: &AppState,
    outcome: SignIn,
    transport: Transport,
) -> Result<HttpResponse, ApiError> {
    match outcome {
        SignIn::Done(grant) => Ok(signed_in(state, grant, transport)),
        SignIn::SecondFactor(required) => Err(required.into()),
    }
}

/// The Token of a sign-in: exactly `{access_token, token_type}`, or with
/// `expires_in` and `refresh_token` when a refresh token was asked for.
pub fn token_response(grant: SessionGrant) -> HttpResponse {
    let mut resp = HttpResponse::Ok();
    resp.insert_header((header::CACHE_CONTROL, "no-store"));
    match grant.refresh_token {
        None => resp.json(BearerToken::new(grant.access_token)),
        Some(refresh_token) => resp.json(RefreshableToken {
            access_token: grant.access_token,
            token_type: "bearer",
            expires_in: grant.expires_in,
            refresh_token,
        }),
    }
}

/// `POST /auth/jwt/login`, an OAuth2 password form: 200 {access_token, token_type}
/// (with `expires_in` and `refresh_token` when `scope` holds `offline_access`).
#[utoipa::path(
    post,
    path = "/auth/jwt/login",
    tag = "auth",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (
            status = 200,
            description = "Logged in: a BearerToken, or a RefreshableToken with \
                           scope=offline_access",
            body = BearerToken
        ),
        LoginRefused,
        Validation422,
        Locked429,
    )
)]
#[tracing::instrument(name = "login", skip_all)]
pub async fn login(
    state: web::Data<AppState>,
    client: Client,
    ValidatedForm(form): ValidatedForm<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    let login = login_of(form, client, Transport::Bearer);
    let outcome = auth::login(&state.core, login, state.now()).await?;
    first_factor_response(&state, outcome, Transport::Bearer)
}

/// `POST /auth/jwt/logout`: ends the token's session. 204.
#[utoipa::path(
    post,
    path = "/auth/jwt/logout",
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is ended"),
        Unauthorized401,
        SignInWrite,
    )
)]
#[tracing::instrument(name = "logout", skip_all)]
pub async fn logout(
    state: web::Data<AppState>,
    user: CurrentUser,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    auth::logout(&state.core, &user, &client, state.now()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The session cookie as fastapi-users' `CookieTransport` (Starlette) writes it, to the
/// byte: `name=value; HttpOnly; Max-Age=N; Path=/; SameSite=lax[; Secure]`.
pub(crate) fn auth_cookie(state: &AppState, value: &str, max_age: i64) -> String {
    let secure = if state.core.config.https() {
        "; Secure"
    } else {
        ""
    };
    format!("{AUTH_COOKIE}={value}; HttpOnly; Max-Age={max_age}; Path=/; SameSite=lax{secure}")
}

/// `POST /auth/cookie/login`, the same form as `/auth/jwt/login`: 204 and the cookie.
#[utoipa::path(
    post,
    path = "/auth/cookie/login",
    tag = "auth",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 204, description = "Logged in; sets the fastapiusersauth cookie"),
        LoginRefused,
        CrossSite,
        Validation422,
        Locked429,
    )
)]
#[tracing::instrument(name = "cookie_login", skip_all)]
pub async fn cookie_login(
    state: web::Data<AppState>,
    req: HttpRequest,
    client: Client,
    ValidatedForm(form): ValidatedForm<LoginForm>,
) -> Result<HttpResponse, ApiError> {
    // a cookie set by another site's form would sign the browser in to an account of
    // that site's choosing (login CSRF)
    if !crate::auth::trusted_origin(req.headers(), &state) {
        return Err(crate::outcome::cross_site());
    }
    let login = login_of(form, client, Transport::Cookie);
    let outcome = auth::login(&state.core, login, state.now()).await?;
    first_factor_response(&state, outcome, Transport::Cookie)
}

/// `POST /auth/cookie/logout` with the cookie: 204, the cookie cleared, the session ended.
#[utoipa::path(
    post,
    path = "/auth/cookie/logout",
    tag = "auth",
    responses(
        (status = 204, description = "The session is ended and the cookie cleared (Max-Age=0)"),
        (
            status = 401,
            description = "`Unauthorized`: no valid fastapiusersauth cookie",
            body = ErrorDetail
        ),
        SignInWriteCrossSite,
    )
)]
#[tracing::instrument(name = "cookie_logout", skip_all)]
pub async fn cookie_logout(
    state: web::Data<AppState>,
    user: CurrentUser,
    Client(client): Client,
) -> Result<HttpResponse, ApiError> {
    if !user.via_cookie {
        return Err(ApiError::Unauthorized);
    }
    auth::logout(&state.core, &user, &client, state.now()).await?;
    Ok(HttpResponse::NoContent()
        .insert_header((header::SET_COOKIE, auth_cookie(&state, "\"\"", 0)))
        .finish())
}

/// `POST /auth/jwt/refresh` {refresh_token} (JSON, or the RFC 6749 form): a new access
/// token and a new refresh token of the same session.
#[utoipa::path(
    post,
    path = "/auth/jwt/refresh",
    tag = "auth",
    request_body(
        content = RefreshRequest,
        description = "JSON, or application/x-www-form-urlencoded with grant_type=refresh_token"
    ),
    responses(
        (status = 200, description = "Rotated", body = RefreshableToken),
        RefreshRefused,
        Validation422,
    )
)]
#[tracing::instrument(name = "refresh", skip_all)]
pub async fn refresh(
    state: web::Data<AppState>,
    Client(client): Client,
    ValidatedBody(body): ValidatedBody<RefreshRequest>,
) -> Result<HttpResponse, ApiError> {
    let token = body.refresh_token.expose_secret();
    let grant = session::refresh(&state.core, token, &client, state.now()).await?;
    Ok(token_response(grant))
}
