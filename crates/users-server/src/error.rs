//! Every error the API answers with, rendered as the contract's `{"detail": …}` bodies.
//! Which flow outcome becomes which of these is decided in `outcome.rs` only. 5xx
//! bodies are generic; their cause goes to the log, never to the client.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::Value;
use users_core::Fault;
use utoipa::openapi::schema::{
    ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use crate::codes::{Code, Relayed};

/// One entry of a FastAPI/pydantic 422 `detail` list. `input` echoes what the client
/// sent (possibly a password), so `Debug` leaves it out: it must never reach a log.
#[derive(Clone, Serialize, PartialEq)]
pub struct FieldError {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub loc: Vec<Value>,
    pub msg: String,
    pub input: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
}

impl std::fmt::Debug for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldError")
            .field("type", &self.kind)
            .field("loc", &self.loc)
            .finish_non_exhaustive()
    }
}

impl FieldError {
    pub fn new(kind: &'static str, loc: Vec<Value>, msg: impl Into<String>, input: Value) -> Self {
        FieldError {
            kind,
            loc,
            msg: msg.into(),
            input,
            ctx: None,
        }
    }

    pub fn with_ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `{"detail": CODE}` with the code's status. A code is a [`Code`] of the
    /// declaration in `outcome.rs`, never a string: what is answered is what is declared
    /// (and documented).
    #[error("{status} {0}", status = .0.status().as_u16())]
    Code(Code),
    /// 400 with a detail passed on from elsewhere (the provider's `?error=`).
    #[error("bad request: {0}")]
    Detail(Relayed),
    /// 400 `{"detail": {"code": "LOGIN_MFA_REQUIRED", "mfa_token", "methods"}}`: the
    /// first factor was right, the second step is next.
    #[error("second factor required")]
    MfaRequired {
        mfa_token: String,
        methods: Vec<&'static str>,
    },
    /// `{"detail": {"code": CODE, "reason": …}}` for a refused password (a code of
    /// [`crate::codes::Body::Password`]).
    #[error("password refused: {code}")]
    InvalidPassword { code: Code, reason: String },
    /// 400 `{"detail": {"code": "ROLE_NOT_FOUND", "role": …}}`: a set of roles names
    /// one that does not exist.
    #[error("unknown role")]
    UnknownRole { role: String },
    #[error("unauthorized")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("request timeout")]
    RequestTimeout,
    #[error("too many requests")]
    TooManyRequests { retry_after_secs: u64 },
    #[error("request body too large")]
    PayloadTooLarge { limit: usize },
    #[error("unprocessable entity")]
    Validation(Vec<FieldError>),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// 503 with a detail meant for the client (an identity provider not ready yet).
    #[error("not ready: {0}")]
    NotReady(Relayed),
    /// The database answers, but every connection stayed busy for the acquire timeout.
    #[error("service busy: {0}")]
    Busy(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<Fault> for ApiError {
    fn from(e: Fault) -> Self {
        match e {
            Fault::Busy(_) => ApiError::Busy(e.to_string()),
            Fault::Unavailable(cause) => ApiError::Unavailable(cause),
            Fault::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Code(code) | ApiError::InvalidPassword { code, .. } => code.status(),
            ApiError::MfaRequired { .. } => Code::LoginMfaRequired.status(),
            ApiError::Detail(_) | ApiError::UnknownRole { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::NotReady(_) | ApiError::Busy(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let mut resp = HttpResponse::build(status);
        // every 503 (the database, a provider not ready, passkeys off) may pass: retry later
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.insert_header((header::RETRY_AFTER, "5"));
        }
        if let ApiError::TooManyRequests { retry_after_secs } = self {
            resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        resp.insert_header((header::CACHE_CONTROL, "no-store"));
        match self {
            ApiError::InvalidPassword { code, reason } => resp.json(PasswordErrorDetail {
                detail: PasswordRejection {
                    code: code.as_str().to_owned(),
                    reason: reason.clone(),
                },
            }),
            ApiError::UnknownRole { role } => resp.json(UnknownRoleError {
                detail: UnknownRoleDetail {
                    code: Code::RoleNotFound.as_str().to_owned(),
                    role: role.clone(),
                },
            }),
            ApiError::Validation(errors) => resp.json(ValidationError {
                detail: errors.clone(),
            }),
            ApiError::MfaRequired { mfa_token, methods } => resp.json(MfaRequiredError {
                detail: MfaRequiredDetail {
                    code: Code::LoginMfaRequired.as_str().to_owned(),
                    mfa_token: mfa_token.clone(),
                    methods: methods.iter().map(|m| (*m).to_owned()).collect(),
                },
            }),
            other => resp.json(ErrorDetail {
                detail: other.detail(),
            }),
        }
    }
}

impl ApiError {
    /// The code of a `{"detail": "CODE"}` answer, for a page that shows what failed.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            // FastAPI's generic "Bad Request" names no cause a page could act on
            ApiError::Code(Code::BadRequest) => None,
            ApiError::Code(code) => Some(code.as_str()),
            _ => None,
        }
    }

    /// The declared code this error answers with, whatever the shape of its body.
    pub fn declared_code(&self) -> Option<Code> {
        match self {
            ApiError::Code(code) | ApiError::InvalidPassword { code, .. } => Some(*code),
            ApiError::MfaRequired { .. } => Some(Code::LoginMfaRequired),
            _ => None,
        }
    }

    /// The text of a `{"detail": "…"}` answer (every kind but the password refusal
    /// and the 422). Causes of 5xx answers are logged here, never sent.
    pub(crate) fn detail(&self) -> String {
        match self {
            ApiError::Code(code) => {
                if code.status() == StatusCode::SERVICE_UNAVAILABLE {
                    tracing::warn!(detail = %code, "answering 503");
                }
                code.as_str().to_owned()
            }
            ApiError::Detail(detail) => detail.as_str().to_owned(),
            ApiError::NotReady(detail) => {
                tracing::warn!(detail = %detail, "answering 503");
                detail.as_str().to_owned()
            }
            ApiError::Unauthorized => "Unauthorized".to_owned(),
            ApiError::Forbidden => "Forbidden".to_owned(),
            ApiError::NotFound => "Not Found".to_owned(),
            ApiError::MethodNotAllowed => "Method Not Allowed".to_owned(),
            ApiError::PayloadTooLarge { limit } => {
                format!("Request body too large: the limit is {limit} bytes")
            }
            ApiError::RequestTimeout => "The request body took too long to arrive".to_owned(),
            ApiError::TooManyRequests { retry_after_secs } => {
                format!("Too many attempts; try again in {retry_after_secs} seconds")
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "answering 503");
                "The service is temporarily unavailable (database unreachable); try again shortly"
                    .to_owned()
            }
            ApiError::Busy(cause) => {
                tracing::warn!(cause = %cause, "answering 503");
                "The service is busy (no database connection became free in time); try again shortly"
                    .to_owned()
            }
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                "Internal Server Error".to_owned()
            }
            // answered with bodies of their own (see error_response)
            ApiError::InvalidPassword { code, .. } => code.as_str().to_owned(),
            ApiError::MfaRequired { .. } => Code::LoginMfaRequired.as_str().to_owned(),
            ApiError::Validation(_) => "Unprocessable Entity".to_owned(),
            ApiError::UnknownRole { .. } => Code::RoleNotFound.as_str().to_owned(),
        }
    }
}

// ---- The bodies of these answers -------------------------------------------------

/// `{"error": "code", "error_description": "…"}`: the errors under `/oauth/` (RFC 6749
/// §5.2; docs/oauth-provider.md).
#[derive(Serialize, ToSchema)]
pub struct OAuthErrorBody {
    pub error: String,
    pub error_description: String,
}

/// `{"detail": "CODE"}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub detail: String,
}

