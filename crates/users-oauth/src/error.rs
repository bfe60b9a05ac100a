//! The crate's error type, and the helpers that turn other crates' errors into it
//! without letting a secret, a code or a token slip into the message.

use jsonwebtoken::errors::ErrorKind;
use oauth2::basic::BasicErrorResponse;
use oauth2::{HttpClientError, RequestTokenError};

/// Why a call to the provider, or a token it issued, was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// The provider could not be reached, timed out, answered 5xx or garbage → 502.
    #[error("the identity provider is unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request (invalid_grant etc., a 4xx) → 400.
    #[error("the identity provider refused the request: {0}")]
    Rejected(String),
    /// The id_token failed verification (signature, alg, kid, iss, aud, exp, iat,
    /// nonce, missing) → 400.
    #[error("invalid id_token: {0}")]
    InvalidIdToken(String),
    /// Discovery document unusable → logged; the server answers 503 meanwhile.
    #[error("invalid discovery document: {0}")]
    Discovery(String),
}

pub(crate) fn invalid(reason: impl Into<String>) -> OAuthError {
    OAuthError::InvalidIdToken(reason.into())
}

pub(crate) type TokenError = RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>;

pub(crate) fn token_error(error: TokenError, status: u16) -> OAuthError {
    match error {
        RequestTokenError::Request(e) => {
            OAuthError::Unavailable(format!("token endpoint: {}", describe(&e)))
        }
        // Only the error code: descriptions are free text and could echo the code.
        RequestTokenError::ServerResponse(answer) if (400..500).contains(&status) => {
            OAuthError::Rejected(format!("token endpoint answered {}", answer.error()))
        }
        _ if (400..500).contains(&status) => {
            OAuthError::Rejected(format!("token endpoint answered HTTP {status}"))
        }
        RequestTokenError::ServerResponse(answer) => OAuthError::Unavailable(format!(
            "token endpoint answered HTTP {status}: {}",
            answer.error()
        )),
        // The body holds tokens; only where parsing failed is safe to report.
        RequestTokenError::Parse(e, _body) => OAuthError::Unavailable(format!(
            "token endpoint answered HTTP {status} with an unreadable body (at `{}`)",
            e.path()
        )),
        RequestTokenError::Other(message) => {
            OAuthError::Unavailable(format!("token endpoint answered HTTP {status}: {message}"))
        }
    }
}

/// jsonwebtoken's JSON errors may quote claim values; the kind is enough.
pub(crate) fn jwt_error(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "the signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => "alg is not RS256".into(),
        ErrorKind::Json(_) | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => {
            "the token is not well-formed".into()
        }
        other => format!("{other:?}"),
    }
}

pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
