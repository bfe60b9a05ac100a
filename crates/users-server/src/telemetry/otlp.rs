//! The OTLP/HTTP span exporter (docs/operations.md#traces): each batch of the export
//! queue (`batch.rs`) is written as one protobuf `ExportTraceServiceRequest` and POSTed
//! to the endpoint's `/v1/traces`, from the exporter's own thread.
//!
//! The protobuf is written straight from the layer's span records (`spans.rs`): the
//! resource and the instrumentation scope are encoded once, a span without a copy. The
//! wire format is the one of opentelemetry-proto's
//! `opentelemetry/proto/trace/v1/trace.proto`.

use std::time::Duration;

use opentelemetry::trace::SpanKind;
use opentelemetry::{Array, Value};
use opentelemetry_sdk::Resource;

use super::record::{AttributeValue, SpanRecord};

/// The standard variables of the headers sent with each export (`name=value,…`, values
/// percent-encoded): the traces' own add to (and replace) the general ones.
const HEADER_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
];

/// The name of the instrumentation scope of every span: the service's.
const SCOPE: &str = "users";

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
    pub(super) fn new(url: &str, timeout: Duration, resource: &Resource) -> Result<Self, String> {
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
        let mut encoded = Vec::new();
        for (key, value) in resource.iter() {
            key_value(&mut encoded, 1, key.as_str(), value);
        }
        Ok(Exporter {
            client,
            url: url.to_owned(),
            headers,
            resource: encoded,
            resource_schema_url: resource.schema_url().unwrap_or("").to_owned(),
        })
    }

    /// One `ExportTraceServiceRequest` holding `batch`: one resource, one scope. The
    /// spans are copied once, into the request: the messages around them are written
    /// with their lengths counted beforehand.
    fn encode(&self, batch: &[SpanRecord]) -> Vec<u8> {
        let mut spans = Vec::with_capacity(256 * batch.len());
        let mut span = Vec::with_capacity(256);
        for record in batch {
            span.clear();
            encode_span(&mut span, record);
            message(&mut spans, 2, &span);
        }
        // `InstrumentationScope`: its name
        let mut scope = Vec::with_capacity(8);
        string(&mut scope, 1, SCOPE);
        let field_len = |len: usize| 1 + varint_len(len as u64) + len;
        let schema_len = match self.resource_schema_url.len() {
            0 => 0,
            n => field_len(n),
        };
        // `ScopeSpans`: the scope, the spans; `ResourceSpans`: the resource, the scope's
        // spans, the schema
        let scope_spans_len = field_len(scope.len()) + spans.len();
        let resource_spans_len =
            field_len(self.resource.len()) + field_len(scope_spans_len) + schema_len;
        let mut request = Vec::with_capacity(field_len(resource_spans_len));
        tag(&mut request, 1, LEN);
        varint(&mut request, resource_spans_len as u64);
        message(&mut request, 1, &self.resource);
        tag(&mut request, 2, LEN);
        varint(&mut request, scope_spans_len as u64);
        message(&mut request, 1, &scope);
        request.extend_from_slice(&spans);
        string(&mut request, 3, &self.resource_schema_url);
        request
    }

    /// Encodes and POSTs `batch`.
    pub(super) fn export(&self, batch: &[SpanRecord]) -> Result<(), String> {
        if batch.is_empty() {
            return Ok(());
        }
        let body = self.encode(batch);
        let response = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .send()
            .map_err(|e| format!("OTLP export: {e}"))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("OTLP export: the receiver answered {status}"))
        }
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

