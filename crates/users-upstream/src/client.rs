//! The OpenID Connect client: discovery at start, then the authorization URL (state,
//! nonce, PKCE S256), the code exchange through the `oauth2` crate, userinfo, and
//! [`OidcClient::sign_in`], which strings them together with id_token verification.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{
    AsyncHttpClient, AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EndpointNotSet, EndpointSet, ExtraTokenFields, HttpClientError, HttpRequest, HttpResponse,
    PkceCodeVerifier, RedirectUrl, Scope, StandardRevocableToken, StandardTokenResponse,
    TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::discovery::{discover_endpoints, ClientAuth, Endpoints};
use crate::error::{describe, discovery, invalid, token_error, OAuthError};
use crate::id_token;
use crate::identity::{email_verified, Identity};
use crate::keys::{self, JwksCache, PublishedKey};

/// Scopes every authorization asks for: `openid` makes it OpenID Connect, `email` is
/// what accounts are keyed on, `profile` is what fastapi-users asks Google for.
const DEFAULT_SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// How to reach the OpenID provider and who we are to it.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// The provider's issuer URL, where discovery starts (`GOOGLE_ISSUER_URL`;
    /// [`GOOGLE_ISSUER`](crate::GOOGLE_ISSUER) for Google in production).
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Bounds every HTTP call to the provider (connecting included).
    pub timeout: Duration,
    /// The scopes every authorization asks for; empty: `openid email profile`.
    /// `openid` is always asked for.
    pub scopes: Vec<String>,
}

/// Tokens from the token endpoint. `Debug` does not print them.
pub struct ProviderTokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// Unix seconds, from `expires_in`.
    pub expires_at: Option<i64>,
    /// The raw id_token, unverified until [`OidcClient::verify_id_token`] says so.
    pub id_token: Option<String>,
}

impl ProviderTokens {
    /// What a token endpoint answered, with the id_token when the answer had one.
    /// `now_secs`: the caller's clock (the crate never reads one).
    pub(crate) fn from_response(
        response: &impl TokenResponse,
        id_token: Option<String>,
        now_secs: i64,
    ) -> ProviderTokens {
        let expires_at = response
            .expires_in()
            .and_then(|d| i64::try_from(d.as_secs()).ok())
            .and_then(|secs| now_secs.checked_add(secs));
        ProviderTokens {
            access_token: SecretString::from(response.access_token().secret().clone()),
            refresh_token: response
                .refresh_token()
                .map(|t| SecretString::from(t.secret().clone())),
            expires_at,
            id_token,
        }
    }
}

impl fmt::Debug for ProviderTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderTokens")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// The id_token rides along in the token response; oauth2 knows only OAuth fields.
#[derive(Clone, Deserialize, Serialize)]
struct IdTokenField {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl fmt::Debug for IdTokenField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTokenField")
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl ExtraTokenFields for IdTokenField {}

type OidcTokenResponse = StandardTokenResponse<IdTokenField, BasicTokenType>;

type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    OidcTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

pub(crate) struct Inner {
    pub(crate) client_id: String,
    scopes: Vec<String>,
    pub(crate) endpoints: Endpoints,
    oauth: OAuthClient,
    http: reqwest::Client,
    pub(crate) jwks: Mutex<JwksCache>,
}

/// An OpenID Connect client bound to one discovered provider. Cheap to clone.
#[derive(Clone)]
pub struct OidcClient {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for OidcClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = &self.inner.endpoints;
        f.debug_struct("OidcClient")
            .field("issuer", &e.issuer)
            .field("client_id", &self.inner.client_id)
            .field("authorization_endpoint", &e.authorization.as_str())
            .field("token_endpoint", &e.token.as_str())
            .field("jwks_uri", &e.jwks.as_str())
            .field("userinfo_endpoint", &e.userinfo.as_ref().map(Url::as_str))
            .field("client_auth", &e.client_auth)
            .finish_non_exhaustive()
    }
}

impl OidcClient {
    /// Reads `{issuer_url}/.well-known/openid-configuration`.
    pub async fn discover(config: OidcConfig) -> Result<OidcClient, OAuthError> {
        let http = http_client(config.timeout)?;

        let endpoints = discover_endpoints(&http, &config.issuer_url).await?;

        let oauth = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_client_secret(ClientSecret::new(
                config.client_secret.expose_secret().to_owned(),
            ))
            .set_auth_uri(AuthUrl::from_url(endpoints.authorization.clone()))
            .set_token_uri(TokenUrl::from_url(endpoints.token.clone()))
            .set_auth_type(match endpoints.client_auth {
                ClientAuth::Basic => AuthType::BasicAuth,
                ClientAuth::Post => AuthType::RequestBody,
            });

        let base: Vec<&str> = if config.scopes.is_empty() {
            DEFAULT_SCOPES.to_vec()
        } else {
            config.scopes.iter().map(String::as_str).collect()
        };
        Ok(OidcClient {
            inner: Arc::new(Inner {
                scopes: merge_scopes(&["openid"], &base),
                client_id: config.client_id,
                endpoints,
                oauth,
                http,
                jwks: Mutex::new(JwksCache::default()),
            }),
        })
    }

