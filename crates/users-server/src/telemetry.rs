//! Logging with `tracing`: human-readable by default, one JSON object per line with
//! `LOG_FORMAT=json`. Request spans carry the method and the path only: query strings
//! can hold tokens and are never logged.
//!
//! Traces (docs/operations.md#traces): with `OTEL_EXPORTER_OTLP_ENDPOINT` set, a second
//! layer (`spans.rs`) records the spans of the service's own crates (the request, its
//! flow, its database calls; debug-level spans included; not the log's events) as
//! OpenTelemetry spans, which the exporter's thread (`batch.rs`) sends over OTLP/HTTP
//! (`otlp.rs`), and joins incoming and outgoing `traceparent` headers
//! (`users_domain::trace_context`). Unset, that layer is not installed: the debug-level
//! spans are disabled at their call sites and the logs are as they were.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use tracing::Span;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::settings::{LogFormat, Sampler, Traces};

mod batch;
mod filter;
mod otlp;
mod record;
mod scope;
mod spans;

/// Whether spans are exported: the request span then carries OpenTelemetry's names.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Installs the global subscriber. `to_stderr` for the command line, whose stdout is
/// the machine-readable result.
pub fn init(rust_log: &str, format: LogFormat, to_stderr: bool) {
    install(rust_log, format, to_stderr, None);
}

/// [`init`] for the server: also exports traces when `traces` names an endpoint. The
/// answer flushes what is still buffered when the process ends ([`Export::finish`]).
pub fn init_serving(rust_log: &str, format: LogFormat, traces: &Traces) -> Result<Export, String> {
    let Some(url) = traces.export_url.as_deref() else {
        install(rust_log, format, false, None);
        return Ok(Export { pipeline: None });
    };
    let sampler = match traces.sampler {
        Sampler::AlwaysOn => opentelemetry_sdk::trace::Sampler::AlwaysOn,
        Sampler::AlwaysOff => opentelemetry_sdk::trace::Sampler::AlwaysOff,
        Sampler::TraceIdRatio(r) => opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(r),
    };
    let sampler = if traces.parent_based {
        opentelemetry_sdk::trace::Sampler::ParentBased(Box::new(sampler))
    } else {
        sampler
    };
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(traces.service_name.clone())
        .build();
    let exporter = otlp::Exporter::new(url, std::time::Duration::from_secs(10), &resource)?;
    let queue = Arc::new(batch::Queue::new(batch::BatchConfig::read(|name| {
        std::env::var(name).ok()
    })));
    let pipeline = batch::Pipeline::start(exporter, queue.clone())?;
    let layer = spans::Spans::new(sampler, queue);
    let layer = match traces.sampler {
        Sampler::AlwaysOn => layer.keeping_new_traces(),
        Sampler::AlwaysOff | Sampler::TraceIdRatio(_) => layer,
    };
    users_domain::trace_context::install(spans::PROPAGATION);
    EXPORTING.store(true, Ordering::Relaxed);
    install(rust_log, format, false, Some(layer));
    Ok(Export {
        pipeline: Some(pipeline),
    })
}

/// The export of traces, while the server runs.
#[must_use]
pub struct Export {
    pipeline: Option<batch::Pipeline>,
}

impl Export {
    /// Exports what is still queued and stops exporting (outside the async runtime: it
    /// waits for the exporter's thread).
    pub fn finish(self) {
        if let Some(pipeline) = self.pipeline {
            if let Err(e) = pipeline.finish() {
                eprintln!("warning: the last spans were not all exported: {e}");
            }
        }
    }
}

fn install(rust_log: &str, format: LogFormat, to_stderr: bool, traces: Option<spans::Spans>) {
    let filter = filter::LogFilter::new(rust_log);
    // no layer acts on a span's entry or exit unless the log's filter follows spans
    let ignore_entries = !filter.follows_spans();
    let ansi = !to_stderr && std::io::stdout().is_terminal();
    let fmt = tracing_subscriber::fmt::layer().with_target(false);
    // the log's filter is the log's own: the traces' layer sees the spans it filters out
    match (format, to_stderr) {
        (LogFormat::Json, false) => with_logs(
            fmt.json().flatten_event(true).with_filter(filter),
            traces,
            ignore_entries,
        ),
        (LogFormat::Json, true) => with_logs(
            fmt.json()
                .flatten_event(true)
                .with_writer(std::io::stderr)
                .with_filter(filter),
            traces,
            ignore_entries,
        ),
        (LogFormat::Pretty, false) => with_logs(
            fmt.with_ansi(ansi).with_filter(filter),
            traces,
            ignore_entries,
        ),
        (LogFormat::Pretty, true) => with_logs(
            fmt.with_ansi(false)
                .with_writer(std::io::stderr)
                .with_filter(filter),
            traces,
            ignore_entries,
        ),
    }
}

/// Installs the registry with the log's layer and, when traces are exported, the traces'
/// layer over it. Each layer is of its own type, not boxed: every span's entry and exit
/// passes through both, without a call through a vtable. `ignore_entries`: no layer
/// acts on a span's entry or exit (`scope.rs`).
fn with_logs<L>(logs: L, traces: Option<spans::Spans>, ignore_entries: bool)
where
    L: Layer<Registry> + Send + Sync + 'static,
{
    let logged = tracing_subscriber::registry().with(logs);
    let installed = match traces {
        // Spans only: the log's lines stay in the log (as span events they would cost
        // every request their formatting and double what is exported).
        Some(spans) => logged.with(spans.with_filter(spans::Traced)).try_init(),
        None => logged.try_init(),
    };
    // Already installed (tests start several apps in one process): the first is kept,
    // and what is said of it.
    if installed.is_ok() {
        scope::layers_ignore_entries(ignore_entries);
    }
}

