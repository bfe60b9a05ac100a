//! The token, userinfo, introspection, revocation and sign-out endpoints.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use users_core::flows::oauth::resource::{self, SignedOut, UserinfoError};
use users_core::flows::oauth::{token, OAuthError};

use super::*;
use crate::answers::InvalidClient401;
use crate::auth::bearer_token;
use crate::client_ip::Client;
use crate::error::{ApiError, OAuthErrorBody};
use crate::state::AppState;

/// `POST /oauth/token`.
#[utoipa::path(
    post,
    path = "/oauth/token",
    operation_id = "oauth_token_endpoint",
    tag = "oauth",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded",
        description = "`grant_type` and its parameters (RFC 6749 §4)"),
    responses(
        (status = 200, description = "The tokens", body = Object),
        (status = 400, description = "`invalid_request`, `invalid_grant`, `unauthorized_client`, `unsupported_grant_type`, `invalid_scope`, `invalid_target`", body = OAuthErrorBody),
        InvalidClient401,
    )
)]
#[tracing::instrument(name = "oauth_token", skip_all)]
pub async fn token_endpoint(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    body: web::Bytes,
) -> OAuthResult {
    let params = form(&req, &body)?;
    let auth = client_auth(&req, &params)?;
    let answer = token::token(&state.core, params, auth, &from, state.now()).await?;
    Ok(no_store(StatusCode::OK, &answer))
}

/// `GET|POST /oauth/userinfo`.
#[utoipa::path(
    get,
    path = "/oauth/userinfo",
    operation_id = "oauth_userinfo",
    tag = "oauth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`sub`, and with scope `email` `email` and `email_verified`", body = Object),
        (status = 401, description = "`invalid_token`: expired, revoked, of an ended grant or session, of an inactive user, or not ours", body = OAuthErrorBody),
        (status = 403, description = "`insufficient_scope`: no `openid`", body = OAuthErrorBody),
    )
)]
pub async fn userinfo(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> OAuthResult {
    let token = match bearer_token(req.head()) {
        Some(t) => t,
        // RFC 6750 §2.2: the token in a form body of a POST
        None if req.method() == actix_web::http::Method::POST => form(&req, &body)
            .ok()
            .and_then(|p| p.get("access_token").map(str::to_owned))
            .ok_or(OAuthError::InvalidToken)?,
        None => return Err(OAuthError::InvalidToken.into()),
    };
    match resource::userinfo(&state.core, &token, state.now()).await {
        Ok(claims) => Ok(no_store(StatusCode::OK, &claims)),
        Err(UserinfoError::InvalidToken) => Err(OAuthError::InvalidToken.into()),
        Err(UserinfoError::InsufficientScope) => Err(OAuthError::InsufficientScope.into()),
        Err(UserinfoError::Fault(f)) => Err(f.into()),
    }
}

/// `POST /oauth/introspect` (RFC 7662).
#[utoipa::path(
    post,
    path = "/oauth/introspect",
    operation_id = "oauth_introspect",
    tag = "oauth",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded",
        description = "`token`, optional `token_type_hint`"),
    responses(
        (status = 200, description = "`{\"active\": true, …}` or `{\"active\": false}`", body = Object),
        (status = 400, description = "`invalid_request`, `unauthorized_client`", body = OAuthErrorBody),
        InvalidClient401,
    )
)]
pub async fn introspect(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    body: web::Bytes,
) -> OAuthResult {
    let params = form(&req, &body)?;
    let auth = client_auth(&req, &params)?;
    let answer = resource::introspect(&state.core, params, auth, &from, state.now()).await?;
    Ok(no_store(StatusCode::OK, &answer))
}

/// `POST /oauth/revoke` (RFC 7009).
#[utoipa::path(
    post,
    path = "/oauth/revoke",
    operation_id = "oauth_revoke",
    tag = "oauth",
    request_body(content = Object, content_type = "application/x-www-form-urlencoded",
        description = "`token`, optional `token_type_hint`"),
    responses(
        (status = 200, description = "Revoked, or not a token of this client (the same answer)"),
        (status = 400, description = "`invalid_request`", body = OAuthErrorBody),
        InvalidClient401,
    )
)]
pub async fn revoke(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
    body: web::Bytes,
) -> OAuthResult {
    let params = form(&req, &body)?;
    let auth = client_auth(&req, &params)?;
    resource::revoke(&state.core, params, auth, &from, state.now()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}

/// `GET /oauth/logout` (RP-Initiated Logout 1.0).
#[utoipa::path(
    get,
    path = "/oauth/logout",
    operation_id = "oauth_logout",
    tag = "oauth",
    params(
        ("id_token_hint" = Option<String>, Query),
        ("post_logout_redirect_uri" = Option<String>, Query),
        ("state" = Option<String>, Query),
    ),
    responses(
        (status = 302, description = "Signed out; back to the client's registered URI"),
        (status = 200, description = "Signed out; a page", content_type = "text/html"),
        (status = 400, description = "No ID token of the browser's person: not signed out", content_type = "text/html"),
    )
)]
pub async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    Client(from): Client,
) -> Result<HttpResponse, ApiError> {
    let params = pairs(req.query_string().as_bytes());
    let outcome = resource::logout(&state.core, params, cookie(&req), &from, state.now()).await?;
    let expired = crate::routes::auth::auth_cookie(&state, "\"\"", 0);
    let mut resp = match outcome {
        SignedOut::Redirect(to) => redirect(&to),
        SignedOut::Page => crate::routes::pages::message_page(
            &state,
            StatusCode::OK,
            "Signed out",
            "<p class=\"ok\" role=\"status\">You are signed out.</p>",
        ),
        SignedOut::NotSignedOut => {
            return Ok(crate::routes::pages::message_page(
                &state,
                StatusCode::BAD_REQUEST,
                "Not signed out",
                "<p class=\"error\">This sign-out request did not come with a sign-in of yours, so \
                 nothing was changed. To sign out, use <a href=\"/account\">your account page</a>.</p>",
            ))
        }
    };
    if let Ok(v) = header::HeaderValue::from_str(&expired) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}
