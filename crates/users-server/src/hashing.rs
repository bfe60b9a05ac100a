//! Password hashing: argon2id with the configured parameters for new hashes; argon2
//! (any variant/parameters) and bcrypt hashes made by fastapi-users verify and are
//! flagged for re-hashing. Hashing is CPU- and memory-heavy: it runs on the blocking
//! pool, never on the async executor, at most one hash per core at a time.

use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

use crate::settings::Argon2Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Invalid,
    Valid { needs_rehash: bool },
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("the hashing task was cancelled")]
    Cancelled,
}

#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// A hash of a random password with the current parameters: verified against when
    /// the email is unknown, so such a login costs what a real one costs.
    dummy_hash: String,
    permits: Semaphore,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    pub fn new(settings: Argon2Settings) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError::Params(e.to_string()))?;
        let dummy_hash = hash_with(&params, &crate::tokens::random_token(24))?;
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Ok(PasswordHasher {
            inner: Arc::new(Inner {
                params,
                dummy_hash,
                permits: Semaphore::new(cores),
            }),
        })
    }

    /// Hashes on the blocking pool with the current parameters.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let this = self.clone();
        self.run(move || hash_with(&this.inner.params, password.expose_secret()))
            .await?
    }

    /// Verifies on the blocking pool. `None` as the stored hash (unknown user) verifies
    /// against the dummy hash and always answers `Invalid`, at the same cost.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let this = self.clone();
        self.run(move || match stored {
            Some(hash) => this.verify_now(password.expose_secret(), &hash),
            None => {
                let _ = this.verify_now(password.expose_secret(), &this.inner.dummy_hash);
                Verification::Invalid
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let _permit = self
            .inner
            .permits
            .acquire()
            .await
            .map_err(|_| HashError::Cancelled)?;
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(f))
            .await
            .map_err(|_| HashError::Cancelled)
    }

    /// Synchronous verification (for the CLI and tests).
    pub fn verify_now(&self, password: &str, stored: &str) -> Verification {
        if stored.starts_with("$argon2") {
            let Ok(parsed) = PasswordHash::new(stored) else {
                return Verification::Invalid;
            };
            // Argon2::default() takes algorithm, version and parameters from the hash.
            if Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_err()
            {
                return Verification::Invalid;
            }
            Verification::Valid {
                needs_rehash: self.argon2_outdated(&parsed),
            }
        } else if stored.starts_with("$2") {
            match bcrypt::verify(password, stored) {
                Ok(true) => Verification::Valid { needs_rehash: true },
                _ => Verification::Invalid,
            }
        } else {
            // e.g. the unusable password of an account created through Google
            Verification::Invalid
        }
    }

    fn argon2_outdated(&self, parsed: &PasswordHash<'_>) -> bool {
        if parsed.algorithm != Algorithm::Argon2id.ident()
            || parsed.version != Some(Version::V0x13.into())
        {
            return true;
        }
        match Params::try_from(parsed) {
            Ok(p) => {
                let cur = &self.inner.params;
                p.m_cost() != cur.m_cost()
                    || p.t_cost() != cur.t_cost()
                    || p.p_cost() != cur.p_cost()
            }
            Err(_) => true,
        }
    }

    pub fn hash_now(&self, password: &str) -> Result<String, HashError> {
        hash_with(&self.inner.params, password)
    }
}

fn hash_with(params: &Params, password: &str) -> Result<String, HashError> {
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = SaltString::generate(&mut OsRng);
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| HashError::Hash(e.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn small() -> PasswordHasher {
        PasswordHasher::new(Argon2Settings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn current_hashes_verify_without_rehash() {
        let h = small();
        let hash = h.hash_now("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"));
        assert_eq!(
            h.verify_now("correct horse battery", &hash),
            Verification::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(h.verify_now("wrong", &hash), Verification::Invalid);
    }

    #[test]
    fn other_parameters_and_bcrypt_verify_and_need_rehash() {
        let h = small();
        let other = PasswordHasher::new(Argon2Settings {
            memory_kib: 2048,
            iterations: 2,
            parallelism: 2,
        })
        .unwrap();
        let hash = other.hash_now("pw-of-another-era").unwrap();
        assert_eq!(
            h.verify_now("pw-of-another-era", &hash),
            Verification::Valid { needs_rehash: true }
        );
        let bc = bcrypt::hash("legacy password", 4).unwrap();
        assert_eq!(
            h.verify_now("legacy password", &bc),
            Verification::Valid { needs_rehash: true }
        );
        assert_eq!(h.verify_now("legacy passwore", &bc), Verification::Invalid);
        assert_eq!(h.verify_now("x", "!unusable"), Verification::Invalid);
        assert_eq!(
            h.verify_now("x", "$argon2id$garbage"),
            Verification::Invalid
        );
    }
}
