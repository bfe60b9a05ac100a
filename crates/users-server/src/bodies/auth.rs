//! Sign-in and tokens: the login form, the refresh request, the tokens answered, the
//! sessions.

use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::{Fields, Validated};

/// An OAuth2 password form (`OAuth2PasswordRequestForm`): `username` is the email.
/// An empty field counts as missing.
#[derive(ToSchema)]
pub struct LoginForm {
    #[schema(min_length = 1)]
    pub username: String,
    #[schema(value_type = String, min_length = 1)]
    pub password: SecretString,
    #[schema(pattern = "^password$")]
    pub grant_type: Option<String>,
    pub scope: Option<String>,
    pub client_id: Option<String>,
    #[schema(value_type = Option<String>)]
    pub client_secret: Option<SecretString>,
}

impl Validated for LoginForm {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let grant_type = f.optional_literal("grant_type", "password");
        let username = f.required_str("username");
        let password = f.required_password("password");
        let scope = f.optional_str("scope");
        let client_id = f.optional_str("client_id");
        let client_secret = f.optional_password("client_secret");
        grant_type?;
        Some(LoginForm {
            username: username?,
            password: password?,
            grant_type: Some("password".to_owned()),
            scope: scope?,
            client_id: client_id?,
            client_secret: client_secret?,
        })
    }
}

/// Whether the client asked for a refresh token: the OAuth2 scope `offline_access`
/// among the space-separated scopes.
pub(super) fn offline_access(scope: Option<&str>) -> bool {
    scope.is_some_and(|s| s.split_whitespace().any(|scope| scope == "offline_access"))
}

impl LoginForm {
    pub fn offline_access(&self) -> bool {
        offline_access(self.scope.as_deref())
    }
}

/// `{refresh_token}` as JSON, or RFC 6749 §6's form
/// `grant_type=refresh_token&refresh_token=…`.
#[derive(ToSchema)]
pub struct RefreshRequest {
    #[schema(value_type = String)]
    pub refresh_token: SecretString,
    #[schema(pattern = "^refresh_token$")]
    pub grant_type: Option<String>,
}

impl Validated for RefreshRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let grant_type = f.optional_literal("grant_type", "refresh_token");
        let refresh_token = f.required_password("refresh_token");
        grant_type?;
        Some(RefreshRequest {
            refresh_token: refresh_token?,
            grant_type: Some("refresh_token".to_owned()),
        })
    }
}

/// An access token (`BearerResponse`).
#[derive(Debug, Serialize, ToSchema)]
pub struct BearerToken {
    pub access_token: String,
    /// Always `bearer`.
    #[schema(value_type = String, example = "bearer")]
    pub token_type: &'static str,
}

impl BearerToken {
    pub fn new(access_token: String) -> BearerToken {
        BearerToken {
            access_token,
            token_type: "bearer",
        }
    }
}

/// An access token with a refresh token (a sign-in with `offline_access`, or a
/// refresh).
#[derive(Debug, Serialize, ToSchema)]
pub struct RefreshableToken {
    pub access_token: String,
    /// Always `bearer`.
    #[schema(value_type = String, example = "bearer")]
    pub token_type: &'static str,
    /// Seconds the access token lives.
    pub expires_in: i64,
    pub refresh_token: String,
}

/// A live session, as its user (or a superuser) sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionRead {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: users_domain::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_used_at: users_domain::Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: users_domain::Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// `password`, `google`, `oidc:<name>`, `github`, `passkey`.
    pub method: String,
    /// 1, or 2 after a second factor or with a passkey.
    pub aal: i64,
    /// The session of the token that asked.
    pub current: bool,
}

impl From<users_core::flows::session::SessionInfo> for SessionRead {
    fn from(s: users_core::flows::session::SessionInfo) -> Self {
        SessionRead {
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            ip: s.ip,
            user_agent: s.user_agent,
            method: s.method,
            aal: s.aal,
            current: s.current,
        }
    }
}
