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
