//! A span as the traces' layer records it and the exporter encodes it
//! (docs/operations.md#traces): its ids, its times, its name and its attributes, their
//! text values one after another in one string.

use opentelemetry::trace::{SpanContext, SpanId, SpanKind, TraceFlags, TraceId, TraceState};

/// A part of [`SpanRecord::text`]: its start and end.
pub(super) type Range = (u32, u32);

/// One span, as it is exported.
pub(super) struct SpanRecord {
    pub(super) trace_id: u128,
    pub(super) span_id: u64,
    /// 0 for none.
    pub(super) parent_id: u64,
    pub(super) parent_remote: bool,
    pub(super) sampled: bool,
    /// The W3C `tracestate`, when the trace has one.
    pub(super) trace_state: Option<Box<str>>,
    pub(super) name: Name,
    pub(super) kind: SpanKind,
    /// `otel.status_code` was `ERROR`.
    pub(super) error: bool,
    /// Nanoseconds since the Unix epoch.
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) attributes: Vec<Attribute>,
    /// The attributes' text values and a name given by `otel.name`, one after another.
    pub(super) text: String,
}

pub(super) enum Name {
    /// The span's name in the code.
    Static(&'static str),
    /// Given by its `otel.name` field.
    Text(Range),
}

pub(super) struct Attribute {
    pub(super) key: &'static str,
    pub(super) value: AttributeValue,
}

pub(super) enum AttributeValue {
    Text(Range),
    I64(i64),
    F64(f64),
    Bool(bool),
}

impl SpanRecord {
    pub(super) fn new(name: &'static str, span_id: u64) -> Self {
        SpanRecord {
            trace_id: 0,
            span_id,
            parent_id: 0,
            parent_remote: false,
            sampled: false,
            trace_state: None,
            name: Name::Static(name),
            kind: SpanKind::Internal,
            error: false,
            start: 0,
            end: 0,
            attributes: Vec::new(),
            text: String::new(),
        }
    }

    pub(super) fn name(&self) -> &str {
        match self.name {
            Name::Static(name) => name,
            Name::Text(range) => self.text(range),
        }
    }

    pub(super) fn text(&self, (start, end): Range) -> &str {
        self.text.get(start as usize..end as usize).unwrap_or("")
    }

    /// Appends `value` to [`SpanRecord::text`]: where it is.
    pub(super) fn push_text(&mut self, value: &str) -> Range {
        let start = self.text.len() as u32;
        self.text.push_str(value);
        (start, self.text.len() as u32)
    }

    /// The span's own context, for the calls it makes.
    pub(super) fn context(&self) -> SpanContext {
        let state = self
            .trace_state
            .as_deref()
            .and_then(|s| TraceState::from_key_value(key_values(s)).ok())
            .unwrap_or_default();
        SpanContext::new(
            TraceId::from(self.trace_id),
            SpanId::from(self.span_id),
            if self.sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            false,
            state,
        )
    }
}

/// The members of a `tracestate` header.
fn key_values(header: &str) -> Vec<(&str, &str)> {
    header
        .split(',')
        .filter_map(|member| member.trim().split_once('='))
        .collect()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A span as the layer records it: a server span with each kind of attribute.
    pub(crate) fn record() -> SpanRecord {
        let mut r = SpanRecord::new("request", 0x00f0_67aa_0ba9_02b7);
        r.trace_id = 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736;
        r.sampled = true;
        r.kind = SpanKind::Server;
        r.start = 1_700_000_000_000_000_001;
        r.end = 1_700_000_000_000_900_000;
        r.name = Name::Text(r.push_text("GET /users/me"));
        let text = [("http.route", "/users/me"), ("empty", "")];
        for (key, value) in text {
            let value = AttributeValue::Text(r.push_text(value));
            r.attributes.push(Attribute { key, value });
        }
        let other = [
            ("http.response.status_code", AttributeValue::I64(200)),
            ("negative", AttributeValue::I64(-5)),
            ("ratio", AttributeValue::F64(0.25)),
            ("ok", AttributeValue::Bool(true)),
        ];
        for (key, value) in other {
            r.attributes.push(Attribute { key, value });
        }
        r
    }
}
