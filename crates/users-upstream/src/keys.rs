//! The provider's signing keys (the client fetches them): the JWKS is fetched on first use, kept for at most
//! an hour, refetched at most once a minute when a token names an unknown `kid`, and
//! looked up by `kid`. RSA keys (for RS256 and PS256) and P-256 keys (ES256) are kept;
//! encryption keys and keys of other kinds are skipped.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use serde_json::Value;

use crate::discovery::{alg_name, SUPPORTED_ALGORITHMS};
use crate::error::OAuthError;

/// An unknown `kid` may be a key rotation, so it triggers a JWKS refetch; anyone can
/// mint tokens with made-up kids, so refetches are limited to one a minute.
const JWKS_REFETCH_INTERVAL_SECS: i64 = 60;

/// Keys the provider withdrew should not stay trusted forever.
const JWKS_MAX_AGE_SECS: i64 = 3600;

/// A key of the provider's JWKS.
#[derive(Clone)]
pub(crate) struct PublishedKey {
    pub(crate) key: DecodingKey,
    /// The JWK's `alg`, when it names one: tokens of another alg are refused.
    pub(crate) alg: Option<Algorithm>,
}

#[derive(Default)]
pub(crate) struct JwksCache {
    keys: HashMap<String, PublishedKey>,
    /// Unix seconds of the last successful fetch, on the callers' clock.
    fetched_at: Option<i64>,
}

impl JwksCache {
    fn may_refetch(&self, now: i64) -> bool {
        match self.fetched_at {
            None => true,
            // A clock that went backwards must not freeze the cache.
            Some(at) => now < at || now - at >= JWKS_REFETCH_INTERVAL_SECS,
        }
    }

    fn is_stale(&self, now: i64) -> bool {
        match self.fetched_at {
            None => true,
            Some(at) => now < at || now - at >= JWKS_MAX_AGE_SECS,
        }
    }

    /// The key named by `kid`, if cached, and whether the JWKS is to be fetched again
    /// first: when the cache is stale, or lacks the key and the refetch limit allows.
    pub(crate) fn lookup(&self, kid: &str, now: i64) -> (Option<PublishedKey>, bool) {
        let cached = self.keys.get(kid).cloned();
        let refetch = match cached {
            Some(_) => self.is_stale(now),
            None => self.may_refetch(now),
        };
        (cached, refetch)
    }

    /// Keeps `keys`, fetched at `now`, in place of the old ones; the key of `kid`.
    pub(crate) fn replace(
        &mut self,
        keys: HashMap<String, PublishedKey>,
        now: i64,
        kid: &str,
    ) -> Option<PublishedKey> {
        self.keys = keys;
        self.fetched_at = Some(now);
        self.keys.get(kid).cloned()
    }
}

/// The usable signing keys of a JWKS document, by kid.
pub(crate) fn parse(body: &[u8]) -> Result<HashMap<String, PublishedKey>, OAuthError> {
    let set: JwkSet = serde_json::from_slice(body)
        .map_err(|_| OAuthError::Unavailable("the JWKS is not the expected JSON".into()))?;
    let keys: HashMap<String, PublishedKey> = set
        .keys
        .into_iter()
        // Keys of other kinds may sit next to ours; they are not an error.
        .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
        .filter_map(Jwk::published)
        .collect();
    if keys.is_empty() {
        return Err(OAuthError::Unavailable(
            "the JWKS has no usable signing key".into(),
        ));
    }
    Ok(keys)
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Value>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl Jwk {
    /// The key, when it is a signing key of a kind we verify.
    fn published(self) -> Option<(String, PublishedKey)> {
        if self.key_use.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let alg = match self.alg.as_deref() {
            None => None,
            Some(name) => Some(
                SUPPORTED_ALGORITHMS
                    .into_iter()
                    .find(|a| alg_name(*a) == name)?,
            ),
        };
        let key = match (self.kty.as_str(), alg) {
            ("RSA", None | Some(Algorithm::RS256 | Algorithm::PS256)) => {
                DecodingKey::from_rsa_components(self.n.as_deref()?, self.e.as_deref()?).ok()?
            }
            ("EC", None | Some(Algorithm::ES256)) if self.crv.as_deref() == Some("P-256") => {
                DecodingKey::from_ec_components(self.x.as_deref()?, self.y.as_deref()?).ok()?
            }
            _ => return None,
        };
        Some((self.kid?, PublishedKey { key, alg }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn jwks_refetch_is_rate_limited() {
        let mut cache = JwksCache::default();
        assert!(cache.may_refetch(NOW), "an empty cache is always fetched");
        cache.fetched_at = Some(NOW);
        assert!(!cache.may_refetch(NOW));
        assert!(!cache.may_refetch(NOW + 59));
        assert!(cache.may_refetch(NOW + 60));
        assert!(cache.may_refetch(NOW - 1), "a clock that went back");
        assert!(!cache.is_stale(NOW + 3599));
        assert!(cache.is_stale(NOW + 3600));
    }

    fn published(jwk: Value) -> Option<PublishedKey> {
        serde_json::from_value::<Jwk>(jwk)
            .ok()
            .and_then(Jwk::published)
            .map(|(_, k)| k)
    }

    #[test]
    fn rsa_and_p256_signing_keys_are_kept_others_skipped() {
        use serde_json::json;
        let rsa = json!({"kty": "RSA", "kid": "r", "n": "sXch", "e": "AQAB"});
        assert!(published(rsa.clone()).is_some_and(|k| k.alg.is_none()));
        let mut ps = rsa.clone();
        ps["alg"] = json!("PS256");
        assert_eq!(published(ps).unwrap().alg, Some(Algorithm::PS256));
        let ec =
            json!({"kty": "EC", "kid": "e", "crv": "P-256", "x": "AQ", "y": "Ag", "alg": "ES256"});
        assert_eq!(published(ec.clone()).unwrap().alg, Some(Algorithm::ES256));
        let mut p384 = ec.clone();
        p384["crv"] = json!("P-384");
        p384["alg"] = json!("ES384");
        assert!(published(p384).is_none());
        let mut enc = rsa.clone();
        enc["use"] = json!("enc");
        assert!(published(enc).is_none());
        let mut rsa_as_ec = rsa.clone();
        rsa_as_ec["alg"] = json!("ES256");
        assert!(published(rsa_as_ec).is_none());
        let mut no_kid = rsa;
        no_kid.as_object_mut().unwrap().remove("kid");
        assert!(published(no_kid).is_none());
        let oct = json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256"});
        assert!(published(oct).is_none());
    }
}
