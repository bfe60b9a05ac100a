//! Logging with `tracing`: human-readable by default, one JSON object per line with
//! `LOG_FORMAT=json`. Request spans carry the method and the path only: query strings
//! can hold tokens and are never logged.

use std::io::IsTerminal;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_actix_web::RootSpanBuilder;
use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Installs the global subscriber. `to_stderr` for the command line, whose stdout is
/// the machine-readable result.
pub fn init(rust_log: &str, format: LogFormat, to_stderr: bool) {
    let filter = EnvFilter::try_new(rust_log).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = !to_stderr && std::io::stdout().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let result = match (format, to_stderr) {
        (LogFormat::Json, false) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Json, true) => builder
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .try_init(),
        (LogFormat::Pretty, false) => builder.with_ansi(ansi).try_init(),
        (LogFormat::Pretty, true) => builder
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .try_init(),
    };
    // Already installed (tests start several apps in one process): keep the first.
    let _ = result;
}

/// Outermost middleware: gives every request an id (the client's `X-Request-Id` when it
/// sends a sane one), echoes it on the response, and records the request's metrics
/// under its route pattern.
pub async fn observe(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use actix_web::http::header::{HeaderName, HeaderValue};
    let start = std::time::Instant::now();
    let name = HeaderName::from_static("x-request-id");
    let id = req
        .headers()
        .get(&name)
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.to_str().is_ok())
        .cloned()
        .unwrap_or_else(|| {
            HeaderValue::from_str(&uuid::Uuid::new_v4().to_string())
                .unwrap_or(HeaderValue::from_static("-"))
        });
    req.headers_mut().insert(name.clone(), id.clone());
    let metrics = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map(|s| s.metrics.clone());
    let method = req.method().to_string();
    let mut res = next.call(req).await?;
    res.headers_mut().insert(name, id);
    if let Some(m) = metrics {
        let route = res
            .request()
            .match_pattern()
            .unwrap_or_else(|| "(unmatched)".to_owned());
        m.observe_request(
            &route,
            &method,
            res.status().as_u16(),
            start.elapsed().as_secs_f64(),
        );
    }
    Ok(res)
}

/// The root span of each request: method, path (no query), a request id, the status.
pub struct RequestSpan;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 128)
            .map(str::to_owned)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.path(),
            request_id = %request_id,
            status = tracing::field::Empty,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(resp) => resp.status().as_u16(),
            Err(e) => e.as_response_error().status_code().as_u16(),
        };
        span.record("status", status);
        span.in_scope(|| {
            if status >= 500 {
                tracing::error!(status, "request failed");
            } else {
                tracing::info!(status, "request done");
            }
        });
    }
}
