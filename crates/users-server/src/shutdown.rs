//! Leaving a load balancer without failing a request. On SIGTERM the process first
//! *drains* for `SHUTDOWN_DRAIN_SECONDS`: `/readyz` answers 503 at once, so the load
//! balancer's health checks take the replica out of rotation, while every request that
//! still arrives is served as usual, with `Connection: close` so that the client (or
//! the load balancer) opens its next connection elsewhere. Then it stops accepting
//! connections, lets the requests in flight finish, and stops the outbox workers.
//!
//! SIGINT (Ctrl-C at a terminal) skips the drain; a second signal during the drain
//! ends it early, and one after it stops at once, without waiting for the requests in
//! flight. A signal while the service is still starting (waiting for the database, say)
//! ends the start.

use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;

use crate::state::{AppState, Draining};

/// Middleware: while draining, every response closes its connection.
pub async fn close_while_draining(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let draining = req
        .app_data::<actix_web::web::Data<AppState>>()
        .map(|s| s.draining.clone());
    let mut res = next.call(req).await?;
    if draining.is_some_and(|d| d.is_draining()) {
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res)
}

/// The signals that stop a serving process: SIGTERM and SIGINT (Ctrl-C elsewhere).
pub struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Listens for the signals from now on (instead of their default action).
    pub fn listen() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// The next signal: `true` for SIGTERM, `false` for SIGINT.
    pub async fn next(&mut self) -> bool {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => true,
                _ = self.int.recv() => false,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            false
        }
    }

    /// Waits for a signal, then drains for `drain` (SIGTERM) or not at all (SIGINT),
    /// ended early by another signal. Returns when the server should stop accepting.
    pub async fn wait_then_drain(&mut self, draining: Draining, drain: Duration) {
        let term = self.next().await;
        if !term || drain.is_zero() {
            tracing::info!(
                signal = if term { "SIGTERM" } else { "SIGINT" },
                "stopping: no new connections; requests in flight finish"
            );
            return;
        }
        draining.start();
        tracing::info!(
            seconds = drain.as_secs(),
            "SIGTERM: draining (/readyz answers 503, requests are still served)"
        );
        tokio::select! {
            _ = tokio::time::sleep(drain) => {}
            _ = self.next() => tracing::info!("a second signal: the drain ends early"),
        }
        tracing::info!("stopping: no new connections; requests in flight finish");
    }
}
