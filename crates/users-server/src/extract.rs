//! Request bodies, query strings and forms, parsed and validated the way FastAPI and
//! pydantic do it, so a malformed request gets the same 422 a fastapi-users client
//! expects: never actix's plain-text 400s, never a 500.
//!
//! A handler names its input as [`ValidatedJson<T>`], [`ValidatedForm<T>`] or
//! [`ValidatedQuery<T>`]; `T` says which fields it reads through [`Validated`], and the
//! extractor reads the body (bounded in size and time), collects every problem into one
//! 422, and hands the handler a `T` only when there is none.

use std::collections::HashMap;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::web::{Bytes, BytesMut};
use futures_util::StreamExt;
use secrecy::SecretString;
use serde_json::{json, Map, Value};
use users_domain::EmailAddress;

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

/// Pulls typed fields out of a JSON object or a form, collecting every problem (as
/// pydantic does) before answering one 422 that lists them all.
pub struct Fields<'a> {
    source: Source<'a>,
    loc: &'static str,
    errors: Vec<FieldError>,
}

enum Source<'a> {
    Json(&'a Map<String, Value>),
    Form(&'a HashMap<String, String>),
}

impl<'a> Fields<'a> {
    pub fn json(obj: &'a Map<String, Value>) -> Self {
        Fields {
            source: Source::Json(obj),
            loc: "body",
            errors: Vec::new(),
        }
    }

    /// Form fields (urlencoded or multipart) or query parameters; `loc` is "body" or "query".
    pub fn form(map: &'a HashMap<String, String>, loc: &'static str) -> Self {
        Fields {
            source: Source::Form(map),
            loc,
            errors: Vec::new(),
        }
    }

    fn loc(&self, name: &str) -> Vec<Value> {
        vec![json!(self.loc), json!(name)]
    }

    fn push(&mut self, e: FieldError) {
        self.errors.push(e);
    }

    fn missing(&mut self, name: &str) {
        let e = FieldError::new("missing", self.loc(name), "Field required", Value::Null);
        self.push(e);
    }

    /// The raw value: `None` when absent. Form values are strings; FastAPI treats an
    /// empty form value as absent.
    fn raw(&self, name: &str) -> Option<Value> {
        match &self.source {
            Source::Json(obj) => obj.get(name).cloned(),
            Source::Form(map) => map
                .get(name)
                .filter(|v| !v.is_empty())
                .map(|v| Value::String(v.clone())),
        }
    }

    fn as_string(&mut self, name: &str, v: Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s),
            other => {
                let e = FieldError::new(
                    "string_type",
                    self.loc(name),
                    "Input should be a valid string",
                    other,
                );
                self.push(e);
                None
            }
        }
    }

    /// A required string. In JSON an empty string is a value, as in pydantic (the
    /// flow then refuses it with its own code); in a form it counts as missing.
    pub fn required_str(&mut self, name: &str) -> Option<String> {
        match self.raw(name) {
            None => {
                self.missing(name);
                None
            }
            Some(v) => self.as_string(name, v),
        }
    }

    /// An optional string; `null` (and, in a form, an empty value) counts as absent.
    pub fn optional_str(&mut self, name: &str) -> Option<Option<String>> {
        match self.raw(name) {
            None | Some(Value::Null) => Some(None),
            Some(v) => self.as_string(name, v).map(Some),
        }
    }

    /// A required password: kept secret from here on.
    pub fn required_password(&mut self, name: &str) -> Option<SecretString> {
        self.required_str(name).map(SecretString::from)
    }

    pub fn optional_password(&mut self, name: &str) -> Option<Option<SecretString>> {
        self.optional_str(name).map(|o| o.map(SecretString::from))
    }

    fn email(&mut self, name: &str, raw: String) -> Option<EmailAddress> {
        match EmailAddress::parse(&raw) {
            Ok(e) => Some(e),
            Err(err) => {
                let e = FieldError::new(
                    "value_error",
                    self.loc(name),
                    format!("value is not a valid email address: {}", err.reason),
                    json!(raw),
                )
                .with_ctx(json!({ "reason": err.reason }));
                self.push(e);
                None
            }
        }
    }

    pub fn required_email(&mut self, name: &str) -> Option<EmailAddress> {
        match self.raw(name) {
            None => {
                self.missing(name);
                None
            }
            Some(v) => self.as_string(name, v).and_then(|s| self.email(name, s)),
        }
    }

    pub fn optional_email(&mut self, name: &str) -> Option<Option<EmailAddress>> {
        match self.raw(name) {
            None | Some(Value::Null) => Some(None),
            Some(v) => self
                .as_string(name, v)
                .and_then(|s| self.email(name, s))
                .map(Some),
        }
    }

    /// A required JSON object (a WebAuthn credential, say), as it is.
    pub fn required_object(&mut self, name: &str) -> Option<Value> {
        match self.raw(name) {
            None => {
                self.missing(name);
                None
            }
            Some(v @ Value::Object(_)) => Some(v),
            Some(other) => {
                let e = FieldError::new(
                    "dict_type",
                    self.loc(name),
                    "Input should be a valid dictionary",
                    other,
                );
                self.push(e);
                None
            }
        }
    }

    /// An optional boolean with pydantic's lax parsing (true/false, 0/1, "yes"/"no", …).
    pub fn optional_bool(&mut self, name: &str) -> Option<Option<bool>> {
        let v = match self.raw(name) {
            None | Some(Value::Null) => return Some(None),
            Some(v) => v,
        };
        let parsed = match &v {
            Value::Bool(b) => Some(*b),
            Value::Number(n) if n.as_f64() == Some(1.0) => Some(true),
            Value::Number(n) if n.as_f64() == Some(0.0) => Some(false),
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "1" | "on" | "t" | "true" | "y" | "yes" => Some(true),
                "0" | "off" | "f" | "false" | "n" | "no" => Some(false),
                _ => None,
            },
            _ => None,
        };
        match parsed {
            Some(b) => Some(Some(b)),
            None => {
                let (kind, msg) = if matches!(v, Value::String(_)) {
                    (
                        "bool_parsing",
                        "Input should be a valid boolean, unable to interpret input",
                    )
                } else {
                    ("bool_type", "Input should be a valid boolean")
                };
                let e = FieldError::new(kind, self.loc(name), msg, v);
                self.push(e);
                None
            }
        }
    }

    /// An optional integer within `min..=max` (query parameters).
    pub fn optional_int(&mut self, name: &str, min: i64, max: i64) -> Option<Option<i64>> {
        let v = match self.raw(name) {
            None | Some(Value::Null) => return Some(None),
            Some(v) => v,
        };
        let n = match &v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        let Some(n) = n else {
            let e = FieldError::new(
                "int_parsing",
                self.loc(name),
                "Input should be a valid integer, unable to parse string as an integer",
                v,
            );
            self.push(e);
            return None;
        };
        if n < min {
            let e = FieldError::new(
                "greater_than_equal",
                self.loc(name),
                format!("Input should be greater than or equal to {min}"),
                v,
            )
            .with_ctx(json!({ "ge": min }));
            self.push(e);
            return None;
        }
        if n > max {
            let e = FieldError::new(
                "less_than_equal",
                self.loc(name),
                format!("Input should be less than or equal to {max}"),
                v,
            )
            .with_ctx(json!({ "le": max }));
            self.push(e);
            return None;
        }
        Some(Some(n))
    }

    /// An optional string that must match one literal value (e.g. `grant_type=password`).
    pub fn optional_literal(&mut self, name: &str, expected: &str) -> Option<()> {
        match self.raw(name) {
            None | Some(Value::Null) => Some(()),
            Some(v) => {
                let s = self.as_string(name, v)?;
                if s == expected {
                    Some(())
                } else {
                    let pattern = format!("^{expected}$");
                    let e = FieldError::new(
                        "string_pattern_mismatch",
                        self.loc(name),
                        format!("String should match pattern '{pattern}'"),
                        json!(s),
                    )
                    .with_ctx(json!({ "pattern": pattern }));
                    self.push(e);
                    None
                }
            }
        }
    }

    /// A role name or a permission (`[a-z0-9][a-z0-9_.:-]{0,63}`) at `loc`.
    fn access_name(&mut self, loc: Vec<Value>, v: Value) -> Option<String> {
        let Value::String(s) = v else {
            let e = FieldError::new("string_type", loc, "Input should be a valid string", v);
            self.push(e);
            return None;
        };
        if users_domain::access::is_valid_name(&s) {
            return Some(s);
        }
        let pattern = NAME_PATTERN;
        let e = FieldError::new(
            "string_pattern_mismatch",
            loc,
            format!("String should match pattern '{pattern}'"),
            json!(s),
        )
        .with_ctx(json!({ "pattern": pattern }));
        self.push(e);
        None
    }

    /// A required role name (or permission).
    pub fn required_access_name(&mut self, name: &str) -> Option<String> {
        match self.raw(name) {
            None => {
                self.missing(name);
                None
            }
            Some(v) => {
                let loc = self.loc(name);
                self.access_name(loc, v)
            }
        }
    }

    /// An optional list of role names (or permissions); `null` counts as absent. Each
    /// item's problem is reported at its index.
    pub fn optional_access_names(&mut self, name: &str) -> Option<Option<Vec<String>>> {
        let items = match self.raw(name) {
            None | Some(Value::Null) => return Some(None),
            Some(Value::Array(items)) => items,
            Some(other) => {
                let e = FieldError::new(
                    "list_type",
                    self.loc(name),
                    "Input should be a valid list",
                    other,
                );
                self.push(e);
                return None;
            }
        };
        let mut names = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.into_iter().enumerate() {
            let mut loc = self.loc(name);
            loc.push(json!(i));
            match self.access_name(loc, item) {
                Some(n) => names.push(n),
                None => ok = false,
            }
        }
        ok.then_some(Some(names))
    }

    /// A required list of role names (or permissions).
    pub fn required_access_names(&mut self, name: &str) -> Option<Vec<String>> {
        if self.raw(name).is_none() {
            self.missing(name);
            return None;
        }
        match self.optional_access_names(name)? {
            Some(names) => Some(names),
            None => {
                let e = FieldError::new(
                    "list_type",
                    self.loc(name),
                    "Input should be a valid list",
                    Value::Null,
                );
                self.push(e);
                None
            }
        }
    }

    /// A required string of `min..=max` characters.
    pub fn required_text(&mut self, name: &str, min: usize, max: usize) -> Option<String> {
        let s = self.required_str(name)?;
        let n = s.chars().count();
        if n < min {
            let e = FieldError::new(
                "string_too_short",
                self.loc(name),
                format!("String should have at least {min} character{}", plural(min)),
                json!(s),
            )
            .with_ctx(json!({ "min_length": min }));
            self.push(e);
            return None;
        }
        if n > max {
            let e = FieldError::new(
                "string_too_long",
                self.loc(name),
                format!("String should have at most {max} character{}", plural(max)),
                json!(s),
            )
            .with_ctx(json!({ "max_length": max }));
            self.push(e);
            return None;
        }
        Some(s)
    }

    /// An optional string of at most `max` characters.
    pub fn optional_text(&mut self, name: &str, max: usize) -> Option<Option<String>> {
        let s = self.optional_str(name)?;
        match s {
            Some(s) if s.chars().count() > max => {
                let e = FieldError::new(
                    "string_too_long",
                    self.loc(name),
                    format!("String should have at most {max} character{}", plural(max)),
                    json!(s),
                )
                .with_ctx(json!({ "max_length": max }));
                self.push(e);
                None
            }
            other => Some(other),
        }
    }

    /// Records a problem found across fields (pydantic's model validators).
    pub fn refuse(&mut self, name: &str, msg: &str) {
        let e = FieldError::new(
            "value_error",
            self.loc(name),
            format!("Value error, {msg}"),
            Value::Null,
        );
        self.push(e);
    }

    /// `Ok` when every field was valid; otherwise one 422 listing every problem.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// The pattern of a role name and of a permission.
