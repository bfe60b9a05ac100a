//! The access-token keys of an asymmetric `JWT_ALGORITHM` (docs/sessions-and-tokens.md), as
//! every replica sees them: the key that signs now, and the keys published in the JWKS (the
//! next key ahead of time, so caches know it before it signs; each old key until the
//! last token it signed has expired). Keys live in the database; every replica reloads
//! them every 30 seconds, and at once when a token names a key it does not know.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::DecodingKey;
use secrecy::{ExposeSecret, SecretString};
use users_db::signing_keys::{self, SigningKeyRow};
use users_domain::Timestamp;

use crate::sealing::Sealer;
use crate::signing::{self, SigningAlgorithm, SigningKey};
use crate::{Fault, Store};

/// How often replicas look for keys made elsewhere (rotation by another process).
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);
/// An unknown `kid` reloads the keys at most this often (anyone can make up kids).
const UNKNOWN_KID_RELOAD: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct RingKey {
    key: Arc<SigningKey>,
    decoding: DecodingKey,
    /// When it starts signing (milliseconds).
    active_from: i64,
    /// When the next key takes over (it signs nothing after that).
    until: Option<i64>,
}

#[derive(Default)]
struct RingState {
    keys: Vec<RingKey>,
    /// The last reload an unknown kid caused.
    forced_at: Option<Instant>,
}

/// Where the keys come from.
#[derive(Clone)]
pub enum KeySource {
    /// `JWT_PRIVATE_KEY`: this key signs; rotation is the operator's (a new value).
    Configured(Box<SigningKey>),
    /// Generated once, kept sealed in the database, rotated by `rotate-signing-key`.
    Stored,
}

pub struct KeyRing {
    pub algorithm: SigningAlgorithm,
    source: KeySource,
    store: Store,
    sealer: Sealer,
    access_lifetime_ms: i64,
    publish_ahead_secs: i64,
    /// Keys that do not open (kept under an earlier `JWT_SECRET`) are skipped, and a new
    /// one made when none is left: the provider's own rings, whose keys nobody
    /// configured (docs/oauth-provider.md).
    tolerant: bool,
    state: RwLock<RingState>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn decoding(key: &SigningKey) -> Result<DecodingKey, Fault> {
    key.decoding_key().map_err(Fault::internal)
}

impl KeyRing {
    pub fn new(
        algorithm: SigningAlgorithm,
        source: KeySource,
        store: Store,
        sealer: Sealer,
        access_lifetime_secs: i64,
        publish_ahead_secs: i64,
    ) -> KeyRing {
        KeyRing {
            algorithm,
            source,
            store,
            sealer,
            access_lifetime_ms: access_lifetime_secs * 1000,
            publish_ahead_secs,
            tolerant: false,
            state: RwLock::new(RingState::default()),
        }
    }

    /// A ring whose keys that no longer open are skipped (see `tolerant`).
    pub fn tolerant(mut self) -> KeyRing {
        self.tolerant = true;
        self
    }

    pub fn publish_ahead_secs(&self) -> i64 {
        self.publish_ahead_secs
    }

    /// Makes sure a key exists (generating the first one), then loads them all.
    pub async fn start(&self, now: Timestamp) -> Result<(), Fault> {
        if let KeySource::Stored = self.source {
            let alg = self.algorithm.name();
            let existing = self
                .store
                .run(move |c| signing_keys::of_algorithm(c, alg))
                .await?;
            if existing.is_empty() {
                // a first key signs at once: no cache can have an older set
                let kid = self.insert_new_key(now, now).await?;
                tracing::info!(kid = %kid, algorithm = alg, "generated the first signing key");
            }
        }
        self.reload().await
    }

    /// Makes sure a key signs at `now`: loads the keys, and makes one when none does
    /// (the provider's rings make their first key when the first client is registered
    /// or the first token signed, so nothing is published before; a ring whose keys no
    /// longer open, under another `JWT_SECRET`, gets a new one).
    pub async fn ensure_key(&self, now: Timestamp) -> Result<(), Fault> {
        if self.signer(now).is_some() {
            return Ok(());
        }
        self.reload().await?;
        if self.signer(now).is_some() {
            return Ok(());
        }
        if let KeySource::Configured(_) = self.source {
            return Err(Fault::internal("the configured key does not sign"));
        }
        let kid = self.insert_new_key(now, now).await?;
        tracing::info!(kid = %kid, algorithm = self.algorithm.name(), "generated a signing key");
        self.reload().await
    }

    /// Whether any key is kept (published or not).
    pub fn has_keys(&self) -> bool {
        self.state
            .read()
            .map(|s| !s.keys.is_empty())
            .unwrap_or(false)
    }

