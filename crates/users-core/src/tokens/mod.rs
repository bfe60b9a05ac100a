//! Every token the service makes and checks, one module per kind: access tokens
//! (`access`), password reset and email verification tokens (`mail`), the OAuth state
//! (`state`): JSON Web Tokens, HS256 with `JWT_SECRET`, in fastapi-users' formats
//! (docs/sessions-and-tokens.md, docs/password-reset-and-verification.md,
//! docs/providers.md); and the opaque refresh tokens (`refresh`). Their random bytes,
//! hashes and comparisons are `users_domain::crypto`'s.
//!
//! Every purpose has its own audience, so a token minted for one purpose is refused for
//! every other. Only HS256 is accepted: `none`, HS512, RS256, … all fail to decode.
//! Expiry is checked against a `now` passed in, so time is testable. This module holds
//! the keys and the encode/decode every kind of JWT shares.

mod access;
mod mail;
mod provider;
mod refresh;
mod state;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use users_domain::Timestamp;

pub use access::{AccessClaims, AUTH_AUDIENCE};
pub use mail::{ResetClaims, VerifyClaims, RESET_AUDIENCE, VERIFY_AUDIENCE};
pub use provider::{is_access_token_typ, IdClaims, ProviderAccessClaims, VerifiedTokens, AT_JWT};
pub use refresh::{RefreshClaim, RefreshKey};
pub use state::{StateClaims, STATE_AUDIENCE};

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, wrong algorithm, wrong audience, missing claims, not a JWT at all.
    #[error("the token cannot be decoded")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    /// Signed with a key this replica does not know (yet): reload the keys, then retry.
    #[error("the token names an unknown key")]
    UnknownKey,
}

type HmacSha256 = hmac::Hmac<Sha256>;

/// Signing and verification keys, and the access-token lifetime.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub access_lifetime_seconds: i64,
    /// An asymmetric `JWT_ALGORITHM`: access tokens are signed and checked with these
    /// keys (with `kid` and `iss`); every other token stays HS256.
    pub ring: Option<std::sync::Arc<crate::keyring::KeyRing>>,
    /// `iss` of asymmetric access tokens: `PUBLIC_URL`.
    issuer: String,
    /// HMAC-SHA256 keyed with `JWT_SECRET`, its key schedule computed once: the check of
    /// an HS256 access token clones it (see `access.rs`).
    hs256: HmacSha256,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("access_lifetime_seconds", &self.access_lifetime_seconds)
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

impl JwtKeys {
    pub fn new(secret: &SecretString, access_lifetime_seconds: i64) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        use hmac::Mac;
        JwtKeys {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            access_lifetime_seconds,
            ring: None,
            issuer: String::new(),
            hs256: <HmacSha256 as Mac>::new_from_slice(bytes)
                .unwrap_or_else(|_| unreachable!("HMAC accepts every key length")),
        }
    }

    /// Access tokens signed by `ring`'s keys, with `iss` = `issuer`.
    pub fn with_ring(
        mut self,
        ring: std::sync::Arc<crate::keyring::KeyRing>,
        issuer: &str,
    ) -> Self {
        self.ring = Some(ring);
        self.issuer = issuer.to_owned();
        self
    }

    pub fn encode<T: Serialize>(&self, claims: &T) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Decodes a token of `audience` (a string or an array holding it), checking
    /// signature, algorithm and audience first, then `exp` against `now`.
    pub fn decode<T: DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
        now: Timestamp,
    ) -> Result<T, TokenError> {
        #[derive(Deserialize)]
        struct Exp {
            exp: i64,
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.validate_exp = false; // checked below against `now_ms`
        validation.validate_nbf = true;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &validation)
            .map_err(|_| TokenError::Invalid)?;
        let exp: Exp =
            serde_json::from_value(data.claims.clone()).map_err(|_| TokenError::Invalid)?;
        if now.secs() >= exp.exp {
            return Err(TokenError::Expired);
        }
        serde_json::from_value(data.claims).map_err(|_| TokenError::Invalid)
    }
}
