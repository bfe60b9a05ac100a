//! The OTLP/HTTP span exporter (docs/operations.md#traces): each batch the SDK's batch
//! processor hands over is written as one protobuf `ExportTraceServiceRequest` and
//! POSTed to the endpoint's `/v1/traces`, from the batch processor's own thread.
//!
//! The protobuf is written straight from the SDK's spans: the generic exporter first
//! copies every span, builds the message's structs from the copy (a buffer for each id,
//! two strings for each attribute) and only then encodes them, which cost more than
//! recording the spans did. Here the resource is encoded once, and a span is encoded
//! without a copy. The wire format is the one of opentelemetry-proto's
//! `opentelemetry/proto/trace/v1/trace.proto`.

use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use opentelemetry_sdk::Resource;

/// The standard variables of the headers sent with each export (`name=value,…`, values
/// percent-encoded): the traces' own add to (and replace) the general ones.
const HEADER_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
];

pub(super) struct Exporter {
    client: reqwest::blocking::Client,
    url: String,
    headers: reqwest::header::HeaderMap,
    /// The `Resource` message, encoded once.
    resource: Vec<u8>,
    resource_schema_url: String,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the headers may hold a receiver's token
        f.debug_struct("Exporter").field("url", &self.url).finish()
    }
}

impl Exporter {
    pub(super) fn new(url: &str, timeout: Duration) -> Result<Self, String> {
        let headers = headers_from_env()?;
        // reqwest's blocking client runs a runtime of its own: made (and later dropped)
        // outside any async runtime, on a thread of its own
        let client = std::thread::spawn(move || {
            reqwest::blocking::Client::builder()
                .timeout(timeout)
                .build()
        })
        .join()
        .map_err(|_| "the HTTP client of the exporter could not be made".to_owned())?
        .map_err(|e| format!("the HTTP client of the exporter: {e}"))?;
        Ok(Exporter {
            client,
            url: url.to_owned(),
            headers,
            resource: Vec::new(),
            resource_schema_url: String::new(),
        })
    }

    /// One `ExportTraceServiceRequest` holding `batch`.
    fn encode(&self, batch: &[SpanData]) -> Vec<u8> {
        // the spans of each instrumentation scope (in practice one: the service's)
        let mut scopes: Vec<(&InstrumentationScope, Vec<u8>)> = Vec::with_capacity(1);
        let mut span = Vec::with_capacity(256);
        for data in batch {
            let at = match scopes.iter().position(|(s, _)| {
                std::ptr::eq(*s, &data.instrumentation_scope) || **s == data.instrumentation_scope
            }) {
                Some(at) => at,
                None => {
                    scopes.push((
                        &data.instrumentation_scope,
                        Vec::with_capacity(256 * batch.len()),
                    ));
                    scopes.len() - 1
                }
            };
            span.clear();
            encode_span(&mut span, data);
            message(&mut scopes[at].1, 2, &span);
        }
        let mut resource_spans = Vec::with_capacity(
            self.resource.len() + scopes.iter().map(|(_, s)| s.len() + 64).sum::<usize>(),
        );
        message(&mut resource_spans, 1, &self.resource);
        let mut scope_spans = Vec::new();
        let mut scope = Vec::new();
        for (instrumentation, spans) in &scopes {
            scope.clear();
            string(&mut scope, 1, instrumentation.name());
            string(&mut scope, 2, instrumentation.version().unwrap_or(""));
            for kv in instrumentation.attributes() {
                key_value(&mut scope, 3, kv.key.as_str(), &kv.value);
            }
            scope_spans.clear();
            message(&mut scope_spans, 1, &scope);
            scope_spans.extend_from_slice(spans);
            string(
                &mut scope_spans,
                3,
                instrumentation.schema_url().unwrap_or(""),
            );
            message(&mut resource_spans, 2, &scope_spans);
        }
        string(&mut resource_spans, 3, &self.resource_schema_url);
        let mut request = Vec::with_capacity(resource_spans.len() + 8);
        message(&mut request, 1, &resource_spans);
        request
    }
}

impl SpanExporter for Exporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        if batch.is_empty() {
            return Ok(());
        }
        let body = self.encode(&batch);
        drop(batch);
        let response = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .map_err(|e| OTelSdkError::InternalFailure(format!("OTLP export: {e}")))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(OTelSdkError::InternalFailure(format!(
                "OTLP export: the receiver answered {status}"
            )))
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        let mut encoded = Vec::new();
        for (key, value) in resource.iter() {
            key_value(&mut encoded, 1, key.as_str(), value);
        }
        self.resource = encoded;
        self.resource_schema_url = resource.schema_url().unwrap_or("").to_owned();
    }
}

