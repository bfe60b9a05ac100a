//! The layer that turns the service's `tracing` spans into OpenTelemetry spans
//! (docs/operations.md#traces): a compact record per span, kept in the registry's slot
//! of the span, handed to the exporter's queue when the span closes.
//!
//! It takes the place of `tracing-opentelemetry`, whose every span went through the
//! SDK's span builder and span (attribute vectors of `KeyValue`s, the end time read at
//! every exit, an SDK span built, ended and sent on a channel at close) and cost more
//! than the request it traced. Here a span is its ids, its times, its name and its
//! attributes' values copied into one string; entering and leaving it costs this layer
//! nothing. The OpenTelemetry SDK still decides which traces are kept (its `Sampler`),
//! makes the ids (its `RandomIdGenerator`) and reads and writes `traceparent` (its W3C
//! propagator).

use std::fmt::Write as _;
use std::sync::Arc;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SamplingDecision, SpanKind, TraceContextExt, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, Sampler, ShouldSample};
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter};
use tracing_subscriber::registry::LookupSpan;

use super::batch::Queue;
use super::record::{Attribute, AttributeValue, Name, Range, SpanRecord};

/// Nanoseconds since the Unix epoch, now: the wall clock a span's times are in (OTLP's
/// `start_time_unix_nano`), not a clock a flow decides with.
#[allow(clippy::disallowed_methods)]
pub(super) fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The crates whose spans are exported: the service's own (a dependency's spans, such
/// as the HTTP client's, say nothing an operator can act on).
const TRACED_CRATES: &[&str] = &[
    "users_server",
    "users_core",
    "users_db",
    "users_upstream",
    "users_mail",
    "users_domain",
];

/// Whether `target` (a module path) is in one of the [`TRACED_CRATES`].
fn traced(target: &str) -> bool {
    TRACED_CRATES.iter().any(|name| {
        target
            .strip_prefix(name)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The filter of the traces' layer: the spans of the service's crates, debug-level ones
/// included; no event. Its answer is the callsite's, made once.
pub(super) struct Traced;

impl Traced {
    fn wants(meta: &Metadata<'_>) -> bool {
        meta.is_span() && *meta.level() <= tracing::Level::DEBUG && traced(meta.target())
    }
}

impl<S: Subscriber> Filter<S> for Traced {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        Traced::wants(meta)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if Traced::wants(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }
}

/// The fields of a span, as they are recorded: `otel.name`, `otel.kind` and
/// `otel.status_code` set the name, the kind and the status, every other field is an
/// attribute.
struct Fields<'a> {
    record: &'a mut SpanRecord,
    /// Recording after the span was made: a field recorded before is replaced.
    again: bool,
}

impl Fields<'_> {
    fn text(&mut self, key: &'static str, range: Range) {
        let value = match key {
            "otel.name" => {
                self.record.name = Name::Text(range);
                return;
            }
            "otel.kind" => {
                self.record.kind = match self.record.text(range) {
                    "server" => SpanKind::Server,
                    "client" => SpanKind::Client,
                    "producer" => SpanKind::Producer,
                    "consumer" => SpanKind::Consumer,
                    _ => SpanKind::Internal,
                };
                return;
            }
            "otel.status_code" => {
                self.record.error = self.record.text(range).eq_ignore_ascii_case("error");
                return;
            }
            _ => AttributeValue::Text(range),
        };
        self.set(key, value);
    }

    fn set(&mut self, key: &'static str, value: AttributeValue) {
        let attributes = &mut self.record.attributes;
        if self.again {
            if let Some(a) = attributes.iter_mut().find(|a| a.key == key) {
                a.value = value;
                return;
            }
        }
        attributes.push(Attribute { key, value });
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let range = self.record.push_text(value);
        self.text(field.name(), range);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let start = self.record.text.len() as u32;
        let _ = write!(self.record.text, "{value:?}");
        let range = (start, self.record.text.len() as u32);
        self.text(field.name(), range);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), AttributeValue::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.set(field.name(), AttributeValue::I64(v)),
            Err(_) => self.record_debug(field, &value),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), AttributeValue::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), AttributeValue::Bool(value));
    }
}

