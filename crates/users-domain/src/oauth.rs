//! The rules of the OAuth 2.1 / OpenID Connect provider that need no I/O
//! (docs/oauth-provider.md): scopes, redirect URIs and their matching (RFC 8252 for
//! native apps), PKCE S256, `at_hash`, `amr`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The scopes every client may be registered for.
pub const STANDARD_SCOPES: &[&str] = &["openid", "email", "profile", "offline_access", "roles"];

/// The scopes of a client registered without `scope`.
pub const DEFAULT_CLIENT_SCOPE: &str = "openid email profile offline_access";

/// A scope token: RFC 6749 §3.3's `NQCHAR`s, which here are also the roles' permission
/// alphabet plus what the standard scopes use.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b == b'!' || (b'#'..=b'[').contains(&b) || (b']'..=b'~').contains(&b))
}

/// A space-separated scope string as a list without repeats, in the order given; `None`
/// when a token is not a scope token.
pub fn parse_scope(s: &str) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for token in s.split(' ').filter(|t| !t.is_empty()) {
        if !is_scope_token(token) {
            return None;
        }
        if !out.iter().any(|t| t == token) {
            out.push(token.to_owned());
        }
    }
    Some(out)
}

/// Scopes as the wire carries them.
pub fn scope_string(scopes: &[String]) -> String {
    scopes.join(" ")
}

/// Why a redirect URI cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectUriError {
    NotAbsolute,
    Fragment,
    /// `http:` on a host other than the loopback.
    InsecureHttp,
}

impl std::fmt::Display for RedirectUriError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedirectUriError::NotAbsolute => "is not an absolute URI",
            RedirectUriError::Fragment => "has a fragment",
            RedirectUriError::InsecureHttp => {
                "uses http: on a host other than the loopback (127.0.0.1, [::1], localhost)"
            }
        })
    }
}

fn loopback_host(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "[::1]" | "localhost")
}

/// Whether `uri` can be registered: absolute, no fragment, `https:`, `http:` on the
/// loopback only, or a private-use scheme of a native app (`com.example.app:/cb`).
pub fn check_redirect_uri(uri: &str) -> Result<(), RedirectUriError> {
    let parsed = url::Url::parse(uri).map_err(|_| RedirectUriError::NotAbsolute)?;
    if parsed.fragment().is_some() || uri.contains('#') {
        return Err(RedirectUriError::Fragment);
    }
    match parsed.scheme() {
        "https" => parsed
            .host_str()
            .map(|_| ())
            .ok_or(RedirectUriError::NotAbsolute),
        "http" => match parsed.host_str() {
            Some(h) if loopback_host(h) => Ok(()),
            _ => Err(RedirectUriError::InsecureHttp),
        },
        "javascript" | "data" | "file" | "blob" | "about" | "vbscript" => {
            Err(RedirectUriError::NotAbsolute)
        }
        // private-use schemes of native apps (RFC 8252 §7.1)
        _ => Ok(()),
    }
}

/// The parts of a loopback `http:` URI other than its port, or `None`.
fn loopback_without_port(uri: &str) -> Option<String> {
    let mut parsed = url::Url::parse(uri).ok()?;
    if parsed.scheme() != "http" || !parsed.host_str().is_some_and(loopback_host) {
        return None;
    }
    parsed.set_port(None).ok()?;
    Some(parsed.to_string())
}

