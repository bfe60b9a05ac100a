//! The OAuth 2.1 / OpenID Connect provider's routes (docs/oauth-provider.md): discovery,
//! client registration, the authorization request and its consent page, the token,
//! userinfo, introspection and revocation endpoints, sign-out, and the person's own
//! grants. Under `/oauth/` errors are OAuth's: `{"error", "error_description"}`
//! ([`OAuthReply`]), never `{"detail"}`; the person's grants under `/users/me` keep the
//! service's own shape.
//!
//! A module per endpoint group: discovery (`metadata`), client registration
//! (`registration`), the authorization request and consent (`consent`), the token,
//! userinfo, introspection, revocation and sign-out endpoints (`endpoints`), the
//! person's grants (`person_grants`); the OAuth error reply and the request helpers
//! they share are here.

mod consent;
mod endpoints;
mod metadata;
mod person_grants;
mod registration;

pub use consent::*;
pub use endpoints::*;
pub use metadata::*;
pub use person_grants::*;
pub use registration::*;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use base64::Engine;
use serde_json::json;
use users_core::flows::oauth::clients::ClientAuth;
use users_core::flows::oauth::{OAuthError, Params};
use users_core::Fault;

use crate::auth::AUTH_COOKIE;

/// An OAuth error as the wire carries it (RFC 6749 §5.2), with its status.
#[derive(Debug)]
pub struct OAuthReply(pub OAuthError);

impl std::fmt::Display for OAuthReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.code())
    }
}

impl From<OAuthError> for OAuthReply {
    fn from(e: OAuthError) -> Self {
        OAuthReply(e)
    }
}

impl From<Fault> for OAuthReply {
    fn from(e: Fault) -> Self {
        OAuthReply(OAuthError::Fault(e))
    }
}

impl ResponseError for OAuthReply {
    fn status_code(&self) -> StatusCode {
        match &self.0 {
            OAuthError::InvalidClient { .. } | OAuthError::InvalidToken => StatusCode::UNAUTHORIZED,
            OAuthError::InsufficientScope => StatusCode::FORBIDDEN,
            OAuthError::UnknownClient => StatusCode::NOT_FOUND,
            OAuthError::Limited { .. } => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::Fault(Fault::Internal(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthError::Fault(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let OAuthError::Fault(Fault::Internal(cause)) = &self.0 {
            tracing::error!(error = %cause, "an OAuth request failed");
        }
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CACHE_CONTROL, "no-store"));
        resp.insert_header((header::PRAGMA, "no-cache"));
        match &self.0 {
            OAuthError::InvalidClient { basic: true } => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"oauth\""));
            }
            OAuthError::InvalidToken => {
                resp.insert_header((header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\""));
            }
            OAuthError::InsufficientScope => {
                resp.insert_header((
                    header::WWW_AUTHENTICATE,
                    "Bearer error=\"insufficient_scope\"",
                ));
            }
            OAuthError::Limited { retry_after_secs } => {
                resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            OAuthError::Fault(_) => {
                resp.insert_header((header::RETRY_AFTER, "5"));
            }
            _ => {}
        }
        resp.json(json!({
            "error": self.0.code(),
            "error_description": self.0.description(),
        }))
    }
}

type OAuthResult = Result<HttpResponse, OAuthReply>;

/// A JSON answer that must not be cached (tokens, registrations).
fn no_store(status: StatusCode, body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(body)
}

/// A 302 to `to`, not to be cached.
fn redirect(to: &str) -> HttpResponse {
    HttpResponse::Found()
        .insert_header((header::LOCATION, to.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// The pairs of a query or form, repeats kept (a repeat is the flow's to refuse).
fn pairs(data: &[u8]) -> Params {
    Params(
        url::form_urlencoded::parse(data)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    )
}

/// The form of a POST: `application/x-www-form-urlencoded` only (RFC 6749 §3.2).
fn form(req: &HttpRequest, body: &[u8]) -> Result<Params, OAuthReply> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        return Err(OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        )
        .into());
    }
    Ok(pairs(body))
}

/// The client authentication a request carries: HTTP Basic (RFC 6749 §2.3.1: each part
/// form-urlencoded) or the form's `client_id` / `client_secret`.
fn client_auth(req: &HttpRequest, params: &Params) -> Result<ClientAuth, OAuthReply> {
    let basic = match req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        None => None,
        Some(value) => {
            let (scheme, encoded) = value.trim().split_once(' ').unwrap_or((value, ""));
            if !scheme.eq_ignore_ascii_case("basic") {
                return Err(OAuthError::InvalidClient { basic: false }.into());
            }
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(OAuthError::InvalidClient { basic: true })?;
            let (id, secret) = decoded
                .split_once(':')
                .ok_or(OAuthError::InvalidClient { basic: true })?;
            let unescape = |s: &str| -> String {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some((unescape(id), unescape(secret)))
        }
    };
    Ok(ClientAuth {
        basic,
        form_id: params.get("client_id").map(str::to_owned),
        form_secret: params.get("client_secret").map(str::to_owned),
    })
}

fn cookie(req: &HttpRequest) -> Option<String> {
    req.cookie(AUTH_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| !v.is_empty())
}