/// The layer (behind its filter, [`Traced`]: the service's own spans).
pub(super) struct Spans {
    sampler: Sampler,
    /// The sampler keeps every new trace: it is not asked about one.
    keeps_new_traces: bool,
    ids: RandomIdGenerator,
    queue: Arc<Queue>,
}

impl Spans {
    pub(super) fn new(sampler: Sampler, queue: Arc<Queue>) -> Self {
        Spans {
            sampler,
            keeps_new_traces: false,
            ids: RandomIdGenerator::default(),
            queue,
        }
    }

    /// For a sampler that keeps every trace it starts (`always_on`, alone or as the
    /// root of `parentbased_always_on`, the default): its answer for a new trace is known
    /// (kept, no trace state), so it is not asked. A caller's trace still asks it.
    pub(super) fn keeping_new_traces(mut self) -> Self {
        self.keeps_new_traces = true;
        self
    }

    /// The sampler's decision for a span of `record`'s trace whose parent is `parent`
    /// (none: a new trace; a remote one: the caller's), and the trace state it keeps.
    fn decide(&self, parent: Option<&opentelemetry::Context>, record: &mut SpanRecord) {
        let result = self.sampler.should_sample(
            parent,
            TraceId::from(record.trace_id),
            record.name(),
            &record.kind,
            &[],
            &[],
        );
        record.sampled = result.decision == SamplingDecision::RecordAndSample;
        let state = result.trace_state.header();
        record.trace_state = (!state.is_empty()).then(|| state.into_boxed_str());
    }
}

impl<S> tracing_subscriber::Layer<S> for Spans
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut record = SpanRecord::new(
            attrs.metadata().name(),
            u64::from_be_bytes(self.ids.new_span_id().to_bytes()),
        );
        if !attrs.fields().is_empty() {
            record.attributes.reserve_exact(attrs.fields().len());
            record.text.reserve(128);
            attrs.record(&mut Fields {
                record: &mut record,
                again: false,
            });
        }
        // a span within a trace is kept when its trace is: the parent decided (for every
        // sampler OpenTelemetry names, the decision a child would get from it)
        let parent = span.parent();
        let inherited = parent.as_ref().and_then(|p| {
            p.extensions()
                .get::<SpanRecord>()
                .map(|r| (r.trace_id, r.span_id, r.sampled, r.trace_state.clone()))
        });
        match inherited {
            Some((trace_id, parent_id, sampled, trace_state)) => {
                record.trace_id = trace_id;
                record.parent_id = parent_id;
                record.sampled = sampled;
                record.trace_state = trace_state;
            }
            None => {
                record.trace_id = u128::from_be_bytes(self.ids.new_trace_id().to_bytes());
                if self.keeps_new_traces {
                    record.sampled = true;
                } else {
                    self.decide(None, &mut record);
                }
            }
        }
        record.start = now_nanos();
        span.extensions_mut().insert(record);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(record) = extensions.get_mut::<SpanRecord>() {
            values.record(&mut Fields {
                record,
                again: true,
            });
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let record = span.extensions_mut().remove::<SpanRecord>();
        if let Some(mut record) = record.filter(|r| r.sampled) {
            record.end = now_nanos();
            self.queue.push(record);
        }
    }
}

/// What `users_domain::trace_context` asks of this layer.
pub(super) const PROPAGATION: users_domain::trace_context::Propagation =
    users_domain::trace_context::Propagation {
        headers_of,
        continue_from,
    };

/// The registry's slot of `span`, when it has one.
fn with_slot<T>(
    span: &tracing::Span,
    f: impl FnOnce(
        tracing_subscriber::registry::SpanRef<'_, tracing_subscriber::Registry>,
        &Spans,
    ) -> Option<T>,
) -> Option<T> {
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let layer = dispatch.downcast_ref::<Spans>()?;
        f(registry.span(id)?, layer)
    })
    .flatten()
}

