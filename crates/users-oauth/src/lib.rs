//! Sign-in through an OpenID Connect provider, as a full OpenID Connect client. Google
//! is one such provider; what is particular to it (the bare `accounts.google.com`
//! issuer its id_tokens may carry) is handled where id_tokens are verified.
//!
//! [`OidcClient::discover`] reads the provider's discovery document once; the client
//! then builds authorization URLs (state, nonce, PKCE S256), exchanges codes at the
//! token endpoint, and verifies the returned id_token (RS256 against the provider's
//! JWKS, `iss`, `aud`, `exp`, `iat`, `nonce`) before anyone is signed in. The issuer
//! is configurable, so the tests run the whole flow against a loopback provider.
//!
//! The modules: `discovery` (the discovery document and its checks), `keys` (the
//! JWKS cache), `id_token` (id_token verification), `client` (the client and the
//! flow), `error` (the error type).
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
mod id_token;
mod keys;

pub use client::{Identity, OidcClient, OidcConfig, ProviderTokens};
pub use error::OAuthError;
pub use id_token::GOOGLE_ISSUER;

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
