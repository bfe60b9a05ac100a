//! The second factor: TOTP enrolment, codes, recovery codes, the second step.

use secrecy::SecretString;
use serde::Serialize;
use utoipa::ToSchema;

use crate::extract::{Fields, Validated};

/// `{password}` to enrol TOTP (none for a user without a password).
#[derive(ToSchema)]
pub struct TotpEnrolRequest {
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
}

impl Validated for TotpEnrolRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        Some(TotpEnrolRequest {
            password: f.optional_password("password")?,
        })
    }
}

/// What an authenticator app needs; shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// Base32.
    pub secret: String,
    /// `otpauth://totp/<issuer>:<email>?secret=…&issuer=…`
    pub otpauth_uri: String,
    /// The URI as a QR code.
    pub qr_svg: String,
}

/// `{code}`: a TOTP code (confirming), or a TOTP or recovery code (disabling, new codes).
#[derive(ToSchema)]
pub struct CodeRequest {
    pub code: String,
}

impl Validated for CodeRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        Some(CodeRequest {
            code: f.required_str("code")?,
        })
    }
}

/// Ten recovery codes, shown once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// The user's factors.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaStatus {
    pub totp: bool,
    pub passkeys: i64,
    pub recovery_codes_left: i64,
}

/// `{mfa_token}` and one proof: `code` (TOTP), `recovery_code`, or `challenge_id` with
/// `credential` (a passkey assertion).
#[derive(ToSchema)]
pub struct MfaVerify {
    /// The first step's mfa_token; a sign-in started from one of the service's pages
    /// carries it in an HttpOnly cookie instead.
    pub mfa_token: Option<String>,
    pub code: Option<String>,
    pub recovery_code: Option<String>,
    pub challenge_id: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub credential: Option<serde_json::Value>,
}

impl Validated for MfaVerify {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let mfa_token = f.optional_str("mfa_token");
        let code = f.optional_str("code");
        let recovery_code = f.optional_str("recovery_code");
        let challenge_id = f.optional_str("challenge_id");
        let credential = if challenge_id.as_ref().is_some_and(Option::is_some) {
            f.required_object("credential").map(Some)
        } else {
            Some(None)
        };
        let body = MfaVerify {
            mfa_token: mfa_token?,
            code: code?,
            recovery_code: recovery_code?,
            challenge_id: challenge_id?,
            credential: credential?,
        };
        let proofs = [
            body.code.is_some(),
            body.recovery_code.is_some(),
            body.challenge_id.is_some(),
        ];
        if proofs.iter().filter(|p| **p).count() != 1 {
            f.refuse(
                "code",
                "give exactly one of code, recovery_code, or challenge_id with credential",
            );
            return None;
        }
        Some(body)
    }
}

impl MfaVerify {
    pub fn proof(self) -> users_core::flows::mfa::Proof {
        use users_core::flows::mfa::Proof;
        match (
            self.code,
            self.recovery_code,
            self.challenge_id,
            self.credential,
        ) {
            (Some(code), _, _, _) => Proof::Totp(code),
            (_, Some(code), _, _) => Proof::RecoveryCode(code),
            (_, _, Some(challenge_id), credential) => Proof::Passkey {
                challenge_id,
                credential: credential.unwrap_or_default(),
            },
            // validate() admits exactly one
            (None, None, None, _) => Proof::Totp(String::new()),
        }
    }
}
