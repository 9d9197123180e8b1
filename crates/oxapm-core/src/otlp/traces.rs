//! Records as OTLP spans. Transactions and spans both become OTLP spans; Elastic's context maps
//! to the OpenTelemetry semantic conventions where one exists, and the Elastic-only fields (type,
//! subtype, action, result) travel as `elastic.*` attributes so nothing is lost on the way.
//! Spans the OpenTelemetry API started go out as they were given: kind, attributes, events, link
//! attributes, status, and their instrumentation scope.
//! Unsampled transactions are not exported: OTLP carries recorded spans only.

use super::proto::{
    any_value, AnyValue, ArrayValue, ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans, ScopeSpans, Span, SpanEvent, SpanKind,
    SpanLink, Status, StatusCode,
};
use super::proto::{SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE, SPAN_FLAGS_CONTEXT_IS_REMOTE};
use crate::model::{self, AttributeValue, Attributes, Event, JsonMap, LabelValue, Labels, Link, OtelData, Outcome, Scope, SpanRecord, TransactionRecord};
use crate::service_target;
use crate::traceparent::format_sample_rate;
use serde_json::Value;
use std::sync::Arc;

const SAMPLED: u32 = 0x01;

pub fn string(key: &str, value: impl Into<String>) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.into()))
}

pub fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(value) }) }
}

/// The OTLP span for a record, if the record is one OTLP carries, with the scope of the tracer
/// that started it (`None`: the Elastic API, reported under oxapm's own scope).
pub fn span(event: &Event) -> Option<(Span, Option<&Arc<Scope>>)> {
    match event {
        Event::Span(span) => Some((from_span(span), scope_of(&span.otel))),
        Event::Transaction(transaction) if transaction.sampled => Some((from_transaction(transaction), scope_of(&transaction.otel))),
        // Errors belong to the logs signal (issue 7), metricsets to the metrics signal; unsampled
        // transactions are not recorded.
        _ => None,
    }
}

fn scope_of(otel: &Option<Box<OtelData>>) -> Option<&Arc<Scope>> {
    otel.as_deref().and_then(|o| o.scope.as_ref())
}

/// The spans of a batch grouped by instrumentation scope, in order of first appearance.
#[derive(Default)]
pub struct ScopedSpans {
    groups: Vec<(Option<Arc<Scope>>, Vec<Span>)>,
    len: usize,
}

