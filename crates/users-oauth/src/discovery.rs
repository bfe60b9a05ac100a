//! The provider's discovery document (`/.well-known/openid-configuration`): reading
//! it, checking the issuer and every endpoint it names, and choosing how the client
//! authenticates at the token endpoint.

use serde::Deserialize;
use url::Url;

use crate::error::{describe, OAuthError};

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
}

/// Reads `{issuer_url}/.well-known/openid-configuration` and checks what it says.
pub(crate) async fn discover_endpoints(
    http: &reqwest::Client,
    issuer_url: &str,
) -> Result<Endpoints, OAuthError> {
    let base = issuer_url.trim_end_matches('/');
    let base_url = Url::parse(base)
        .map_err(|e| OAuthError::Discovery(format!("the issuer URL {base:?} is not a URL: {e}")))?;
    if !matches!(base_url.scheme(), "https" | "http") {
        return Err(OAuthError::Discovery(format!(
            "the issuer URL {base:?} is not http(s)"
        )));
    }
    let require_https = base_url.scheme() == "https";

    let url = format!("{base}/.well-known/openid-configuration");
    let response = http
        .get(&url)
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
        return Err(OAuthError::Discovery(format!(
            "{url} answered HTTP {status}"
        )));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| OAuthError::Unavailable(format!("discovery: {}", describe(&e))))?;
    let doc: DiscoveryDocument = serde_json::from_slice(&body)
        .map_err(|e| OAuthError::Discovery(format!("{url} is not the expected JSON: {e}")))?;

    let issuer = doc
        .issuer
        .ok_or_else(|| OAuthError::Discovery("no issuer".into()))?;
    if issuer.trim_end_matches('/') != base {
        return Err(OAuthError::Discovery(format!(
            "the document's issuer {issuer:?} is not the configured {base:?}"
        )));
    }
    if let Some(algs) = &doc.id_token_signing_alg_values_supported {
        if !algs.iter().any(|a| a == "RS256") {
            return Err(OAuthError::Discovery(
                "the provider does not sign id_tokens with RS256".into(),
            ));
        }
    }
    let endpoint = |name: &str, value: Option<String>| -> Result<Url, OAuthError> {
        let value = value.ok_or_else(|| OAuthError::Discovery(format!("no {name}")))?;
        let url = Url::parse(&value)
            .map_err(|e| OAuthError::Discovery(format!("{name} is not a URL: {e}")))?;
        let scheme_ok = match url.scheme() {
            "https" => true,
            "http" => !require_https,
            _ => false,
        };
        if !scheme_ok {
            return Err(OAuthError::Discovery(format!(
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
}
