//! The provider's signing keys: the JWKS is fetched on first use, kept for at most
//! an hour, refetched at most once a minute when a token names an unknown `kid`, and
//! looked up by `kid`.

use std::collections::HashMap;
use std::sync::MutexGuard;

use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use serde_json::Value;

use crate::client::OidcClient;
use crate::error::{invalid, OAuthError};

/// An unknown `kid` may be a key rotation, so it triggers a JWKS refetch; anyone can
/// mint tokens with made-up kids, so refetches are limited to one a minute.
const JWKS_REFETCH_INTERVAL_SECS: i64 = 60;

/// Keys the provider withdrew should not stay trusted forever.
const JWKS_MAX_AGE_SECS: i64 = 3600;

#[derive(Default)]
pub(crate) struct JwksCache {
    keys: HashMap<String, DecodingKey>,
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
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Value>,
}

#[derive(Deserialize)]
struct RsaJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    key_use: Option<String>,
    n: String,
    e: String,
}

impl OidcClient {
    /// The key named by `kid`, refetching the JWKS when the cache is stale or lacks it
    /// (and the refetch limit allows); `now` is unix time.
    pub(crate) async fn decoding_key(
        &self,
        kid: &str,
        now: i64,
    ) -> Result<DecodingKey, OAuthError> {
        let (cached, refetch) = {
            let cache = self.jwks();
            let cached = cache.keys.get(kid).cloned();
            let refetch = match cached {
                Some(_) => cache.is_stale(now),
                None => cache.may_refetch(now),
            };
            (cached, refetch)
        };
        let unknown = || invalid("no key of the provider's JWKS has the token's kid");
        if !refetch {
            return cached.ok_or_else(unknown);
        }
        match self.fetch_jwks().await {
            Ok(keys) => {
                let mut cache = self.jwks();
                cache.keys = keys;
                cache.fetched_at = Some(now);
                cache.keys.get(kid).cloned().ok_or_else(unknown)
            }
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

    async fn fetch_jwks(&self) -> Result<HashMap<String, DecodingKey>, OAuthError> {
        let (status, body) = self.get("JWKS", &self.inner.endpoints.jwks, None).await?;
        if !status.is_success() {
            return Err(OAuthError::Unavailable(format!(
                "the JWKS endpoint answered HTTP {status}"
            )));
        }
        let set: JwkSet = serde_json::from_slice(&body)
            .map_err(|_| OAuthError::Unavailable("the JWKS is not the expected JSON".into()))?;
        let keys: HashMap<String, DecodingKey> = set
            .keys
            .into_iter()
            // Keys of other kinds may sit next to ours; they are not an error.
            .filter_map(|value| serde_json::from_value::<RsaJwk>(value).ok())
            .filter(|jwk| {
                jwk.kty == "RSA"
                    && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
                    && jwk.key_use.as_deref().is_none_or(|u| u == "sig")
            })
            .filter_map(|jwk| {
                let key = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).ok()?;
                Some((jwk.kid?, key))
            })
            .collect();
        if keys.is_empty() {
            return Err(OAuthError::Unavailable(
                "the JWKS has no usable RS256 key".into(),
            ));
        }
        Ok(keys)
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
}