impl ScopedSpans {
    pub fn push(&mut self, span: Span, scope: Option<&Arc<Scope>>) {
        let same = |group: &Option<Arc<Scope>>| match (group, scope) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            (None, None) => true,
            _ => false,
        };
        match self.groups.iter_mut().find(|(group, _)| same(group)) {
            Some((_, spans)) => spans.push(span),
            None => self.groups.push((scope.cloned(), vec![span])),
        }
        self.len += 1;
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// One export request: the spans of the batch under the process's resource, each group under its
/// scope (oxapm's own for the Elastic API's spans).
pub fn request(resource: &Resource, oxapm_scope: &InstrumentationScope, spans: ScopedSpans) -> ExportTraceServiceRequest {
    let scope_spans = spans
        .groups
        .into_iter()
        .map(|(scope, spans)| match scope {
            Some(scope) => ScopeSpans { scope: Some(instrumentation_scope(&scope)), spans, schema_url: scope.schema_url.clone().unwrap_or_default() },
            None => ScopeSpans { scope: Some(oxapm_scope.clone()), spans, schema_url: String::new() },
        })
        .collect();
    ExportTraceServiceRequest { resource_spans: vec![ResourceSpans { resource: Some(resource.clone()), scope_spans, schema_url: String::new() }] }
}

/// A scope the OpenTelemetry API named (a tracer's, a logger's) as OTLP sends it.
pub(crate) fn instrumentation_scope(scope: &Scope) -> InstrumentationScope {
    InstrumentationScope {
        name: scope.name.clone(),
        version: scope.version.clone().unwrap_or_default(),
        attributes: key_values(&scope.attributes),
        dropped_attributes_count: scope.attributes.dropped,
    }
}

/// Attributes, kind, status and events of a span the OTel API started, in place of the ones the
/// Elastic fields would give.
fn apply_otel(span: &mut Span, otel: &OtelData, labels: &Labels) {
    let Some(kind) = otel.kind else {
        // An Elastic span that instrumentations annotated: their attributes join the mapped ones.
        for (key, value) in &otel.attributes.entries {
            if !span.attributes.iter().any(|kv| &kv.key == key) {
                span.attributes.push(attribute(key, any(value)));
            }
        }
        span.dropped_attributes_count = otel.attributes.dropped;
        return;
    };
    span.kind = kind as i32 + 1;
    span.attributes = key_values(&otel.attributes);
    label_attributes(labels, &mut span.attributes);
    span.dropped_attributes_count = otel.attributes.dropped;
    span.status = match otel.status {
        model::StatusCode::Unset => None,
        model::StatusCode::Ok => Some(Status { message: String::new(), code: StatusCode::Ok as i32 }),
        model::StatusCode::Error => Some(Status { message: otel.status_description.clone().unwrap_or_default(), code: StatusCode::Error as i32 }),
    };
    span.events = otel
        .events
        .iter()
        .map(|e| SpanEvent {
            time_unix_nano: e.timestamp_us * 1000,
            name: e.name.clone(),
            attributes: key_values(&e.attributes),
            dropped_attributes_count: e.attributes.dropped,
        })
        .collect();
    span.dropped_events_count = otel.dropped_events;
    span.dropped_links_count = otel.dropped_links;
}

pub(crate) fn any(value: &AttributeValue) -> any_value::Value {
    let array =
        |values: Vec<any_value::Value>| any_value::Value::ArrayValue(ArrayValue { values: values.into_iter().map(|v| AnyValue { value: Some(v) }).collect() });
    match value {
        AttributeValue::Str(s) => any_value::Value::StringValue(s.clone()),
        AttributeValue::Bool(b) => any_value::Value::BoolValue(*b),
        AttributeValue::Int(i) => any_value::Value::IntValue(*i),
        AttributeValue::Float(f) => any_value::Value::DoubleValue(*f),
        AttributeValue::StrArray(v) => array(v.iter().map(|s| any_value::Value::StringValue(s.clone())).collect()),
        AttributeValue::BoolArray(v) => array(v.iter().map(|b| any_value::Value::BoolValue(*b)).collect()),
        AttributeValue::IntArray(v) => array(v.iter().map(|i| any_value::Value::IntValue(*i)).collect()),
        AttributeValue::FloatArray(v) => array(v.iter().map(|f| any_value::Value::DoubleValue(*f)).collect()),
    }
}

pub(crate) fn key_values(attributes: &Attributes) -> Vec<KeyValue> {
    attributes.entries.iter().map(|(key, value)| attribute(key, any(value))).collect()
}

fn from_span(s: &SpanRecord) -> Span {
    let mut attributes = Vec::with_capacity(4 + s.labels.0.len());
    attributes.push(string("elastic.span.type", s.span_type.as_str()));
    if let Some(subtype) = &s.subtype {
        attributes.push(string("elastic.span.subtype", subtype.as_str()));
    }
    if let Some(action) = &s.action {
        attributes.push(string("elastic.span.action", action.as_str()));
    }
    // The system of a database span that has a context (as an exit span always has: its service
    // target is part of it).
    let has_context = !s.context.is_empty() || service_target::infers(s);
    context_attributes(&s.context, s.subtype.as_deref().filter(|_| s.span_type == "db" && has_context), &mut attributes);
    label_attributes(&s.labels, &mut attributes);
    let mut span = Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.id.0.to_vec(),
        trace_state: trace_state(s.sample_rate),
        parent_span_id: s.parent_id.0.to_vec(),
        flags: SAMPLED | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE,
        name: s.name.clone(),
        kind: span_kind(s) as i32,
        start_time_unix_nano: s.timestamp_us * 1000,
        end_time_unix_nano: (s.timestamp_us + s.duration_us) * 1000,
        attributes,
        links: links(&s.links),
        status: status(s.outcome),
        ..Default::default()
    };
    if let Some(otel) = &s.otel {
        apply_otel(&mut span, otel, &s.labels);
    }
    if let Some(composite) = &s.composite {
        // OTLP has no composite spans: the Elastic fields, under Elastic names.
        span.attributes.push(string("elastic.span.composite.compression_strategy", composite.strategy.as_str()));
        span.attributes.push(attribute("elastic.span.composite.count", any_value::Value::IntValue(i64::from(composite.count))));
        span.attributes.push(attribute("elastic.span.composite.sum.us", any_value::Value::IntValue(composite.sum_us as i64)));
    }
    span
}

