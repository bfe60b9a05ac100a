//! The provider's discovery document (`/.well-known/openid-configuration`): reading
//! it, checking the issuer and every endpoint it names, and choosing how the client
//! authenticates at the token endpoint.

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use url::Url;

use crate::error::{describe, discovery, wrong_issuer, OAuthError};

/// The id_token signatures this client verifies: RSA PKCS#1 v1.5 and PSS with SHA-256,
/// and ECDSA on P-256. RS256 is what OpenID Connect requires every provider to offer
/// (Google, Entra ID, Keycloak, Auth0, Okta sign with it by default); ES256 and PS256 are
/// what the others choose. Symmetric (HS256, keyed with the client secret) and `none`
/// are refused: they let whoever knows the secret, or anyone, mint id_tokens.
pub(crate) const SUPPORTED_ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::PS256];

#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    jwks_uri: Option<String>,
    userinfo_endpoint: Option<String>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    id_token_signing_alg_values_supported: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    Basic,
    Post,
}

impl ClientAuth {
    /// RFC 8414: an absent list means `client_secret_basic`.
    fn choose(supported: Option<&[String]>) -> ClientAuth {
        match supported {
            None => ClientAuth::Basic,
            Some(methods) if methods.iter().any(|m| m == "client_secret_basic") => {
                ClientAuth::Basic
            }
            Some(_) => ClientAuth::Post,
        }
    }
}

pub(crate) struct Endpoints {
    pub(crate) issuer: String,
    pub(crate) authorization: Url,
    pub(crate) token: Url,
    pub(crate) jwks: Url,
    pub(crate) userinfo: Option<Url>,
    pub(crate) client_auth: ClientAuth,
    /// The algorithms an id_token of this provider may be signed with: ours that the
    /// document lists (all of ours when it lists none).
    pub(crate) id_token_algs: Vec<Algorithm>,
}

/// Our algorithms among those the document names.
fn accepted_algorithms(listed: Option<&[String]>) -> Vec<Algorithm> {
    SUPPORTED_ALGORITHMS
        .into_iter()
        .filter(|alg| listed.is_none_or(|names| names.iter().any(|n| alg_name(*alg) == n.as_str())))
        .collect()
}

pub(crate) fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::PS256 => "PS256",
        _ => "other",
    }
}

/// Reads `{issuer_url}/.well-known/openid-configuration` and checks what it says.
pub(crate) async fn discover_endpoints(
    http: &reqwest::Client,
    issuer_url: &str,
) -> Result<Endpoints, OAuthError> {
    let base = issuer_url.trim_end_matches('/');
    let base_url = Url::parse(base)
        .map_err(|e| discovery(format!("the issuer URL {base:?} is not a URL: {e}")))?;
    if !matches!(base_url.scheme(), "https" | "http") {
        return Err(discovery(format!("the issuer URL {base:?} is not http(s)")));
    }
    let require_https = base_url.scheme() == "https";

    let url = format!("{base}/.well-known/openid-configuration");
    let response = crate::traced::traced(http.get(&url))
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| OAuthError::Unavailable(format!("discovery: {}", describe(&e))))?;
    let status = response.status();
    if status.is_server_error() {
        return Err(OAuthError::Unavailable(format!(
            "{url} answered HTTP {status}"
        )));
    }
    if !status.is_success() {
        return Err(discovery(format!("{url} answered HTTP {status}")));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| OAuthError::Unavailable(format!("discovery: {}", describe(&e))))?;
    let doc: DiscoveryDocument = serde_json::from_slice(&body)
        .map_err(|e| discovery(format!("{url} is not the expected JSON: {e}")))?;

    let issuer = doc.issuer.ok_or_else(|| discovery("no issuer"))?;
    if issuer.trim_end_matches('/') != base {
        return Err(wrong_issuer(format!(
            "the discovery document names the issuer {issuer:?}, not the configured {base:?}"
        )));
    }
    let id_token_algs = accepted_algorithms(doc.id_token_signing_alg_values_supported.as_deref());
    if id_token_algs.is_empty() {
        return Err(discovery(
            "the provider signs id_tokens with none of RS256, ES256, PS256",
        ));
    }
    let endpoint = |name: &str, value: Option<String>| -> Result<Url, OAuthError> {
        let value = value.ok_or_else(|| discovery(format!("no {name}")))?;
        let url = Url::parse(&value).map_err(|e| discovery(format!("{name} is not a URL: {e}")))?;
        let scheme_ok = match url.scheme() {
            "https" => true,
            "http" => !require_https,
            _ => false,
        };
        if !scheme_ok {
            return Err(discovery(format!(
                "{name} {value:?} does not use the issuer's scheme"
            )));
        }
        Ok(url)
    };
    Ok(Endpoints {
        authorization: endpoint("authorization_endpoint", doc.authorization_endpoint)?,
        token: endpoint("token_endpoint", doc.token_endpoint)?,
        jwks: endpoint("jwks_uri", doc.jwks_uri)?,
        userinfo: doc
            .userinfo_endpoint
            .map(|u| endpoint("userinfo_endpoint", Some(u)))
            .transpose()?,
        client_auth: ClientAuth::choose(doc.token_endpoint_auth_methods_supported.as_deref()),
        id_token_algs,
        issuer,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn client_auth_choice() {
        let list = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(ClientAuth::choose(None), ClientAuth::Basic);
        assert_eq!(
            ClientAuth::choose(Some(&list(&["client_secret_post", "client_secret_basic"]))),
            ClientAuth::Basic
        );
        assert_eq!(
            ClientAuth::choose(Some(&list(&["client_secret_post"]))),
            ClientAuth::Post
        );
    }

    #[test]
    fn accepted_algorithms_are_ours_that_the_provider_lists() {
        let list = |m: &[&str]| m.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(accepted_algorithms(None), SUPPORTED_ALGORITHMS.to_vec());
        assert_eq!(
            accepted_algorithms(Some(&list(&["RS256", "HS256", "none"]))),
            vec![Algorithm::RS256]
        );
        assert_eq!(
            accepted_algorithms(Some(&list(&["ES256", "PS256"]))),
            vec![Algorithm::ES256, Algorithm::PS256]
        );
        assert!(accepted_algorithms(Some(&list(&["HS256", "RS512"]))).is_empty());
    }
}
