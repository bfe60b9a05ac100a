//! The provider's tokens (docs/oauth-provider.md): access tokens per RFC 9068 (header
//! `typ: at+jwt`) and OpenID Connect ID tokens, signed by the key ring of the client's
//! algorithm (`KeyRings`), verifiable by anyone from the JWKS. The service's own
//! routes never accept them (`access.rs` refuses `typ: at+jwt`).

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use users_domain::Timestamp;

use super::TokenError;
use crate::keyring::KeyRings;
use crate::signing::SigningAlgorithm;

/// The `typ` of the provider's access tokens (RFC 9068 §2.1).
pub const AT_JWT: &str = "at+jwt";

/// Whether a JOSE `typ` is RFC 9068's (compared without case, with or without the
/// `application/` prefix).
pub fn is_access_token_typ(typ: Option<&str>) -> bool {
    typ.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        t == AT_JWT || t == "application/at+jwt"
    })
}

/// An access token of the provider.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProviderAccessClaims {
    pub iss: String,
    /// The user's id, or the client's for client credentials.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The grant's own session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

/// An ID token (OpenID Connect Core §2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub amr: Vec<String>,
    pub acr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

/// The longest token [`VerifiedTokens`] keeps (longer ones are verified each time).
const MAX_CACHED_TOKEN_LEN: usize = 4096;
/// How many checked tokens [`VerifiedTokens`] keeps.
const VERIFIED_CAPACITY: usize = 16_384;

/// The provider's access tokens whose signature, `typ` and `iss` were checked on this
/// replica, by the SHA-256 of the token (docs/oauth-provider.md): a resource server
/// introspects, and an app calls userinfo with, the same token again and again, and a
/// signature check costs more than the rest of the request. What is kept only replaces
/// the signature check: expiry is compared with `now` on every use, a key no longer
/// published stops its tokens at once, and whether the token is live (its grant, its
/// person, its revocation) is asked of the database every time.
#[derive(Default)]
pub struct VerifiedTokens {
    map: std::sync::Mutex<std::collections::HashMap<[u8; 32], Checked>>,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").finish_non_exhaustive()
    }
}

/// A token that was checked: what it says, and the key that signed it.
struct Checked {
    claims: ProviderAccessClaims,
    algorithm: SigningAlgorithm,
    kid: String,
}

fn digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl VerifiedTokens {
    fn get(&self, key: &[u8; 32]) -> Option<(ProviderAccessClaims, SigningAlgorithm, String)> {
        let map = self.map.lock().ok()?;
        map.get(key)
            .map(|c| (c.claims.clone(), c.algorithm, c.kid.clone()))
    }

    fn put(&self, key: [u8; 32], checked: Checked, now: Timestamp) {
        let Ok(mut map) = self.map.lock() else {
            return;
        };
        if map.len() >= VERIFIED_CAPACITY {
            map.retain(|_, c| c.claims.exp > now.secs());
            if map.len() >= VERIFIED_CAPACITY {
                map.clear();
            }
        }
        map.insert(key, checked);
    }
}

fn algorithm_of(alg: Algorithm) -> Option<SigningAlgorithm> {
    match alg {
        Algorithm::RS256 => Some(SigningAlgorithm::Rs256),
        Algorithm::ES256 => Some(SigningAlgorithm::Es256),
        Algorithm::EdDSA => Some(SigningAlgorithm::EdDsa),
        _ => None,
    }
}

impl KeyRings {
    /// Signs `claims` with the key of `algorithm` that signs at `now` (made first if the
    /// ring has none), with `typ`.
    pub async fn sign<T: Serialize>(
        &self,
        algorithm: SigningAlgorithm,
        typ: &str,
        claims: &T,
        now: Timestamp,
    ) -> Result<String, crate::Fault> {
        let ring = self
            .ring(algorithm)
            .ok_or_else(|| crate::Fault::internal("no key ring for the algorithm"))?;
        let key = match ring.signer(now) {
            Some(signer) => signer,
            None => {
                ring.ensure_key(now).await?;
                ring.signer(now)
                    .ok_or_else(|| crate::Fault::internal("no signing key is active"))?
            }
        };
        let mut header = Header::new(algorithm.jwt());
        header.kid = Some(key.kid.clone());
        header.typ = Some(typ.to_owned());
        key.sign_jwt(&header, claims)
            .map_err(crate::Fault::internal)
    }

