//! The one place where flow outcomes become HTTP answers: every `detail` code of the
//! contract is declared here once ([`Code`]: its status, the shape of its body, what it
//! means), each flow's error enum maps to those codes here, and nowhere else is a code
//! chosen. The OpenAPI document describes the codes a route answers from the same
//! declaration (the answer sets below each mapping, rendered by `openapi.rs`), so the
//! documented codes are the answered ones.

use users_core::flows::account::UpdateError;
use users_core::flows::api_keys::ApiKeyError;
use users_core::flows::auth::{AuthError, LoginError};
use users_core::flows::identities::IdentityError;
use users_core::flows::mfa::{MfaError, MfaRequired};
use users_core::flows::passkeys::PasskeyError;
use users_core::flows::recovery::{ResetError, VerifyError};
use users_core::flows::register::RegisterError;
use users_core::flows::roles::RoleError;
use users_core::flows::session::RefreshError;
use users_core::flows::upstream::UpstreamError;
use users_core::throttle::{Limited, ThrottleError};

use crate::answers::answers;
use crate::codes::{Code, Relayed};
use crate::error::ApiError;

/// 403 `CSRF_ORIGIN_MISMATCH`: a browser's request from another site, where a cookie
/// would act (docs/security.md).
pub fn cross_site() -> ApiError {
    ApiError::Code(Code::CsrfOriginMismatch)
}

answers! {
    /// 403 `CSRF_ORIGIN_MISMATCH`, of a route a cookie can act on.
    CrossSite = [CsrfOriginMismatch];
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
            LoginError::BadCredentials => ApiError::Code(Code::LoginBadCredentials),
            LoginError::Locked(l) => l.into(),
            LoginError::Fault(f) => f.into(),
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

answers! {
    /// A password sign-in's first factor, either transport.
    LoginRefused = [LoginBadCredentials, LoginMfaRequired];
}

impl From<RegisterError> for ApiError {
    fn from(e: RegisterError) -> Self {
        match e {
            RegisterError::InvalidPassword(reason) => ApiError::InvalidPassword {
                code: Code::RegisterInvalidPassword,
                reason,
            },
            RegisterError::AlreadyExists => ApiError::Code(Code::RegisterUserAlreadyExists),
            RegisterError::Fault(f) => f.into(),
        }
    }
}

answers! {
    /// `POST /auth/register`.
    RegisterRefused = [RegisterInvalidPassword, RegisterUserAlreadyExists];
}

impl From<UpdateError> for ApiError {
    fn from(e: UpdateError) -> Self {
        match e {
            UpdateError::InvalidPassword(reason) => ApiError::InvalidPassword {
                code: Code::UpdateUserInvalidPassword,
                reason,
            },
            UpdateError::EmailAlreadyExists => ApiError::Code(Code::UpdateUserEmailAlreadyExists),
            UpdateError::NotFound => ApiError::NotFound,
            UpdateError::Fault(f) => f.into(),
        }
    }
}

answers! {
    /// `PATCH /users/me` and `PATCH /users/{id}`.
    UpdateRefused = [UpdateUserEmailAlreadyExists, UpdateUserInvalidPassword];
}

impl From<ResetError> for ApiError {
    fn from(e: ResetError) -> Self {
        match e {
            ResetError::BadToken => ApiError::Code(Code::ResetPasswordBadToken),
            ResetError::InvalidPassword(reason) => ApiError::InvalidPassword {
                code: Code::ResetPasswordInvalidPassword,
                reason,
            },
            ResetError::Fault(f) => f.into(),
        }
    }
}

answers! {
    /// `POST /auth/reset-password`.
    ResetRefused = [ResetPasswordBadToken, ResetPasswordInvalidPassword];
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::BadToken => ApiError::Code(Code::VerifyUserBadToken),
            VerifyError::AlreadyVerified => ApiError::Code(Code::VerifyUserAlreadyVerified),
            VerifyError::Fault(f) => f.into(),
        }
    }
}

answers! {
    /// `POST /auth/verify`.
    VerifyRefused = [VerifyUserBadToken, VerifyUserAlreadyVerified];
}

