//! Password hashing: argon2id with the configured parameters for new hashes; argon2
//! (any variant/parameters) and bcrypt hashes made by fastapi-users verify and are
//! flagged for re-hashing. Hashing is CPU- and memory-heavy: it runs on the blocking
//! pool, never on the async executor, at most one hash per core at a time.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

/// The argon2id parameters of new hashes (`ARGON2_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// OWASP's first recommendation (and the RustCrypto crate's defaults).
    fn default() -> Self {
        Argon2Params {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    /// Whether these are below OWASP's minimum (worth a warning).
    pub fn below_owasp(&self) -> bool {
        let required_kib = match self.iterations {
            1 => 47_104,
            2 => 19_456,
            3 => 12_288,
            4 => 9_216,
            _ => 7_168,
        };
        self.memory_kib < required_kib
    }
}

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

/// Work for a hashing thread, given that thread's argon2 memory.
type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

/// Hashes and verifies on a dedicated pool of one thread per core. Each thread owns
/// the argon2 memory for the configured parameters and reuses it for every job:
/// allocating 19 MiB (or 64 MiB) per hash on whatever thread runs it made the
/// allocator keep gigabytes under load, and cost page faults on every hash.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    /// A hash of a random password with the current parameters: verified against when
    /// the email is unknown, so such a login costs what a real one costs.
    dummy_hash: String,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    pub fn new(settings: Argon2Params) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError::Params(e.to_string()))?;
        let mut memory = vec![Block::default(); params.block_count()];
        let dummy_hash = hash_with(
            &params,
            &users_domain::crypto::random_token(24),
            &mut memory,
        )?;
        drop(memory);
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            let blocks = params.block_count();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    let mut memory = vec![Block::default(); blocks];
                    loop {
                        // the lock is held only while waiting for the next job
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut memory),
                            Err(_) => return, // every PasswordHasher is gone
                        }
                    }
                })
                .map_err(|e| HashError::Hash(format!("cannot start a hashing thread: {e}")))?;
        }
        Ok(PasswordHasher {
            inner: Arc::new(Inner {
                params,
                dummy_hash,
                jobs: Mutex::new(tx),
            }),
        })
    }

    /// Hashes on the hashing pool with the current parameters.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        let params = self.inner.params.clone();
        self.run(move |memory| hash_with(&params, password.expose_secret(), memory))
            .await?
    }

    /// Verifies on the hashing pool. `None` as the stored hash (unknown user) verifies
    /// against the dummy hash and always answers `Invalid`, at the same cost.
    pub async fn verify(
        &self,
        password: SecretString,
        stored: Option<String>,
    ) -> Result<Verification, HashError> {
        let this = self.clone();
        self.run(move |memory| match stored {
            Some(hash) => this.verify_with(password.expose_secret(), &hash, memory),
            None => {
                this.spend_like_a_verification(password.expose_secret(), memory);
                Verification::Invalid
            }
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut [Block]) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |memory| {
            // the request went away while queued (client gone): don't burn a core on it
            if reply.is_closed() {
                return;
            }
            let _ = reply.send(span.in_scope(|| f(memory)));
        });
        self.inner
            .jobs
            .lock()
            .map_err(|_| HashError::Cancelled)?
            .send(job)
            .map_err(|_| HashError::Cancelled)?;
        answer.await.map_err(|_| HashError::Cancelled)
    }

    /// Synchronous verification (the CLI and tests), with memory of its own.
    pub fn verify_now(&self, password: &str, stored: &str) -> Verification {
        self.verify_with(password, stored, &mut [])
    }

    fn verify_with(&self, password: &str, stored: &str, memory: &mut [Block]) -> Verification {
        if stored.starts_with("$argon2") {
            let Ok(parsed) = PasswordHash::new(stored) else {
                self.spend_like_a_verification(password, memory);
                return Verification::Invalid;
            };
            if !verify_argon2(password, &parsed, memory) {
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
            // No password matches this (the unusable password of an account made through
            // a provider): the dummy hash is verified anyway, so that such an account
            // answers in the time an ordinary one does (docs/security.md).
            self.spend_like_a_verification(password, memory);
            Verification::Invalid
        }
    }

    /// Verifies against the dummy hash (made with the current parameters) and forgets
    /// the answer: the cost of a verification, for a login that has nothing to verify.
    fn spend_like_a_verification(&self, password: &str, memory: &mut [Block]) {
        if let Ok(parsed) = PasswordHash::new(&self.inner.dummy_hash) {
            let _ = verify_argon2(password, &parsed, memory);
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
        let mut memory = vec![Block::default(); self.inner.params.block_count()];
        hash_with(&self.inner.params, password, &mut memory)
    }
}

/// Whether a stored hash is in a format [`PasswordHasher`] verifies: an argon2 PHC
/// string (any variant, version and parameters) or a bcrypt `$2a$`/`$2b$`/`$2x$`/`$2y$`
/// hash. An import refuses any other (it could never verify).
pub fn is_supported_hash(stored: &str) -> bool {
    if stored.starts_with("$argon2") {
        PasswordHash::new(stored).is_ok_and(|p| {
            Algorithm::try_from(p.algorithm).is_ok()
                && Params::try_from(&p).is_ok()
                && p.salt.is_some()
                && p.hash.is_some()
        })
    } else {
        stored.starts_with("$2") && stored.parse::<bcrypt::HashParts>().is_ok()
    }
}

/// Borrows the first `needed` blocks of `memory`, or allocates when it is too small
/// (hashes made with other parameters, e.g. imported from fastapi-users).
fn with_blocks<T>(memory: &mut [Block], needed: usize, f: impl FnOnce(&mut [Block]) -> T) -> T {
    if memory.len() >= needed {
        f(&mut memory[..needed])
    } else {
        let mut own = vec![Block::default(); needed];
        f(&mut own)
    }
}

/// A new argon2id PHC string: `$argon2id$v=19$m=…,t=…,p=…$salt$hash`.
fn hash_with(params: &Params, password: &str, memory: &mut [Block]) -> Result<String, HashError> {
    let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; 32];
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    with_blocks(memory, params.block_count(), |blocks| {
        argon.hash_password_into_with_memory(password.as_bytes(), &salt, &mut out, blocks)
    })
    .map_err(|e| HashError::Hash(e.to_string()))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        b64.encode(salt),
        b64.encode(out)
    ))
}