fn from_transaction(t: &TransactionRecord) -> Span {
    let mut attributes = Vec::with_capacity(2 + t.labels.0.len());
    attributes.push(string("elastic.transaction.type", t.transaction_type.as_str()));
    if let Some(result) = &t.result {
        attributes.push(string("elastic.transaction.result", result.as_str()));
    }
    context_attributes(&t.context, None, &mut attributes);
    label_attributes(&t.labels, &mut attributes);
    let remote = if t.parent_id.is_some() { SPAN_FLAGS_CONTEXT_IS_REMOTE } else { 0 };
    let mut span = Span {
        trace_id: t.trace_id.0.to_vec(),
        span_id: t.id.0.to_vec(),
        trace_state: trace_state(t.sample_rate),
        parent_span_id: t.parent_id.map(|p| p.0.to_vec()).unwrap_or_default(),
        flags: SAMPLED | SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE | remote,
        name: t.name.clone(),
        kind: transaction_kind(&t.transaction_type) as i32,
        start_time_unix_nano: t.timestamp_us * 1000,
        end_time_unix_nano: (t.timestamp_us + t.duration_us) * 1000,
        attributes,
        links: links(&t.links),
        status: status(t.outcome),
        ..Default::default()
    };
    if let Some(otel) = &t.otel {
        apply_otel(&mut span, otel, &t.labels);
    }
    span
}

/// Elastic's `es=s:<rate>` tracestate entry, which Elastic backends read for span counts.
fn trace_state(sample_rate: Option<f64>) -> String {
    match sample_rate {
        None => String::new(),
        Some(1.0) => "es=s:1".to_owned(), // the default, spared the float formatting
        Some(rate) => format!("es=s:{}", format_sample_rate(rate)),
    }
}

/// The reverse of the mapping Elastic applies to OTel spans: request transactions serve, messaging
/// ones consume.
fn transaction_kind(transaction_type: &str) -> SpanKind {
    match transaction_type {
        "request" => SpanKind::Server,
        "messaging" => SpanKind::Consumer,
        _ => SpanKind::Internal,
    }
}

/// Exit spans (leaves of the Elastic API, spans with a destination or an external/db/cache type)
/// are clients; a messaging `send` produces.
fn span_kind(s: &SpanRecord) -> SpanKind {
    match (s.span_type.as_str(), s.action.as_deref()) {
        ("messaging", Some("send")) => SpanKind::Producer,
        ("messaging", _) => SpanKind::Consumer,
        ("external" | "db" | "cache" | "storage", _) => SpanKind::Client,
        _ if service_target::infers(s) || s.context.contains_key("destination") => SpanKind::Client,
        _ => SpanKind::Internal,
    }
}

fn status(outcome: Outcome) -> Option<Status> {
    let code = match outcome {
        Outcome::Unknown => return None,
        Outcome::Success => StatusCode::Ok,
        Outcome::Failure => StatusCode::Error,
    };
    Some(Status { message: String::new(), code: code as i32 })
}

fn links(links: &[Link]) -> Vec<SpanLink> {
    links
        .iter()
        .map(|l| SpanLink {
            trace_id: l.trace_id.0.to_vec(),
            span_id: l.span_id.0.to_vec(),
            attributes: key_values(&l.attributes),
            dropped_attributes_count: l.attributes.dropped,
            ..Default::default()
        })
        .collect()
}

pub(crate) fn label_attributes(labels: &Labels, out: &mut Vec<KeyValue>) {
    for (key, value) in &labels.0 {
        let value = match value {
            LabelValue::Str(s) => any_value::Value::StringValue(s.clone()),
            LabelValue::Bool(b) => any_value::Value::BoolValue(*b),
            LabelValue::Int(i) => any_value::Value::IntValue(*i),
            LabelValue::Float(f) => any_value::Value::DoubleValue(*f),
        };
        out.push(attribute(key, value));
    }
}

/// Elastic context fields, and the semantic-convention attribute each becomes.
const CONTEXT_ATTRIBUTES: &[(&str, &[&str], &str)] = &[
    ("db", &["statement"], "db.query.text"),
    ("db", &["instance"], "db.namespace"),
    ("db", &["user"], "db.user"),
    ("http", &["url"], "url.full"),
    ("http", &["method"], "http.request.method"),
    ("http", &["status_code"], "http.response.status_code"),
    ("destination", &["address"], "server.address"),
    ("destination", &["port"], "server.port"),
    ("message", &["queue", "name"], "messaging.destination.name"),
    ("request", &["method"], "http.request.method"),
    ("request", &["url", "full"], "url.full"),
    ("response", &["status_code"], "http.response.status_code"),
    ("user", &["id"], "user.id"),
    ("user", &["email"], "user.email"),
    ("user", &["username"], "user.name"),
];

