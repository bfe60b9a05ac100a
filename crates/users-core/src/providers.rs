//! The identity providers a deployment signs users in with, by name. Each provider's
//! OpenID configuration is discovered in the background, so a provider that is
//! unreachable at start delays only its own routes (which answer 503 meanwhile).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::SecretString;
use users_oauth::{OidcClient, OidcConfig};

/// How to reach one OpenID provider and how to treat its users.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The name in routes: `/auth/<name>/authorize`.
    pub name: String,
    /// What identities are keyed on with the subject: `google`, `oidc:<name>`.
    pub key: String,
    /// Shown in the 503 while discovery has not succeeded yet ("Google").
    pub label: String,
    pub issuer_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Link a sign-in whose verified email matches an existing user to that user.
    pub associate_by_email: bool,
    pub timeout: Duration,
}

/// One configured provider and its client, once discovered. Cheap to clone.
#[derive(Clone)]
pub struct Provider {
    pub settings: Arc<ProviderSettings>,
    client: Arc<RwLock<Option<OidcClient>>>,
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

impl Provider {
    pub fn new(settings: ProviderSettings) -> Provider {
        Provider {
            settings: Arc::new(settings),
            client: Arc::new(RwLock::new(None)),
        }
    }

    /// The client, once discovery succeeded.
    pub fn client(&self) -> Option<OidcClient> {
        self.client.read().ok().and_then(|c| c.clone())
    }

    fn config(&self) -> OidcConfig {
        OidcConfig {
            issuer_url: self.settings.issuer_url.clone(),
            client_id: self.settings.client_id.clone(),
            client_secret: self.settings.client_secret.clone(),
            timeout: self.settings.timeout,
        }
    }

    /// Tries discovery now; on failure keeps retrying in the background (2 s, 4 s, …
    /// up to a minute) until it succeeds or `stop` turns true.
    pub async fn start_discovery(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.discover_once().await {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_secs(2);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = stop.changed() => return,
                }
                if this.discover_once().await {
                    return;
                }
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        });
    }

    async fn discover_once(&self) -> bool {
        let s = &self.settings;
        match OidcClient::discover(self.config()).await {
            Ok(client) => {
                if let Ok(mut slot) = self.client.write() {
                    *slot = Some(client);
                }
                tracing::info!(provider = %s.name, issuer = %s.issuer_url, "sign-in with {} ready", s.label);
                true
            }
            Err(e) => {
                tracing::warn!(provider = %s.name, issuer = %s.issuer_url, error = %e,
                    "discovery failed; this provider's routes answer 503 until it succeeds");
                false
            }
        }
    }
}

/// Every configured provider, by route name.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    by_name: BTreeMap<String, Provider>,
}

impl Providers {
    pub fn new(settings: Vec<ProviderSettings>) -> Providers {
        Providers {
            by_name: settings
                .into_iter()
                .map(|s| (s.name.clone(), Provider::new(s)))
                .collect(),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Provider> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// Starts discovery of every provider.
    pub async fn start_discovery(&self, stop: tokio::sync::watch::Receiver<bool>) {
        for provider in self.by_name.values() {
            provider.start_discovery(stop.clone()).await;
        }
    }
}
