//! Operations endpoints: liveness, readiness, metrics.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ErrorDetail};
use crate::metrics::Gauges;
use crate::state::AppState;

/// `GET /healthz`: the process is alive and serving.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Alive"))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers (within 2 s) and is fully migrated, and the
/// process is not shutting down (after SIGTERM it answers 503 while it drains).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Ready"),
        (
            status = 503,
            description = "Database unreachable or not migrated, or shutting down (draining \
                           after SIGTERM)",
            body = ErrorDetail
        ),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if state.draining.is_draining() {
        return HttpResponse::ServiceUnavailable()
            .json(json!({ "detail": "Not ready: shutting down" }));
    }
    match users_core::ops::readiness(&state.core, Duration::from_secs(2)).await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(not_ready) => HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "5"))
            .json(json!({ "detail": format!("Not ready: {}", not_ready.reason()) })),
    }
}

/// `GET /.well-known/jwks.json`: the public keys of access tokens and ID tokens, for
/// services that verify them on their own: the provider's (RS256, ES256, EdDSA), which
/// include the access tokens' own with an asymmetric `JWT_ALGORITHM` (with HS256 the
/// secret is never published).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "operations",
    responses(
        (
            status = 200,
            description = "`{\"keys\": [...]}`: every public key a live access or ID token may \
                           carry, and the next one (EdDSA, ES256, RS256)",
            body = Object
        ),
    )
)]
pub async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    // the provider's rings hold the access tokens' one when it is asymmetric; a ring
    // without keys looks again (at most every few seconds): another replica may have
    // made the first one
    for ring in state.core.keys.all().iter().filter(|r| !r.has_keys()) {
        if let Err(e) = ring.reload_for_unknown_kid().await {
            tracing::warn!(error = %e, "cannot reload the signing keys");
        }
    }
    let keys = state.core.keys.jwks(state.now());
    let max_age = state
        .core
        .keys
        .all()
        .iter()
        .filter(|r| r.has_keys())
        .map(|r| r.publish_ahead_secs())
        .min()
        // shorter than the publish-ahead time, so caches learn a new key before it signs
        .map(|ahead| (ahead / 2).clamp(0, 300))
        .unwrap_or(300);
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, format!("public, max-age={max_age}")))
        .json(json!({ "keys": keys }))
}

/// `GET /metrics`: Prometheus text format; with `METRICS_TOKEN`, only for
/// `Authorization: Bearer <METRICS_TOKEN>`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (
            status = 200,
            description = "Prometheus text exposition format",
            content_type = "text/plain"
        ),
        (
            status = 401,
            description = "`Unauthorized`: METRICS_TOKEN is set and the request does not carry \
                           `Authorization: Bearer <METRICS_TOKEN>`",
            body = ErrorDetail
        ),
    )
)]
pub async fn metrics(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(expected) = &state.settings.ops.metrics_token {
        let given = crate::auth::bearer_token(req.head());
        if !given.is_some_and(|given| metrics_token_matches(&given, expected)) {
            return Err(ApiError::Unauthorized);
        }
    }
    let pending = users_core::ops::outbox_backlog(&state.core, Duration::from_secs(1)).await;
    let (connections, idle) = state.core.store.database().pool_state();
    let body = state.metrics.render(
        &state.core.counters,
        &Gauges {
            outbox_pending: pending.map(|p| p.0),
            webhooks_pending: pending.map(|p| p.1),
            pool_connections: connections,
            pool_idle: idle,
        },
    );
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(body))
}

/// Compares the SHA-256 digests in constant time, so the time taken reveals neither a
/// matching prefix nor the token's length.
fn metrics_token_matches(given: &str, expected: &SecretString) -> bool {
    let given = Sha256::digest(given.as_bytes());
    let expected = Sha256::digest(expected.expose_secret().as_bytes());
    users_domain::crypto::constant_time_eq(&given, &expected)
}
