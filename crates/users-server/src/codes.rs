//! Every `detail` code of the contract, declared once ([`Code`]: its status, the shape
//! of its body, what it means). `outcome.rs` maps the flows' outcomes to these codes, and
//! `answers.rs` documents them in the OpenAPI document from the same declaration.

use std::fmt;

use actix_web::http::StatusCode;

/// The shape of the body a [`Code`] is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `{"detail": "CODE"}`.
    Detail,
    /// `{"detail": {"code": "CODE", "reason": …}}`: a refused password.
    Password,
    /// `{"detail": {"code": "CODE", "mfa_token": …, "methods": […]}}`: the second step
    /// of a sign-in is next.
    SecondStep,
}

/// Declares [`Code`] from one line per code, so its status, body and meaning cannot be
/// written twice and disagree.
macro_rules! codes {
    ($($variant:ident($status:ident, $body:ident, $name:literal, $meaning:literal),)*) => {
        /// A `detail` code of the contract (docs/api.md, "Every error code").
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($variant,)*
        }

        impl Code {
            /// Every code, in the order of the declaration.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];

            /// The code as the wire carries it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $name,)*
                }
            }

            /// The status it is answered with.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(Code::$variant => StatusCode::$status,)*
                }
            }

            /// The shape of its body.
            pub const fn body(self) -> Body {
                match self {
                    $(Code::$variant => Body::$body,)*
                }
            }

            /// When it is answered (the "when" of docs/api.md's table).
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Code::$variant => $meaning,)*
                }
            }
        }
    };
}

