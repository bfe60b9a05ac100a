//! Who is calling: the access token of a request, from the `Authorization: Bearer`
//! header or the `fastapiusersauth` cookie (the header wins when both are sent),
//! checked once by the [`authenticated`] middleware of a route, which hands the result
//! to the handler as a [`CurrentUser`]. The check runs before the handler's body is
//! even read, so a request with a bad token is a 401 whatever its body (FastAPI's
//! dependency order).
//!
//! A request authenticated by the cookie with an unsafe method must come from the
//! service's own origin or one allowed by CORS (`Origin`, or else `Referer`); a request
//! with neither header is not a browser's and passes.

use std::future::{ready, Ready};
use std::sync::Arc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use users_core::flows::auth::{self, Authenticated};

use crate::error::ApiError;
use crate::state::AppState;

/// fastapi-users' `CookieTransport` cookie.
pub const AUTH_COOKIE: &str = "fastapiusersauth";

/// The mfa_token of a provider sign-in started from one of the service's pages, which
/// needs a second step: HttpOnly, so no script and no URL ever holds it.
pub const MFA_COOKIE: &str = "users_mfa";

/// The [`MFA_COOKIE`] holding `value` (the mfa_token's five minutes).
pub fn mfa_cookie<'a>(state: &AppState, value: &'a str) -> actix_web::cookie::Cookie<'a> {
    actix_web::cookie::Cookie::build(MFA_COOKIE, value)
        .http_only(true)
        .path("/auth/")
        .same_site(actix_web::cookie::SameSite::Lax)
        .secure(state.core.config.https())
        .max_age(actix_web::cookie::time::Duration::seconds(
            users_core::flows::mfa::MFA_TOKEN_LIFETIME_SECS,
        ))
        .finish()
}

/// The authenticated, active user of the request. Cheap to clone: the handler's
/// extractor takes a clone of what the middleware stored, and the check's answer (the
/// user, the token, its claims and session) is shared, not copied.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub auth: Arc<Authenticated>,
    /// The token came from the cookie, not from the `Authorization` header.
    pub via_cookie: bool,
}

impl std::ops::Deref for CurrentUser {
    type Target = Authenticated;
    fn deref(&self) -> &Authenticated {
        &self.auth
    }
}

impl CurrentUser {
    /// 403 unless a superuser.
    pub fn require_superuser(&self) -> Result<(), ApiError> {
        if self.user().is_superuser {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer_token(req: &actix_web::dev::RequestHead) -> Option<String> {
    let value = req.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The answer of a route middleware that refuses the request: the error's own
/// response, so every outer middleware (CORS, request ids, metrics) sees a response.
pub fn refuse<B>(req: ServiceRequest, e: ApiError) -> ServiceResponse<EitherBody<B>> {
    req.error_response(e).map_into_right_body()
}

/// The application state, from a request.
pub fn app_state(req: &ServiceRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state missing"))
}

async fn authenticate(req: &ServiceRequest) -> Result<CurrentUser, ApiError> {
    let state = app_state(req)?;
    let (token, via_cookie) = match bearer_token(req.head()) {
        Some(token) => (token, false),
        None => {
            let cookie = req
                .cookie(AUTH_COOKIE)
                .map(|c| c.value().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or(ApiError::Unauthorized)?;
            (cookie, true)
        }
    };
    let auth = auth::authenticate(&state.core, token, state.now()).await?;
    if via_cookie && !same_origin(req, &state) {
        tracing::warn!(user_id = %auth.user().id, "cookie-authenticated request from a foreign origin refused");
        return Err(crate::outcome::cross_site());
    }
    Ok(CurrentUser {
        auth: Arc::new(auth),
        via_cookie,
    })
}

/// Whether an unsafe request comes from a trusted origin (or from no browser at all).
fn same_origin(req: &ServiceRequest, state: &AppState) -> bool {
    use actix_web::http::Method;
    if matches!(
        *req.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    ) {
        return true;
    }
    trusted_origin(req.headers(), state)
}

/// Whether a browser's request comes from `PUBLIC_URL`'s origin or one allowed by CORS:
/// its `Origin`, or without one its `Referer`; `Origin: null` (a sandboxed or privacy
/// redirected page) is foreign. A request with neither header is not a browser's and
/// passes: what it could forge, it could send from anywhere.
pub fn trusted_origin(headers: &header::HeaderMap, state: &AppState) -> bool {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let origin = header(header::ORIGIN).or_else(|| {
        header(header::REFERER).map(|r| crate::settings::origin_of(&r).unwrap_or("null").to_owned())
    });
    match origin {
        None => true,
        Some(origin) => state.settings.http.is_trusted_origin(&origin),
    }
}

/// Route middleware: authenticates the request (401 otherwise) and stores the
/// [`CurrentUser`] for the handler.
pub async fn authenticated<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match authenticate(&req).await {
        Ok(user) => {
            req.extensions_mut().insert(user);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(e) => Ok(refuse(req, e)),
    }
}

impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Only routes wrapped in `authenticated` take a CurrentUser.
        ready(
            req.extensions()
                .get::<CurrentUser>()
                .cloned()
                .ok_or_else(|| ApiError::internal("route not wrapped in `authenticated`")),
        )
    }
}

/// Route middleware for the superuser routes: 403 for anyone else, before anything
/// about the target is looked at. Goes inside [`authenticated`].
pub async fn superuser<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let is_superuser = req
        .extensions()
        .get::<CurrentUser>()
        .map(|u| u.user().is_superuser);
    match is_superuser {
        Some(true) => Ok(next.call(req).await?.map_into_left_body()),
        Some(false) => Ok(refuse(req, ApiError::Forbidden)),
        None => Ok(refuse(
            req,
            ApiError::internal("route not wrapped in `authenticated`"),
        )),
    }
}

/// Route middleware for the writes that change how the person signs in (password,
/// email, second factor, passkeys, sessions, API keys, identities): 403
/// `API_KEY_NOT_ALLOWED` for a request an API key authenticated
/// (docs/roles-and-api-keys.md). Goes inside [`authenticated`].
pub async fn no_api_key<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let by_key = req
        .extensions()
        .get::<CurrentUser>()
        .map(|u| u.by_api_key());
    match by_key {
        Some(false) => Ok(next.call(req).await?.map_into_left_body()),
        Some(true) => Ok(refuse(req, crate::outcome::api_key_not_allowed())),
        None => Ok(refuse(
            req,
            ApiError::internal("route not wrapped in `authenticated`"),
        )),
    }
}

/// Route middleware for the routes of the provider, roles and API keys (Part three of
/// the contract; docs/roles-and-api-keys.md): an API key is not accepted there, so a
/// request it authenticated is 401 as with a bad token. Goes inside [`authenticated`].
pub async fn not_by_api_key<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let by_key = req
        .extensions()
        .get::<CurrentUser>()
        .map(|u| u.by_api_key());
    match by_key {
        Some(false) => Ok(next.call(req).await?.map_into_left_body()),
        Some(true) => Ok(refuse(req, ApiError::Unauthorized)),
        None => Ok(refuse(
            req,
            ApiError::internal("route not wrapped in `authenticated`"),
        )),
    }
}
