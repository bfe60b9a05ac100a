//! Who a provider says signed in: what the OpenID client (from the id_token or
//! userinfo) and the GitHub client (from its REST API) both hand back.

use serde_json::Value;

/// What a verified id_token (or userinfo) says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
}

/// Providers send `email_verified` as a boolean or as a string: Google has sent both.
pub(crate) fn email_verified(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}