pub const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9_.:-]{0,63}$";

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

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

/// A request input read field by field, so that every problem is reported at once.
pub trait Validated: Sized {
    /// Reads the fields; returns `None` exactly when it recorded a problem in `fields`.
    fn validate(fields: &mut Fields<'_>) -> Option<Self>;
}

fn finish<T: Validated>(mut fields: Fields<'_>) -> Result<T, ApiError> {
    let value = T::validate(&mut fields);
    fields.finish()?;
    value.ok_or_else(|| ApiError::internal("a validator refused input without saying why"))
}

/// A JSON object body, validated into `T`.
pub struct ValidatedJson<T>(pub T);

impl<T: Validated + 'static> actix_web::FromRequest for ValidatedJson<T> {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(
        _: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let payload = payload.take();
        Box::pin(async move {
            let body = read_body(payload, BODY_LIMIT).await?;
            let object = json_object(&body)?;
            finish(Fields::json(&object)).map(ValidatedJson)
        })
    }
}

/// Like [`ValidatedJson`], for routes whose body is optional (a DELETE that may carry a
/// password): an empty body is read as `{}`.
pub struct OptionalJson<T>(pub T);

impl<T: Validated + 'static> actix_web::FromRequest for OptionalJson<T> {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(
        _: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let payload = payload.take();
        Box::pin(async move {
            let body = read_body(payload, BODY_LIMIT).await?;
            let body = if body.iter().all(u8::is_ascii_whitespace) {
                Bytes::from_static(b"{}")
            } else {
                body
            };
            let object = json_object(&body)?;
            finish(Fields::json(&object)).map(OptionalJson)
        })
    }
}

