//! Sign-in with GitHub, which is OAuth 2.0 and not OpenID Connect: no discovery, no
//! id_token. The authorization carries a state and a PKCE S256 challenge; the code is
//! exchanged at `{GITHUB_URL}/login/oauth/access_token` through the `oauth2` crate; who
//! the user is comes from the REST API: `GET {GITHUB_API_URL}/user` for the numeric id
//! (the subject: logins can be renamed, ids cannot) and `GET /user/emails` for the
//! address, only the primary one and only when GitHub has verified it.
//!
//! `GITHUB_URL` and `GITHUB_API_URL` point at GitHub Enterprise Server
//! (`https://ghe.example.com`, `https://ghe.example.com/api/v3`) or at a test double.

use std::borrow::Cow;
use std::fmt;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenResponse,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet,
    EndpointSet, PkceCodeVerifier, RedirectUrl, Scope, StandardRevocableToken, TokenUrl,
};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::client::{http_client, merge_scopes, StatusRecorder};
use crate::error::{describe, discovery, token_error, OAuthError};
use crate::{Identity, ProviderTokens};

/// The default of `GITHUB_URL`.
pub const GITHUB_URL: &str = "https://github.com";
/// The default of `GITHUB_API_URL`.
pub const GITHUB_API_URL: &str = "https://api.github.com";

/// Reading the profile and the addresses (with their verification) needs these two.
const DEFAULT_SCOPES: [&str; 2] = ["read:user", "user:email"];

/// The REST API version the answers are read as.
const API_VERSION: &str = "2022-11-28";

/// How to reach GitHub and who we are to it.
#[derive(Clone, Debug)]
pub struct GithubConfig {
    /// Where users sign in: `https://github.com`, or a GitHub Enterprise Server.
    pub web_url: String,
    /// The REST API: `https://api.github.com`, or `https://<host>/api/v3`.
    pub api_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Bounds every HTTP call to GitHub (connecting included).
    pub timeout: Duration,
}

type GithubOAuthClient = oauth2::Client<
    BasicErrorResponse,
    BasicTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

struct Inner {
    client_id: String,
    api_url: String,
    oauth: GithubOAuthClient,
    http: reqwest::Client,
}

