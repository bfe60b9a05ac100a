//! Passkeys: the ceremonies' options and answers, a passkey as answered.

use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::offline_access;
use crate::extract::{Fields, Validated};

/// A WebAuthn ceremony: its id, and the options for `navigator.credentials`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CeremonyOptions {
    pub challenge_id: String,
    /// PublicKeyCredentialCreationOptions or PublicKeyCredentialRequestOptions as JSON
    /// (binary fields base64url).
    #[serde(rename = "publicKey")]
    #[schema(value_type = Object)]
    pub public_key: serde_json::Value,
}

impl From<users_core::flows::passkeys::CeremonyOptions> for CeremonyOptions {
    fn from(o: users_core::flows::passkeys::CeremonyOptions) -> Self {
        CeremonyOptions {
            challenge_id: o.challenge_id,
            public_key: o.public_key,
        }
    }
}

/// `{challenge_id, name, credential, password?}`: finishing a passkey registration.
#[derive(ToSchema)]
pub struct PasskeyRegister {
    pub challenge_id: String,
    pub name: Option<String>,
    /// The browser's PublicKeyCredential (attestation) as JSON.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
    /// Re-authentication: the password; without it, the session must have signed in
    /// less than 10 minutes ago.
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
}

impl Validated for PasskeyRegister {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let challenge_id = f.required_str("challenge_id");
        let name = f.optional_str("name");
        let credential = f.required_object("credential");
        let password = f.optional_password("password");
        Some(PasskeyRegister {
            challenge_id: challenge_id?,
            name: name?,
            credential: credential?,
            password: password?,
        })
    }
}

/// `{password?}`: re-authentication for a sensitive change. Without the password, the
/// session must have signed in less than 10 minutes ago. An empty body is `{}`.
#[derive(ToSchema, Default)]
pub struct Reauthentication {
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
}

impl Validated for Reauthentication {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        Some(Reauthentication {
            password: f.optional_password("password")?,
        })
    }
}

/// A passkey.
#[derive(Debug, Serialize, ToSchema)]
pub struct PasskeyRead {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: users_domain::Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<users_domain::Timestamp>,
}

impl From<users_core::flows::passkeys::PasskeyInfo> for PasskeyRead {
    fn from(p: users_core::flows::passkeys::PasskeyInfo) -> Self {
        PasskeyRead {
            id: p.id,
            name: p.name,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

/// `{}` for a passwordless sign-in, or `{mfa_token}` for a second step (or
/// `{"second_step": true}` when a page's sign-in holds the mfa_token in its cookie).
#[derive(ToSchema)]
pub struct PasskeyLoginOptions {
    pub mfa_token: Option<String>,
    /// The second step of a sign-in started from one of the service's pages: the
    /// mfa_token is the `users_mfa` cookie's.
    #[schema(default = false)]
    pub second_step: bool,
}

impl Validated for PasskeyLoginOptions {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let mfa_token = f.optional_str("mfa_token");
        let second_step = f.optional_bool("second_step");
        Some(PasskeyLoginOptions {
            mfa_token: mfa_token?,
            second_step: second_step?.unwrap_or(false),
        })
    }
}

/// `{challenge_id, credential, scope?, transport?}`: a passwordless sign-in.
#[derive(ToSchema)]
pub struct PasskeyLogin {
    pub challenge_id: String,
    /// The browser's PublicKeyCredential (assertion) as JSON.
    #[schema(value_type = Object)]
    pub credential: serde_json::Value,
    /// `offline_access` for a refresh token.
    pub scope: Option<String>,
    /// `cookie`: answer as `/auth/cookie/login` does (204 and the session cookie)
    /// instead of the Token; for pages such as `/account`.
    #[schema(pattern = "^(bearer|cookie)$")]
    pub transport: Option<String>,
}

impl Validated for PasskeyLogin {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let challenge_id = f.required_str("challenge_id");
        let credential = f.required_object("credential");
        let scope = f.optional_str("scope");
        let transport = f.optional_str("transport");
        let transport = transport?;
        if transport
            .as_deref()
            .is_some_and(|t| t != "cookie" && t != "bearer")
        {
            f.refuse("transport", "transport is `bearer` or `cookie`");
            return None;
        }
        Some(PasskeyLogin {
            challenge_id: challenge_id?,
            credential: credential?,
            scope: scope?,
            transport,
        })
    }
}

impl PasskeyLogin {
    pub fn offline_access(&self) -> bool {
        self.transport() == users_core::flows::mfa::Transport::Bearer
            && offline_access(self.scope.as_deref())
    }

    pub fn transport(&self) -> users_core::flows::mfa::Transport {
        match self.transport.as_deref() {
            Some("cookie") => users_core::flows::mfa::Transport::Cookie,
            _ => users_core::flows::mfa::Transport::Bearer,
        }
    }
}