impl From<UpstreamError> for ApiError {
    fn from(e: UpstreamError) -> Self {
        use UpstreamError as E;
        match e {
            E::NotConfigured => ApiError::NotFound,
            E::NotReady(_) => ApiError::NotReady(Relayed::relay(e.to_string())),
            E::Denied(error) => ApiError::Detail(Relayed::relay(error)),
            E::MissingCode | E::WrongUser => ApiError::Code(Code::BadRequest),
            E::StateUnreadable => ApiError::Code(Code::AccessTokenDecodeError),
            E::StateExpired => ApiError::Code(Code::AccessTokenAlreadyExpired),
            E::InvalidState => ApiError::Code(Code::OauthInvalidState),
            E::ProviderUnavailable => ApiError::Code(Code::OauthProviderUnavailable),
            E::CodeRejected => ApiError::Code(Code::OauthCodeRejected),
            E::InvalidIdToken => ApiError::Code(Code::OauthInvalidIdToken),
            E::NoEmail => ApiError::Code(Code::OauthNotAvailableEmail),
            E::UserAlreadyExists => ApiError::Code(Code::OauthUserAlreadyExists),
            E::AccountAlreadyLinked => ApiError::Code(Code::OauthAccountAlreadyLinked),
            E::Inactive => ApiError::Code(Code::LoginBadCredentials),
            E::Fault(f) => f.into(),
        }
    }
}

/// The provider's own `?error=`, passed on: the first check of a callback.
const PROVIDER_ERROR: &str = "the provider's own `error`, passed on as the `detail` when it \
                              sent the user back with one";

answers! {
    /// `GET /auth/{provider}/callback`, in the order the checks run.
    CallbackRefused = [
        BadRequest,
        AccessTokenDecodeError,
        AccessTokenAlreadyExpired,
        OauthInvalidState,
        OauthProviderUnavailable,
        OauthCodeRejected,
        OauthInvalidIdToken,
        OauthNotAvailableEmail,
        OauthUserAlreadyExists,
        LoginBadCredentials,
        LoginMfaRequired,
    ] + BAD_REQUEST PROVIDER_ERROR;
    /// `GET /auth/associate/{provider}/callback`, in the order the checks run.
    AssociateCallbackRefused = [
        BadRequest,
        AccessTokenDecodeError,
        AccessTokenAlreadyExpired,
        OauthInvalidState,
        OauthProviderUnavailable,
        OauthCodeRejected,
        OauthInvalidIdToken,
        OauthNotAvailableEmail,
        OauthAccountAlreadyLinked,
    ] + BAD_REQUEST PROVIDER_ERROR;
}

impl From<RefreshError> for ApiError {
    fn from(e: RefreshError) -> Self {
        match e {
            RefreshError::Invalid => ApiError::Code(Code::RefreshTokenInvalid),
            RefreshError::Reused => ApiError::Code(Code::RefreshTokenReused),
            RefreshError::Fault(f) => f.into(),
        }
    }
}

answers! {
    /// `POST /auth/jwt/refresh`.
    RefreshRefused = [RefreshTokenInvalid, RefreshTokenReused];
}

impl From<MfaError> for ApiError {
    fn from(e: MfaError) -> Self {
        match e {
            MfaError::AlreadyEnabled => ApiError::Code(Code::MfaAlreadyEnabled),
            MfaError::BadPassword => ApiError::Code(Code::MfaBadPassword),
            MfaError::ReauthenticationRequired => ApiError::Code(Code::ReauthenticationRequired),
            MfaError::CsrfOriginMismatch => cross_site(),
            MfaError::BadCode => ApiError::Code(Code::MfaBadCode),
            MfaError::NotPending => ApiError::Code(Code::MfaNotPending),
            MfaError::TokenInvalid => ApiError::Code(Code::MfaTokenInvalid),
            MfaError::Locked(l) => l.into(),
            MfaError::NotFound => ApiError::NotFound,
            MfaError::Fault(f) => f.into(),
        }
    }
}

answers! {
    /// `POST /auth/mfa/totp`.
    TotpEnrolRefused = [MfaAlreadyEnabled, MfaBadPassword, ReauthenticationRequired];
    /// `POST /auth/mfa/totp/confirm`.
    TotpConfirmRefused = [MfaBadCode, MfaNotPending];
    /// A TOTP or recovery code proving the caller (removing TOTP, new recovery codes).
    TotpCodeRefused = [MfaBadCode];
    /// `POST /auth/mfa/verify`, the second step of a sign-in.
    SecondStepRefused = [MfaBadCode, MfaTokenInvalid, CsrfOriginMismatch];
}

