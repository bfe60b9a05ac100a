//! The W3C trace context (`traceparent`, `tracestate`) of the current `tracing` span,
//! for the calls the service makes to others (webhooks, upstream providers), and the
//! way back from such headers to a parent (docs/operations.md#traces).
//!
//! The spans' ids are kept by the layer that exports them, which the server installs
//! only when traces are exported (`OTEL_EXPORTER_OTLP_ENDPOINT`), together with the
//! [`Propagation`] that reads and writes them. Without it, [`headers`] is empty, nothing
//! is sent and [`continue_from`] does nothing. No I/O here.

use std::sync::OnceLock;

/// How the exporting layer answers for a span: installed once, by the server.
#[derive(Clone, Copy)]
pub struct Propagation {
    /// The trace context headers of the span (or of its nearest exported ancestor),
    /// lower-case names, sorted.
    pub headers_of: fn(&tracing::Span) -> Vec<(String, String)>,
    /// Makes the context carried by the headers (lower-case names) the span's parent.
    pub continue_from: fn(&tracing::Span, &[(&str, &str)]),
}

static PROPAGATION: OnceLock<Propagation> = OnceLock::new();

/// Installs the propagation of the exporting layer. The first one installed stays (the
/// process has one global subscriber): false if one was already there.
pub fn install(propagation: Propagation) -> bool {
    PROPAGATION.set(propagation).is_ok()
}

/// The trace context headers of the current span (lower-case names): empty when traces
/// are off, or when the current span belongs to no trace.
pub fn headers() -> Vec<(String, String)> {
    match PROPAGATION.get() {
        Some(p) => (p.headers_of)(&tracing::Span::current()),
        None => Vec::new(),
    }
}

/// The trace context headers of `span`.
pub fn headers_of(span: &tracing::Span) -> Vec<(String, String)> {
    match PROPAGATION.get() {
        Some(p) => (p.headers_of)(span),
        None => Vec::new(),
    }
}

/// Makes the trace context carried by `headers` (as [`headers`] gives them, or an
/// incoming request's) the parent of `span`, which must not have been entered yet.
/// Headers that carry no valid context, or traces being off, leave `span` as it is.
pub fn continue_from<'a>(
    span: &tracing::Span,
    headers: impl IntoIterator<Item = (&'a str, &'a str)>,
) {
    let Some(p) = PROPAGATION.get() else {
        return;
    };
    let lower: Vec<(String, &str)> = headers
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    let headers: Vec<(&str, &str)> = lower.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    (p.continue_from)(span, &headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_propagation_nothing_is_sent() {
        // only the server installs one, and only when traces are exported
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
        assert!(headers().is_empty());
    }
}