/// A form body (urlencoded or multipart), validated into `T`; any other content type
/// has no fields, so the required ones are reported missing.
pub struct ValidatedForm<T>(pub T);

impl<T: Validated + 'static> actix_web::FromRequest for ValidatedForm<T> {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let payload = payload.take();
        let headers = req.headers().clone();
        Box::pin(async move {
            let body = read_body(payload, BODY_LIMIT).await?;
            let form = form_fields(&headers, body).await?;
            finish(Fields::form(&form, "body")).map(ValidatedForm)
        })
    }
}

/// A JSON object body, or a form body when the content type says so, validated into
/// `T` (routes that take both, like the RFC 6749 token endpoint's form).
pub struct ValidatedBody<T>(pub T);

impl<T: Validated + 'static> actix_web::FromRequest for ValidatedBody<T> {
    type Error = ApiError;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let payload = payload.take();
        let headers = req.headers().clone();
        Box::pin(async move {
            let body = read_body(payload, BODY_LIMIT).await?;
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_ascii_lowercase();
            if content_type.starts_with("application/x-www-form-urlencoded")
                || content_type.starts_with("multipart/form-data")
            {
                let form = form_fields(&headers, body).await?;
                finish(Fields::form(&form, "body")).map(ValidatedBody)
            } else {
                let object = json_object(&body)?;
                finish(Fields::json(&object)).map(ValidatedBody)
            }
        })
    }
}