/// Recomputes an argon2 hash (any variant, version and parameters the string names)
/// and compares it in constant time.
fn verify_argon2(password: &str, parsed: &PasswordHash<'_>, memory: &mut [Block]) -> bool {
    let (Ok(algorithm), Ok(params)) = (
        Algorithm::try_from(parsed.algorithm),
        Params::try_from(parsed),
    ) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from) {
        None => Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let expected = expected.as_bytes();
    let mut out = vec![0u8; expected.len()];
    let argon = Argon2::new(algorithm, version, params.clone());
    let computed = with_blocks(memory, params.block_count(), |blocks| {
        argon.hash_password_into_with_memory(password.as_bytes(), salt, &mut out, blocks)
    });
    computed.is_ok()
        && out.len() == expected.len()
        && out
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn small() -> PasswordHasher {
        PasswordHasher::new(Argon2Params {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        })
        .unwrap()
    }

    #[test]
    fn supported_hash_formats_are_argon2_and_bcrypt_only() {
        let h = small();
        assert!(is_supported_hash(&h.hash_now("some passphrase").unwrap()));
        assert!(is_supported_hash(&bcrypt::hash("legacy", 4).unwrap()));
        // fastapi-users' (pwdlib) argon2id
        assert!(is_supported_hash(
            "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$qxPC4ArIfkEMgrHIsM8xRL+GKFSNB84hMi9p3YUf0y0"
        ));
        for bad in [
            "md5$abc$def",
            "hunter2",
            "",
            "$argon2id$garbage",
            "$2b$12$short",
            "!unusable-abc",
            "$argon2xx$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$qxPC4ArIfkEMgrHIsM8xRL+GKFSNB84hMi9p3YUf0y0",
        ] {
            assert!(!is_supported_hash(bad), "{bad}");
        }
    }

    #[test]
    fn our_phc_strings_verify_with_the_reference_implementation() {
        use argon2::password_hash::PasswordVerifier;
        let h = small();
        let hash = h.hash_now("cross-checked passphrase").unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"cross-checked passphrase", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"another one", &parsed)
            .is_err());
    }

    #[tokio::test]
    async fn the_pool_hashes_and_verifies_concurrently() {
        let h = small();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let h = h.clone();
            tasks.push(tokio::spawn(async move {
                let pw = format!("password number {i}");
                let hash = h.hash(SecretString::from(pw.clone())).await.unwrap();
                let ok = h
                    .verify(SecretString::from(pw), Some(hash.clone()))
                    .await
                    .unwrap();
                let bad = h
                    .verify(SecretString::from("nope".to_owned()), Some(hash))
                    .await
                    .unwrap();
                let unknown = h
                    .verify(SecretString::from("x".to_owned()), None)
                    .await
                    .unwrap();
                (ok, bad, unknown)
            }));
        }
        for t in tasks {
            let (ok, bad, unknown) = t.await.unwrap();
            assert_eq!(
                ok,
                Verification::Valid {
                    needs_rehash: false
                }
            );
            assert_eq!(bad, Verification::Invalid);
            assert_eq!(unknown, Verification::Invalid);
        }
    }

    #[tokio::test]
    async fn abandoned_jobs_do_not_break_the_pool() {
        let h = small();
        // more abandoned requests than threads, then a real one: it is not stuck behind them
        for _ in 0..64 {
            let h = h.clone();
            let task =
                tokio::spawn(
                    async move { h.hash(SecretString::from("abandoned".to_owned())).await },
                );
            task.abort();
        }
        let hash = h.hash(SecretString::from("kept".to_owned())).await.unwrap();
        assert_eq!(
            h.verify_now("kept", &hash),
            Verification::Valid {
                needs_rehash: false
            }
        );
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
        let other = PasswordHasher::new(Argon2Params {
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
