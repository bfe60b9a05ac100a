//! Form bodies (urlencoded or multipart) and urlencoded strings.

use std::collections::HashMap;

use actix_web::http::header::{self, HeaderMap};
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::error::{ApiError, FieldError};

/// Key/value pairs of an urlencoded string; the last of repeated keys wins.
pub fn urlencoded(data: &[u8]) -> HashMap<String, String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(data)
        .map(|pairs| pairs.into_iter().collect())
        .unwrap_or_default()
}

/// The text fields of a form body, urlencoded or multipart. Any other content type
/// (a JSON body, say) yields no fields, so the required ones are reported missing.
pub async fn form_fields(
    headers: &HeaderMap,
    body: Bytes,
) -> Result<HashMap<String, String>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        return Ok(urlencoded(&body));
    }
    if content_type.starts_with("multipart/form-data") {
        return multipart_fields(headers, body).await;
    }
    Ok(HashMap::new())
}

async fn multipart_fields(
    headers: &HeaderMap,
    body: Bytes,
) -> Result<HashMap<String, String>, ApiError> {
    let stream =
        futures_util::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let mut multipart = actix_multipart::Multipart::new(headers, stream);
    let mut fields = HashMap::new();
    let bad = |what: String| {
        ApiError::Validation(vec![FieldError::new(
            "value_error",
            vec![json!("body")],
            format!("There was an error parsing the body: {what}"),
            Value::Null,
        )])
    };
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| bad(e.to_string()))?;
        let name = field
            .content_disposition()
            .and_then(|cd| cd.get_name())
            .map(str::to_owned);
        let mut data = BytesMut::new();
        while let Some(chunk) = field.next().await {
            data.extend_from_slice(&chunk.map_err(|e| bad(e.to_string()))?);
        }
        if let Some(name) = name {
            let value = String::from_utf8(data.to_vec())
                .map_err(|_| bad(format!("field `{name}` is not UTF-8 text")))?;
            fields.insert(name, value);
        }
    }
    Ok(fields)
}