#[derive(Serialize, ToSchema)]
pub struct PasswordRejection {
    pub code: String,
    pub reason: String,
}

/// A refused password: `{"detail": {"code", "reason"}}`.
#[derive(Serialize, ToSchema)]
pub struct PasswordErrorDetail {
    pub detail: PasswordRejection,
}

/// The second step of a sign-in is next.
#[derive(Serialize, ToSchema)]
pub struct MfaRequiredDetail {
    /// `LOGIN_MFA_REQUIRED`
    pub code: String,
    /// Single use, five minutes: for `POST /auth/mfa/verify`.
    pub mfa_token: String,
    /// Of `totp`, `recovery_code`, `passkey`: those the user has.
    pub methods: Vec<String>,
}

/// `{"detail": {"code": "LOGIN_MFA_REQUIRED", "mfa_token", "methods"}}`.
#[derive(Serialize, ToSchema)]
pub struct MfaRequiredError {
    pub detail: MfaRequiredDetail,
}

/// Which role of a set does not exist.
#[derive(Serialize, ToSchema)]
pub struct UnknownRoleDetail {
    /// `ROLE_NOT_FOUND`
    pub code: String,
    /// The first name of the set that is no role.
    pub role: String,
}

/// `{"detail": {"code": "ROLE_NOT_FOUND", "role": …}}`.
#[derive(Serialize, ToSchema)]
pub struct UnknownRoleError {
    pub detail: UnknownRoleDetail,
}

/// Either kind of 400 body.
pub struct BadRequestBody;

impl PartialSchema for BadRequestBody {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Ref::from_schema_name("ErrorDetail"))
            .item(Ref::from_schema_name("PasswordErrorDetail"))
            .into()
    }
}

impl ToSchema for BadRequestBody {}

/// One problem of a 422: `type`, `loc` (strings and indexes), `msg`, the `input` that
/// was refused (any JSON value), and sometimes a `ctx`.
impl PartialSchema for FieldError {
    fn schema() -> RefOr<Schema> {
        let any = || Schema::from(ObjectBuilder::new().schema_type(SchemaType::AnyValue));
        ObjectBuilder::new()
            .property("type", ObjectBuilder::new().schema_type(Type::String))
            .property(
                "loc",
                ArrayBuilder::new().items(
                    OneOfBuilder::new()
                        .item(ObjectBuilder::new().schema_type(Type::String))
                        .item(ObjectBuilder::new().schema_type(Type::Integer)),
                ),
            )
            .property("msg", ObjectBuilder::new().schema_type(Type::String))
            .property("input", any())
            .property("ctx", ObjectBuilder::new().schema_type(Type::Object))
            .required("type")
            .required("loc")
            .required("msg")
            .required("input")
            .into()
    }
}

impl ToSchema for FieldError {
    fn name() -> std::borrow::Cow<'static, str> {
        "ValidationErrorItem".into()
    }
}

/// FastAPI's 422.
#[derive(Serialize, ToSchema)]
pub struct ValidationError {
    pub detail: Vec<FieldError>,
}

/// The JSON value `null`.
pub struct Null;

impl PartialSchema for Null {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::Null).into()
    }
}

impl ToSchema for Null {}

/// Builds a 422 for a single field.
pub fn validation(error: FieldError) -> ApiError {
    ApiError::Validation(vec![error])
}
