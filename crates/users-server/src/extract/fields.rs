//! [`Fields`]: typed fields pulled out of a JSON object or a form, every problem
//! collected into one 422.

use std::collections::HashMap;

use secrecy::SecretString;
use serde_json::{json, Map, Value};
use users_domain::EmailAddress;

use crate::error::{ApiError, FieldError};

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