impl From<PasskeyError> for ApiError {
    fn from(e: PasskeyError) -> Self {
        match e {
            PasskeyError::NotConfigured => ApiError::Code(Code::PasskeysNotConfigured),
            PasskeyError::Invalid => ApiError::Code(Code::PasskeyInvalid),
            PasskeyError::NotFound => ApiError::NotFound,
            PasskeyError::MfaTokenInvalid => ApiError::Code(Code::MfaTokenInvalid),
            PasskeyError::BadPassword => ApiError::Code(Code::MfaBadPassword),
            PasskeyError::ReauthenticationRequired => {
                ApiError::Code(Code::ReauthenticationRequired)
            }
            PasskeyError::Locked(l) => l.into(),
            PasskeyError::Fault(f) => f.into(),
        }
    }
}

answers! {
    /// Any passkey route, while passkeys are off.
    PasskeysOff = [PasskeysNotConfigured];
    /// Starting a registration or removing a passkey: re-authentication.
    PasskeyReauthRefused = [MfaBadPassword, ReauthenticationRequired, PasskeysNotConfigured];
    /// `POST /auth/passkeys/register`.
    PasskeyRegisterRefused = [
        PasskeyInvalid,
        MfaBadPassword,
        ReauthenticationRequired,
        PasskeysNotConfigured,
    ];
    /// `POST /auth/passkeys/login/options` (`PASSKEY_INVALID`: the user has no passkey).
    PasskeyLoginOptionsRefused = [MfaTokenInvalid, PasskeyInvalid, PasskeysNotConfigured];
    /// `POST /auth/passkeys/login`.
    PasskeyLoginRefused = [PasskeyInvalid, PasskeysNotConfigured];
}

impl From<IdentityError> for ApiError {
    fn from(e: IdentityError) -> Self {
        match e {
            IdentityError::NotLinked => ApiError::NotFound,
            IdentityError::LastSignInMethod => ApiError::Code(Code::IdentityLastSignInMethod),
            IdentityError::Fault(f) => f.into(),
        }
    }
}

answers! {
    /// Unlinking a provider's account, by the owner's Bearer token or cookie.
    UnlinkRefused = [IdentityLastSignInMethod, CsrfOriginMismatch, ApiKeyNotAllowed];
}

/// 403 `API_KEY_NOT_ALLOWED`: an API key on a write that changes how the person signs
/// in (docs/roles-and-api-keys.md).
pub fn api_key_not_allowed() -> ApiError {
    ApiError::Code(Code::ApiKeyNotAllowed)
}

answers! {
    /// A write that changes how the person signs in: refused to an API key.
    SignInWrite = [ApiKeyNotAllowed];
    /// A sign-in write a cookie can also act on.
    SignInWriteCrossSite = [ApiKeyNotAllowed, CsrfOriginMismatch];
}

impl From<RoleError> for ApiError {
    fn from(e: RoleError) -> Self {
        match e {
            RoleError::AlreadyExists => ApiError::Code(Code::RoleAlreadyExists),
            RoleError::NotFound => ApiError::Code(Code::RoleNotFound),
            RoleError::UnknownRole(role) => ApiError::UnknownRole { role },
            RoleError::NoSuchUser => ApiError::NotFound,
            RoleError::Fault(f) => f.into(),
        }
    }
}

answers! {
    /// `POST /roles`.
    RoleCreateRefused = [RoleAlreadyExists];
    /// A route naming a role by `{name}`.
    RoleUnknown = [RoleNotFound];
}

impl From<ApiKeyError> for ApiError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::BadPassword => ApiError::Code(Code::MfaBadPassword),
            ApiKeyError::ReauthenticationRequired => ApiError::Code(Code::ReauthenticationRequired),
            ApiKeyError::Locked(l) => l.into(),
            ApiKeyError::PermissionNotHeld => ApiError::Code(Code::ApiKeyPermissionNotHeld),
            ApiKeyError::NotFound => ApiError::NotFound,
            ApiKeyError::Fault(f) => f.into(),
        }
    }
}