/// The query string, validated into `T`.
pub struct ValidatedQuery<T>(pub T);

impl<T: Validated + 'static> actix_web::FromRequest for ValidatedQuery<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let query = urlencoded(req.query_string().as_bytes());
        std::future::ready(finish(Fields::form(&query, "query")).map(ValidatedQuery))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn errors(r: Result<impl std::fmt::Debug, ApiError>) -> Vec<FieldError> {
        match r {
            Err(ApiError::Validation(e)) => e,
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn malformed_json_reports_the_position() {
        let e = errors(json_object(b"{\"email\": }"));
        assert_eq!(e[0].kind, "json_invalid");
        assert_eq!(e[0].loc, vec![json!("body"), json!(10)]);
    }

    #[test]
    fn non_objects_and_empty_bodies_are_refused() {
        assert_eq!(
            errors(json_object(b"[1,2]"))[0].kind,
            "model_attributes_type"
        );
        assert_eq!(errors(json_object(b""))[0].kind, "missing");
        assert_eq!(errors(json_object(b"  \n"))[0].loc, vec![json!("body")]);
    }

    #[test]
    fn every_field_problem_is_listed() {
        let obj = json_object(br#"{"email": 5, "password": 7, "is_active": "maybe"}"#).unwrap();
        let mut f = Fields::json(&obj);
        assert!(f.required_email("email").is_none());
        assert!(f.required_password("password").is_none());
        assert!(f.optional_bool("is_active").is_none());
        assert!(f.required_str("missing_one").is_none());
        let e = errors(f.finish());
        let kinds: Vec<_> = e.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            ["string_type", "string_type", "bool_parsing", "missing"]
        );
        assert_eq!(e[3].loc, vec![json!("body"), json!("missing_one")]);
    }

    #[test]
    fn an_empty_json_string_is_a_value() {
        let obj = json_object(br#"{"token": "", "password": ""}"#).unwrap();
        let mut f = Fields::json(&obj);
        assert_eq!(f.required_str("token").as_deref(), Some(""));
        assert!(f.required_password("password").is_some());
        assert_eq!(f.optional_str("token"), Some(Some(String::new())));
        assert!(f.finish().is_ok());
    }

    #[test]
    fn lax_booleans_and_integers() {
        let obj = json_object(br#"{"a": "yes", "b": 0, "c": "12", "d": "x"}"#).unwrap();
        let mut f = Fields::json(&obj);
        assert_eq!(f.optional_bool("a"), Some(Some(true)));
        assert_eq!(f.optional_bool("b"), Some(Some(false)));
        assert_eq!(f.optional_int("c", 1, 100), Some(Some(12)));
        assert_eq!(f.optional_int("c", 1, 10), None);
        assert_eq!(f.optional_int("d", 1, 10), None);
        assert_eq!(errors(f.finish()).len(), 2);
    }

    #[test]
    fn empty_form_values_count_as_missing() {
        let map = urlencoded(b"username=&password=x&grant_type=refresh");
        let mut f = Fields::form(&map, "body");
        assert!(f.required_str("username").is_none());
        assert!(f.required_str("password").is_some());
        assert!(f.optional_literal("grant_type", "password").is_none());
        let e = errors(f.finish());
        assert_eq!(e[0].kind, "missing");
        assert_eq!(e[1].kind, "string_pattern_mismatch");
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn any_json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(|n| json!(n)),
                any::<f64>().prop_map(|f| json!(f)),
                ".{0,40}".prop_map(Value::String),
            ];
            leaf.prop_recursive(3, 24, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::hash_map(
                        prop_oneof![
                            Just("email".to_owned()),
                            Just("password".to_owned()),
                            Just("is_active".to_owned()),
                            ".{0,8}"
                        ],
                        inner,
                        0..6
                    )
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn arbitrary_bytes_never_panic_the_json_parser(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
                let _ = json_object(&bytes);
                let _ = urlencoded(&bytes);
            }

            #[test]
            fn any_json_body_yields_fields_or_a_422(value in any_json()) {
                let text = value.to_string();
                match json_object(text.as_bytes()) {
                    Ok(obj) => {
                        let mut f = Fields::json(&obj);
                        let email = f.optional_email("email");
                        let password = f.optional_password("password");
                        let flag = f.optional_bool("is_active");
                        let n = f.optional_int("page", 1, 100);
                        let ok = email.is_some() && password.is_some() && flag.is_some() && n.is_some();
                        prop_assert_eq!(f.finish().is_ok(), ok);
                    }
                    Err(ApiError::Validation(errors)) => prop_assert!(!errors.is_empty()),
                    Err(other) => prop_assert!(false, "unexpected {:?}", other),
                }
            }

            #[test]
            fn any_form_yields_fields_or_a_422(pairs in prop::collection::vec(("[a-z_]{0,12}", ".{0,20}"), 0..8)) {
                let encoded = serde_urlencoded::to_string(&pairs).unwrap();
                let form = urlencoded(encoded.as_bytes());
                let mut f = Fields::form(&form, "body");
                let _ = f.optional_literal("grant_type", "password");
                let user = f.required_str("username");
                let _ = f.required_password("password");
                if let Err(ApiError::Validation(errors)) = f.finish() {
                    prop_assert!(errors.iter().all(|e| e.loc[0] == json!("body")));
                } else {
                    prop_assert!(user.is_some_and(|u| !u.is_empty()));
                }
            }
        }
    }
}
