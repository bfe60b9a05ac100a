//! Sign-in through an identity provider: any OpenID Connect provider, as a full OpenID
//! Connect client, and GitHub, as a plain OAuth 2.0 client with its REST API. Google is
//! one OpenID provider; what is particular to it (the bare `accounts.google.com` issuer
//! its id_tokens may carry) is handled where id_tokens are verified.
//!
//! [`OidcClient::discover`] reads the provider's discovery document once; the client
//! then builds authorization URLs (state, nonce, PKCE S256), exchanges codes at the
//! token endpoint, and verifies the returned id_token (RS256, ES256 or PS256 against
//! the provider's JWKS, `iss`, `aud`, `exp`, `iat`, `nonce`) before anyone is signed
//! in. [`GithubClient`] does the same dance without an id_token: state and PKCE, the
//! code exchange, then `GET /user` and `GET /user/emails`. [`ProviderClient`] is
//! either, behind one interface. Issuers and URLs are configurable, so the tests run
//! every flow against loopback providers.
//!
//! The modules: `discovery` (the discovery document and its checks), `keys` (the
//! JWKS cache), `id_token` (id_token verification), `identity` (what a provider says),
//! `client` (the OpenID client and its flow), `github` (the GitHub client), `error`
//! (the error type).
//!
//! Nothing here ever puts the client secret, an authorization code or a token into an
//! error message or a `Debug` output: errors end up in logs and HTTP answers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use oauth2::PkceCodeChallenge;
use rand::RngCore;

mod client;
mod discovery;
mod error;
mod github;
mod id_token;
mod identity;
mod keys;
mod traced;

pub use client::{OidcClient, OidcConfig, ProviderTokens};
pub use error::{DiscoveryProblem, OAuthError};
pub use github::{GithubClient, GithubConfig, GITHUB_API_URL, GITHUB_URL};
pub use id_token::GOOGLE_ISSUER;
pub use identity::Identity;

/// A client of either kind of provider, behind the one interface the sign-in flow
/// needs. Cheap to clone.
#[derive(Clone, Debug)]
pub enum ProviderClient {
    OpenId(OidcClient),
    Github(GithubClient),
}

impl ProviderClient {
    /// The URL to send the browser to. GitHub has no nonce; it is left out there.
    pub fn authorization_url(
        &self,
        redirect_uri: &str,
        state: &str,
        nonce: &str,
        pkce_challenge: &str,
        scopes: &[String],
    ) -> String {
        match self {
            ProviderClient::OpenId(c) => {
                c.authorization_url(redirect_uri, state, nonce, pkce_challenge, scopes)
            }
            ProviderClient::Github(c) => {
                c.authorization_url(redirect_uri, state, pkce_challenge, scopes)
            }
        }
    }

    /// The callback's exchange and identification; see [`OidcClient::sign_in`] and
    /// [`GithubClient::sign_in`].
    pub async fn sign_in(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        nonce: &str,
        now_secs: i64,
    ) -> Result<(Identity, ProviderTokens), OAuthError> {
        match self {
            ProviderClient::OpenId(c) => {
                c.sign_in(code, redirect_uri, pkce_verifier, nonce, now_secs)
                    .await
            }
            ProviderClient::Github(c) => {
                c.sign_in(code, redirect_uri, pkce_verifier, now_secs).await
            }
        }
    }
}

/// A fresh PKCE pair: (verifier, S256 challenge).
pub fn pkce_pair() -> (String, String) {
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    (verifier.secret().clone(), challenge.as_str().to_owned())
}

/// 32 random bytes, base64url (no padding).
pub fn random_nonce() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use oauth2::PkceCodeVerifier;

    #[test]
    fn pkce_and_nonce_shapes() {
        let (verifier, challenge) = pkce_pair();
        assert!(verifier.len() >= 43);
        let expected =
            PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(verifier.clone()));
        assert_eq!(challenge, expected.as_str());
        let nonce = random_nonce();
        assert_eq!(URL_SAFE_NO_PAD.decode(&nonce).unwrap().len(), 32);
        assert_ne!(nonce, random_nonce());
    }
}