    async fn insert_new_key(
        &self,
        now: Timestamp,
        active_from: Timestamp,
    ) -> Result<String, Fault> {
        let algorithm = self.algorithm;
        let pem = tokio::task::spawn_blocking(move || signing::generate_private_key(algorithm))
            .await
            .map_err(Fault::internal)?
            .map_err(Fault::internal)?;
        let key = signing::load_private_key(&pem, algorithm).map_err(Fault::internal)?;
        let row = SigningKeyRow {
            kid: key.kid.clone(),
            algorithm: algorithm.name().to_owned(),
            private_key_sealed: self
                .sealer
                .seal(pem.as_bytes())
                .ok_or_else(|| Fault::internal("cannot seal a signing key"))?,
            public_jwk: serde_json::to_string(&key.public_jwk).map_err(Fault::internal)?,
            created_at: now.millis(),
            active_from: active_from.millis(),
        };
        self.store
            .run(move |c| signing_keys::insert(c, &row))
            .await?;
        Ok(key.kid)
    }

    /// `users-server rotate-signing-key`: a new key, published now, signing from
    /// `JWKS_PUBLISH_AHEAD_SECONDS` later. Returns its kid and when it signs.
    pub async fn rotate(&self, now: Timestamp) -> Result<(String, Timestamp), Fault> {
        if let KeySource::Configured(_) = self.source {
            return Err(Fault::Internal(
                "JWT_PRIVATE_KEY is set: rotate by giving it a new key".into(),
            ));
        }
        let active_from = now.plus_secs(self.publish_ahead_secs);
        let kid = self.insert_new_key(now, active_from).await?;
        self.reload().await?;
        Ok((kid, active_from))
    }

    /// Reads the keys again from the database.
    pub async fn reload(&self) -> Result<(), Fault> {
        let keys = match &self.source {
            KeySource::Configured(key) => vec![RingKey {
                decoding: decoding(key)?,
                key: Arc::new((**key).clone()),
                active_from: i64::MIN,
                until: None,
            }],
            KeySource::Stored => {
                let alg = self.algorithm.name();
                let rows = self
                    .store
                    .run(move |c| signing_keys::of_algorithm(c, alg))
                    .await?;
                let mut keys = Vec::with_capacity(rows.len());
                let rows: Vec<SigningKeyRow> = if self.tolerant {
                    rows.into_iter()
                        .filter(|r| self.sealer.open(&r.private_key_sealed).is_some())
                        .collect()
                } else {
                    rows
                };
                for (i, row) in rows.iter().enumerate() {
                    let pem = self.sealer.open(&row.private_key_sealed).ok_or_else(|| {
                        Fault::internal("a signing key does not open (was JWT_SECRET changed?)")
                    })?;
                    let pem = String::from_utf8(pem).map_err(Fault::internal)?;
                    let key =
                        signing::load_private_key(&pem, self.algorithm).map_err(Fault::internal)?;
                    keys.push(RingKey {
                        decoding: decoding(&key)?,
                        key: Arc::new(key),
                        active_from: row.active_from,
                        until: rows.get(i + 1).map(|next| next.active_from),
                    });
                }
                keys
            }
        };
        if let Ok(mut state) = self.state.write() {
            state.keys = keys;
        }
        Ok(())
    }

    /// Reloads because a token named a key not seen; at most once every few seconds,
    /// however many made-up kids arrive.
    pub async fn reload_for_unknown_kid(&self) -> Result<bool, Fault> {
        let allowed = match self.state.write() {
            Ok(mut state) => {
                let recent = state
                    .forced_at
                    .is_some_and(|at| at.elapsed() < UNKNOWN_KID_RELOAD);
                if !recent {
                    state.forced_at = Some(Instant::now());
                }
                !recent
            }
            Err(_) => false,
        };
        if !allowed {
            return Ok(false);
        }
        self.reload().await?;
        Ok(true)
    }