/// A GitHub OAuth app client. Cheap to clone; `Debug` shows no secret.
#[derive(Clone)]
pub struct GithubClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubClient")
            .field("client_id", &self.inner.client_id)
            .field(
                "authorization_endpoint",
                &self.inner.oauth.auth_uri().as_str(),
            )
            .field("token_endpoint", &self.inner.oauth.token_uri().as_str())
            .field("api_url", &self.inner.api_url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct GithubUser {
    id: u64,
}

#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

fn http_url(what: &str, value: &str) -> Result<Url, OAuthError> {
    let url = Url::parse(value).map_err(|e| discovery(format!("{what} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(discovery(format!("{what} is not http(s)")));
    }
    Ok(url)
}

impl GithubClient {
    /// Builds the client; nothing is fetched (GitHub has no discovery document).
    pub fn new(config: GithubConfig) -> Result<GithubClient, OAuthError> {
        let web = config.web_url.trim_end_matches('/');
        let api = config.api_url.trim_end_matches('/');
        http_url("the GitHub URL", web)?;
        http_url("the GitHub API URL", api)?;
        let authorize = http_url(
            "the authorization endpoint",
            &format!("{web}/login/oauth/authorize"),
        )?;
        let token = http_url(
            "the token endpoint",
            &format!("{web}/login/oauth/access_token"),
        )?;
        let oauth = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                config.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::from_url(authorize))
            .set_token_uri(TokenUrl::from_url(token))
            // GitHub documents the credentials as form fields of the token request.
            .set_auth_type(AuthType::RequestBody);
        Ok(GithubClient {
            inner: Arc::new(Inner {
                client_id: config.client_id,
                api_url: api.to_owned(),
                oauth,
                http: http_client(config.timeout)?,
            }),
        })
    }

    /// The URL to send the browser to. `scopes` adds to `read:user user:email`.
    pub fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        pkce_challenge: &str,
        scopes: &[String],
    ) -> String {
        let mut request = self
            .inner
            .oauth
            .authorize_url(|| CsrfToken::new(state.to_owned()));
        for scope in merge_scopes(&DEFAULT_SCOPES, scopes) {
            request = request.add_scope(Scope::new(scope));
        }
        request = match RedirectUrl::new(redirect_uri.to_owned()) {
            Ok(url) => request.set_redirect_uri(Cow::Owned(url)),
            Err(_) => request.add_extra_param("redirect_uri", redirect_uri),
        };
        let (url, _state) = request
            .add_extra_param("code_challenge", pkce_challenge)
            .add_extra_param("code_challenge_method", "S256")
            .url();
        url.to_string()
    }

    /// The whole callback: exchange the code, then ask the API who the user is and
    /// which address is their primary verified one (`email` is `None` without one).
    pub async fn sign_in(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        now_secs: i64,
    ) -> Result<(Identity, ProviderTokens), OAuthError> {
        let tokens = self
            .exchange_code(code, redirect_uri, pkce_verifier, now_secs)
            .await?;
        let user: GithubUser = self
            .api("/user", &tokens.access_token)
            .await?
            .ok_or_else(|| {
                OAuthError::Rejected("the GitHub API refused to name the user".into())
            })?;
        let emails: Vec<GithubEmail> = self
            .api("/user/emails", &tokens.access_token)
            .await?
            .unwrap_or_default();
        let email = emails
            .into_iter()
            .find(|e| e.primary && e.verified && !e.email.is_empty())
            .map(|e| e.email);
        let identity = Identity {
            subject: user.id.to_string(),
            email_verified: email.is_some(),
            email,
        };
        Ok((identity, tokens))
    }

    async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        now_secs: i64,
    ) -> Result<ProviderTokens, OAuthError> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| OAuthError::Rejected("the redirect_uri is not a URL".into()))?;
        let send = StatusRecorder {
            http: &self.inner.http,
            status: AtomicU16::new(0),
        };
        // oauth2 sends `Accept: application/json`, which makes GitHub answer JSON.
        let response = self
            .inner
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .set_redirect_uri(Cow::Owned(redirect))
            .request_async(&send)
            .await
            .map_err(|e| token_error(e, send.status.load(Ordering::Relaxed)))?;
        Ok(ProviderTokens::from_response(&response, None, now_secs))
    }

    /// A GET of the REST API as the user. `None` when GitHub answers 403 or 404: the
    /// token lacks the scope (a user who unticked `user:email`), not a fault.
    async fn api<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        token: &SecretString,
    ) -> Result<Option<T>, OAuthError> {
        let url = format!("{}{path}", self.inner.api_url);
        let unavailable = |e: reqwest::Error| {
            OAuthError::Unavailable(format!("GitHub API {path}: {}", describe(&e)))
        };
        let response = crate::traced::traced(self.inner.http.get(&url))
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .map_err(unavailable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unavailable)?;
        match status {
            s if s.is_success() => serde_json::from_slice(&body).map(Some).map_err(|_| {
                OAuthError::Unavailable(format!(
                    "GitHub API {path}: the answer is not the expected JSON"
                ))
            }),
            StatusCode::FORBIDDEN | StatusCode::NOT_FOUND => Ok(None),
            StatusCode::TOO_MANY_REQUESTS => Err(OAuthError::Unavailable(format!(
                "GitHub API {path} answered HTTP {status}"
            ))),
            s if s.is_client_error() => Err(OAuthError::Rejected(format!(
                "GitHub API {path} answered HTTP {status}"
            ))),
            _ => Err(OAuthError::Unavailable(format!(
                "GitHub API {path} answered HTTP {status}"
            ))),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn client() -> GithubClient {
        GithubClient::new(GithubConfig {
            web_url: "https://ghe.example.com/".into(),
            api_url: "https://ghe.example.com/api/v3/".into(),
            client_id: "Iv1.client".into(),
            client_secret: SecretString::from("github-secret-42"),
            timeout: Duration::from_secs(5),
        })
        .unwrap()
    }

    #[test]
    fn the_authorization_url_has_state_pkce_and_the_email_scope() {
        let url = client().authorization_url(
            "https://id.example.com/auth/github/callback",
            "the-state",
            "the-challenge",
            &["repo".to_owned()],
        );
        let url = Url::parse(&url).unwrap();
        assert_eq!(url.path(), "/login/oauth/authorize");
        let q: std::collections::HashMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "Iv1.client");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["state"], "the-state");
        assert_eq!(q["code_challenge"], "the-challenge");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["scope"], "read:user user:email repo");
        assert_eq!(
            q["redirect_uri"],
            "https://id.example.com/auth/github/callback"
        );
    }

    #[test]
    fn debug_shows_no_secret_and_bad_urls_are_refused() {
        let shown = format!("{:?}", client());
        assert!(!shown.contains("github-secret-42"), "{shown}");
        assert!(shown.contains("https://ghe.example.com/api/v3"), "{shown}");
        let bad = GithubClient::new(GithubConfig {
            web_url: "ftp://github.example".into(),
            api_url: GITHUB_API_URL.into(),
            client_id: "c".into(),
            client_secret: SecretString::from("s"),
            timeout: Duration::from_secs(5),
        });
        assert!(matches!(bad, Err(OAuthError::Discovery(_))));
    }
}
