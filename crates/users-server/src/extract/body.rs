//! Reading a body (bounded in size and time) and parsing a JSON object the way
//! pydantic reports its problems.

use actix_web::dev::Payload;
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, FieldError};

/// Largest body accepted on the JSON and form routes.
pub const BODY_LIMIT: usize = 16 * 1024;

/// How long a client may take to send a body (slow-client defence).
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads the whole body, refusing (413) past `limit` bytes without buffering more, and
/// (408) a client that takes longer than [`BODY_TIMEOUT`] to send it.
pub async fn read_body(payload: Payload, limit: usize) -> Result<Bytes, ApiError> {
    tokio::time::timeout(BODY_TIMEOUT, read_body_untimed(payload, limit))
        .await
        .map_err(|_| ApiError::RequestTimeout)?
}

async fn read_body_untimed(mut payload: Payload, limit: usize) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| match e {
            actix_web::error::PayloadError::Overflow => ApiError::PayloadTooLarge { limit },
            other => validation_body_error(format!("could not read the request body: {other}")),
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

fn validation_body_error(msg: String) -> ApiError {
    ApiError::Validation(vec![FieldError::new(
        "value_error",
        vec![json!("body")],
        msg,
        Value::Null,
    )])
}

/// Parses a JSON body that must be an object (a pydantic model).
pub fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::Validation(vec![FieldError::new(
            "missing",
            vec![json!("body")],
            "Field required",
            Value::Null,
        )]));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        let pos = byte_offset(body, e.line(), e.column());
        ApiError::Validation(vec![FieldError::new(
            "json_invalid",
            vec![json!("body"), json!(pos)],
            "JSON decode error",
            json!({}),
        )
        .with_ctx(json!({ "error": json_error_text(&e) }))])
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ApiError::Validation(vec![FieldError::new(
            "model_attributes_type",
            vec![json!("body")],
            "Input should be a valid dictionary or object to extract fields from",
            other,
        )])),
    }
}

fn json_error_text(e: &serde_json::Error) -> String {
    // serde_json's message without its " at line X column Y" suffix.
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}

fn byte_offset(body: &[u8], line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in body.split(|b| *b == b'\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1);
        }
        offset += l.len() + 1;
    }
    body.len()
}
