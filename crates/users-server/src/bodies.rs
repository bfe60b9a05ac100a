//! The request and response bodies of the API, one struct each (fastapi-users'
//! schemas): requests are read through [`Validated`] and so answer FastAPI-shaped 422s;
//! every struct documents itself in the OpenAPI document through `ToSchema`.

use secrecy::SecretString;
use serde::Serialize;
use users_domain::{EmailAddress, User};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{Fields, Validated};

/// Registration (`UserCreate`). `is_active`, `is_superuser` and `is_verified` are
/// type-checked and ignored: a new user is always active, not superuser, not verified.
#[derive(ToSchema)]
pub struct UserCreate {
    #[schema(value_type = String, format = Email)]
    pub email: EmailAddress,
    #[schema(value_type = String)]
    pub password: SecretString,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub is_verified: Option<bool>,
}

impl Validated for UserCreate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let email = f.required_email("email");
        let password = f.required_password("password");
        let is_active = f.optional_bool("is_active");
        let is_superuser = f.optional_bool("is_superuser");
        let is_verified = f.optional_bool("is_verified");
        Some(UserCreate {
            email: email?,
            password: password?,
            is_active: is_active?,
            is_superuser: is_superuser?,
            is_verified: is_verified?,
        })
    }
}

/// A change to a user (`UserUpdate`). On `/users/me` only `email` and `password` are
/// used; a superuser's `PATCH /users/{id}` may set every field.
#[derive(ToSchema)]
pub struct UserUpdate {
    #[schema(value_type = Option<String>, format = Email)]
    pub email: Option<EmailAddress>,
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
    pub is_active: Option<bool>,
    pub is_superuser: Option<bool>,
    pub is_verified: Option<bool>,
}

impl Validated for UserUpdate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let password = f.optional_password("password");
        let email = f.optional_email("email");
        let is_active = f.optional_bool("is_active");
        let is_superuser = f.optional_bool("is_superuser");
        let is_verified = f.optional_bool("is_verified");
        Some(UserUpdate {
            email: email?,
            password: password?,
            is_active: is_active?,
            is_superuser: is_superuser?,
            is_verified: is_verified?,
        })
    }
}

impl From<UserUpdate> for users_core::flows::account::Changes {
    fn from(u: UserUpdate) -> Self {
        users_core::flows::account::Changes {
            email: u.email,
            password: u.password,
            is_active: u.is_active,
            is_superuser: u.is_superuser,
            is_verified: u.is_verified,
        }
    }
}

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
fn offline_access(scope: Option<&str>) -> bool {
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

/// `{email}`: forgot-password and request-verify-token.
#[derive(ToSchema)]
pub struct EmailRequest {
    #[schema(value_type = String, format = Email)]
    pub email: EmailAddress,
}

impl Validated for EmailRequest {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        Some(EmailRequest {
            email: f.required_email("email")?,
        })
    }
}

/// `{token, password}`: completing a password reset.
#[derive(ToSchema)]
pub struct ResetPassword {
    pub token: String,
    #[schema(value_type = String)]
    pub password: SecretString,
}

impl Validated for ResetPassword {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let token = f.required_str("token");
        let password = f.required_password("password");
        Some(ResetPassword {
            token: token?,
            password: password?,
        })
    }
}

/// The reset page's form: as [`ResetPassword`], with the repeated password. Missing
/// fields are the page's business (it answers with the form again), so none is
/// required here.
#[derive(ToSchema)]
pub struct ResetPasswordForm {
    pub token: Option<String>,
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
    #[schema(value_type = Option<String>)]
    pub confirm: Option<SecretString>,
}

impl Validated for ResetPasswordForm {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let token = f.optional_str("token");
        let password = f.optional_password("password");
        let confirm = f.optional_password("confirm");
        Some(ResetPasswordForm {
            token: token?,
            password: password?,
            confirm: confirm?,
        })
    }
}

/// `{token}`: verifying an email address.
#[derive(ToSchema)]
pub struct VerifyToken {
    pub token: String,
}

impl Validated for VerifyToken {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        Some(VerifyToken {
            token: f.required_str("token")?,
        })
    }
}

pub const DEFAULT_PER_PAGE: i64 = 50;
pub const MAX_PER_PAGE: i64 = 100;

/// `GET /users?page=&per_page=&email=`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsersQuery {
    /// 1-based page (default 1).
    #[param(minimum = 1)]
    pub page: Option<i64>,
    /// Users per page (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub per_page: Option<i64>,
    /// Only users whose email contains this (case-insensitive, literal).
    pub email: Option<String>,
}