    /// The issuer named by the discovery document.
    pub fn issuer(&self) -> &str {
        &self.inner.endpoints.issuer
    }

    /// The URL to send the browser to. `scopes` adds to the configured ones.
    pub fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        pkce_challenge: &str,
        scopes: &[String],
    ) -> String {
        let mut request = self
            .inner
            .oauth
            .authorize_url(|| CsrfToken::new(state.to_owned()));
        let configured: Vec<&str> = self.inner.scopes.iter().map(String::as_str).collect();
        for scope in merge_scopes(&configured, scopes) {
            request = request.add_scope(Scope::new(scope));
        }
        request = match RedirectUrl::new(redirect_uri.to_owned()) {
            Ok(url) => request.set_redirect_uri(Cow::Owned(url)),
            // Keeps the signature infallible: the provider refuses such a URI itself.
            Err(_) => request.add_extra_param("redirect_uri", redirect_uri),
        };
        // oauth2 only builds a challenge from a verifier it holds; ours is kept by the
        // caller between the two requests, so the challenge goes in as given.
        let (url, _state) = request
            .add_extra_param("nonce", nonce)
            .add_extra_param("code_challenge", pkce_challenge)
            .add_extra_param("code_challenge_method", "S256")
            .url();
        url.to_string()
    }

    /// Exchanges the authorization code at the token endpoint (`now_secs` dates the
    /// tokens' expiry).
    pub async fn exchange_code(
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
        let response = self
            .inner
            .oauth
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .set_redirect_uri(Cow::Owned(redirect))
            .request_async(&send)
            .await
            .map_err(|e| token_error(e, send.status.load(Ordering::Relaxed)))?;
        let id_token = response.extra_fields().id_token.clone();
        Ok(ProviderTokens::from_response(&response, id_token, now_secs))
    }

    /// Asks the userinfo endpoint who the access token belongs to.
    pub async fn userinfo(&self, access_token: &SecretString) -> Result<Identity, OAuthError> {
        let url = self
            .inner
            .endpoints
            .userinfo
            .as_ref()
            .ok_or_else(|| discovery("the provider publishes no userinfo_endpoint"))?;
        let (status, body) = self.get("userinfo", url, Some(access_token)).await?;
        if status.is_client_error() {
            return Err(OAuthError::Rejected(format!(
                "the userinfo endpoint answered HTTP {status}"
            )));
        }
        if !status.is_success() {
            return Err(OAuthError::Unavailable(format!(
                "the userinfo endpoint answered HTTP {status}"
            )));
        }
        let info: UserInfo = serde_json::from_slice(&body).map_err(|_| {
            OAuthError::Unavailable("the userinfo answer is not the expected JSON".into())
        })?;
        if info.sub.is_empty() {
            return Err(OAuthError::Unavailable(
                "the userinfo answer has an empty sub".into(),
            ));
        }
        Ok(Identity {
            subject: info.sub,
            email: info.email,
            email_verified: email_verified(info.email_verified.as_ref()),
        })
    }

    /// The whole callback: exchange, verify the id_token, and ask userinfo for the
    /// email if the id_token has none.
    pub async fn sign_in(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        nonce: &str,
        now_secs: i64,
    ) -> Result<(Identity, ProviderTokens), OAuthError> {
        let tokens = self
            .exchange_code(code, redirect_uri, pkce_verifier, now_secs)
            .await?;
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| invalid("the token response has no id_token"))?;
        let mut identity = self.verify_id_token(id_token, nonce, now_secs).await?;
        if identity.email.is_none() && self.inner.endpoints.userinfo.is_some() {
            let info = self.userinfo(&tokens.access_token).await?;
            // Without this, a token for one account could lend its email to another.
            if info.subject != identity.subject {
                return Err(invalid("userinfo names another subject than the id_token"));
            }
            identity.email = info.email;
            identity.email_verified = info.email_verified;
        }
        Ok((identity, tokens))
    }

    /// A GET to the provider (JSON expected), with the access token if given.
    pub(crate) async fn get(
        &self,
        what: &str,
        url: &Url,
        bearer: Option<&SecretString>,
    ) -> Result<(StatusCode, Vec<u8>), OAuthError> {
        let mut request = crate::traced::traced(self.inner.http.get(url.clone()))
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            request = request.bearer_auth(token.expose_secret());
        }
        let unavailable =
            |e: reqwest::Error| OAuthError::Unavailable(format!("{what}: {}", describe(&e)));
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let body = response.bytes().await.map_err(unavailable)?;
        Ok((status, body.to_vec()))
    }
}

