//! Building the [`Core`]: the database (with its migrations), the JWT secret every
//! replica shares, the password hasher. Blocking work runs on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::watch;
use users_db::{Database, DatabaseUrl, DbError, PoolOptions};
use users_domain::{Clock, PasswordPolicy};
use users_mail::Mailer;

use crate::hashing::HashError;
use crate::tokens::random_token;
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
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("DATABASE_URL: {0}")]
    Database(#[from] DbError),
    #[error("ARGON2_*: {0}")]
    Hasher(#[from] HashError),
    #[error("start-up task failed: {0}")]
    Task(String),
    /// The provider's discovery document names another issuer than the configured one.
    #[error("provider {provider}: {message}")]
    ProviderIssuer { provider: String, message: String },
}

impl Core {
    /// Opens the database (running migrations), settles the JWT secret and builds the
    /// password hasher.
    pub async fn build(setup: CoreSetup) -> Result<Core, StartupError> {
        let url = setup.database_url.clone();
        let pool_opts = setup.pool.clone();
        let configured_secret = setup.jwt_secret.clone();
        let (db, secret) =
            tokio::task::spawn_blocking(move || -> Result<(Database, SecretString), DbError> {
                let db = Database::connect_and_migrate(url, &pool_opts)?;
                let secret = match configured_secret {
                    Some(s) => s,
                    None => {
                        let mut conn = db.get()?;
                        let stored = users_db::shared::get_or_insert(
                            &mut conn,
                            "jwt_secret",
                            &random_token(48),
                        )?;
                        SecretString::from(stored)
                    }
                };
                Ok((db, secret))
            })
            .await
            .map_err(|e| StartupError::Task(e.to_string()))??;

        if setup.jwt_secret.is_none() {
            tracing::warn!(
                "JWT_SECRET is not set: using a secret generated once and kept in the database; \
                 set JWT_SECRET to share tokens with another service"
            );
        } else if secret.expose_secret().len() < 32 {
            tracing::warn!("JWT_SECRET is shorter than 32 bytes; use a long random value");
        }
        if setup.argon2.below_owasp() {
            tracing::warn!(argon2 = ?setup.argon2, "the ARGON2_* parameters are below OWASP's minimum");
        }
        let params = setup.argon2;
        let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(params))
            .await
            .map_err(|e| StartupError::Task(e.to_string()))??;

        Ok(Core {
            store: Store::new(db, setup.pool.max_connections, setup.pool.acquire_timeout),
            hasher,
            tokens: JwtKeys::new(&secret, setup.config.access_token_lifetime_seconds),
            refresh_key: crate::tokens::RefreshKey::new(&secret),
            policy: setup.policy,
            config: Arc::new(setup.config),
            counters: Arc::new(Counters::default()),
            outbox: OutboxSignal::default(),
            providers: Providers::new(setup.providers),
        })
    }

    /// Discovers every identity provider (each in parallel); one that cannot be reached
    /// is retried in the background until `stop` turns true. An error for a provider
    /// whose discovery document names another issuer: the start should stop.
    pub async fn start_providers(&self, stop: watch::Receiver<bool>) -> Result<(), StartupError> {
        self.providers.start_discovery(stop).await
    }

    /// Starts what runs beside the requests until `stop` turns true: the outbox worker.
    /// Returns its task.
    pub async fn start_background(
        &self,
        mailer: Mailer,
        clock: Arc<dyn Clock>,
        stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let worker = OutboxWorker::new(WorkerDeps {
            store: self.store.clone(),
            mailer,
            hasher: self.hasher.clone(),
            tokens: self.tokens.clone(),
            config: self.config.clone(),
            counters: self.counters.clone(),
            signal: self.outbox.clone(),
            clock,
        });
        tokio::spawn(worker.run(stop))
    }
}

/// How long the shutdown waits for the worker to finish a delivery in progress.
pub const WORKER_STOP_TIMEOUT: Duration = Duration::from_secs(10);
