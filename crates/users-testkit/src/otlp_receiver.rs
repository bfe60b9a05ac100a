//! An OTLP/HTTP receiver on loopback, as a collector would run one: it takes the export
//! requests POSTed to `/v1/traces` (protobuf, OpenTelemetry's own message definitions
//! decoded with prost, nothing of the service's code), keeps every span, and keeps the
//! raw bodies too, so that a test can look for a string anywhere in what was exported.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;

/// One exported span, flattened.
#[derive(Debug, Clone)]
pub struct Span {
    /// Lower-case hex, as in a `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP's span kind: 1 internal, 2 server, 3 client.
    pub kind: i32,
    pub attributes: Vec<(String, String)>,
    /// The trace ids of the span's links.
    pub links: Vec<String>,
    /// The `service.name` of the resource the span came with.
    pub service_name: Option<String>,
}

impl Span {
    /// The value of attribute `key`, as text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    spans: Mutex<Vec<Span>>,
    bodies: Mutex<Vec<Vec<u8>>>,
}

pub struct Receiver {
    /// What `OTEL_EXPORTER_OTLP_ENDPOINT` is set to (the exporter appends `/v1/traces`).
    pub endpoint: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: &Option<AnyValue>) -> String {
    match value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn pairs(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

async fn receive(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type != "application/x-protobuf" {
        return HttpResponse::UnsupportedMediaType().finish();
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body.as_ref()) else {
        return HttpResponse::BadRequest().body("not an ExportTraceServiceRequest");
    };
    let mut spans = Vec::new();
    for resource_spans in &request.resource_spans {
        let service_name = resource_spans.resource.as_ref().and_then(|r| {
            pairs(&r.attributes)
                .into_iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v)
        });
        for scope_spans in &resource_spans.scope_spans {
            for span in &scope_spans.spans {
                spans.push(Span {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    kind: span.kind,
                    attributes: pairs(&span.attributes),
                    links: span.links.iter().map(|l| hex(&l.trace_id)).collect(),
                    service_name: service_name.clone(),
                });
            }
        }
    }
    shared.spans.lock().expect("lock").extend(spans);
    shared.bodies.lock().expect("lock").push(body.to_vec());
    HttpResponse::Ok()
        .content_type("application/x-protobuf")
        .body(ExportTraceServiceResponse::default().encode_to_vec())
}

impl Receiver {
    /// A receiver on a random port.
    pub async fn start() -> Receiver {
        let shared = web::Data::new(Shared::default());
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(16 * 1024 * 1024))
                .route("/v1/traces", web::post().to(receive))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind the OTLP receiver");
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            endpoint: format!("http://127.0.0.1:{port}"),
            shared: shared.into_inner(),
            handle,
        }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.shared.spans.lock().expect("lock").clone()
    }

    /// How many export requests arrived.
    pub fn exports(&self) -> usize {
        self.shared.bodies.lock().expect("lock").len()
    }

    /// Whether `needle` occurs in any export request as it came over the wire (protobuf
    /// keeps strings as UTF-8 bytes), or in a span as decoded.
    pub fn contains(&self, needle: &str) -> bool {
        let raw = self
            .shared
            .bodies
            .lock()
            .expect("lock")
            .iter()
            .any(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()));
        raw || self
            .spans()
            .iter()
            .any(|s| format!("{s:?}").contains(needle))
    }

    /// Waits until a span satisfies `found`; panics after `timeout`.
    pub async fn wait_for(&self, timeout: Duration, found: impl Fn(&Span) -> bool) -> Span {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(span) = self.spans().into_iter().find(|s| found(s)) {
                return span;
            }
            if tokio::time::Instant::now() > deadline {
                panic!(
                    "no such span arrived; received: {:#?}",
                    self.spans()
                        .iter()
                        .map(|s| (&s.name, &s.trace_id))
                        .collect::<Vec<_>>()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // the stop command is sent now; its completion is not awaited
        drop(self.handle.stop(false));
    }
}
