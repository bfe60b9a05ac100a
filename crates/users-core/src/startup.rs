//! Building the [`Core`]: the database (with its migrations), the JWT secret every
//! replica shares, the password hasher. Blocking work runs on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use users_db::{Database, DatabaseUrl, DbError, PoolOptions};
use users_domain::crypto::random_token;
use users_domain::{Clock, PasswordPolicy};
use users_mail::Mailer;

use crate::hashing::HashError;
use crate::outbox::Channel;
use crate::upstream::DiscoveryError;
use crate::worker::{OutboxWorker, WorkerDeps};
use crate::{
    Argon2Params, Core, CoreConfig, Counters, JwtKeys, OutboxSignal, PasswordHasher,
    ProviderSettings, Providers, Store,
};

/// What [`Core::build`] needs.
#[derive(Debug, Clone)]
pub struct CoreSetup {
    pub database_url: DatabaseUrl,
    pub pool: PoolOptions,
    /// `None`: generated once and kept in the database.
    pub jwt_secret: Option<SecretString>,
    pub argon2: Argon2Params,
    pub policy: PasswordPolicy,
    pub config: CoreConfig,
    pub providers: Vec<ProviderSettings>,
    /// `None`: passkeys are off (see the settings' warning).
    pub passkeys: Option<PasskeySettings>,
    /// What signs access tokens.
    pub jwt_algorithm: crate::signing::SigningAlgorithm,
    /// `JWT_PRIVATE_KEY`, read and checked for the algorithm.
    pub jwt_private_key: Option<crate::signing::SigningKey>,
    pub jwks_publish_ahead_seconds: i64,
    pub webhooks: crate::events::WebhookSettings,
}

/// The relying party passkeys are bound to.
#[derive(Debug, Clone)]
pub struct PasskeySettings {
    /// `WEBAUTHN_RP_ID`: a host name, the origin's or a parent of it.
    pub rp_id: String,
    /// `WEBAUTHN_ORIGIN`: where the browser runs the ceremonies.
    pub origin: String,
    /// Shown by the browser and the authenticator.
    pub rp_name: String,
}

