//! "Sign in with Google" wiring: the discovered client, loaded in the background so a
//! provider that is unreachable at start delays only the Google routes (503 meanwhile).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use users_oauth::{GoogleClient, GoogleConfig};

use crate::settings::GoogleSettings;

pub const PROVIDER: &str = "google";

#[derive(Clone)]
pub struct Google {
    client: Arc<RwLock<Option<GoogleClient>>>,
    pub settings: GoogleSettings,
}

impl std::fmt::Debug for Google {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Google")
            .field("issuer_url", &self.settings.issuer_url)
            .field("ready", &self.client().is_some())
            .finish()
    }
}

impl Google {
    pub fn new(settings: GoogleSettings) -> Self {
        Google {
            client: Arc::new(RwLock::new(None)),
            settings,
        }
    }

    /// The client, once discovery succeeded.
    pub fn client(&self) -> Option<GoogleClient> {
        self.client.read().ok().and_then(|c| c.clone())
    }

    fn config(&self) -> GoogleConfig {
        GoogleConfig {
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
        match GoogleClient::discover(self.config()).await {
            Ok(client) => {
                if let Ok(mut slot) = self.client.write() {
                    *slot = Some(client);
                }
                tracing::info!(issuer = %self.settings.issuer_url, "Google sign-in ready");
                true
            }
            Err(e) => {
                tracing::warn!(issuer = %self.settings.issuer_url, error = %e, "Google discovery failed; the Google routes answer 503 until it succeeds");
                false
            }
        }
    }
}
