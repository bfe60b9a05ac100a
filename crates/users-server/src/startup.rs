//! Building the application: state (pool, migrations, secret), routes, listener.
//! `main` and the integration tests both go through [`Application::build`].

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{guard, web, App, HttpServer};
use tracing_actix_web::TracingLogger;
use users_core::Core;
use users_domain::Clock;

use crate::auth::{authenticated, no_api_key, not_by_api_key, superuser};
use crate::rate_limit::per_ip;
use crate::routes::{
    self, account, api_keys, audit, auth, identities, mail, mfa, oauth, ops, pages, passkeys,
    register, roles, sessions, upstream, users,
};
use crate::settings::Settings;
use crate::state::{AppState, SystemClock};
use crate::telemetry::RequestSpan;

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

/// Registers every route with what it needs before its handler runs, outermost first:
/// the per-IP budget, authentication, the superuser check, the target user. Those are
/// wrapped around the routes, not the resources, so a wrong method is a 405 before
/// anything is counted or checked. Anything else answers JSON 404/405.
pub fn configure(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| {
        web::resource(path.to_owned()).default_service(web::to(routes::method_not_allowed))
    };
    let provider = || guard::fn_guard(upstream::configured_provider);
    // the busiest route first: the router tries resources in order, and each dynamic
    // one it passes costs a regex match
    cfg.service(
        resource("/users/me")
            .route(web::get().to(users::me).wrap(from_fn(authenticated)))
            .route(
                web::patch()
                    .to(users::update_me)
                    .wrap(from_fn(authenticated)),
            ),
    )
    .service(resource("/healthz").route(web::get().to(ops::healthz)))
    .service(resource("/readyz").route(web::get().to(ops::readyz)))
    .service(resource("/.well-known/jwks.json").route(web::get().to(ops::jwks)))
    .service(resource("/metrics").route(web::get().to(ops::metrics)))
    .configure(crate::openapi::configure_docs)
    .service(
        resource("/auth/register")
            .route(web::post().to(register::register).wrap(per_ip("register"))),
    )
    .service(resource("/auth/jwt/login").route(web::post().to(auth::login).wrap(per_ip("login"))))
    .service(
        resource("/auth/jwt/logout").route(
            web::post()
                .to(auth::logout)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/jwt/refresh").route(web::post().to(auth::refresh).wrap(per_ip("refresh"))),
    )
    .service(
        resource("/auth/cookie/login")
            .route(web::post().to(auth::cookie_login).wrap(per_ip("login"))),
    )
    .service(
        resource("/auth/cookie/logout").route(
            web::post()
                .to(auth::cookie_logout)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/sessions")
            .route(web::get().to(sessions::list).wrap(from_fn(authenticated)))
            .route(
                web::delete()
                    .to(sessions::end_others)
                    .wrap(from_fn(no_api_key))
                    .wrap(from_fn(authenticated)),
            ),
    )
    .service(resource("/auth/mfa").route(web::get().to(mfa::status).wrap(from_fn(authenticated))))
    .service(
        resource("/auth/mfa/totp")
            .route(
                web::post()
                    .to(mfa::totp_enrol)
                    .wrap(from_fn(no_api_key))
                    .wrap(from_fn(authenticated)),
            )
            .route(
                web::delete()
                    .to(mfa::totp_disable)
                    .wrap(from_fn(no_api_key))
                    .wrap(from_fn(authenticated)),
            ),
    )
    .service(
        resource("/auth/mfa/totp/confirm").route(
            web::post()
                .to(mfa::totp_confirm)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/mfa/recovery-codes").route(
            web::post()
                .to(mfa::recovery_codes)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/mfa/verify").route(web::post().to(mfa::verify).wrap(per_ip("mfa-verify"))),
    )
    .service(
        resource("/auth/passkeys")
            .route(web::get().to(passkeys::list).wrap(from_fn(authenticated))),
    )
    .service(
        resource("/auth/passkeys/register/options").route(
            web::post()
                .to(passkeys::register_options)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/passkeys/register").route(
            web::post()
                .to(passkeys::register)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/passkeys/login/options").route(
            web::post()
                .to(passkeys::login_options)
                .wrap(per_ip("passkey-login")),
        ),
    )
    .service(
        resource("/auth/passkeys/login").route(
            web::post()
                .to(passkeys::login)
                .wrap(per_ip("passkey-login")),
        ),
    )
    .service(
        resource("/auth/passkeys/{id}").route(
            web::delete()
                .to(passkeys::remove)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/sessions/{id}").route(
            web::delete()
                .to(sessions::end_one)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/auth/forgot-password").route(
            web::post()
                .to(mail::forgot_password)
                .wrap(per_ip("forgot-password")),
        ),
    )
    .service(
        resource("/auth/reset-password")
            .route(web::post().to(mail::reset).wrap(per_ip("reset-password"))),
    )
    .service(
        resource("/auth/request-verify-token").route(
            web::post()
                .to(mail::request_verify_token)
                .wrap(per_ip("request-verify-token")),
        ),
    )
    .service(resource("/auth/verify").route(web::post().to(mail::verify).wrap(per_ip("verify"))))
    .service(
        resource("/reset-password")
            .route(web::get().to(pages::reset_page))
            .route(
                web::post()
                    .to(pages::reset_submit)
                    .wrap(per_ip("reset-password")),
            ),
    )
    .service(resource("/verify").route(web::get().to(pages::verify_page).wrap(per_ip("verify"))))
    .service(resource("/account").route(web::get().to(account::page)))
    .service(resource("/auth/providers").route(web::get().to(upstream::list_providers)))
    .service(
        resource("/auth/associate/{provider}/authorize")
            .guard(provider())
            .route(
                web::get()
                    .to(upstream::associate_authorize)
                    .wrap(from_fn(no_api_key))
                    .wrap(from_fn(authenticated))
                    .wrap(per_ip("oauth-authorize")),
            ),
    )
    .service(
        resource("/auth/associate/{provider}/callback")
            .guard(provider())
            .route(
                web::get()
                    .to(upstream::associate_callback)
                    .wrap(from_fn(no_api_key))
                    .wrap(from_fn(authenticated))
                    .wrap(per_ip("oauth-callback")),
            ),
    )
    .service(
        resource("/auth/{provider}/authorize")
            .guard(provider())
            // each call writes a state row: unlimited, a client could fill the table
            .route(
                web::get()
                    .to(upstream::authorize)
                    .wrap(per_ip("oauth-authorize")),
            ),
    )
    .service(
        resource("/auth/{provider}/callback")
            .guard(provider())
            .route(
                web::get()
                    .to(upstream::callback)
                    .wrap(per_ip("oauth-callback")),
            ),
    )
    .service(
        resource("/users/me/events").route(web::get().to(audit::mine).wrap(from_fn(authenticated))),
    )
    .service(
        resource("/audit").route(
            web::get()
                .to(audit::list)
                .wrap(from_fn(superuser))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users/me/identities").route(
            web::get()
                .to(identities::list_identities)
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users/me/identities/{provider}").route(
            web::delete()
                .to(identities::unlink_identity)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users/me/identities/{provider}/{subject}").route(
            web::delete()
                .to(identities::unlink_identity_subject)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users").route(
            web::get()
                .to(users::list_users)
                .wrap(from_fn(superuser))
                .wrap(from_fn(authenticated)),
        ),
    )
    // before `/users/{id}/…`, which "me" would match
    .service(
        resource("/users/me/roles").route(
            web::get()
                .to(roles::mine)
                .wrap(from_fn(not_by_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users/me/api-keys")
            .route(
                web::get()
                    .to(api_keys::list)
                    .wrap(from_fn(not_by_api_key))
                    .wrap(from_fn(authenticated)),
            )
            .route(
                web::post()
                    .to(api_keys::create)
                    .wrap(from_fn(no_api_key))
                    .wrap(from_fn(authenticated)),
            ),
    )
    .service(
        resource("/users/me/api-keys/{id}").route(
            web::delete()
                .to(api_keys::revoke)
                .wrap(from_fn(no_api_key))
                .wrap(from_fn(authenticated)),
        ),
    );
    let superusers = |route: actix_web::Route| {
        route
            .wrap(from_fn(superuser))
            .wrap(from_fn(not_by_api_key))
            .wrap(from_fn(authenticated))
    };
    cfg.service(
        resource("/roles")
            .route(superusers(web::get().to(roles::list)))
            .route(superusers(web::post().to(roles::create))),
    )
    .service(
        resource("/roles/{name}")
            .route(superusers(web::get().to(roles::get)))
            .route(superusers(web::patch().to(roles::update)))
            .route(superusers(web::delete().to(roles::delete))),
    );
    let admin = |route: actix_web::Route| {
        route
            .wrap(from_fn(users::target_user))
            .wrap(from_fn(superuser))
            .wrap(from_fn(authenticated))
    };
    // the superuser routes of Part three: no API key (docs/roles-and-api-keys.md)
    let part_three = |route: actix_web::Route| {
        route
            .wrap(from_fn(users::target_user))
            .wrap(from_fn(superuser))
            .wrap(from_fn(not_by_api_key))
            .wrap(from_fn(authenticated))
    };
    cfg.service(
        resource("/users/{id}")
            .route(admin(web::get().to(users::get_user)))
            .route(admin(web::patch().to(users::patch_user)))
            .route(admin(web::delete().to(users::delete_user))),
    )
    .service(
        resource("/users/{id}/sessions")
            .route(admin(web::get().to(sessions::list_of_user)))
            .route(admin(web::delete().to(sessions::end_all_of_user))),
    )
    .service(resource("/users/{id}/mfa").route(admin(web::delete().to(mfa::reset))))
    .service(
        resource("/users/{id}/roles")
            .route(part_three(web::get().to(roles::of_user)))
            .route(part_three(web::put().to(roles::set_for_user))),
    )
    .service(
        resource("/users/{id}/api-keys").route(part_three(web::get().to(api_keys::list_of_user))),
    )
    .service(
        resource("/users/{id}/api-keys/{key_id}")
            .route(part_three(web::delete().to(api_keys::revoke_of_user))),
    );
    cfg.configure(configure_provider);
}

/// The routes of the OAuth 2.1 / OpenID Connect provider (docs/oauth-provider.md).
/// Client authentication failures count against the per-IP budget inside the flow, so
/// the token endpoint's successful calls are not limited.
fn configure_provider(cfg: &mut web::ServiceConfig) {
    let resource = |path: &str| {
        web::resource(path.to_owned()).default_service(web::to(routes::method_not_allowed))
    };
    cfg.service(
        resource("/.well-known/openid-configuration").route(web::get().to(oauth::discovery)),
    )
    .service(
        resource("/.well-known/oauth-authorization-server").route(web::get().to(oauth::discovery)),
    )
    .service(resource("/login").route(web::get().to(account::login)))
    .service(
        resource("/oauth/clients")
            .route(
                web::post()
                    .to(oauth::register_client)
                    .wrap(per_ip("oauth-register")),
            )
            .route(web::get().to(oauth::list_clients)),
    )
    .service(
        resource("/oauth/clients/{client_id}")
            .route(web::get().to(oauth::get_client))
            .route(web::put().to(oauth::replace_client))
            .route(web::delete().to(oauth::delete_client)),
    )
    .service(
        resource("/oauth/clients/{client_id}/secret").route(web::post().to(oauth::rotate_secret)),
    )
    .service(
        resource("/oauth/clients/{client_id}/roles")
            .route(web::get().to(oauth::client_roles))
            .route(web::put().to(oauth::set_client_roles)),
    )
    .service(
        resource("/oauth/authorize").route(
            web::get()
                .to(oauth::authorize)
                .wrap(per_ip("oauth-provider-authorize")),
        ),
    )
    .service(
        resource("/oauth/consent")
            .route(web::get().to(oauth::consent_page))
            .route(web::post().to(oauth::consent_decide)),
    )
    .service(resource("/oauth/token").route(web::post().to(oauth::token_endpoint)))
    .service(
        resource("/oauth/userinfo")
            .route(web::get().to(oauth::userinfo))
            .route(web::post().to(oauth::userinfo)),
    )
    .service(resource("/oauth/introspect").route(web::post().to(oauth::introspect)))
    .service(resource("/oauth/revoke").route(web::post().to(oauth::revoke)))
    .service(resource("/oauth/logout").route(web::get().to(oauth::logout)))
    .service(
        resource("/users/me/grants").route(
            web::get()
                .to(oauth::my_grants)
                .wrap(from_fn(not_by_api_key))
                .wrap(from_fn(authenticated)),
        ),
    )
    .service(
        resource("/users/me/grants/{client_id}").route(
            web::delete()
                .to(oauth::revoke_grant)
                .wrap(from_fn(not_by_api_key))
                .wrap(from_fn(authenticated)),
        ),
    );
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
        let mailer = users_core::mail::Mailer::new(&users_core::mail::MailConfig {
            smtp_url: settings.mail.smtp_url.clone(),
            mail_dir: settings.mail.mail_dir.clone(),
            from: settings.mail.mail_from.clone(),
            timeout: std::time::Duration::from_secs(30),
        })?;
        if settings.ops.metrics_token.is_none() {
            tracing::warn!(
                "METRICS_TOKEN is not set: /metrics is public, and anyone who can reach the \
                 service reads its counters; set METRICS_TOKEN (or METRICS_TOKEN_FILE) to \
                 require `Authorization: Bearer <token>`"
            );
        }
        let state = build_state(settings, clock.clone()).await?;
        // Providers are discovered before the port opens: one whose document names
        // another issuer stops the start; one that cannot be reached does not.
        let (stop_worker, stopped) = tokio::sync::watch::channel(false);
        state
            .core
            .start_providers(stopped.clone())
            .await
            .map_err(StartupError::from_core)?;
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
            let origins = &data.settings.http.cors_allowed_origins;
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
                .wrap(from_fn(crate::shutdown::close_while_draining))
                .wrap(TracingLogger::<RequestSpan>::new())
                .wrap(from_fn(crate::telemetry::observe))
                .app_data(data.clone())
                .configure(configure)
                .default_service(web::to(routes::not_found))
        })
        // signals are the application's: see `run_until_terminated`
        .disable_signals()
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