/// The `traceparent` (and `tracestate`) of `span`, or of its nearest exported ancestor.
fn headers_of(span: &tracing::Span) -> Vec<(String, String)> {
    let context = with_slot(span, |slot, _| {
        slot.scope()
            .find_map(|s| s.extensions().get::<SpanRecord>().map(SpanRecord::context))
    });
    let Some(context) = context else {
        return Vec::new();
    };
    let mut carrier = Carrier(Vec::with_capacity(2));
    TraceContextPropagator::new().inject_context(
        &opentelemetry::Context::new().with_remote_span_context(context),
        &mut carrier,
    );
    carrier.0.sort();
    carrier.0
}

/// Makes the caller's span, as `headers` carry it, the parent of `span` (not entered
/// yet): its trace, its parent, and the sampler's decision given that parent.
fn continue_from(span: &tracing::Span, headers: &[(&str, &str)]) {
    let context = TraceContextPropagator::new().extract(&Headers(headers));
    let remote = context.span().span_context().clone();
    if !remote.is_valid() {
        return;
    }
    with_slot(span, |slot, layer| {
        let mut extensions = slot.extensions_mut();
        let record = extensions.get_mut::<SpanRecord>()?;
        record.trace_id = u128::from_be_bytes(remote.trace_id().to_bytes());
        record.parent_id = u64::from_be_bytes(remote.span_id().to_bytes());
        record.parent_remote = true;
        layer.decide(Some(&context), record);
        Some(())
    });
}

struct Carrier(Vec<(String, String)>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        // an empty `tracestate` says nothing
        if !value.is_empty() {
            self.0.push((key.to_ascii_lowercase(), value));
        }
    }
}