impl PasskeySettings {
    /// The WebAuthn relying party; an error names what does not fit.
    pub fn relying_party(&self) -> Result<webauthn_rs::Webauthn, String> {
        let origin = url::Url::parse(&self.origin)
            .map_err(|e| format!("WEBAUTHN_ORIGIN: `{}` is not a URL: {e}", self.origin))?;
        webauthn_rs::WebauthnBuilder::new(&self.rp_id, &origin)
            .and_then(|b| b.rp_name(&self.rp_name).build())
            .map_err(|e| {
                format!(
                    "WEBAUTHN_RP_ID: `{}` does not fit WEBAUTHN_ORIGIN `{}` (the RP ID must be the origin's host or a parent domain of it): {e}",
                    self.rp_id, self.origin
                )
            })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("DATABASE_URL: {0}")]
    Database(#[from] DbError),
    #[error("ARGON2_*: {0}")]
    Hasher(#[from] HashError),
    #[error("start-up task failed: {0}")]
    Task(String),
    #[error("{0}")]
    Passkeys(String),
    /// The provider's discovery document names another issuer than the configured one.
    #[error("provider {provider}: {message}")]
    ProviderIssuer { provider: String, message: String },
}

impl Core {
    /// Opens the database (running migrations), settles the JWT secret and builds the
    /// password hasher.
    pub async fn build(
        setup: CoreSetup,
        now: users_domain::Timestamp,
    ) -> Result<Core, StartupError> {
        let (db, secret) = open(&setup).await?;
        warn_of_weak_settings(&setup, &secret);
        let params = setup.argon2;
        let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(params))
            .await
            .map_err(|e| StartupError::Task(e.to_string()))??;

        let webauthn = match &setup.passkeys {
            Some(p) => Some(Arc::new(p.relying_party().map_err(StartupError::Passkeys)?)),
            None => None,
        };
        let store = Store::new(db, setup.pool.max_connections, setup.pool.acquire_timeout);
        let sealer = crate::sealing::Sealer::new(&secret);
        let tokens = access_tokens(&setup, &secret, &store, &sealer, now).await?;
        let keys = crate::keyring::KeyRings::start(
            tokens.ring.clone(),
            &store,
            &sealer,
            key_lifetime(&setup.config),
            setup.jwks_publish_ahead_seconds,
        )
        .await
        .map_err(|e| StartupError::Task(format!("cannot load the provider's signing keys: {e}")))?;
        let counters = Arc::new(Counters::default());
        let lookups = crate::lookup::TokenLookups::new(
            store.clone(),
            (store.connections() / 2).clamp(1, MAX_LOOKUP_SLOTS),
            setup.config.liveness(now).idle_ms,
            counters.clone(),
        );
        // the provider's reads, coalesced as the token check (a connection at most each
        // while the token check may hold half the pool)
        let client_rows = crate::coalesce::Coalesced::new(store.clone(), 2, read_client_rows);
        let client_tokens = crate::coalesce::Coalesced::new(store.clone(), 1, read_client_tokens);
        // refreshes, the codes redeemed and the codes of concurrent authorizations: each
        // a batch committed while the one before commits
        let rotations = writing(
            &store,
            crate::rotations::MAX_ROTATIONS,
            crate::rotations::rotate_batch,
        );
        let redemptions = writing(&store, MAX_REDEMPTIONS, users_db::oauth::redeem_codes);
        let code_issues = writing(&store, MAX_REDEMPTIONS, users_db::oauth::insert_codes);
        Ok(Core {
            rotations,
            redemptions,
            code_issues,
            client_rows,
            client_tokens,
            verified_tokens: Default::default(),
            store,
            hasher,
            tokens,
            refresh_key: crate::tokens::RefreshKey::new(&secret),
            sealer,
            webauthn,
            policy: setup.policy,
            config: Arc::new(setup.config),
            counters,
            outbox: OutboxSignal::default(),
            providers: Providers::new(setup.providers),
            webhooks: Arc::new(setup.webhooks),
            lookups,
            keys: Arc::new(keys),
        })
    }

    /// Discovers every identity provider (each in parallel); one that cannot be reached
    /// is retried in the background until `stop` turns true. An error for a provider
    /// whose discovery document names another issuer: the start should stop.
    pub async fn start_providers(&self, stop: watch::Receiver<bool>) -> Result<(), StartupError> {
        self.providers
            .start_discovery(stop)
            .await
            .map_err(|e| match e {
                DiscoveryError::WrongIssuer { provider, message } => {
                    StartupError::ProviderIssuer { provider, message }
                }
                DiscoveryError::Task(e) => StartupError::Task(e),
            })
    }

    /// Starts what runs beside the requests until `stop` turns true: the signing keys'
    /// reload and the outbox workers (mail, and webhooks when configured). Returns the
    /// workers' task.
    pub async fn start_background(
        &self,
        mailer: Mailer,
        clock: Arc<dyn Clock>,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        // the provider's rings include the access tokens' one when it is asymmetric
        for ring in self.keys.all() {
            tokio::spawn(crate::keyring::reload_periodically(
                ring.clone(),
                stop.clone(),
            ));
        }
        let deps = Arc::new(WorkerDeps {
            core: self.clone(),
            mailer,
            clock,
        });
        let mut channels = vec![Channel::Mail];
        // without receivers nothing is queued for them; rows left from an earlier
        // configuration wait until webhooks are configured again
        if self.webhooks.enabled() {
            channels.push(Channel::Webhooks);
        }
        let mut tasks = Vec::new();
        for channel in channels {
            match OutboxWorker::new(deps.clone(), channel) {
                Ok(worker) => tasks.push(tokio::spawn(worker.run(stop.clone()))),
                Err(e) => tracing::error!(error = %e, "cannot start an outbox worker"),
            }
        }
        tokio::spawn(async move {
            for task in tasks {
                let _ = task.await;
            }
        })
    }
}

/// Opens the database (running migrations) and settles the JWT secret: the configured
/// one, or the one generated once and kept in the database.
async fn open(setup: &CoreSetup) -> Result<(Database, SecretString), StartupError> {
    let url = setup.database_url.clone();
    let pool_opts = setup.pool.clone();
    let configured_secret = setup.jwt_secret.clone();
    tokio::task::spawn_blocking(move || -> Result<(Database, SecretString), DbError> {
        let db = Database::connect_and_migrate(url, &pool_opts)?;
        let secret = match configured_secret {
            Some(s) => s,
            None => {
                let mut conn = db.get()?;
                let stored =
                    users_db::shared::get_or_insert(&mut conn, "jwt_secret", &random_token(48))?;
                SecretString::from(stored)
            }
        };
        Ok((db, secret))
    })
    .await
    .map_err(|e| StartupError::Task(e.to_string()))?
    .map_err(StartupError::from)
}

/// The keys of every token; with an asymmetric `JWT_ALGORITHM`, access tokens are
/// signed by the key ring, loaded (and its first key made) now.
async fn access_tokens(
    setup: &CoreSetup,
    secret: &SecretString,
    store: &Store,
    sealer: &crate::sealing::Sealer,
    now: users_domain::Timestamp,
) -> Result<JwtKeys, StartupError> {
    let tokens = JwtKeys::new(secret, setup.config.access_token_lifetime_seconds);
    if setup.jwt_algorithm == crate::signing::SigningAlgorithm::Hs256 {
        return Ok(tokens);
    }
    let source = match setup.jwt_private_key.clone() {
        Some(key) => crate::keyring::KeySource::Configured(Box::new(key)),
        None => crate::keyring::KeySource::Stored,
    };
    let ring = Arc::new(crate::keyring::KeyRing::new(
        setup.jwt_algorithm,
        source,
        store.clone(),
        sealer.clone(),
        key_lifetime(&setup.config),
        setup.jwks_publish_ahead_seconds,
    ));
    ring.start(now).await.map_err(|e| {
        StartupError::Task(format!("JWT_ALGORITHM: cannot load the signing keys: {e}"))
    })?;
    Ok(tokens.with_ring(ring, &setup.config.public_url))
}

/// How long a retired key stays published: the longest life of a token it signed.
fn key_lifetime(config: &CoreConfig) -> i64 {
    config
        .access_token_lifetime_seconds
        .max(config.oauth_access_token_lifetime_seconds)
}

/// Warns of settings that leave the service weaker than it should be.
fn warn_of_weak_settings(setup: &CoreSetup, secret: &SecretString) {
    if setup.jwt_secret.is_none() {
        tracing::warn!(
            "JWT_SECRET is not set: the generated secret is stored in plain text in the \
             database (table service_settings), so anyone who can read the database can \
             mint tokens for any user; set JWT_SECRET (or JWT_SECRET_FILE) to a long random \
             value kept outside the database"
        );
    } else if secret.expose_secret().len() < 32 {
        tracing::warn!("JWT_SECRET is shorter than 32 bytes; use a long random value");
    }
    if setup.argon2.below_owasp() {
        tracing::warn!(argon2 = ?setup.argon2, "the ARGON2_* parameters are below OWASP's minimum");
    }
}

/// A writing batch of at most `max` items: a transaction (and a connection) for each
/// quarter of the pool.
fn writing<K, V>(
    store: &Store,
    max: usize,
    batch: crate::coalesce::ReadBatch<K, V>,
) -> crate::coalesce::Coalesced<K, V>
where
    K: Clone + Send + 'static,
    V: Send + 'static,
{
    crate::coalesce::Coalesced::writing(store.clone(), (store.connections() / 4).max(1), max, batch)
}

/// Token checks that may run at once, each one statement for every request queued
/// behind it (at most four connections; the writing batches, refreshes, redemptions and
/// new codes, may each hold a quarter of the pool).
const MAX_LOOKUP_SLOTS: usize = 4;

/// The most code redemptions one transaction holds (their codes' rows locked), and
/// the most new codes one transaction stores.
const MAX_REDEMPTIONS: usize = 128;

/// How long the shutdown waits for the worker to finish a delivery in progress.
pub const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(10);

fn read_client_rows(
    c: &mut users_db::DbConnection,
    ids: &[String],
) -> Result<Vec<Option<users_db::oauth::ClientRow>>, users_db::DbError> {
    Ok(users_db::oauth::find_clients(c, ids)?)
}

fn read_client_tokens(
    c: &mut users_db::DbConnection,
    tokens: &[(String, String)],
) -> Result<Vec<bool>, users_db::DbError> {
    Ok(users_db::oauth::client_tokens_live(c, tokens)?)
}