/// Outermost middleware: gives every request an id (the client's `X-Request-Id` when it
/// sends a sane one), echoes it on the response, makes the request's root span
/// (docs/operations.md#traces) and records the request's metrics under its route
/// pattern.
pub async fn observe(
    mut req: ServiceRequest,
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
    let method = req.method().clone();
    // the pattern is found from the path alone: the same before and after the routing
    let route = req.match_pattern();
    let span = request_span(&req, id.to_str().unwrap_or("-"), route.as_deref());
    let outcome = in_span(&span, next.call(req)).await;
    let status = match &outcome {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    request_end(span, status.as_u16());
    let mut res = outcome?;
    res.headers_mut().insert(name, id);
    if let Some(m) = metrics {
        m.observe_request(
            route.as_deref().unwrap_or("(unmatched)"),
            method.as_str(),
            status.as_u16(),
            start.elapsed().as_secs_f64(),
        );
    }
    Ok(res)
}

/// `future`, with `span` entered while it is polled, so that the spans it makes are the
/// request's children. Entered at each poll only: not when the future is made (nothing
/// is traced then) nor dropped, and not while the body is written; each entry and exit
/// is told to the registry alone when no layer acts on it (`scope.rs`).
async fn in_span<F: std::future::Future>(span: &Span, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| scope::in_scope(span, || future.as_mut().poll(cx))).await
}

/// The root span of a request: method, path (no query), the request id, later the
/// status. While traces are exported, under OpenTelemetry's names
/// (`http.request.method`, `url.path`, `http.route`, `http.response.status_code`), named
/// by the route, and the child of the caller's span when the request carries a
/// `traceparent`.
fn request_span(request: &ServiceRequest, request_id: &str, route: Option<&str>) -> Span {
    use actix_web::http::header::HeaderName;
    if !EXPORTING.load(Ordering::Relaxed) {
        return tracing::info_span!(
            "request",
            method = %request.method(),
            path = %request.path(),
            request_id = %request_id,
            status = tracing::field::Empty,
        );
    }
    // every field a `&str` (no formatting machinery: each is copied once, into its
    // attribute); the name is made once
    let method = request.method().as_str();
    let shown = route.unwrap_or("(unmatched)");
    let mut buffer = [0u8; 96];
    let mut long = String::new();
    let name = joined(&mut buffer, &mut long, method, shown);
    let span = tracing::info_span!(
        "request",
        otel.name = name,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = method,
        url.path = request.path(),
        http.route = route,
        request_id = request_id,
        http.response.status_code = tracing::field::Empty,
    );
    // without a `traceparent` there is nothing to continue: the propagator is not asked
    const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    if request.headers().contains_key(&TRACEPARENT) {
        let headers = request
            .headers()
            .iter()
            .filter(|(name, _)| *name == "traceparent" || *name == "tracestate")
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
        users_domain::trace_context::continue_from(&span, headers);
    }
    span
}

/// `method` and `route` with a space between: written in `buffer` (no allocation) when
/// they fit, else in `long`.
fn joined<'a>(
    buffer: &'a mut [u8; 96],
    long: &'a mut String,
    method: &str,
    route: &str,
) -> &'a str {
    let split = method.len();
    match buffer.get_mut(..split + 1 + route.len()) {
        Some(name) => {
            let (head, tail) = name.split_at_mut(split);
            head.copy_from_slice(method.as_bytes());
            if let Some((space, rest)) = tail.split_first_mut() {
                *space = b' ';
                rest.copy_from_slice(route.as_bytes());
            }
            // two strings and a space: always UTF-8
            std::str::from_utf8(name).unwrap_or_default()
        }
        None => {
            long.reserve_exact(split + 1 + route.len());
            long.push_str(method);
            long.push(' ');
            long.push_str(route);
            long
        }
    }
}

/// Records the status on the request's span and logs the request's line in it (when
/// the log keeps it); dropping the span then ends it.
fn request_end(span: Span, status: u16) {
    if EXPORTING.load(Ordering::Relaxed) {
        // an integer attribute, as OpenTelemetry's conventions have it (an unsigned value
        // would be formatted into a string)
        span.record("http.response.status_code", i64::from(status));
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
        }
    } else {
        span.record("status", status);
    }
    // the line is logged in the request's span; entering it costs a traced request
    // its bookkeeping, which a line the log's filter drops does not need
    if status >= 500 {
        if tracing::enabled!(tracing::Level::ERROR) {
            scope::in_scope(&span, || tracing::error!(status, "request failed"));
        }
    } else if tracing::enabled!(tracing::Level::INFO) {
        scope::in_scope(&span, || tracing::info!(status, "request done"));
    }
}

#[cfg(test)]
mod tests {
    use super::joined;

    #[test]
    fn a_span_name_is_the_method_and_the_route() {
        let (mut buffer, mut long) = ([0u8; 96], String::new());
        assert_eq!(
            joined(&mut buffer, &mut long, "GET", "/users/me"),
            "GET /users/me"
        );
        assert!(long.is_empty());
        let route = format!("/{}", "a".repeat(200));
        let name = joined(&mut buffer, &mut long, "DELETE", &route).to_owned();
        assert_eq!(name, format!("DELETE {route}"));
        // exactly the buffer's size still fits it
        let route = "b".repeat(96 - 4);
        let mut long = String::new();
        assert_eq!(
            joined(&mut buffer, &mut long, "GET", &route),
            format!("GET {route}")
        );
        assert!(long.is_empty());
    }
}