impl Validated for UsersQuery {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let page = f.optional_int("page", 1, 1_000_000);
        let per_page = f.optional_int("per_page", 1, MAX_PER_PAGE);
        let email = f.optional_str("email");
        Some(UsersQuery {
            page: page?,
            per_page: per_page?,
            email: email?,
        })
    }
}

/// A user (`UserRead`): exactly these five fields, never password material.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserRead {
    #[schema(value_type = String, format = Uuid)]
    pub id: users_domain::UserId,
    #[schema(format = Email)]
    pub email: String,
    pub is_active: bool,
    pub is_superuser: bool,
    pub is_verified: bool,
}

impl From<User> for UserRead {
    fn from(u: User) -> Self {
        UserRead {
            id: u.id,
            email: u.email,
            is_active: u.is_active,
            is_superuser: u.is_superuser,
            is_verified: u.is_verified,
        }
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

/// `GET /audit` and `GET /users/me/events`: which events, and where the page begins.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only this user's events (ignored by `/users/me/events`).
    #[param(value_type = Option<String>, format = Uuid)]
    pub user_id: Option<users_domain::UserId>,
    /// Only events of this type (e.g. `user.login_failed`).
    #[param(rename = "type", value_type = Option<String>)]
    pub kind: Option<users_core::EventType>,
    /// Only events older than this one: the previous page's `next_before`.
    pub before: Option<String>,
    /// Events per page (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

impl Validated for AuditQuery {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let user_id = f.optional_str("user_id").map(|u| match u {
            None => Some(None),
            Some(u) => match users_domain::UserId::parse_str(u.trim()) {
                Ok(id) => Some(Some(id)),
                Err(_) => {
                    f.refuse("user_id", "must be a user id (a UUID)");
                    None
                }
            },
        });
        let kind = f.optional_str("type").map(|t| match t {
            None => Some(None),
            Some(t) => match users_core::EventType::parse(t.trim()) {
                Some(k) => Some(Some(k)),
                None => {
                    f.refuse("type", &format!("`{t}` is not an event type"));
                    None
                }
            },
        });
        let before = f.optional_str("before");
        let limit = f.optional_int("limit", 1, users_core::flows::audit::MAX_LIMIT);
        Some(AuditQuery {
            user_id: user_id??,
            kind: kind??,
            before: before?,
            limit: limit?,
        })
    }
}

/// An audit event (docs/audit-and-webhooks.md). `data` holds names and reasons, never a
/// secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventRead {
    /// A UUIDv7: later events have greater ids.
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: users_domain::Timestamp,
    /// `user.registered`, `user.login_failed`, … (see the catalogue in
    /// docs/audit-and-webhooks.md).
    #[serde(rename = "type")]
    pub kind: String,
    /// The user the event is about; null for a sign-in with an unknown email.
    #[schema(format = Uuid)]
    pub user_id: Option<String>,
    /// The superuser who did it, when not the user.
    #[schema(format = Uuid)]
    pub actor_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<users_core::events::StoredEvent> for EventRead {
    fn from(e: users_core::events::StoredEvent) -> Self {
        EventRead {
            id: e.id,
            at: e.at,
            kind: e.kind,
            user_id: e.user_id,
            actor_id: e.actor_id,
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            data: e.data,
        }
    }
}

/// A page of events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    pub items: Vec<EventRead>,
    /// Pass as `before` for the next page; null on the last page.
    pub next_before: Option<String>,
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsersPage {
    pub items: Vec<UserRead>,
    pub total: i64,
    pub page: i64,
    pub per_page: i64,
}

/// Where to send the browser to sign in at a provider.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationUrl {
    pub authorization_url: String,
}

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

/// A provider a user can sign in with (`GET /auth/providers`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProviderRead {
    /// The name in its routes: `google`, `github`, or a name of `OIDC_PROVIDERS`.
    pub name: String,
    /// Button text.
    pub label: String,
    /// `PUBLIC_URL/auth/<name>/authorize`: GET it for the authorization URL.
    pub authorize_url: String,
}

/// A provider account linked to the current user.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentityRead {
    /// The provider's name, as in `GET /auth/providers` and its routes.
    pub provider: String,
    /// The account at the provider: the OpenID `sub`, or GitHub's numeric user id.
    pub subject: String,
    /// The email the provider gave at the last sign-in.
    pub email: String,
    #[schema(value_type = String, format = DateTime)]
    pub linked_at: users_domain::Timestamp,
}

