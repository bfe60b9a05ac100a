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
    /// Discovery document unusable → logged; the server answers 503 meanwhile (or, for
    /// a document naming another issuer, refuses to start: see
    /// [`OAuthError::is_wrong_issuer`]).
    #[error("invalid discovery document: {0}")]
    Discovery(DiscoveryProblem),
}

impl OAuthError {
    /// The discovery document names another issuer than the configured one: a
    /// configuration mistake (or a provider impersonated), not an outage.
    pub fn is_wrong_issuer(&self) -> bool {
        matches!(self, OAuthError::Discovery(p) if p.wrong_issuer)
    }
}

/// What is wrong with a discovery document (or with the provider's configuration).
#[derive(Debug)]
pub struct DiscoveryProblem {
    message: String,
    wrong_issuer: bool,
}

impl std::fmt::Display for DiscoveryProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub(crate) fn discovery(message: impl Into<String>) -> OAuthError {
    OAuthError::Discovery(DiscoveryProblem {
        message: message.into(),
        wrong_issuer: false,
    })
}

pub(crate) fn wrong_issuer(message: impl Into<String>) -> OAuthError {
    OAuthError::Discovery(DiscoveryProblem {
        message: message.into(),
        wrong_issuer: true,
    })
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
        // GitHub answers a refused code with 200 and `{"error": "bad_verification_code"}`;
        // such a body holds no token, so its error code may be reported.
        RequestTokenError::Parse(_, body) if status == 200 && error_code(&body).is_some() => {
            let code = error_code(&body).unwrap_or_default();
            OAuthError::Rejected(format!("token endpoint answered {code}"))
        }
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

/// The `error` of an OAuth error body (RFC 6749 §5.2), if that is what `body` is: a
/// short token of printable ASCII, never free text.
fn error_code(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let valid = !parsed.error.is_empty()
        && parsed.error.len() <= 64
        && parsed
            .error
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    valid.then_some(parsed.error)
}

/// jsonwebtoken's JSON errors may quote claim values; the kind is enough.
pub(crate) fn jwt_error(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::InvalidSignature => "the signature does not verify".into(),
        ErrorKind::InvalidAlgorithm => "alg is not one the provider's key is for".into(),
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
