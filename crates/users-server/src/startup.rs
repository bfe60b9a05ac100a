//! Building the application: state (pool, migrations, secret), routes, listener.
//! `main` and the integration tests both go through [`Application::build`].

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use secrecy::{ExposeSecret, SecretString};
use tracing_actix_web::TracingLogger;
use users_db::{Database, DbError};

use crate::hashing::{HashError, PasswordHasher};
use crate::outbox::{OutboxSignal, OutboxWorker};
use crate::routes::{self, auth, google, mail, ops, pages, register, users};
use crate::settings::Settings;
use crate::state::AppState;
use crate::telemetry::RequestSpan;
use crate::tokens::{random_token, JwtKeys};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("DATABASE_URL: {0}")]
    Database(#[from] DbError),
    #[error("BIND_ADDR: cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("ARGON2_*: {0}")]
    Hasher(#[from] HashError),
    #[error("SMTP_URL / MAIL_FROM / MAIL_DIR: {0}")]
    Mail(#[from] users_mail::MailError),
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// Registers every route, with JSON 404/405 answers for everything else.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| {
        web::resource(path.to_owned()).default_service(web::to(routes::method_not_allowed))
    };
    cfg.service(resource("/healthz").route(web::get().to(ops::healthz)))
        .service(resource("/readyz").route(web::get().to(ops::readyz)))
        .service(resource("/metrics").route(web::get().to(ops::metrics)))
        .configure(crate::openapi::configure_docs)
        .service(resource("/auth/register").route(web::post().to(register::register)))
        .service(resource("/auth/jwt/login").route(web::post().to(auth::login)))
        .service(resource("/auth/jwt/logout").route(web::post().to(auth::logout)))
        .service(resource("/auth/forgot-password").route(web::post().to(mail::forgot_password)))
        .service(resource("/auth/reset-password").route(web::post().to(mail::reset)))
        .service(
            resource("/auth/request-verify-token")
                .route(web::post().to(mail::request_verify_token)),
        )
        .service(resource("/auth/verify").route(web::post().to(mail::verify)))
        .service(
            resource("/reset-password")
                .route(web::get().to(pages::reset_page))
                .route(web::post().to(pages::reset_submit)),
        )
        .service(resource("/verify").route(web::get().to(pages::verify_page)))
        .service(resource("/auth/google/authorize").route(web::get().to(google::authorize)))
        .service(resource("/auth/google/callback").route(web::get().to(google::callback)))
        .service(
            resource("/auth/associate/google/authorize")
                .route(web::get().to(google::associate_authorize)),
        )
        .service(
            resource("/auth/associate/google/callback")
                .route(web::get().to(google::associate_callback)),
        )
        .service(
            resource("/users/me")
                .route(web::get().to(users::me))
                .route(web::patch().to(users::update_me)),
        )
        .service(resource("/users").route(web::get().to(users::list_users)))
        .service(
            resource("/users/{id}")
                .route(web::get().to(users::get_user))
                .route(web::patch().to(users::patch_user))
                .route(web::delete().to(users::delete_user)),
        );
}

/// Opens the database (running migrations), settles the JWT secret and builds the
/// password hasher. Blocking work runs on the blocking pool.
pub async fn build_state(settings: Settings) -> Result<AppState, StartupError> {
    let url = settings.database_url.clone();
    let pool_opts = settings.pool.clone();
    let configured_secret = settings.jwt_secret.clone();
    let (db, secret) =
        tokio::task::spawn_blocking(move || -> Result<(Database, SecretString), DbError> {
            let db = Database::connect_and_migrate(url, &pool_opts)?;
            let secret = match configured_secret {
                Some(s) => s,
                None => {
                    let mut conn = db.get()?;
                    let stored = users_db::settings::get_or_insert(
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

    if settings.jwt_secret.is_none() {
        tracing::warn!(
            "JWT_SECRET is not set: using a secret generated once and kept in the database; \
             set JWT_SECRET to share tokens with another service"
        );
    } else if secret.expose_secret().len() < 32 {
        tracing::warn!("JWT_SECRET is shorter than 32 bytes; use a long random value");
    }
    if settings.argon2_below_owasp() {
        tracing::warn!(?settings.argon2, "the ARGON2_* parameters are below OWASP's minimum");
    }
    let hasher_settings = settings.argon2;
    let hasher = tokio::task::spawn_blocking(move || PasswordHasher::new(hasher_settings))
        .await
        .map_err(|e| StartupError::Task(e.to_string()))??;

    let mailer = users_mail::Mailer::new(&users_mail::MailConfig {
        smtp_url: settings.smtp_url.clone(),
        mail_dir: settings.mail_dir.clone(),
        from: settings.mail_from.clone(),
        timeout: std::time::Duration::from_secs(30),
    })?;

    Ok(AppState {
        mailer,
        outbox_signal: OutboxSignal::default(),
        google: settings.google.clone().map(crate::google::Google::new),
        metrics: Arc::new(crate::metrics::Metrics::default()),
        db_permits: Arc::new(tokio::sync::Semaphore::new(
            settings.pool.max_connections.max(1) as usize,
        )),
        jwt: JwtKeys::new(&secret, settings.jwt_lifetime_seconds),
        policy: settings.password_policy,
        db,
        hasher,
        settings: Arc::new(settings),
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
        let addr = settings.bind_addr.clone();
        let workers = settings.workers;
        let state = build_state(settings).await?;
        let listener = TcpListener::bind(&addr).map_err(|source| StartupError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let local = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: addr.clone(),
            source,
        })?;
        let data = web::Data::new(state.clone());
        let mut server = HttpServer::new(move || {
            let origins = &data.settings.cors_allowed_origins;
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
            App::new()
                .wrap(actix_web::middleware::Condition::new(
                    !origins.is_empty(),
                    cors,
                ))
                .wrap(TracingLogger::<RequestSpan>::new())
                .wrap(actix_web::middleware::from_fn(crate::telemetry::observe))
                .app_data(data.clone())
                .configure(configure)
                .default_service(web::to(routes::not_found))
        })
        .shutdown_timeout(10)
        // slow clients: the request head must arrive within 10 s (bodies: see body.rs)
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
        let (stop_worker, stopped) = tokio::sync::watch::channel(false);
        if let Some(google) = &state.google {
            google.start_discovery(stopped.clone()).await;
        }

        let worker = tokio::spawn(OutboxWorker::new(state.clone()).run(stopped));
        tracing::info!(
            database = %state.db.url().redacted(),
            mail = %state.mailer.describe(),
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

    /// Serves until stopped (SIGTERM/SIGINT or the handle), then stops the outbox
    /// worker, letting a delivery in progress finish for a few seconds.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        let _ = self.stop_worker.send(true);
        if tokio::time::timeout(std::time::Duration::from_secs(10), self.worker)
            .await
            .is_err()
        {
            tracing::warn!("the mail worker did not stop in time; unsent mail stays in the outbox");
        }
        result
    }
}