impl OidcClient {
    /// Verifies an id_token's signature and claims (`id_token.rs`); `now_secs` is unix
    /// time.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        expected_nonce: &str,
        now_secs: i64,
    ) -> Result<Identity, OAuthError> {
        let endpoints = &self.inner.endpoints;
        let (alg, kid) = id_token::header(id_token, &endpoints.id_token_algs)?;
        let published = self.decoding_key(&kid, now_secs).await?;
        let expected = id_token::Expected {
            issuer: &endpoints.issuer,
            client_id: &self.inner.client_id,
            nonce: expected_nonce,
            now_secs,
        };
        id_token::verify(id_token, alg, &kid, &published, &expected)
    }

    /// The key named by `kid`, refetching the JWKS when the cache is stale or lacks it
    /// (and the refetch limit allows); `now` is unix time.
    async fn decoding_key(&self, kid: &str, now: i64) -> Result<PublishedKey, OAuthError> {
        let (cached, refetch) = self.jwks().lookup(kid, now);
        let unknown = || invalid("no key of the provider's JWKS has the token's kid");
        if !refetch {
            return cached.ok_or_else(unknown);
        }
        match self.fetch_jwks().await {
            Ok(keys) => self.jwks().replace(keys, now, kid).ok_or_else(unknown),
            // A stale key beats no sign-in while the provider hiccups.
            Err(e) => match cached {
                Some(key) => {
                    tracing::warn!(error = %e, "JWKS refresh failed; using the cached key");
                    Ok(key)
                }
                None => Err(e),
            },
        }
    }

    fn jwks(&self) -> MutexGuard<'_, JwksCache> {
        // The cache is always consistent between statements, so a panic elsewhere
        // while it was held leaves nothing to repair.
        self.inner
            .jwks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn fetch_jwks(&self) -> Result<HashMap<String, PublishedKey>, OAuthError> {
        let (status, body) = self.get("JWKS", &self.inner.endpoints.jwks, None).await?;
        if !status.is_success() {
            return Err(OAuthError::Unavailable(format!(
                "the JWKS endpoint answered HTTP {status}"
            )));
        }
        keys::parse(&body)
    }
}

/// The HTTP client of every call to a provider.
pub(crate) fn http_client(timeout: Duration) -> Result<reqwest::Client, OAuthError> {
    reqwest::Client::builder()
        // Following redirects would let the provider steer our requests elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("users-upstream/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            OAuthError::Unavailable(format!("cannot build the HTTP client: {}", describe(&e)))
        })
}

/// oauth2 folds every non-200 answer into one error type; the status is what tells
/// "the provider refused" (4xx) from "the provider is broken" (5xx), so it is kept.
///
/// A named type rather than a closure: a closure here makes rustc lose track of the
/// futures being `Send` ("implementation of `Send` is not general enough").
pub(crate) struct StatusRecorder<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) status: AtomicU16,
}

impl<'c> AsyncHttpClient<'c> for StatusRecorder<'_> {
    type Error = HttpClientError<reqwest::Error>;
    type Future =
        Pin<Box<dyn Future<Output = Result<HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, mut request: HttpRequest) -> Self::Future {
        for (name, value) in users_domain::trace_context::headers() {
            if let (Ok(name), Ok(value)) = (
                oauth2::http::HeaderName::try_from(name),
                oauth2::http::HeaderValue::try_from(value),
            ) {
                request.headers_mut().insert(name, value);
            }
        }
        Box::pin(async move {
            let response = AsyncHttpClient::call(self.http, request).await?;
            self.status
                .store(response.status().as_u16(), Ordering::Relaxed);
            Ok(response)
        })
    }
}

/// The scopes to ask for: the defaults first, then the extra ones, each once.
#[cfg(test)]
fn scope_list(extra: &[String]) -> Vec<String> {
    merge_scopes(&DEFAULT_SCOPES, extra)
}

/// `first`, then `extra` (each may hold several, space-separated), each scope once.
pub(crate) fn merge_scopes(first: &[&str], extra: &[impl AsRef<str>]) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    let all = first
        .iter()
        .flat_map(|s| s.split_whitespace())
        .chain(extra.iter().flat_map(|s| s.as_ref().split_whitespace()));
    for scope in all {
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    scopes
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    email: Option<String>,
    email_verified: Option<Value>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn scopes_always_include_openid_and_email_once() {
        assert_eq!(scope_list(&[]), ["openid", "email", "profile"]);
        let extra = [
            "email".to_owned(),
            "openid https://x/y".to_owned(),
            "a".into(),
        ];
        assert_eq!(
            scope_list(&extra),
            ["openid", "email", "profile", "https://x/y", "a"]
        );
    }

    #[test]
    fn configured_scopes_replace_the_defaults_but_keep_openid() {
        assert_eq!(
            merge_scopes(&["openid"], &["email", "offline_access groups"]),
            ["openid", "email", "offline_access", "groups"]
        );
        assert_eq!(merge_scopes(&["openid"], &["openid"]), ["openid"]);
    }

    #[test]
    fn provider_tokens_debug_hides_tokens() {
        let tokens = ProviderTokens {
            access_token: SecretString::from("access-secret"),
            refresh_token: Some(SecretString::from("refresh-secret")),
            expires_at: Some(5),
            id_token: Some("id-secret".into()),
        };
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("expires_at: Some(5)"));
    }
}