/// `SpanFlags`: the W3C trace flags, and whether the parent is remote (known).
fn flags(trace_flags: u8, remote: bool) -> u32 {
    u32::from(trace_flags) | 0x100 | if remote { 0x200 } else { 0 }
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// A `KeyValue` of OpenTelemetry's (the resource's) as field `field` of its message.
fn key_value(out: &mut Vec<u8>, field: u32, key: &str, value: &Value) {
    let mut kv = Vec::with_capacity(key.len() + 64);
    string(&mut kv, 1, key);
    let mut any = Vec::with_capacity(64);
    any_value(&mut any, value);
    message(&mut kv, 2, &any);
    message(out, field, &kv);
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

/// A span's attribute as a `KeyValue` (field `field`), written in place: its length is
/// known beforehand.
fn attribute(out: &mut Vec<u8>, field: u32, key: &str, value: &AttributeValue, text: &SpanRecord) {
    let key_len = if key.is_empty() {
        0
    } else {
        1 + varint_len(key.len() as u64) + key.len()
    };
    let any_len = match value {
        AttributeValue::Bool(_) => 2,
        AttributeValue::I64(i) => 1 + varint_len(*i as u64),
        AttributeValue::F64(_) => 9,
        AttributeValue::Text(range) => {
            let len = text.text(*range).len();
            1 + varint_len(len as u64) + len
        }
    };
    tag(out, field, LEN);
    varint(
        out,
        (key_len + 1 + varint_len(any_len as u64) + any_len) as u64,
    );
    string(out, 1, key);
    tag(out, 2, LEN);
    varint(out, any_len as u64);
    match value {
        AttributeValue::Bool(b) => {
            tag(out, 2, VARINT);
            varint(out, u64::from(*b));
        }
        AttributeValue::I64(i) => {
            tag(out, 3, VARINT);
            varint(out, *i as u64);
        }
        AttributeValue::F64(f) => {
            tag(out, 4, FIXED64);
            out.extend_from_slice(&f.to_le_bytes());
        }
        // a oneof member: present even when empty
        AttributeValue::Text(range) => message(out, 1, text.text(*range).as_bytes()),
    }
}

/// The fields of a `Span`.
fn encode_span(out: &mut Vec<u8>, span: &SpanRecord) {
    bytes(out, 1, &span.trace_id.to_be_bytes());
    bytes(out, 2, &span.span_id.to_be_bytes());
    string(out, 3, span.trace_state.as_deref().unwrap_or(""));
    if span.parent_id != 0 {
        bytes(out, 4, &span.parent_id.to_be_bytes());
    }
    string(out, 5, span.name());
    let kind: u64 = match span.kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    uint(out, 6, kind);
    fixed64(out, 7, span.start);
    fixed64(out, 8, span.end);
    for a in &span.attributes {
        attribute(out, 9, a.key, &a.value, span);
    }
    // `Status`: code (3: 2 error), no message; present when unset too
    if span.error {
        tag(out, 15, LEN);
        varint(out, 2);
        uint(out, 3, 2);
    } else {
        message(out, 15, &[]);
    }
    fixed32(out, 16, flags(u8::from(span.sampled), span.parent_remote));
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
    use opentelemetry::{InstrumentationScope, KeyValue};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::SpanData;
    use prost::Message;
    use std::time::SystemTime;

    /// The SDK's span that `record` stands for.
    fn sdk_span(record: &SpanRecord) -> SpanData {
        let state = record
            .trace_state
            .as_deref()
            .map(|s| s.parse::<TraceState>().unwrap())
            .unwrap_or_default();
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(record.trace_id),
                SpanId::from(record.span_id),
                if record.sampled {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                },
                false,
                state,
            ),
            parent_span_id: SpanId::from(record.parent_id),
            parent_span_is_remote: record.parent_remote,
            span_kind: record.kind.clone(),
            name: record.name().to_owned().into(),
            start_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(record.start),
            end_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(record.end),
            attributes: record
                .attributes
                .iter()
                .map(|a| {
                    let value = match &a.value {
                        AttributeValue::Text(r) => Value::from(record.text(*r).to_owned()),
                        AttributeValue::I64(i) => Value::I64(*i),
                        AttributeValue::F64(f) => Value::F64(*f),
                        AttributeValue::Bool(b) => Value::Bool(*b),
                    };
                    KeyValue::new(a.key, value)
                })
                .collect(),
            dropped_attributes_count: 0,
            events: opentelemetry_sdk::trace::SpanEvents::default(),
            links: opentelemetry_sdk::trace::SpanLinks::default(),
            status: if record.error {
                Status::error("")
            } else {
                Status::Unset
            },
            instrumentation_scope: InstrumentationScope::builder(SCOPE).build(),
        }
    }

    /// What the service sends decodes to exactly what OpenTelemetry's own conversion
    /// of the same spans gives.
    #[test]
    fn encodes_what_the_generic_exporter_would() {
        let resource = Resource::builder()
            .with_service_name("users-under-test")
            .build();
        let exporter = Exporter::new(
            "http://127.0.0.1:9/v1/traces",
            Duration::from_secs(1),
            &resource,
        )
        .unwrap();
        let server = crate::telemetry::record::tests::record();
        let mut child = crate::telemetry::record::tests::record();
        child.span_id = 3;
        child.parent_id = server.span_id;
        child.kind = SpanKind::Client;
        child.error = true;
        child.attributes.clear();
        let mut remote = crate::telemetry::record::tests::record();
        remote.span_id = 4;
        remote.parent_id = 9;
        remote.parent_remote = true;
        remote.trace_state = Some("k=v,other=w".into());
        remote.kind = SpanKind::Consumer;
        let batch = vec![server, child, remote];
        let ours = ExportTraceServiceRequest::decode(exporter.encode(&batch).as_slice()).unwrap();
        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                batch.iter().map(sdk_span).collect(),
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(ours, theirs);
        assert_eq!(ours.resource_spans[0].scope_spans[0].spans.len(), 3);
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
