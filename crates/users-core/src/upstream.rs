//! The identity providers a deployment signs users in with, by name: Google, any
//! number of OpenID Connect providers, GitHub. An OpenID provider's configuration is
//! discovered at start; one that cannot be reached then is retried in the background,
//! so it delays only its own routes (which answer 503 meanwhile). One whose discovery
//! document names another issuer stops the start: that is a configuration mistake, or
//! someone else answering for the provider.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::SecretString;
use users_upstream::{GithubClient, GithubConfig, OidcClient, OidcConfig, ProviderClient};
pub use users_upstream::{GITHUB_API_URL, GITHUB_URL};

/// Why the providers cannot start (`StartupError` says it to the operator).
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The provider's discovery document names another issuer than the configured one.
    #[error("provider {provider}: {message}")]
    WrongIssuer { provider: String, message: String },
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// What kind of provider, with what only that kind has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenID Connect: endpoints and keys discovered from the issuer.
    OpenId {
        /// What every authorization asks for; empty: `openid email profile`.
        scopes: Vec<String>,
    },
    /// GitHub (or GitHub Enterprise Server): OAuth 2.0 and the REST API.
    Github { api_url: String },
}

/// How to reach one provider and how to treat its users.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The name in routes: `/auth/<name>/authorize`.
    pub name: String,
    /// What identities are keyed on with the subject: `google`, `oidc:<name>`, `github`.
    pub key: String,
    /// Button text, and named in the 503 while discovery has not succeeded yet.
    pub label: String,
    pub kind: ProviderKind,
    /// The OpenID issuer, where discovery starts; for GitHub its web URL (`GITHUB_URL`),
    /// which is also what GitHub names as its OAuth issuer.
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Link a sign-in whose verified email matches an existing user to that user.
    pub associate_by_email: bool,
    pub timeout: Duration,
}

/// The identity key of the provider named `name` in routes: `google` and `github` are
/// themselves, every other name is an OpenID provider of `OIDC_PROVIDERS`. Route names
/// and keys map one to one, whether or not the provider is configured now.
pub fn key_of(name: &str) -> String {
    match name {
        "google" | "github" => name.to_owned(),
        other => format!("oidc:{other}"),
    }
}

/// The route name of an identity key (see [`key_of`]).
pub fn name_of(key: &str) -> &str {
    key.strip_prefix("oidc:").unwrap_or(key)
}

/// One configured provider and its client, once ready. Cheap to clone.
#[derive(Clone)]
pub struct Provider {
    pub settings: Arc<ProviderSettings>,
    client: Arc<RwLock<Option<ProviderClient>>>,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.settings.name)
            .field("issuer_url", &self.settings.issuer_url)
            .field("ready", &self.client().is_some())
            .finish()
    }
}

/// How a first attempt to get a provider ready ended.
enum Attempt {
    Ready,
    /// Unreachable, or a document we cannot use yet: retried in the background.
    Retry,
    /// The document names another issuer: the start stops.
    Refused(String),
}

impl Provider {
    pub fn new(settings: ProviderSettings) -> Provider {
        Provider {
            settings: Arc::new(settings),
            client: Arc::new(RwLock::new(None)),
        }
    }

    /// The client, once discovery succeeded.
    pub fn client(&self) -> Option<ProviderClient> {
        self.client.read().ok().and_then(|c| c.clone())
    }

    /// Tries discovery now; on failure keeps retrying in the background (2 s, 4 s, …
    /// up to a minute) until it succeeds or `stop` turns true. A provider whose
    /// document names another issuer is an error.
    pub async fn start_discovery(
        &self,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), DiscoveryError> {
        match self.attempt().await {
            Attempt::Ready => return Ok(()),
            Attempt::Refused(message) => {
                return Err(DiscoveryError::WrongIssuer {
                    provider: self.settings.name.clone(),
                    message,
                })
            }
            Attempt::Retry => {}
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(2);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
                match this.attempt().await {
                    Attempt::Ready => return,
                    // Reached only now, and answering for another issuer: the routes
                    // stay 503; the configuration (or the DNS) must be fixed.
                    Attempt::Refused(message) => tracing::error!(
                        provider = %this.settings.name, error = %message,
                        "discovery refused; this provider's routes answer 503"
                    ),
                    Attempt::Retry => {}
                }
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        });
        Ok(())
    }

    async fn attempt(&self) -> Attempt {
        let s = &self.settings;
        let made = match &s.kind {
            ProviderKind::OpenId { scopes } => OidcClient::discover(OidcConfig {
                issuer_url: s.issuer_url.clone(),
                client_id: s.client_id.clone(),
                client_secret: s.client_secret.clone(),
                timeout: s.timeout,
                scopes: scopes.clone(),
            })
            .await
            .map(ProviderClient::OpenId),
            ProviderKind::Github { api_url } => GithubClient::new(GithubConfig {
                web_url: s.issuer_url.clone(),
                api_url: api_url.clone(),
                client_id: s.client_id.clone(),
                client_secret: s.client_secret.clone(),
                timeout: s.timeout,
            })
            .map(ProviderClient::Github),
        };
        match made {
            Ok(client) => {
                if let Ok(mut slot) = self.client.write() {
                    *slot = Some(client);
                }
                tracing::info!(provider = %s.name, issuer = %s.issuer_url, "sign-in with {} ready", s.label);
                Attempt::Ready
            }
            Err(e) if e.is_wrong_issuer() => Attempt::Refused(e.to_string()),
            Err(e) => {
                tracing::warn!(provider = %s.name, issuer = %s.issuer_url, error = %e,
                    "discovery failed; this provider's routes answer 503 until it succeeds");
                Attempt::Retry
            }
        }
    }
}

/// Every configured provider, in the order of the configuration.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    all: Vec<Provider>,
}

impl Providers {
    pub fn new(settings: Vec<ProviderSettings>) -> Providers {
        Providers {
            all: settings.into_iter().map(Provider::new).collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.all.iter().find(|p| p.settings.name == name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.all.iter().map(|p| p.settings.name.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Provider> {
        self.all.iter()
    }

    /// Starts discovery of every provider, all at once; the first attempts are awaited
    /// so that a provider naming another issuer stops the start.
    pub async fn start_discovery(
        &self,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), DiscoveryError> {
        let mut attempts = tokio::task::JoinSet::new();
        for provider in &self.all {
            let (provider, stop) = (provider.clone(), stop.clone());
            attempts.spawn(async move { provider.start_discovery(stop).await });
        }
        let mut first_error = None;
        while let Some(done) = attempts.join_next().await {
            let result = done.map_err(|e| DiscoveryError::Task(e.to_string()))?;
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_names_map_one_to_one() {
        for (name, key) in [
            ("google", "google"),
            ("github", "github"),
            ("corp", "oidc:corp"),
            ("keycloak-1", "oidc:keycloak-1"),
        ] {
            assert_eq!(key_of(name), key);
            assert_eq!(name_of(key), name);
        }
    }
}