/// Whether a requested `redirect_uri` is the registered one: the same string, or for a
/// loopback `http:` URI the same but for the port (RFC 8252 §7.3).
pub fn redirect_uri_matches(registered: &str, requested: &str) -> bool {
    if registered == requested {
        return true;
    }
    match (
        loopback_without_port(registered),
        loopback_without_port(requested),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A PKCE `code_verifier` (RFC 7636 §4.1): 43 to 128 unreserved characters.
pub fn is_code_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// An S256 `code_challenge`: 43 base64url characters (a SHA-256).
pub fn is_s256_challenge(c: &str) -> bool {
    c.len() == 43
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

/// Whether `verifier` answers `challenge` (S256).
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    crate::crypto::constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

/// `at_hash` (OpenID Connect Core §3.1.3.6): the left half of the access token's hash
/// by the ID token's algorithm (SHA-256 for RS256, ES256; SHA-512 for EdDSA/Ed25519).
pub fn at_hash(access_token: &str, sha512: bool) -> String {
    if sha512 {
        let digest = sha2::Sha512::digest(access_token.as_bytes());
        URL_SAFE_NO_PAD.encode(&digest[..32])
    } else {
        let digest = Sha256::digest(access_token.as_bytes());
        URL_SAFE_NO_PAD.encode(&digest[..16])
    }
}

/// `amr` (RFC 8176) of a sign-in: its first factor by the session's method, then its
/// second step when there was one (`otp` for a TOTP code, `hwk` for a passkey; a
/// recovery code, `rec`, has no RFC 8176 value and shows only as `mfa`).
pub fn amr(method: &str, second_factor: Option<&str>) -> Vec<String> {
    let first = match method {
        "password" => "pwd",
        "passkey" => "hwk",
        _ => "fed",
    };
    let mut out = vec![first.to_owned()];
    if let Some(f) = second_factor {
        if f != "rec" && !out.iter().any(|a| a == f) {
            out.push(f.to_owned());
        }
        out.push("mfa".to_owned());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_without_repeats_and_refuse_bad_tokens() {
        assert_eq!(
            parse_scope("openid  email openid").unwrap(),
            vec!["openid", "email"]
        );
        assert!(parse_scope("openid \"x").is_none());
        assert!(parse_scope("a\\b").is_none());
        assert_eq!(parse_scope("").unwrap(), Vec::<String>::new());
        assert_eq!(parse_scope("invoices:read").unwrap(), vec!["invoices:read"]);
    }

    #[test]
    fn redirect_uris_are_checked() {
        assert!(check_redirect_uri("https://app.example/cb").is_ok());
        assert!(check_redirect_uri("http://127.0.0.1:8080/cb").is_ok());
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("http://[::1]:9/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        assert_eq!(
            check_redirect_uri("http://app.example/cb"),
            Err(RedirectUriError::InsecureHttp)
        );
        assert_eq!(
            check_redirect_uri("https://app.example/cb#x"),
            Err(RedirectUriError::Fragment)
        );
        assert_eq!(
            check_redirect_uri("/cb"),
            Err(RedirectUriError::NotAbsolute)
        );
        assert_eq!(
            check_redirect_uri("javascript:alert(1)"),
            Err(RedirectUriError::NotAbsolute)
        );
    }

    #[test]
    fn loopback_redirects_match_any_port_only() {
        assert!(redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51234/cb"
        ));
        assert!(!redirect_uri_matches(
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51234/other"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example:444/cb"
        ));
        assert!(!redirect_uri_matches(
            "https://app.example/cb",
            "https://app.example/cb/"
        ));
        assert!(redirect_uri_matches(
            "https://a.example/cb",
            "https://a.example/cb"
        ));
    }

    #[test]
    fn pkce_s256_is_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(is_code_verifier(verifier));
        assert!(is_s256_challenge(challenge));
        assert!(pkce_s256_matches(verifier, challenge));
        assert!(!pkce_s256_matches("x".repeat(43).as_str(), challenge));
        assert!(!is_code_verifier("short"));
    }

    #[test]
    fn amr_names_each_factor() {
        assert_eq!(amr("password", None), vec!["pwd"]);
        assert_eq!(amr("password", Some("otp")), vec!["pwd", "otp", "mfa"]);
        assert_eq!(amr("passkey", None), vec!["hwk"]);
        assert_eq!(amr("github", Some("hwk")), vec!["fed", "hwk", "mfa"]);
        assert_eq!(amr("password", Some("rec")), vec!["pwd", "mfa"]);
    }
}