answers! {
    /// `POST /users/me/api-keys`.
    ApiKeyCreateRefused = [MfaBadPassword, ReauthenticationRequired, ApiKeyPermissionNotHeld];
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use actix_web::body::MessageBody;
    use actix_web::http::header;
    use actix_web::ResponseError;

    use super::*;
    use actix_web::http::StatusCode;

    use crate::codes::Body;

    /// Every refusal of every flow that answers with a code, as it leaves this module.
    fn refusals() -> Vec<ApiError> {
        let password = || "too short".to_owned();
        let mut all: Vec<ApiError> = vec![
            LoginError::BadCredentials.into(),
            MfaRequired {
                mfa_token: "token".to_owned(),
                methods: vec!["totp"],
            }
            .into(),
            RegisterError::InvalidPassword(password()).into(),
            RegisterError::AlreadyExists.into(),
            UpdateError::InvalidPassword(password()).into(),
            UpdateError::EmailAlreadyExists.into(),
            ResetError::BadToken.into(),
            ResetError::InvalidPassword(password()).into(),
            VerifyError::BadToken.into(),
            VerifyError::AlreadyVerified.into(),
            RefreshError::Invalid.into(),
            RefreshError::Reused.into(),
            IdentityError::LastSignInMethod.into(),
            cross_site(),
            api_key_not_allowed(),
            RoleError::AlreadyExists.into(),
            RoleError::NotFound.into(),
            ApiKeyError::BadPassword.into(),
            ApiKeyError::ReauthenticationRequired.into(),
            ApiKeyError::PermissionNotHeld.into(),
        ];
        use UpstreamError as O;
        all.extend(
            [
                O::MissingCode,
                O::StateUnreadable,
                O::StateExpired,
                O::InvalidState,
                O::WrongUser,
                O::ProviderUnavailable,
                O::CodeRejected,
                O::InvalidIdToken,
                O::NoEmail,
                O::UserAlreadyExists,
                O::AccountAlreadyLinked,
                O::Inactive,
            ]
            .map(ApiError::from),
        );
        use MfaError as M;
        all.extend(
            [
                M::AlreadyEnabled,
                M::BadPassword,
                M::ReauthenticationRequired,
                M::CsrfOriginMismatch,
                M::BadCode,
                M::NotPending,
                M::TokenInvalid,
            ]
            .map(ApiError::from),
        );
        use PasskeyError as P;
        all.extend(
            [
                P::NotConfigured,
                P::Invalid,
                P::MfaTokenInvalid,
                P::BadPassword,
                P::ReauthenticationRequired,
            ]
            .map(ApiError::from),
        );
        all
    }

    fn body(e: &ApiError) -> String {
        match e.error_response().into_body().try_into_bytes() {
            Ok(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
            Err(_) => panic!("{e:?}: the body is not in memory"),
        }
    }

    #[test]
    fn each_code_is_answered_with_its_declared_status_and_body() {
        for e in refusals() {
            let code = e.declared_code().unwrap();
            assert_eq!(e.status_code(), code.status(), "{code}");
            let body = body(&e);
            let expected = match code.body() {
                Body::Detail => format!(r#"{{"detail":"{code}"}}"#),
                Body::Password => format!(r#"{{"detail":{{"code":"{code}","reason":"#),
                Body::SecondStep => format!(r#"{{"detail":{{"code":"{code}","mfa_token":"#),
            };
            assert!(body.starts_with(&expected), "{code}: {body}");
        }
    }

    #[test]
    fn every_declared_code_is_answered_by_a_flow_and_declared_once() {
        let answered: Vec<Code> = refusals()
            .iter()
            .filter_map(|e| e.declared_code())
            .collect();
        for code in Code::ALL {
            assert!(
                answered.contains(code),
                "{code} is declared but no flow answers it"
            );
            let same_name = Code::ALL.iter().filter(|c| c.as_str() == code.as_str());
            assert_eq!(same_name.count(), 1, "{code} is declared twice");
        }
    }

    #[test]
    fn an_unknown_role_of_a_set_is_named_in_a_400() {
        let e = ApiError::from(RoleError::UnknownRole("ops".to_owned()));
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        assert_eq!(
            body(&e),
            r#"{"detail":{"code":"ROLE_NOT_FOUND","role":"ops"}}"#
        );
    }

    #[test]
    fn a_503_code_asks_for_a_retry_like_every_503() {
        let resp = ApiError::from(PasskeyError::NotConfigured).error_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers().get(header::RETRY_AFTER).unwrap(), "5");
        assert_eq!(
            resp.headers().get(header::CACHE_CONTROL).unwrap(),
            "no-store"
        );
    }

    #[test]
    fn pages_get_no_code_for_the_generic_bad_request() {
        assert_eq!(ApiError::from(UpstreamError::MissingCode).code(), None);
        assert_eq!(
            ApiError::from(UpstreamError::InvalidState).code(),
            Some("OAUTH_INVALID_STATE")
        );
        let denied = ApiError::from(UpstreamError::Denied("access_denied".to_owned()));
        assert_eq!(body(&denied), r#"{"detail":"access_denied"}"#);
        assert_eq!(denied.code(), None);
    }
}
