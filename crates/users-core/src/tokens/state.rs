//! The OAuth state of a sign-in or a link with a provider (docs/providers.md).

use serde::{Deserialize, Serialize};
use users_domain::Timestamp;

use super::{JwtKeys, TokenError};

pub const STATE_AUDIENCE: &str = "fastapi-users:oauth-state";

/// The OAuth state: `csrftoken` equals the browser's cookie; `jti` names the
/// server-side row with the PKCE verifier and the nonce; `sub` is the user an
/// association was started for; `provider` the provider it was started with (a state
/// of one provider is refused by another's callback).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateClaims {
    pub csrftoken: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default = "state_aud", skip_deserializing)]
    pub aud: String,
    pub exp: i64,
}

fn state_aud() -> String {
    STATE_AUDIENCE.to_owned()
}

impl JwtKeys {
    pub fn issue_state(&self, claims: &StateClaims) -> Result<String, jsonwebtoken::errors::Error> {
        self.encode(claims)
    }

    pub fn decode_state(&self, token: &str, now: Timestamp) -> Result<StateClaims, TokenError> {
        self.decode(token, STATE_AUDIENCE, now)
    }
}
