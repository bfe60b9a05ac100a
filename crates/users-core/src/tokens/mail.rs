//! The tokens the mails carry: a password reset's and an email verification's
//! (docs/password-reset-and-verification.md), minted by the mail worker at send time.

use serde::{Deserialize, Serialize};
use users_domain::{Timestamp, UserId};

use super::{JwtKeys, TokenError};

pub const RESET_AUDIENCE: &str = "fastapi-users:reset";
pub const VERIFY_AUDIENCE: &str = "fastapi-users:verify";

/// A password-reset token: `password_fgpt` is an argon2 hash of the user's current
/// password hash (as fastapi-users makes it), so any password change kills the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResetClaims {
    pub sub: String,
    pub password_fgpt: String,
    #[serde(default = "reset_aud", skip_deserializing)]
    pub aud: String,
    pub exp: i64,
}

fn reset_aud() -> String {
    RESET_AUDIENCE.to_owned()
}

/// An email-verification token, bound to the address it was sent to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyClaims {
    pub sub: String,
    pub email: String,
    #[serde(default = "verify_aud", skip_deserializing)]
    pub aud: String,
    pub exp: i64,
}

fn verify_aud() -> String {
    VERIFY_AUDIENCE.to_owned()
}

impl JwtKeys {
    /// A password-reset token bound to the user's current password hash through
    /// `password_fgpt` (see [`ResetClaims`]).
    pub fn issue_reset(
        &self,
        user: UserId,
        password_fgpt: String,
        expires: Timestamp,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.encode(&ResetClaims {
            sub: user.to_string(),
            password_fgpt,
            aud: RESET_AUDIENCE.to_owned(),
            exp: expires.secs(),
        })
    }

    pub fn decode_reset(&self, token: &str, now: Timestamp) -> Result<ResetClaims, TokenError> {
        self.decode(token, RESET_AUDIENCE, now)
    }

    /// An email-verification token for the address the user has now.
    pub fn issue_verify(
        &self,
        user: UserId,
        email: &str,
        expires: Timestamp,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.encode(&VerifyClaims {
            sub: user.to_string(),
            email: email.to_owned(),
            aud: VERIFY_AUDIENCE.to_owned(),
            exp: expires.secs(),
        })
    }

    pub fn decode_verify(&self, token: &str, now: Timestamp) -> Result<VerifyClaims, TokenError> {
        self.decode(token, VERIFY_AUDIENCE, now)
    }
}
