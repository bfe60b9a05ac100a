//! Building the application: state (pool, migrations, secret), routes, listener.
//! `main` and the integration tests both go through [`Application::build`]. The route
//! table is [`route_table`].

mod route_table;

pub use route_table::configure;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use users_core::Core;
use users_domain::Clock;

use crate::routes;
use crate::settings::Settings;
use crate::state::{AppState, SystemClock};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Core(#[from] users_core::StartupError),
    #[error("BIND_ADDR: cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("SMTP_URL / MAIL_FROM / MAIL_DIR: {0}")]
    Mail(#[from] users_core::mail::MailError),
    /// A provider's discovery document names another issuer.
    #[error("{var}: {message}")]
    ProviderIssuer { var: String, message: String },
}

impl StartupError {
    /// Core's error, with the variable at fault named where core knows only the provider.
    fn from_core(e: users_core::StartupError) -> StartupError {
        match e {
            users_core::StartupError::ProviderIssuer { provider, message } => {
                StartupError::ProviderIssuer {
                    var: crate::settings::issuer_variable(&provider),
                    message,
                }
            }
            other => StartupError::Core(other),
        }
    }
}

/// The state every handler sees: the flows' [`Core`] (database, migrations, secret,
/// hasher) and the request-side pieces.
pub async fn build_state(
    settings: Settings,
    clock: Arc<dyn Clock>,
) -> Result<AppState, StartupError> {
    let core = Core::build(settings.core_setup(), clock.now()).await?;
    Ok(AppState {
        core,
        settings: Arc::new(settings),
        clock,
        metrics: Arc::new(crate::metrics::Metrics::default()),
        draining: crate::state::Draining::default(),
    })
}

pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
    worker: tokio::task::JoinHandle<()>,
    stop_worker: tokio::sync::watch::Sender<bool>,
}

impl Application {
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// [`Application::build`] with another clock (tests move time forward).
    pub async fn build_with_clock(
        settings: Settings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, StartupError> {
        let addr = settings.http.bind_addr.clone();
        let workers = settings.http.workers;
        let mailer = mailer(&settings)?;
        warn_if_metrics_public(&settings);
        let state = build_state(settings, clock.clone()).await?;
        // Providers are discovered before the port opens: one whose document names
        // another issuer stops the start; one that cannot be reached does not.
        let (stop_worker, stopped) = tokio::sync::watch::channel(false);
        state
            .core
            .start_providers(stopped.clone())
            .await
            .map_err(StartupError::from_core)?;
        let (listener, local) = bind(&addr)?;
        let data = web::Data::new(state.clone());
        let mut server = HttpServer::new(move || {
            let origins = &data.settings.http.cors_allowed_origins;
            App::new()
                .wrap(actix_web::middleware::Condition::new(
                    !origins.is_empty(),
                    cors(origins),
                ))
                .wrap(from_fn(crate::shutdown::close_while_draining))
                .wrap(from_fn(crate::telemetry::observe))
                .app_data(data.clone())
                .configure(configure)
                .default_service(web::to(routes::not_found))
        })
        // signals are the application's: see `run_until_terminated`
        .disable_signals()
        .shutdown_timeout(10)
        // slow clients: the request head must arrive within 10 s (bodies: see extract/body.rs)
        .client_request_timeout(std::time::Duration::from_secs(10))
        .client_disconnect_timeout(std::time::Duration::from_secs(5));
        if let Some(n) = workers {
            server = server.workers(n);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                addr: addr.clone(),
                source,
            })?
            .run();
        let mail = mailer.describe();
        let worker = state.core.start_background(mailer, clock, stopped).await;
        tracing::info!(
            database = %state.core.store.database().url().redacted(),
            mail = %mail,
            "listening on http://{local}"
        );
        Ok(Application {
            port: local.port(),
            server,
            state,
            worker,
            stop_worker,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops the server (gracefully) when asked.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGTERM or SIGINT (see [`crate::shutdown`]): drains after SIGTERM,
    /// stops accepting connections, lets requests in flight finish (up to 10 s), then
    /// stops the outbox workers. The binary's way of running; `signals` is listened to
    /// from before [`Application::build`], so a signal that comes as soon as the port
    /// opens is not the default action's abrupt exit.
    pub async fn run_until_terminated(
        self,
        signals: crate::shutdown::Signals,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        let draining = self.state.draining.clone();
        let drain = self.state.settings.ops.shutdown_drain;
        let stopper = tokio::spawn(async move {
            let mut signals = signals;
            signals.wait_then_drain(draining, drain).await;
            tokio::select! {
                () = handle.stop(true) => {}
                _ = signals.next() => {
                    tracing::warn!("another signal: stopping without waiting for requests in flight");
                    handle.stop(false).await;
                }
            }
        });
        let result = self.run_until_stopped().await;
        stopper.abort();
        result
    }

    /// Serves until stopped through [`Application::handle`] (signals are not listened
    /// to: see [`Application::run_until_terminated`]), then stops the outbox workers,
    /// letting a delivery in progress finish for a few seconds.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.stop_worker.send(true);
        if tokio::time::timeout(users_core::startup::WORKER_STOP_TIMEOUT, self.worker)
            .await
            .is_err()
        {
            tracing::warn!("the mail worker did not stop in time; unsent mail stays in the outbox");
        }
        result
    }
}

/// The mailer of the settings: SMTP, or a folder of `.eml` files.
fn mailer(settings: &Settings) -> Result<users_core::mail::Mailer, StartupError> {
    Ok(users_core::mail::Mailer::new(
        &users_core::mail::MailConfig {
            smtp_url: settings.mail.smtp_url.clone(),
            mail_dir: settings.mail.mail_dir.clone(),
            from: settings.mail.mail_from.clone(),
            timeout: std::time::Duration::from_secs(30),
        },
    )?)
}

fn warn_if_metrics_public(settings: &Settings) {
    if settings.ops.metrics_token.is_none() {
        tracing::warn!(
            "METRICS_TOKEN is not set: /metrics is public, and anyone who can reach the \
             service reads its counters; set METRICS_TOKEN (or METRICS_TOKEN_FILE) to \
             require `Authorization: Bearer <token>`"
        );
    }
}

/// The listener on `addr`, and the address it got (the port, when `addr` asked for 0).
fn bind(addr: &str) -> Result<(TcpListener, std::net::SocketAddr), StartupError> {
    let error = |source| StartupError::Bind {
        addr: addr.to_owned(),
        source,
    };
    let listener = TcpListener::bind(addr).map_err(error)?;
    let local = listener.local_addr().map_err(error)?;
    Ok((listener, local))
}

/// CORS for the allowed origins (docs/configuration.md); used only when there are some.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allow_any_method()
        .allow_any_header()
        .expose_headers(["x-request-id", "retry-after"])
        .supports_credentials()
        .block_on_origin_mismatch(false)
        .max_age(3600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}