    fn published_keys(&self, now: Timestamp) -> Vec<RingKey> {
        let now = now.millis();
        let lifetime = self.access_lifetime_ms;
        self.state
            .read()
            .map(|s| {
                s.keys
                    .iter()
                    .filter(|k| Self::published(k, now, lifetime))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The key that signs at `now`: the latest one active (shared, not copied: this
    /// runs for every token signed).
    pub fn signer(&self, now: Timestamp) -> Option<Arc<SigningKey>> {
        let now = now.millis();
        self.state.read().ok().and_then(|s| {
            s.keys
                .iter()
                .filter(|k| k.active_from <= now)
                .max_by_key(|k| k.active_from)
                .map(|k| k.key.clone())
        })
    }

    /// Whether the key of `kid` is published at `now` (see `published_keys`).
    fn published(k: &RingKey, now_ms: i64, lifetime_ms: i64) -> bool {
        k.until.is_none_or(|until| until + lifetime_ms > now_ms)
    }

    /// A published key by its kid, to verify with (only that key is copied).
    pub fn verifier(&self, kid: &str, now: Timestamp) -> Option<DecodingKey> {
        let (now, lifetime) = (now.millis(), self.access_lifetime_ms);
        self.state.read().ok().and_then(|s| {
            s.keys
                .iter()
                .find(|k| k.key.kid == kid && Self::published(k, now, lifetime))
                .map(|k| k.decoding.clone())
        })
    }

    /// Whether a key of this kid is published at `now` (a token it verified earlier
    /// still verifies).
    pub fn is_published(&self, kid: &str, now: Timestamp) -> bool {
        let (now, lifetime) = (now.millis(), self.access_lifetime_ms);
        self.state.read().is_ok_and(|s| {
            s.keys
                .iter()
                .any(|k| k.key.kid == kid && Self::published(k, now, lifetime))
        })
    }

    /// The JWKS: every key a live token may carry, and the next one.
    pub fn jwks(&self, now: Timestamp) -> Vec<Jwk> {
        self.published_keys(now)
            .into_iter()
            .map(|k| k.key.public_jwk.clone())
            .collect()
    }
}

/// `JWT_PRIVATE_KEY`, read for `algorithm`.
pub fn configured_key(
    pem: &SecretString,
    algorithm: SigningAlgorithm,
) -> Result<SigningKey, signing::KeyError> {
    signing::load_private_key(pem.expose_secret(), algorithm)
}

/// Keeps the keys fresh on this replica until `stop`.
pub async fn reload_periodically(ring: Arc<KeyRing>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RELOAD_EVERY) => {}
            _ = stop.changed() => return,
        }
        if let Err(e) = ring.reload().await {
            tracing::warn!(error = %e, "cannot reload the signing keys");
        }
    }
}

/// The algorithms the provider signs ID tokens and access tokens with
/// (docs/oauth-provider.md): RS256 by default, ES256 or EdDSA per client.
pub const PROVIDER_ALGORITHMS: [SigningAlgorithm; 3] = [
    SigningAlgorithm::Rs256,
    SigningAlgorithm::Es256,
    SigningAlgorithm::EdDsa,
];

/// A key ring per provider algorithm. The ring of an asymmetric `JWT_ALGORITHM` is
/// shared with the access tokens of the service itself (one JWKS, one rotation); the
/// others are generated once and kept sealed in the database like it.
#[derive(Debug, Default)]
pub struct KeyRings {
    rings: Vec<Arc<KeyRing>>,
}

impl KeyRings {
    /// Builds the rings (using `first_party` for its algorithm) and loads their keys; a
    /// ring without keys makes its first when it is first needed ([`KeyRing::ensure_key`]).
    pub async fn start(
        first_party: Option<Arc<KeyRing>>,
        store: &Store,
        sealer: &Sealer,
        lifetime_secs: i64,
        publish_ahead_secs: i64,
    ) -> Result<KeyRings, Fault> {
        let mut rings = Vec::new();
        for alg in PROVIDER_ALGORITHMS {
            if let Some(ring) = first_party.as_ref().filter(|r| r.algorithm == alg) {
                rings.push(ring.clone());
                continue;
            }
            let ring = Arc::new(
                KeyRing::new(
                    alg,
                    KeySource::Stored,
                    store.clone(),
                    sealer.clone(),
                    lifetime_secs,
                    publish_ahead_secs,
                )
                .tolerant(),
            );
            ring.reload().await?;
            rings.push(ring);
        }
        Ok(KeyRings { rings })
    }

    /// The ring of `algorithm`.
    pub fn ring(&self, algorithm: SigningAlgorithm) -> Option<&Arc<KeyRing>> {
        self.rings.iter().find(|r| r.algorithm == algorithm)
    }

    /// Every ring (to reload, to rotate).
    pub fn all(&self) -> &[Arc<KeyRing>] {
        &self.rings
    }

    /// Makes sure every ring has a key that signs (at the first client's registration,
    /// so relying parties find the keys before the first token).
    pub async fn ensure_all(&self, now: Timestamp) -> Result<(), Fault> {
        for ring in &self.rings {
            ring.ensure_key(now).await?;
        }
        Ok(())
    }

    /// Every published key of every ring.
    pub fn jwks(&self, now: Timestamp) -> Vec<Jwk> {
        self.rings.iter().flat_map(|r| r.jwks(now)).collect()
    }
}