struct Headers<'a>(&'a [(&'a str, &'a str)]);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::telemetry::batch::{BatchConfig, Queue};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::Layer as _;

    /// Runs `f` under a subscriber with only this layer (every span of every target),
    /// and answers the spans it exported.
    fn traced(sampler: Sampler, f: impl FnOnce()) -> Vec<SpanRecord> {
        traced_by(|queue| Spans::new(sampler, queue), f)
    }

    /// [`traced`], with the layer `layer` makes.
    fn traced_by(layer: impl FnOnce(Arc<Queue>) -> Spans, f: impl FnOnce()) -> Vec<SpanRecord> {
        let queue = Arc::new(Queue::new(BatchConfig {
            max_queue: 100,
            max_batch: 100,
            delay: std::time::Duration::ZERO,
        }));
        let layer =
            layer(queue.clone()).with_filter(tracing_subscriber::filter::LevelFilter::DEBUG);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        let mut spans = queue.take_all();
        spans.sort_by_key(|s| s.start);
        spans
    }

    #[test]
    fn children_share_the_trace_and_name_their_parent() {
        let mut carried = Vec::new();
        let spans = traced(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)), || {
            let request = tracing::info_span!(
                "request",
                otel.name = "GET /users/me",
                otel.kind = "server",
                url.path = "/users/me",
                code = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
            );
            request.in_scope(|| {
                let flow = tracing::debug_span!("auth::authenticate", id = %42);
                flow.in_scope(|| carried = headers_of(&tracing::Span::current()));
            });
            request.record("code", 503_u64);
            request.record("otel.status_code", "ERROR");
        });
        assert_eq!(spans.len(), 2);
        let (request, flow) = (&spans[0], &spans[1]);
        assert_eq!(request.name(), "GET /users/me");
        assert_eq!(request.kind, SpanKind::Server);
        assert!(request.error);
        assert_eq!(request.parent_id, 0);
        assert_eq!(flow.name(), "auth::authenticate");
        assert_eq!(flow.kind, SpanKind::Internal);
        assert_eq!(flow.trace_id, request.trace_id);
        assert_eq!(flow.parent_id, request.span_id);
        assert_ne!(flow.span_id, request.span_id);
        assert!(flow.start >= request.start && flow.end <= request.end);
        let keys: Vec<&str> = request.attributes.iter().map(|a| a.key).collect();
        assert_eq!(keys, ["url.path", "code"]);
        assert!(matches!(
            request.attributes[1].value,
            AttributeValue::I64(503)
        ));
        assert!(
            matches!(flow.attributes[0].value, AttributeValue::Text(r) if flow.text(r) == "42")
        );
        // the calls the flow makes carry its span
        assert_eq!(
            carried,
            [(
                "traceparent".to_owned(),
                format!("00-{:032x}-{:016x}-01", flow.trace_id, flow.span_id)
            )]
        );
    }

    #[test]
    fn a_callers_trace_is_continued_and_its_decision_followed() {
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        let spans = traced(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)), || {
            let request = tracing::info_span!("request");
            continue_from(
                &request,
                &[
                    ("traceparent", &format!("{caller}-01")),
                    ("tracestate", "vendor=x"),
                ],
            );
            request.in_scope(|| {
                tracing::info_span!("flow").in_scope(|| {
                    // the calls the flow makes carry the caller's trace and its state on
                    let headers = headers_of(&tracing::Span::current());
                    assert_eq!(headers.len(), 2, "{headers:?}");
                    assert!(headers[0]
                        .1
                        .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
                    assert_eq!(headers[1], ("tracestate".into(), "vendor=x".into()));
                });
            });
            // a new trace: the root sampler (always off) keeps nothing
            tracing::info_span!("alone").in_scope(|| {});
            // the caller did not sample: neither does the service
            let unsampled = tracing::info_span!("unsampled");
            continue_from(&unsampled, &[("traceparent", &format!("{caller}-00"))]);
            unsampled.in_scope(|| {
                let headers = headers_of(&tracing::Span::current());
                assert!(headers[0].1.ends_with("-00"), "{headers:?}");
            });
            // not a traceparent: nothing changes
            let bad = tracing::info_span!("bad");
            continue_from(&bad, &[("traceparent", "00-zz-01")]);
        });
        assert_eq!(spans.len(), 2);
        let (request, flow) = (&spans[0], &spans[1]);
        assert_eq!(
            format!("{:032x}", request.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(request.parent_id, 0x00f0_67aa_0ba9_02b7);
        assert!(request.parent_remote);
        assert_eq!(request.trace_state.as_deref(), Some("vendor=x"));
        assert_eq!(flow.trace_id, request.trace_id);
        assert_eq!(flow.parent_id, request.span_id);
        assert!(!flow.parent_remote);
        assert_eq!(flow.trace_state.as_deref(), Some("vendor=x"));
    }

    #[test]
    fn a_new_trace_is_kept_without_asking_a_sampler_that_keeps_them_all() {
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        // a sampler that would keep nothing new: the shortcut alone keeps the new trace
        let never = || Sampler::ParentBased(Box::new(Sampler::AlwaysOff));
        let run = || {
            tracing::info_span!("new").in_scope(|| tracing::info_span!("child").in_scope(|| {}));
            // a caller's trace still asks the sampler: it follows the caller's decision
            for (name, flags) in [("kept", "01"), ("dropped", "00")] {
                let span = tracing::info_span!("continued", name);
                continue_from(&span, &[("traceparent", &format!("{caller}-{flags}"))]);
                span.in_scope(|| {});
            }
        };
        let spans = traced_by(|queue| Spans::new(never(), queue).keeping_new_traces(), run);
        let names: Vec<&str> = spans.iter().map(SpanRecord::name).collect();
        assert_eq!(names, ["new", "child", "continued"]);
        assert!(spans.iter().all(|s| s.sampled && s.trace_state.is_none()));
        assert_eq!(spans[1].trace_id, spans[0].trace_id);
        assert_eq!(spans[2].parent_id, 0x00f0_67aa_0ba9_02b7);
        // without it, the sampler is asked: only the caller's kept trace is
        let spans = traced(never(), run);
        assert_eq!(spans.len(), 1);
        assert_eq!(spans[0].parent_id, 0x00f0_67aa_0ba9_02b7);
    }

    #[test]
    fn without_the_layer_a_span_has_no_context() {
        let subscriber = tracing_subscriber::registry();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request");
            assert!(headers_of(&span).is_empty());
        });
    }
}