/// The headers of `OTEL_EXPORTER_OTLP_HEADERS` and `OTEL_EXPORTER_OTLP_TRACES_HEADERS`.
/// An error names the variable and the header's name, never its value.
fn headers_from_env() -> Result<reqwest::header::HeaderMap, String> {
    let mut headers = reqwest::header::HeaderMap::new();
    for var in HEADER_VARIABLES {
        let Ok(list) = std::env::var(var) else {
            continue;
        };
        for pair in list.split(',').filter(|p| !p.trim().is_empty()) {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{var}: an entry is not `name=value`"))?;
            let name = name.trim();
            let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("{var}: `{name}` is not a header name"))?;
            let value = percent_decode(value.trim())
                .and_then(|v| reqwest::header::HeaderValue::from_str(&v).ok())
                .ok_or_else(|| format!("{var}: the value of `{name}` is not a header value"))?;
            headers.insert(header, value);
        }
    }
    Ok(headers)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

// ---------------------------------------------------------------------------------------
// protobuf
// ---------------------------------------------------------------------------------------

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;
const FIXED32: u32 = 5;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(out: &mut Vec<u8>, field: u32, wire: u32) {
    varint(out, u64::from((field << 3) | wire));
}

/// A length-delimited field (a string, bytes or an embedded message), even when empty.
fn message(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    tag(out, field, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A string or bytes field: omitted when empty (proto3's default).
fn string(out: &mut Vec<u8>, field: u32, s: &str) {
    bytes(out, field, s.as_bytes());
}

fn bytes(out: &mut Vec<u8>, field: u32, b: &[u8]) {
    if !b.is_empty() {
        message(out, field, b);
    }
}

fn uint(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(out, field, VARINT);
        varint(out, v);
    }
}

fn fixed64(out: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        tag(out, field, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn fixed32(out: &mut Vec<u8>, field: u32, v: u32) {
    if v != 0 {
        tag(out, field, FIXED32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `SpanFlags`: the W3C trace flags, and whether the parent is remote (known).
fn flags(trace_flags: u8, remote: bool) -> u32 {
    u32::from(trace_flags) | 0x100 | if remote { 0x200 } else { 0 }
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The length of an `AnyValue` holding `value`, when it is not an array.
fn any_value_len(value: &Value) -> Option<usize> {
    match value {
        Value::Bool(_) => Some(2),
        Value::I64(i) => Some(1 + varint_len(*i as u64)),
        Value::F64(_) => Some(9),
        Value::String(s) => Some(1 + varint_len(s.as_str().len() as u64) + s.as_str().len()),
        _ => None,
    }
}

/// A `KeyValue` as field `field` of its message: written in place (its length known
/// beforehand) but for an array, which goes through a buffer.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    let key_len = if key.is_empty() {
        0
    } else {
        1 + varint_len(key.len() as u64) + key.len()
    };
    let Some(any_len) = any_value_len(value) else {
        let mut kv = Vec::with_capacity(key_len + 64);
        string(&mut kv, 1, key);
        let mut any = Vec::with_capacity(64);
        any_value(&mut any, value);
        message(&mut kv, 2, &any);
        message(out, field, &kv);
        return;
    };
    tag(out, field, LEN);
    varint(
        out,
        (key_len + 1 + varint_len(any_len as u64) + any_len) as u64,
    );
    string(out, 1, key);
    tag(out, 2, LEN);
    varint(out, any_len as u64);
    any_value(out, value);
}

/// The fields of an `AnyValue`.
fn any_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Bool(b) => {
            tag(out, 2, VARINT);
            varint(out, u64::from(*b));
        }
        Value::I64(i) => {
            tag(out, 3, VARINT);
            varint(out, *i as u64);
        }
        Value::F64(f) => {
            tag(out, 4, FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::String(s) => {
            // a oneof member: present even when empty
            message(out, 1, s.as_str().as_bytes());
        }
        Value::Array(array) => {
            // an `ArrayValue`: its `values`, each an `AnyValue`
            let mut values = Vec::new();
            let mut one = Vec::new();
            let mut push = |v: Value| {
                one.clear();
                any_value(&mut one, &v);
                message(&mut values, 1, &one);
            };
            match array {
                Array::Bool(v) => v.iter().for_each(|b| push(Value::Bool(*b))),
                Array::I64(v) => v.iter().for_each(|i| push(Value::I64(*i))),
                Array::F64(v) => v.iter().for_each(|f| push(Value::F64(*f))),
                Array::String(v) => v.iter().for_each(|s| push(Value::String(s.clone()))),
                other => push(Value::String(other.to_string().into())),
            }
            message(out, 5, &values);
        }
        other => message(out, 1, other.as_str().as_bytes()),
    }
}

fn attributes(out: &mut Vec<u8>, field: u32, attributes: &[KeyValue]) {
    for kv in attributes {
        key_value(out, field, kv.key.as_str(), &kv.value);
    }
}

/// The fields of a `Span`.
fn encode_span(out: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    bytes(out, 1, &context.trace_id().to_bytes());
    bytes(out, 2, &context.span_id().to_bytes());
    string(out, 3, &context.trace_state().header());
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        bytes(out, 4, &span.parent_span_id.to_bytes());
    }
    string(out, 5, &span.name);
    let kind: u64 = match span.span_kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    uint(out, 6, kind);
    fixed64(out, 7, nanos(span.start_time));
    fixed64(out, 8, nanos(span.end_time));
    attributes(out, 9, &span.attributes);
    uint(out, 10, u64::from(span.dropped_attributes_count));
    let mut nested = Vec::new();
    for event in span.events.events.iter() {
        nested.clear();
        fixed64(&mut nested, 1, nanos(event.timestamp));
        string(&mut nested, 2, &event.name);
        attributes(&mut nested, 3, &event.attributes);
        uint(&mut nested, 4, u64::from(event.dropped_attributes_count));
        message(out, 11, &nested);
    }
    uint(out, 12, u64::from(span.events.dropped_count));
    for link in span.links.links.iter() {
        nested.clear();
        let c = &link.span_context;
        bytes(&mut nested, 1, &c.trace_id().to_bytes());
        bytes(&mut nested, 2, &c.span_id().to_bytes());
        string(&mut nested, 3, &c.trace_state().header());
        attributes(&mut nested, 4, &link.attributes);
        uint(&mut nested, 5, u64::from(link.dropped_attributes_count));
        fixed32(
            &mut nested,
            6,
            flags(c.trace_flags().to_u8(), c.is_remote()),
        );
        message(out, 13, &nested);
    }
    uint(out, 14, u64::from(span.links.dropped_count));
    // `Status`: message (2), code (3: 1 ok, 2 error)
    nested.clear();
    match &span.status {
        Status::Unset => {}
        Status::Ok => uint(&mut nested, 3, 1),
        Status::Error { description } => {
            string(&mut nested, 2, description);
            uint(&mut nested, 3, 2);
        }
    }
    message(out, 15, &nested);
    fixed32(
        out,
        16,
        flags(context.trace_flags().to_u8(), span.parent_span_is_remote),
    );
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use prost::Message;

    fn span(name: &'static str, kind: SpanKind, parent: u64, status: Status) -> SpanData {
        let context = SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736_u128),
            SpanId::from(0x00f0_67aa_0ba9_02b7 + parent + 1),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        let mut events = opentelemetry_sdk::trace::SpanEvents::default();
        let mut links = opentelemetry_sdk::trace::SpanLinks::default();
        if parent == 0 {
            events.events.push(opentelemetry::trace::Event::new(
                "an event",
                SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                vec![KeyValue::new("n", 3_i64)],
                1,
            ));
            events.dropped_count = 2;
            links
                .links
                .push(opentelemetry::trace::Link::with_context(SpanContext::new(
                    TraceId::from(7_u128),
                    SpanId::from(9_u64),
                    TraceFlags::SAMPLED,
                    true,
                    TraceState::from_key_value([("k", "v")]).unwrap(),
                )));
        }
        SpanData {
            span_context: context,
            parent_span_id: if parent == 0 {
                SpanId::INVALID
            } else {
                SpanId::from(parent)
            },
            parent_span_is_remote: parent == 1,
            span_kind: kind,
            name: name.into(),
            start_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_000_001),
            end_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_000_900_000),
            attributes: vec![
                KeyValue::new("http.route", "/users/me"),
                KeyValue::new("empty", ""),
                KeyValue::new("http.response.status_code", 200_i64),
                KeyValue::new("negative", -5_i64),
                KeyValue::new("ratio", 0.25),
                KeyValue::new("ok", true),
                KeyValue::new(
                    "list",
                    Value::Array(Array::String(vec!["a".into(), "b".into()])),
                ),
                KeyValue::new("numbers", Value::Array(Array::I64(vec![1, -2]))),
            ],
            dropped_attributes_count: 1,
            events,
            links,
            status,
            instrumentation_scope: InstrumentationScope::builder("users")
                .with_version("1.2")
                .build(),
        }
    }

    /// What the service sends decodes to exactly what OpenTelemetry's own conversion
    /// of the same spans gives.
    #[test]
    fn encodes_what_the_generic_exporter_would() {
        let resource = Resource::builder()
            .with_service_name("users-under-test")
            .build();
        let mut exporter =
            Exporter::new("http://127.0.0.1:9/v1/traces", Duration::from_secs(1)).unwrap();
        exporter.set_resource(&resource);
        let batch = vec![
            span("GET /users/me", SpanKind::Server, 0, Status::Unset),
            span("auth::authenticate", SpanKind::Internal, 1, Status::Ok),
            span("db", SpanKind::Client, 2, Status::error("it failed")),
            span("outbox", SpanKind::Consumer, 3, Status::Unset),
        ];
        let ours = ExportTraceServiceRequest::decode(exporter.encode(&batch).as_slice()).unwrap();
        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                batch,
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(ours, theirs);
        assert_eq!(ours.resource_spans[0].scope_spans[0].spans.len(), 4);
    }

    #[test]
    fn headers_are_percent_decoded() {
        assert_eq!(
            percent_decode("Bearer%20a%2Cb").as_deref(),
            Some("Bearer a,b")
        );
        assert_eq!(percent_decode("50%"), None);
        assert_eq!(percent_decode("%zz"), None);
    }

    #[test]
    fn varint_lengths() {
        for v in [0_u64, 1, 127, 128, 16_383, 16_384, u64::MAX] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out.len(), varint_len(v), "{v}");
        }
    }
}