    /// The ring and key that verify a token's header; `UnknownKey` when the kid is not
    /// (yet) known here.
    fn verifying_key(
        &self,
        header: &Header,
        now: Timestamp,
    ) -> Result<(Algorithm, jsonwebtoken::DecodingKey), TokenError> {
        let alg = algorithm_of(header.alg).ok_or(TokenError::Invalid)?;
        let ring = self.ring(alg).ok_or(TokenError::Invalid)?;
        let kid = header.kid.as_deref().ok_or(TokenError::Invalid)?;
        let key = ring.verifier(kid, now).ok_or(TokenError::UnknownKey)?;
        Ok((header.alg, key))
    }

    /// Reloads the ring a token's header names, when its kid is unknown (at most every
    /// few seconds, whatever kids arrive); whether a reload ran.
    pub async fn reload_for(&self, token: &str) -> Result<bool, crate::Fault> {
        let Some(ring) = jsonwebtoken::decode_header(token)
            .ok()
            .and_then(|h| algorithm_of(h.alg))
            .and_then(|alg| self.ring(alg))
        else {
            return Ok(false);
        };
        ring.reload_for_unknown_kid().await
    }

    /// Checks a provider access token: `typ: at+jwt`, a published key, `iss`, `exp`. A
    /// token checked before on this replica is found by its hash and not verified
    /// again, while its key is published (see [`VerifiedTokens`]).
    pub fn decode_provider_access(
        &self,
        verified: &VerifiedTokens,
        token: &str,
        issuer: &str,
        now: Timestamp,
    ) -> Result<ProviderAccessClaims, TokenError> {
        let hash = digest(token);
        if let Some((claims, algorithm, kid)) = verified.get(&hash) {
            let published = self
                .ring(algorithm)
                .is_some_and(|ring| ring.is_published(&kid, now));
            if published && claims.iss == issuer {
                if now.secs() >= claims.exp {
                    return Err(TokenError::Expired);
                }
                return Ok(claims);
            }
        }
        self.verify_provider_access(verified, token, issuer, now, hash)
    }

    /// [`Self::decode_provider_access`] without the kept checks; a token that passes is
    /// kept.
    fn verify_provider_access(
        &self,
        verified: &VerifiedTokens,
        token: &str,
        issuer: &str,
        now: Timestamp,
        hash: [u8; 32],
    ) -> Result<ProviderAccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if !is_access_token_typ(header.typ.as_deref()) {
            return Err(TokenError::Invalid);
        }
        let (alg, key) = self.verifying_key(&header, now)?;
        let mut validation = Validation::new(alg);
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.validate_exp = false; // against `now` below
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<ProviderAccessClaims>(token, &key, &validation)
            .map_err(|_| TokenError::Invalid)?;
        if now.secs() >= data.claims.exp {
            return Err(TokenError::Expired);
        }
        if let (Some(algorithm), Some(kid)) = (algorithm_of(alg), header.kid) {
            let checked = Checked {
                claims: data.claims.clone(),
                algorithm,
                kid,
            };
            // a token of an ordinary size only: the entries stay small however long a
            // `resource` (its `aud`) a person asked for
            if token.len() <= MAX_CACHED_TOKEN_LEN {
                verified.put(hash, checked, now);
            }
        }
        Ok(data.claims)
    }

    /// An `id_token_hint` (RP-Initiated Logout): an ID token of ours, expired or not.
    pub fn decode_id_token_hint(
        &self,
        token: &str,
        issuer: &str,
        now: Timestamp,
    ) -> Result<IdClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if is_access_token_typ(header.typ.as_deref()) {
            return Err(TokenError::Invalid);
        }
        let (alg, key) = self.verifying_key(&header, now)?;
        let mut validation = Validation::new(alg);
        validation.validate_aud = false;
        validation.set_issuer(&[issuer]);
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        validation.validate_exp = false;
        jsonwebtoken::decode::<IdClaims>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|_| TokenError::Invalid)
    }
}
