//! Every error the API answers with, mapped to the contract's `{"detail": …}` bodies in
//! one place. 5xx bodies are generic; their cause goes to the log, never to the client.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{json, Value};
use users_db::DbError;

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
    /// 400 `{"detail": CODE}`.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// 400 `{"detail": "Bad Request"}`.
    #[error("bad request")]
    BadRequestGeneric,
    /// 400 with a detail taken from elsewhere (the provider's `?error=`).
    #[error("bad request: {0}")]
    Detail(String),
    /// 502: the identity provider failed.
    #[error("bad gateway: {0}")]
    BadGateway(&'static str),
    /// 400 `{"detail": {"code": CODE, "reason": …}}` for a refused password.
    #[error("password refused: {code}")]
    InvalidPassword { code: &'static str, reason: String },
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

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if matches!(e, DbError::Busy(_)) {
            ApiError::Busy(e.to_string())
        } else if e.is_unavailable() {
            ApiError::Unavailable(e.to_string())
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_)
            | ApiError::BadRequestGeneric
            | ApiError::Detail(_)
            | ApiError::InvalidPassword { .. } => StatusCode::BAD_REQUEST,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Unavailable(_) | ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let detail = match self {
            ApiError::BadRequest(code) => json!(code),
            ApiError::BadRequestGeneric => json!("Bad Request"),
            ApiError::Detail(detail) => json!(detail),
            ApiError::BadGateway(code) => json!(code),
            ApiError::InvalidPassword { code, reason } => json!({"code": code, "reason": reason}),
            ApiError::Unauthorized => json!("Unauthorized"),
            ApiError::Forbidden => json!("Forbidden"),
            ApiError::NotFound => json!("Not Found"),
            ApiError::MethodNotAllowed => json!("Method Not Allowed"),
            ApiError::PayloadTooLarge { limit } => {
                json!(format!(
                    "Request body too large: the limit is {limit} bytes"
                ))
            }
            ApiError::Validation(errors) => json!(errors),
            ApiError::RequestTimeout => json!("The request body took too long to arrive"),
            ApiError::TooManyRequests { retry_after_secs } => {
                json!(format!(
                    "Too many attempts; try again in {retry_after_secs} seconds"
                ))
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(cause = %cause, "answering 503");
                if cause.starts_with("Google") {
                    json!(cause)
                } else {
                    json!("The service is temporarily unavailable (database unreachable); try again shortly")
                }
            }
            ApiError::Busy(cause) => {
                tracing::warn!(cause = %cause, "answering 503");
                json!("The service is busy (no database connection became free in time); try again shortly")
            }
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                json!("Internal Server Error")
            }
        };
        let mut resp = HttpResponse::build(self.status_code());
        if matches!(self, ApiError::Unavailable(_) | ApiError::Busy(_)) {
            resp.insert_header((header::RETRY_AFTER, "5"));
        }
        if let ApiError::TooManyRequests { retry_after_secs } = self {
            resp.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        resp.insert_header((header::CACHE_CONTROL, "no-store"));
        resp.json(json!({ "detail": detail }))
    }
}

/// Builds a 422 for a single field.
pub fn validation(error: FieldError) -> ApiError {
    ApiError::Validation(vec![error])
}
