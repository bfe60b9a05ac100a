//! The one place where flow outcomes become HTTP answers: each flow's error enum maps to
//! a status and the contract's `detail` code here, and nowhere else is a code chosen.

use users_core::flows::account::UpdateError;
use users_core::flows::auth::{AuthError, LoginError};
use users_core::flows::identities::IdentityError;
use users_core::flows::mfa::{MfaError, MfaRequired};
use users_core::flows::oauth::OAuthFlowError;
use users_core::flows::passkeys::PasskeyError;
use users_core::flows::recovery::{ResetError, VerifyError};
use users_core::flows::register::RegisterError;
use users_core::flows::session::RefreshError;
use users_core::throttle::{Limited, ThrottleError};

use crate::error::ApiError;

/// 403 `CSRF_ORIGIN_MISMATCH`: a browser's request from another site, where a cookie
/// would act (docs/security.md).
pub fn cross_site() -> ApiError {
    ApiError::ForbiddenCode("CSRF_ORIGIN_MISMATCH")
}

impl From<Limited> for ApiError {
    fn from(l: Limited) -> Self {
        ApiError::TooManyRequests {
            retry_after_secs: l.retry_after_secs,
        }
    }
}

impl From<ThrottleError> for ApiError {
    fn from(e: ThrottleError) -> Self {
        match e {
            ThrottleError::Limited(l) => l.into(),
            ThrottleError::Fault(f) => f.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthorized => ApiError::Unauthorized,
            AuthError::Fault(f) => f.into(),
        }
    }
}

impl From<LoginError> for ApiError {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::BadCredentials => ApiError::BadRequest("LOGIN_BAD_CREDENTIALS"),
            LoginError::Locked(l) => l.into(),
            LoginError::Fault(f) => f.into(),
        }
    }
}

impl From<RegisterError> for ApiError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::InvalidPassword(reason) => ApiError::InvalidPassword {
                code: "REGISTER_INVALID_PASSWORD",
                reason,
            },
            RegisterError::AlreadyExists => ApiError::BadRequest("REGISTER_USER_ALREADY_EXISTS"),
            RegisterError::Fault(f) => f.into(),
        }
    }
}

impl From<UpdateError> for ApiError {
    fn from(e: UpdateError) -> Self {
        match e {
            UpdateError::InvalidPassword(reason) => ApiError::InvalidPassword {
                code: "UPDATE_USER_INVALID_PASSWORD",
                reason,
            },
            UpdateError::EmailAlreadyExists => {
                ApiError::BadRequest("UPDATE_USER_EMAIL_ALREADY_EXISTS")
            }
            UpdateError::NotFound => ApiError::NotFound,
            UpdateError::Fault(f) => f.into(),
        }
    }
}

impl From<ResetError> for ApiError {
    fn from(e: ResetError) -> Self {
        match e {
            ResetError::BadToken => ApiError::BadRequest("RESET_PASSWORD_BAD_TOKEN"),
            ResetError::InvalidPassword(reason) => ApiError::InvalidPassword {
                code: "RESET_PASSWORD_INVALID_PASSWORD",
                reason,
            },
            ResetError::Fault(f) => f.into(),
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::BadToken => ApiError::BadRequest("VERIFY_USER_BAD_TOKEN"),
            VerifyError::AlreadyVerified => ApiError::BadRequest("VERIFY_USER_ALREADY_VERIFIED"),
            VerifyError::Fault(f) => f.into(),
        }
    }
}

impl From<OAuthFlowError> for ApiError {
    fn from(e: OAuthFlowError) -> Self {
        use OAuthFlowError as E;
        match e {
            E::NotConfigured => ApiError::NotFound,
            E::NotReady(_) => ApiError::NotReady(e.to_string()),
            E::Denied(error) => ApiError::Detail(error),
            E::MissingCode | E::WrongUser => ApiError::BadRequestGeneric,
            E::StateUnreadable => ApiError::BadRequest("ACCESS_TOKEN_DECODE_ERROR"),
            E::StateExpired => ApiError::BadRequest("ACCESS_TOKEN_ALREADY_EXPIRED"),
            E::InvalidState => ApiError::BadRequest("OAUTH_INVALID_STATE"),
            E::ProviderUnavailable => ApiError::BadGateway("OAUTH_PROVIDER_UNAVAILABLE"),
            E::CodeRejected => ApiError::BadRequest("OAUTH_CODE_REJECTED"),
            E::InvalidIdToken => ApiError::BadRequest("OAUTH_INVALID_ID_TOKEN"),
            E::NoEmail => ApiError::BadRequest("OAUTH_NOT_AVAILABLE_EMAIL"),
            E::UserAlreadyExists => ApiError::BadRequest("OAUTH_USER_ALREADY_EXISTS"),
            E::AccountAlreadyLinked => ApiError::BadRequest("OAUTH_ACCOUNT_ALREADY_LINKED"),
            E::Inactive => ApiError::BadRequest("LOGIN_BAD_CREDENTIALS"),
            E::Fault(f) => f.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::Invalid => ApiError::BadRequest("REFRESH_TOKEN_INVALID"),
            RefreshError::Reused => ApiError::BadRequest("REFRESH_TOKEN_REUSED"),
            RefreshError::Fault(f) => f.into(),
        }
    }
}

impl From<MfaRequired> for ApiError {
    fn from(m: MfaRequired) -> Self {
        ApiError::MfaRequired {
            mfa_token: m.mfa_token,
            methods: m.methods,
        }
    }
}

impl From<MfaError> for ApiError {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::AlreadyEnabled => ApiError::BadRequest("MFA_ALREADY_ENABLED"),
            MfaError::BadPassword => ApiError::BadRequest("MFA_BAD_PASSWORD"),
            MfaError::ReauthenticationRequired => ApiError::BadRequest("REAUTHENTICATION_REQUIRED"),
            MfaError::CsrfOriginMismatch => cross_site(),
            MfaError::BadCode => ApiError::BadRequest("MFA_BAD_CODE"),
            MfaError::NotPending => ApiError::BadRequest("MFA_NOT_PENDING"),
            MfaError::TokenInvalid => ApiError::BadRequest("MFA_TOKEN_INVALID"),
            MfaError::Locked(l) => l.into(),
            MfaError::NotFound => ApiError::NotFound,
            MfaError::Fault(f) => f.into(),
        }
    }
}

impl From<PasskeyError> for ApiError {
    fn from(e: PasskeyError) -> Self {
        match e {
            PasskeyError::NotConfigured => ApiError::NotReady("PASSKEYS_NOT_CONFIGURED".to_owned()),
            PasskeyError::Invalid => ApiError::BadRequest("PASSKEY_INVALID"),
            PasskeyError::NotFound => ApiError::NotFound,
            PasskeyError::MfaTokenInvalid => ApiError::BadRequest("MFA_TOKEN_INVALID"),
            PasskeyError::BadPassword => ApiError::BadRequest("MFA_BAD_PASSWORD"),
            PasskeyError::ReauthenticationRequired => {
                ApiError::BadRequest("REAUTHENTICATION_REQUIRED")
            }
            PasskeyError::Locked(l) => l.into(),
            PasskeyError::Fault(f) => f.into(),
        }
    }
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::NotLinked => ApiError::NotFound,
            IdentityError::LastSignInMethod => ApiError::BadRequest("IDENTITY_LAST_SIGN_IN_METHOD"),
            IdentityError::Fault(f) => f.into(),
        }
    }
}
