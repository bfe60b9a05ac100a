//! Request bodies, query strings and forms, parsed and validated the way FastAPI and
//! pydantic do it, so a malformed request gets the same 422 a fastapi-users client
//! expects: never actix's plain-text 400s, never a 500.
//!
//! A handler names its input as [`ValidatedJson<T>`], [`ValidatedForm<T>`] or
//! [`ValidatedQuery<T>`]; `T` says which fields it reads through [`Validated`], and the
//! extractor reads the body (bounded in size and time), collects every problem into one
//! 422, and hands the handler a `T` only when there is none.
//!
//! The parts: reading a body and parsing JSON (`body`), the fields and their checks
//! (`fields`), forms (`form`); the extractors themselves are here.

mod body;
mod fields;
mod form;

pub use body::*;
pub use fields::*;
pub use form::*;

use actix_web::http::header;
use actix_web::web::Bytes;

use crate::error::ApiError;

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
    use crate::error::FieldError;
    use serde_json::{json, Value};

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
