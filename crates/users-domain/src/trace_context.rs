//! The W3C trace context (`traceparent`, `tracestate`) of the current `tracing` span,
//! for the calls the service makes to others (webhooks, upstream providers), and the
//! way back from such headers to a parent (docs/operations.md#traces).
//!
//! It goes through OpenTelemetry's global propagator: the server installs the W3C one
//! only when traces are exported (`OTEL_EXPORTER_OTLP_ENDPOINT`); otherwise the global
//! propagator is a no-op, [`headers`] is empty and nothing is sent. No I/O here.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The trace context headers of the current span (lower-case names): empty when traces
/// are off, or when the current span belongs to no trace.
pub fn headers() -> Vec<(String, String)> {
    headers_of(&tracing::Span::current())
}

/// The trace context headers of `span`.
pub fn headers_of(span: &tracing::Span) -> Vec<(String, String)> {
    let context = span.context();
    let mut carrier = Carrier::default();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    let mut headers: Vec<(String, String)> = carrier.0.into_iter().collect();
    headers.sort();
    headers
}

/// Makes the trace context carried by `headers` (as [`headers`] gives them, or an
/// incoming request's) the parent of `span`, which must not have been entered yet.
/// Headers that carry no valid context, or traces being off, leave `span` as it is.
pub fn continue_from<'a>(
    span: &tracing::Span,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    use opentelemetry::trace::TraceContextExt;
    let carrier = Carrier(
        headers
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
            .collect(),
    );
    let context = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    if context.span().span_context().is_valid() {
        // fails only when no OpenTelemetry layer is installed: then there is nothing to join
        let _ = span.set_parent(context);
    }
}

#[derive(Default)]
struct Carrier(HashMap<String, String>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_ascii_lowercase(), value);
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_propagator_nothing_is_sent() {
        // the global propagator is the no-op one unless the server installs another
        let span = tracing::info_span!("request");
        assert!(headers_of(&span).is_empty());
        continue_from(
            &span,
            [(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
        );
        assert!(headers_of(&span).is_empty());
    }
}