impl From<users_core::flows::identities::IdentityInfo> for IdentityRead {
    fn from(i: users_core::flows::identities::IdentityInfo) -> Self {
        IdentityRead {
            provider: i.provider,
            subject: i.subject,
            email: i.email,
            linked_at: i.linked_at,
        }
    }
}

/// A role (`POST /roles`): a name and permissions in `[a-z0-9][a-z0-9_.:-]{0,63}`.
#[derive(ToSchema)]
pub struct RoleCreate {
    #[schema(pattern = "^[a-z0-9][a-z0-9_.:-]{0,63}$")]
    pub name: String,
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    #[schema(value_type = Option<Vec<String>>)]
    pub permissions: Option<Vec<String>>,
}

impl Validated for RoleCreate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let name = f.required_access_name("name");
        let description = f.optional_text("description", 1000);
        let permissions = f.optional_access_names("permissions");
        Some(RoleCreate {
            name: name?,
            description: description?,
            permissions: permissions?,
        })
    }
}

/// A change to a role (`PATCH /roles/{name}`): the fields given.
#[derive(ToSchema)]
pub struct RoleUpdate {
    #[schema(max_length = 1000)]
    pub description: Option<String>,
    #[schema(value_type = Option<Vec<String>>)]
    pub permissions: Option<Vec<String>>,
}

impl Validated for RoleUpdate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let description = f.optional_text("description", 1000);
        let permissions = f.optional_access_names("permissions");
        Some(RoleUpdate {
            description: description?,
            permissions: permissions?,
        })
    }
}

/// A role.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleRead {
    pub name: String,
    pub description: String,
    /// Sorted.
    pub permissions: Vec<String>,
}

impl From<users_core::flows::roles::Role> for RoleRead {
    fn from(r: users_core::flows::roles::Role) -> Self {
        RoleRead {
            name: r.name,
            description: r.description,
            permissions: r.permissions,
        }
    }
}

/// The roles of a user and the union of their permissions (both sorted).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserRolesRead {
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
}

impl From<users_core::flows::roles::UserRoles> for UserRolesRead {
    fn from(r: users_core::flows::roles::UserRoles) -> Self {
        UserRolesRead {
            roles: r.roles,
            permissions: r.permissions,
        }
    }
}

/// `PUT /users/{id}/roles`: the user's roles from now on.
#[derive(ToSchema)]
pub struct UserRolesUpdate {
    pub roles: Vec<String>,
}

impl Validated for UserRolesUpdate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        Some(UserRolesUpdate {
            roles: f.required_access_names("roles")?,
        })
    }
}

/// `POST /users/me/api-keys`: a name, optionally permissions (within the user's own) and
/// a lifetime in days; the password, or a session younger than 10 minutes.
#[derive(ToSchema)]
pub struct ApiKeyCreate {
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    #[schema(value_type = Option<Vec<String>>)]
    pub permissions: Option<Vec<String>>,
    #[schema(minimum = 1, maximum = 3650)]
    pub expires_in_days: Option<i64>,
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
}

impl Validated for ApiKeyCreate {
    fn validate(f: &mut Fields<'_>) -> Option<Self> {
        let name = f.required_text("name", 1, 100);
        let permissions = f.optional_access_names("permissions");
        let expires_in_days =
            f.optional_int("expires_in_days", 1, users_core::flows::api_keys::MAX_DAYS);
        let password = f.optional_password("password");
        Some(ApiKeyCreate {
            name: name?,
            permissions: permissions?,
            expires_in_days: expires_in_days?,
            password: password?,
        })
    }
}

/// An API key as listed (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyRead {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// The key's first 12 characters.
    pub prefix: String,
    /// `null`: the user's own permissions, as they change.
    pub permissions: Option<Vec<String>>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: users_domain::Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<users_domain::Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<users_domain::Timestamp>,
}

impl From<users_core::flows::api_keys::ApiKeyInfo> for ApiKeyRead {
    fn from(k: users_core::flows::api_keys::ApiKeyInfo) -> Self {
        ApiKeyRead {
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            permissions: k.permissions,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A key just made: the key is shown this once (no `Debug`: it must reach no log).
#[derive(Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// `usr_` and 40 base62 characters; shown only here.
    pub key: String,
    pub prefix: String,
    pub permissions: Option<Vec<String>>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: users_domain::Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<users_domain::Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<users_domain::Timestamp>,
}

impl From<users_core::flows::api_keys::CreatedKey> for ApiKeyCreated {
    fn from(c: users_core::flows::api_keys::CreatedKey) -> Self {
        let k = c.info;
        ApiKeyCreated {
            id: k.id,
            name: k.name,
            key: c.key,
            prefix: k.prefix,
            permissions: k.permissions,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
        }
    }
}