fn context_attributes(context: &JsonMap, db_system: Option<&str>, out: &mut Vec<KeyValue>) {
    if let Some(system) = db_system {
        out.push(string("db.system.name", system));
    }
    // Walk the sections the record has (a few), not every mapping (a map lookup each).
    for (section, value) in context {
        for (_, path, key) in CONTEXT_ATTRIBUTES.iter().filter(|(s, _, _)| s == section) {
            let found = path.iter().try_fold(value, |value, step| value.get(step));
            if let Some(value) = found.and_then(scalar) {
                out.push(attribute(key, value));
            }
        }
    }
}

fn scalar(value: &Value) -> Option<any_value::Value> {
    match value {
        Value::String(s) => Some(any_value::Value::StringValue(s.clone())),
        Value::Bool(b) => Some(any_value::Value::BoolValue(*b)),
        Value::Number(n) => n.as_i64().map(any_value::Value::IntValue).or_else(|| n.as_f64().map(any_value::Value::DoubleValue)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SpanId, TraceId};
    use serde_json::json;

    fn value_of<'a>(span: &'a Span, key: &str) -> Option<&'a any_value::Value> {
        span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()
    }

    #[test]
    fn an_exit_span_maps_to_a_client_span_with_semantic_attributes() {
        let mut record = SpanRecord {
            id: SpanId([2; 8]),
            trace_id: TraceId([1; 16]),
            parent_id: SpanId([3; 8]),
            name: "SELECT FROM users".into(),
            span_type: "db".into(),
            subtype: Some("postgresql".into()),
            action: Some("query".into()),
            timestamp_us: 1_700_000_000_000_000,
            duration_us: 1500,
            outcome: Outcome::Failure,
            sample_rate: Some(0.5),
            ..Default::default()
        };
        record.context.insert("db".into(), json!({"statement": "SELECT 1", "instance": "shop"}));
        record.context.insert("destination".into(), json!({"address": "db.local", "port": 5432}));
        record.labels.set("tenant", LabelValue::Int(7));
        let (span, _) = span(&Event::Span(Box::new(record))).unwrap();
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(span.end_time_unix_nano - span.start_time_unix_nano, 1_500_000);
        assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert_eq!(span.trace_state, "es=s:0.5");
        assert_eq!(value_of(&span, "db.system.name"), Some(&any_value::Value::StringValue("postgresql".into())));
        assert_eq!(value_of(&span, "db.query.text"), Some(&any_value::Value::StringValue("SELECT 1".into())));
        assert_eq!(value_of(&span, "server.port"), Some(&any_value::Value::IntValue(5432)));
        assert_eq!(value_of(&span, "tenant"), Some(&any_value::Value::IntValue(7)));
    }

    /// Spans as the export thread finishes them, as OTLP spans byte for byte (in hex).
    #[test]
    fn exit_spans_as_sent_byte_for_byte() {
        use prost::Message;
        let mut lines = String::new();
        for span in crate::service_target::test_spans() {
            let mut event = Event::Span(Box::new(span));
            crate::policy::Policy::default().finish(&mut event);
            let (span, _) = super::span(&event).unwrap();
            lines.extend(span.encode_to_vec().iter().map(|byte| format!("{byte:02x}")));
            lines.push('\n');
        }
        assert_eq!(lines, include_str!("../../tests/otlp_exit_spans.txt"));
    }

    #[test]
    fn unsampled_transactions_and_errors_are_not_spans() {
        let unsampled = TransactionRecord { sampled: false, ..Default::default() };
        assert!(span(&Event::Transaction(Box::new(unsampled))).is_none());
        assert!(span(&Event::Error(Box::default())).is_none());
        let continued = TransactionRecord { sampled: true, parent_id: Some(SpanId([9; 8])), transaction_type: "request".into(), ..Default::default() };
        let (span, _) = span(&Event::Transaction(Box::new(continued))).unwrap();
        assert_eq!(span.flags, 0x301);
        assert_eq!(span.kind, SpanKind::Server as i32);
    }
}