codes! {
    RegisterInvalidPassword(BAD_REQUEST, Password, "REGISTER_INVALID_PASSWORD",
        "the password policy refuses the password at register"),
    RegisterUserAlreadyExists(BAD_REQUEST, Detail, "REGISTER_USER_ALREADY_EXISTS",
        "the email is taken (case-insensitively)"),
    LoginBadCredentials(BAD_REQUEST, Detail, "LOGIN_BAD_CREDENTIALS",
        "wrong password, unknown email, inactive user; a provider sign-in of an inactive user"),
    LoginMfaRequired(BAD_REQUEST, SecondStep, "LOGIN_MFA_REQUIRED",
        "the password (or provider) step succeeded; a second factor is due"),
    UpdateUserEmailAlreadyExists(BAD_REQUEST, Detail, "UPDATE_USER_EMAIL_ALREADY_EXISTS",
        "`PATCH /users/me` or `/users/{id}` to a taken email"),
    UpdateUserInvalidPassword(BAD_REQUEST, Password, "UPDATE_USER_INVALID_PASSWORD",
        "the policy refuses the new password"),
    ResetPasswordBadToken(BAD_REQUEST, Detail, "RESET_PASSWORD_BAD_TOKEN",
        "invalid, expired, used or stale reset token; unknown or inactive user"),
    ResetPasswordInvalidPassword(BAD_REQUEST, Password, "RESET_PASSWORD_INVALID_PASSWORD",
        "the policy refuses the new password (the token stays usable)"),
    VerifyUserBadToken(BAD_REQUEST, Detail, "VERIFY_USER_BAD_TOKEN",
        "invalid or expired verification token, or made for an email the user no longer has"),
    VerifyUserAlreadyVerified(BAD_REQUEST, Detail, "VERIFY_USER_ALREADY_VERIFIED",
        "the user is verified already"),
    RefreshTokenInvalid(BAD_REQUEST, Detail, "REFRESH_TOKEN_INVALID",
        "unknown, malformed, expired refresh token, of an ended session or inactive user"),
    RefreshTokenReused(BAD_REQUEST, Detail, "REFRESH_TOKEN_REUSED",
        "a spent refresh token came back after the reuse interval: the session ends"),
    CsrfOriginMismatch(FORBIDDEN, Detail, "CSRF_ORIGIN_MISMATCH",
        "a cookie-authenticated unsafe request, a cookie sign-in, or a second step answering \
         with the cookie, from a foreign or `null` origin"),
    MfaAlreadyEnabled(BAD_REQUEST, Detail, "MFA_ALREADY_ENABLED",
        "TOTP is on already"),
    MfaBadPassword(BAD_REQUEST, Detail, "MFA_BAD_PASSWORD",
        "a wrong password given to re-authenticate (starting TOTP, adding or removing a \
         passkey; counts toward the lockout)"),
    ReauthenticationRequired(BAD_REQUEST, Detail, "REAUTHENTICATION_REQUIRED",
        "no password given, and the session signed in 10 minutes ago or more (or the token \
         has none)"),
    MfaBadCode(BAD_REQUEST, Detail, "MFA_BAD_CODE",
        "wrong TOTP or recovery code (counts toward the lockout; five spend an `mfa_token`)"),
    MfaNotPending(BAD_REQUEST, Detail, "MFA_NOT_PENDING",
        "nothing to confirm, or enrolment started by another session"),
    MfaTokenInvalid(BAD_REQUEST, Detail, "MFA_TOKEN_INVALID",
        "expired, spent or unknown `mfa_token`"),
    PasskeyInvalid(BAD_REQUEST, Detail, "PASSKEY_INVALID",
        "a passkey ceremony failed its checks"),
    PasskeysNotConfigured(SERVICE_UNAVAILABLE, Detail, "PASSKEYS_NOT_CONFIGURED",
        "no usable relying party (an IP-address host without `WEBAUTHN_RP_ID`)"),
    BadRequest(BAD_REQUEST, Detail, "Bad Request",
        "a provider callback without a code; an associate callback with another user's \
         state or a sign-in state"),
    AccessTokenDecodeError(BAD_REQUEST, Detail, "ACCESS_TOKEN_DECODE_ERROR",
        "missing, garbage or badly signed OAuth state"),
    AccessTokenAlreadyExpired(BAD_REQUEST, Detail, "ACCESS_TOKEN_ALREADY_EXPIRED",
        "expired OAuth state"),
    OauthInvalidState(BAD_REQUEST, Detail, "OAUTH_INVALID_STATE",
        "CSRF cookie missing or different, state already used or made for another provider"),
    OauthCodeRejected(BAD_REQUEST, Detail, "OAUTH_CODE_REJECTED",
        "the provider refused the code"),
    OauthInvalidIdToken(BAD_REQUEST, Detail, "OAUTH_INVALID_ID_TOKEN",
        "the id_token failed verification"),
    OauthNotAvailableEmail(BAD_REQUEST, Detail, "OAUTH_NOT_AVAILABLE_EMAIL",
        "the provider gave no email (GitHub: no primary verified one)"),
    OauthUserAlreadyExists(BAD_REQUEST, Detail, "OAUTH_USER_ALREADY_EXISTS",
        "the email belongs to a user not linked to this account"),
    OauthAccountAlreadyLinked(BAD_REQUEST, Detail, "OAUTH_ACCOUNT_ALREADY_LINKED",
        "linking an account that is linked to another user"),
    OauthProviderUnavailable(BAD_GATEWAY, Detail, "OAUTH_PROVIDER_UNAVAILABLE",
        "the provider (or GitHub's API) cannot be reached or answers 5xx"),
    IdentityLastSignInMethod(BAD_REQUEST, Detail, "IDENTITY_LAST_SIGN_IN_METHOD",
        "unlinking would leave no password, identity or passkey"),
    RoleAlreadyExists(BAD_REQUEST, Detail, "ROLE_ALREADY_EXISTS",
        "`POST /roles` with the name of an existing role"),
    RoleNotFound(NOT_FOUND, Detail, "ROLE_NOT_FOUND",
        "no role has this name (`PUT /users/{id}/roles` answers 400 \
         `{\"detail\": {\"code\": \"ROLE_NOT_FOUND\", \"role\": …}}` naming the first unknown one)"),
    ApiKeyPermissionNotHeld(BAD_REQUEST, Detail, "API_KEY_PERMISSION_NOT_HELD",
        "a new API key asks for a permission the user's roles do not grant"),
    ApiKeyNotAllowed(FORBIDDEN, Detail, "API_KEY_NOT_ALLOWED",
        "an API key on a write that changes how the person signs in (password, email, \
         second factor, passkeys, sessions, API keys, identities)"),
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `detail` that is not one of our codes but text passed on: the identity provider's
/// own `?error=`, or which provider is not ready yet. Only `outcome.rs` makes one, so
/// every other `detail` the service answers with is a [`Code`] or a fixed word.
#[derive(Debug, Clone)]
pub struct Relayed(String);

impl Relayed {
    /// Only `outcome.rs` relays a text: nowhere else may a `detail` come from a string.
    pub(crate) fn relay(text: String) -> Relayed {
        Relayed(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Relayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
