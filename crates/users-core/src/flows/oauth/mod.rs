//! The OAuth 2.1 / OpenID Connect provider (docs/oauth-provider.md): the service signs
//! people in for other apps. Registered clients (`clients`), the authorization request
//! with its sign-in and consent (`authorize`), the token endpoint (`token`), what a
//! token opens (`resource`: userinfo, introspection, revocation, sign-out) and the
//! person's own view of the apps they let in (`grants`).
//!
//! A grant is a session of its person with the client's id as its method
//! (`oauth:<client_id>`): its refresh tokens rotate as §8's, its access tokens carry its
//! id as `sid`, and ending it ends them.

pub mod authorize;
pub mod clients;
pub mod grants;
pub mod resource;
pub mod token;

use users_domain::oauth::parse_scope;

use crate::Fault;

pub const GRANT_AUTHORIZATION_CODE: &str = "authorization_code";
pub const GRANT_REFRESH_TOKEN: &str = "refresh_token";
pub const GRANT_CLIENT_CREDENTIALS: &str = "client_credentials";
pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The errors of the token, introspection and revocation endpoints and of
/// registration (RFC 6749 §5.2, RFC 7591 §3.2.2), each with what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("invalid_request: {0}")]
    InvalidRequest(String),
    /// 401; `basic`: the client used HTTP Basic (answer `WWW-Authenticate: Basic`).
    #[error("invalid_client")]
    InvalidClient { basic: bool },
    #[error("invalid_grant: {0}")]
    InvalidGrant(String),
    #[error("unauthorized_client: {0}")]
    UnauthorizedClient(String),
    #[error("unsupported_grant_type")]
    UnsupportedGrantType(String),
    #[error("invalid_scope: {0}")]
    InvalidScope(String),
    #[error("invalid_target: {0}")]
    InvalidTarget(String),
    #[error("invalid_redirect_uri: {0}")]
    InvalidRedirectUri(String),
    #[error("invalid_client_metadata: {0}")]
    InvalidClientMetadata(String),
    /// 401 `invalid_token` (a registration without a usable initial access token).
    #[error("invalid_token")]
    InvalidToken,
    /// 403 `insufficient_scope` (not a superuser).
    #[error("insufficient_scope")]
    InsufficientScope,
    /// 404 `invalid_client_id`.
    #[error("unknown client")]
    UnknownClient,
    /// Too many failed client authentications from this address.
    #[error("too many requests")]
    Limited { retry_after_secs: u64 },
    #[error(transparent)]
    Fault(#[from] Fault),
}

impl From<users_db::DbError> for OAuthError {
    fn from(e: users_db::DbError) -> Self {
        OAuthError::Fault(e.into())
    }
}

impl OAuthError {
    /// The `error` code of the wire.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient { .. } => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidRedirectUri(_) => "invalid_redirect_uri",
            OAuthError::InvalidClientMetadata(_) => "invalid_client_metadata",
            OAuthError::InvalidToken => "invalid_token",
            OAuthError::InsufficientScope => "insufficient_scope",
            OAuthError::UnknownClient => "invalid_client_id",
            OAuthError::Limited { .. } => "temporarily_unavailable",
            OAuthError::Fault(Fault::Internal(_)) => "server_error",
            OAuthError::Fault(_) => "temporarily_unavailable",
        }
    }

    /// `error_description`: what is wrong, in words (never a secret).
    pub fn description(&self) -> String {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::UnsupportedGrantType(d)
            | OAuthError::InvalidScope(d)
            | OAuthError::InvalidTarget(d)
            | OAuthError::InvalidRedirectUri(d)
            | OAuthError::InvalidClientMetadata(d) => d.clone(),
            OAuthError::InvalidClient { .. } => {
                "client authentication failed (unknown client, wrong secret, or not the method the client was registered with)".into()
            }
            OAuthError::InvalidToken => {
                "the access token is missing, expired, revoked or not one this route takes (the client registry takes a superuser's)".into()
            }
            OAuthError::InsufficientScope => "only a superuser may do this".into(),
            OAuthError::UnknownClient => "no client has this client_id".into(),
            OAuthError::Limited { .. } => "too many failed attempts from this address; try again later".into(),
            OAuthError::Fault(Fault::Internal(_)) => "the server failed; try again".into(),
            OAuthError::Fault(_) => "the service is busy; try again".into(),
        }
    }
}

/// The parameters of a form or query, each name at most once (RFC 6749 §3.1: a
/// parameter sent twice is an invalid request).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The value of `name`; empty values count as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The first parameter named more than once.
    pub fn repeated(&self) -> Option<&str> {
        self.0.iter().enumerate().find_map(|(i, (k, _))| {
            self.0[..i]
                .iter()
                .any(|(earlier, _)| earlier == k)
                .then_some(k.as_str())
        })
    }

    /// `name`, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("`{name}` is required")))
    }
}

/// `scope` as a list, or `invalid_scope`.
fn scopes_of(value: &str) -> Result<Vec<String>, OAuthError> {
    parse_scope(value).ok_or_else(|| {
        OAuthError::InvalidScope("`scope` holds a character a scope may not have".into())
    })
}

/// What `requested` keeps of `allowed` (the order of `requested`), or the first scope
/// outside it.
fn within(requested: &[String], allowed: &[String]) -> Result<Vec<String>, String> {
    match requested.iter().find(|s| !allowed.contains(s)) {
        Some(outside) => Err(outside.clone()),
        None => Ok(requested.to_vec()),
    }
}
