//! Elastic APM intake v2 encoding: one JSON object per line, `metadata` first in every request.
//! Field names and shapes follow the schemas in specs/intake-v2.

use crate::ids::{SpanId, TraceId};
use crate::model::{
    AttributeValue, Attributes, DroppedSpanStats, ErrorRecord, Event, JsonMap, LabelValue, Labels, Link, MetricKind, MetricSample, MetricSpan,
    MetricTransaction, Metricset, OtelData, SpanRecord, TransactionRecord,
};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use serde_json::Value;

/// Appends the event as one NDJSON line (OpenTelemetry metrics as several).
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    // Serializing these views into a Vec cannot fail: every map key is a string.
    let _ = match event {
        Event::Span(span) => serde_json::to_writer(&mut *out, &SpanLine { span: SpanView::from(span.as_ref()) }),
        Event::Transaction(txn) => serde_json::to_writer(&mut *out, &TransactionLine { transaction: TransactionView::from(txn.as_ref()) }),
        Event::Error(error) => serde_json::to_writer(&mut *out, &ErrorLine { error: ErrorView::from(error.as_ref()) }),
        Event::Metricset(metricset) => serde_json::to_writer(&mut *out, &MetricsetLine { metricset: MetricsetView::from(metricset.as_ref()) }),
        Event::Log(record) => return crate::intake_log::encode(record, out),
        // Lines of their own, one per time and attribute set.
        Event::Metrics(metrics) => return crate::intake_meters::encode(metrics, out),
    };
    out.push(b'\n');
}

pub fn metadata_line(metadata: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec(&serde_json::json!({ "metadata": metadata })).unwrap_or_default();
    out.push(b'\n');
    out
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

impl Serialize for LabelValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            LabelValue::Str(v) => s.serialize_str(v),
            LabelValue::Bool(v) => s.serialize_bool(*v),
            LabelValue::Int(v) => s.serialize_i64(*v),
            LabelValue::Float(v) if v.is_finite() => s.serialize_f64(*v),
            // JSON has no NaN or infinity; Elastic agents send such labels as strings.
            LabelValue::Float(v) => s.collect_str(v),
        }
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl Serialize for AttributeValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let float = |v: &f64| if v.is_finite() { Value::from(*v) } else { Value::String(v.to_string()) };
        match self {
            AttributeValue::Str(v) => s.serialize_str(v),
            AttributeValue::Bool(v) => s.serialize_bool(*v),
            AttributeValue::Int(v) => s.serialize_i64(*v),
            AttributeValue::Float(v) => float(v).serialize(s),
            AttributeValue::StrArray(v) => v.serialize(s),
            AttributeValue::BoolArray(v) => v.serialize(s),
            AttributeValue::IntArray(v) => v.serialize(s),
            AttributeValue::FloatArray(v) => s.collect_seq(v.iter().map(float)),
        }
    }
}

impl Serialize for Attributes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.entries.len()))?;
        for (k, v) in &self.entries {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// `otel`: the OpenTelemetry attributes as they were given, and the kind of OTel-started spans.
#[derive(Serialize)]
struct OtelView<'a> {
    #[serde(skip_serializing_if = "Attributes::is_empty")]
    attributes: &'a Attributes,
    #[serde(skip_serializing_if = "Option::is_none")]
    span_kind: Option<&'static str>,
}

fn otel_view(otel: &Option<Box<OtelData>>) -> Option<OtelView<'_>> {
    let otel = otel.as_deref().filter(|o| o.kind.is_some() || !o.attributes.is_empty())?;
    Some(OtelView { attributes: &otel.attributes, span_kind: otel.kind.map(|k| k.as_str()) })
}

/// A record's context with its labels as `tags`.
struct ContextView<'a> {
    context: &'a JsonMap,
    labels: &'a Labels,
}

impl ContextView<'_> {
    fn is_empty(&self) -> bool {
        self.context.is_empty() && self.labels.is_empty()
    }
}

impl Serialize for ContextView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for (k, v) in self.context {
            if k != "tags" {
                map.serialize_entry(k, v)?;
            }
        }
        if !self.labels.is_empty() {
            map.serialize_entry("tags", self.labels)?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct LinkView {
    trace_id: TraceId,
    span_id: SpanId,
}

fn links(links: &[Link]) -> Vec<LinkView> {
    links.iter().map(|l| LinkView { trace_id: l.trace_id, span_id: l.span_id }).collect()
}

#[derive(Serialize)]
struct SpanLine<'a> {
    span: SpanView<'a>,
}

#[derive(Serialize)]
struct SpanView<'a> {
    id: SpanId,
    transaction_id: SpanId,
    parent_id: SpanId,
    trace_id: TraceId,
    name: &'a str,
    #[serde(rename = "type")]
    span_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subtype: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'a str>,
    timestamp: u64,
    duration: f64,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample_rate: Option<f64>,
    #[serde(skip_serializing_if = "ContextView::is_empty")]
    context: ContextView<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<LinkView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    composite: Option<CompositeView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stacktrace: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    otel: Option<OtelView<'a>>,
}

#[derive(Serialize)]
struct CompositeView {
    compression_strategy: &'static str,
    count: u32,
    sum: f64,
}

impl<'a> From<&'a SpanRecord> for SpanView<'a> {
    fn from(s: &'a SpanRecord) -> Self {
        SpanView {
            id: s.id,
            transaction_id: s.transaction_id,
            parent_id: s.parent_id,
            trace_id: s.trace_id,
            name: &s.name,
            span_type: &s.span_type,
            subtype: s.subtype.as_deref(),
            action: s.action.as_deref(),
            timestamp: s.timestamp_us,
            duration: ms(s.duration_us),
            outcome: s.outcome.as_str(),
            sample_rate: s.sample_rate,
            context: ContextView { context: &s.context, labels: &s.labels },
            links: links(&s.links),
            stacktrace: s.stacktrace.as_ref(),
            composite: s.composite.map(|c| CompositeView { compression_strategy: c.strategy.as_str(), count: c.count, sum: ms(c.sum_us) }),
            otel: otel_view(&s.otel),
        }
    }
}

#[derive(Serialize)]
struct TransactionLine<'a> {
    transaction: TransactionView<'a>,
}

#[derive(Serialize)]
struct SpanCount {
    started: u32,
    dropped: u32,
}

#[derive(Serialize)]
struct TransactionView<'a> {
    id: SpanId,
    trace_id: TraceId,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<SpanId>,
    name: &'a str,
    #[serde(rename = "type")]
    transaction_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a str>,
    outcome: &'static str,
    timestamp: u64,
    duration: f64,
    sampled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample_rate: Option<f64>,
    span_count: SpanCount,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dropped_spans_stats: Vec<DroppedSpanStatsView<'a>>,
    #[serde(skip_serializing_if = "ContextView::is_empty")]
    context: ContextView<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    links: Vec<LinkView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    otel: Option<OtelView<'a>>,
}

#[derive(Serialize)]
struct DroppedSpanStatsView<'a> {
    destination_service_resource: &'a str,
    service_target_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service_target_name: Option<&'a str>,
    outcome: &'static str,
    duration: DroppedDuration,
}

#[derive(Serialize)]
struct DroppedDuration {
    count: u64,
    sum: DroppedSum,
}

#[derive(Serialize)]
struct DroppedSum {
    us: u64,
}

impl<'a> From<&'a DroppedSpanStats> for DroppedSpanStatsView<'a> {
    fn from(s: &'a DroppedSpanStats) -> Self {
        DroppedSpanStatsView {
            destination_service_resource: &s.destination_resource,
            service_target_type: &s.target_type,
            service_target_name: s.target_name.as_deref(),
            outcome: s.outcome.as_str(),
            duration: DroppedDuration { count: s.count, sum: DroppedSum { us: s.sum_us } },
        }
    }
}

impl<'a> From<&'a TransactionRecord> for TransactionView<'a> {
    fn from(t: &'a TransactionRecord) -> Self {
        TransactionView {
            id: t.id,
            trace_id: t.trace_id,
            parent_id: t.parent_id,
            name: &t.name,
            transaction_type: &t.transaction_type,
            result: t.result.as_deref(),
            outcome: t.outcome.as_str(),
            timestamp: t.timestamp_us,
            duration: ms(t.duration_us),
            sampled: t.sampled,
            sample_rate: t.sample_rate,
            span_count: SpanCount { started: t.spans_started, dropped: t.spans_dropped },
            dropped_spans_stats: t.dropped_spans_stats.iter().map(DroppedSpanStatsView::from).collect(),
            context: ContextView { context: &t.context, labels: &t.labels },
            links: links(&t.links),
            otel: otel_view(&t.otel),
        }
    }
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    error: ErrorView<'a>,
}

#[derive(Serialize)]
struct ErrorTransactionView<'a> {
    sampled: bool,
    #[serde(rename = "type")]
    transaction_type: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct ErrorView<'a> {
    id: &'a str,
    timestamp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<TraceId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction_id: Option<SpanId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_id: Option<SpanId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction: Option<ErrorTransactionView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    culprit: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exception: Option<&'a Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    log: Option<&'a Value>,
    #[serde(skip_serializing_if = "ContextView::is_empty")]
    context: ContextView<'a>,
}

impl<'a> From<&'a ErrorRecord> for ErrorView<'a> {
    fn from(e: &'a ErrorRecord) -> Self {
        let txn = e.transaction.as_ref();
        ErrorView {
            id: &e.id,
            timestamp: e.timestamp_us,
            trace_id: txn.map(|t| t.trace_id),
            transaction_id: txn.map(|t| t.id),
            parent_id: txn.map(|t| t.parent_id),
            transaction: txn.map(|t| ErrorTransactionView { sampled: t.sampled, transaction_type: &t.transaction_type, name: &t.name }),
            culprit: e.culprit.as_deref(),
            exception: e.exception.as_ref(),
            log: e.log.as_ref(),
            context: ContextView { context: &e.context, labels: &e.labels },
        }
    }
}

#[derive(Serialize)]
struct MetricsetLine<'a> {
    metricset: MetricsetView<'a>,
}

#[derive(Serialize)]
struct MetricsetView<'a> {
    timestamp: u64,
    samples: Samples<'a>,
    #[serde(skip_serializing_if = "Labels::is_empty")]
    tags: &'a Labels,
    #[serde(skip_serializing_if = "Option::is_none")]
    transaction: Option<MetricTransactionView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    span: Option<MetricSpanView<'a>>,
}

/// `{"name": {"value": x, "type": "gauge"}}`; a value JSON cannot carry (NaN) is left out.
struct Samples<'a>(&'a [MetricSample]);

#[derive(Serialize)]
struct SampleView {
    value: f64,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl Serialize for Samples<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for sample in self.0.iter().filter(|sample| sample.value.is_finite()) {
            let kind = match sample.kind {
                MetricKind::Gauge => "gauge",
                MetricKind::Counter | MetricKind::DeltaCounter => "counter",
            };
            map.serialize_entry(&sample.name, &SampleView { value: sample.value, kind })?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct MetricTransactionView<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    transaction_type: &'a str,
}

#[derive(Serialize)]
struct MetricSpanView<'a> {
    #[serde(rename = "type")]
    span_type: &'a str,
    subtype: &'a str,
}

impl<'a> From<&'a Metricset> for MetricsetView<'a> {
    fn from(m: &'a Metricset) -> Self {
        MetricsetView {
            timestamp: m.timestamp_us,
            samples: Samples(&m.samples),
            tags: &m.labels,
            transaction: m.transaction.as_ref().map(|t: &'a MetricTransaction| MetricTransactionView { name: &t.name, transaction_type: &t.transaction_type }),
            span: m.span.as_ref().map(|s: &'a MetricSpan| MetricSpanView { span_type: &s.span_type, subtype: &s.subtype }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Outcome;

    fn line(event: Event) -> Value {
        let mut out = Vec::new();
        encode_event(&event, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        serde_json::from_slice(&out).unwrap()
    }

    use crate::model::{Composite, CompressionStrategy};

    #[test]
    fn span_line_has_the_intake_shape() {
        let mut span = SpanRecord {
            name: "SELECT FROM users".into(),
            span_type: "db".into(),
            subtype: Some("postgresql".into()),
            action: Some("query".into()),
            timestamp_us: 1_700_000_000_000_000,
            duration_us: 10_160,
            outcome: Outcome::Success,
            sample_rate: Some(1.0),
            ..Default::default()
        };
        span.labels.set("k", LabelValue::Float(f64::NAN));
        span.context.insert("db".into(), serde_json::json!({"type": "sql"}));
        let v = line(Event::Span(Box::new(span)));
        assert_eq!(v["span"]["duration"], 10.16);
        assert_eq!(v["span"]["type"], "db");
        assert_eq!(v["span"]["context"]["db"]["type"], "sql");
        assert_eq!(v["span"]["context"]["tags"]["k"], "NaN");
        assert_eq!(v["span"]["id"].as_str().unwrap().len(), 16);
        assert!(v["span"].get("links").is_none());
        assert!(v["span"].get("composite").is_none());
    }

    #[test]
    fn composites_and_dropped_span_stats() {
        let composite = Composite { strategy: CompressionStrategy::SameKind, count: 3, sum_us: 4_500 };
        let v = line(Event::Span(Box::new(SpanRecord { composite: Some(composite), ..Default::default() })));
        assert_eq!(v["span"]["composite"], serde_json::json!({"compression_strategy": "same_kind", "count": 3, "sum": 4.5}));
        let stats = DroppedSpanStats {
            destination_resource: "mysql/shop".into(),
            target_type: "mysql".into(),
            target_name: Some("shop".into()),
            outcome: Outcome::Success,
            count: 2,
            sum_us: 300,
        };
        let v = line(Event::Transaction(Box::new(TransactionRecord { dropped_spans_stats: vec![stats], ..Default::default() })));
        let expected = serde_json::json!([{"destination_service_resource": "mysql/shop", "service_target_type": "mysql", "service_target_name": "shop",
            "outcome": "success", "duration": {"count": 2, "sum": {"us": 300}}}]);
        assert_eq!(v["transaction"]["dropped_spans_stats"], expected);
    }

    #[test]
    fn transaction_and_error_lines() {
        let txn = TransactionRecord { name: "GET /".into(), transaction_type: "request".into(), sampled: true, spans_started: 3, ..Default::default() };
        let v = line(Event::Transaction(Box::new(txn)));
        assert_eq!(v["transaction"]["span_count"]["started"], 3);
        assert!(v["transaction"].get("parent_id").is_none());
        assert!(v["transaction"].get("context").is_none());

        let error = ErrorRecord { id: "abc".into(), log: Some(serde_json::json!({"message": "m"})), ..Default::default() };
        let v = line(Event::Error(Box::new(error)));
        assert_eq!(v["error"]["log"]["message"], "m");
        assert!(v["error"].get("trace_id").is_none());
    }

    /// Records that take every branch of the encoder, with text that needs escaping and numbers
    /// of every kind.
    fn every_field() -> Vec<Event> {
        use crate::model::{AttributeValue, ErrorTransaction, OtelData, SpanKind};
        use serde_json::json;
        let tricky = "q\"b\\s/\n\t\r\u{8}\u{c}\u{1}\u{1f}\u{7f} é 日本 \u{2028}\u{2029} 😀";
        let context = |extra: Value| {
            let mut context = json!({
                "custom": {"big": u64::MAX, "neg": i64::MIN, "float": 0.1, "exp": 1e300, "tiny": 1.5e-7, "whole": 2.0, "null": null,
                           "list": [1, "two", [false, true], {}], "empty": {}, tricky: tricky},
                "tags": {"replaced": "by the labels"},
            });
            context.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap());
            context.as_object().cloned().unwrap()
        };
        let mut labels = Labels::default();
        labels.set("text", LabelValue::Str(tricky.into()));
        labels.set("yes", LabelValue::Bool(true));
        labels.set("int", LabelValue::Int(-42));
        for (key, value) in [("float", 2.5), ("nan", f64::NAN), ("inf", f64::INFINITY), ("-inf", f64::NEG_INFINITY)] {
            labels.set(key, LabelValue::Float(value));
        }
        let mut attributes = Attributes::default();
        let floats = AttributeValue::FloatArray(vec![1.0, f64::INFINITY, f64::NAN, -0.5]);
        let values = [
            ("s", AttributeValue::Str(tricky.into())),
            ("b", AttributeValue::Bool(false)),
            ("i", AttributeValue::Int(i64::MAX)),
            ("f", AttributeValue::Float(1.25)),
            ("nan", AttributeValue::Float(f64::NAN)),
            ("ss", AttributeValue::StrArray(vec!["a".into(), "\"".into()])),
            ("bs", AttributeValue::BoolArray(vec![true])),
            ("is", AttributeValue::IntArray(vec![-1, 0])),
            ("fs", floats),
        ];
        for (key, value) in values {
            attributes.set(key, value, 128, None);
        }
        let links = vec![Link { trace_id: TraceId([0xab; 16]), span_id: SpanId([0x01; 8]), attributes: Attributes::default() }];
        let span = SpanRecord {
            id: SpanId([0x12; 8]),
            trace_id: TraceId([0xfe; 16]),
            transaction_id: SpanId([0x34; 8]),
            parent_id: SpanId([0x56; 8]),
            name: tricky.into(),
            span_type: "db".into(),
            subtype: Some("postgresql".into()),
            action: Some("query".into()),
            timestamp_us: 1_795_280_317_687_267,
            duration_us: 10_161,
            outcome: Outcome::Failure,
            sample_rate: Some(0.25),
            composite: Some(Composite { strategy: CompressionStrategy::ExactMatch, count: 7, sum_us: 3 }),
            stacktrace: Some(json!([{"filename": "app.py", "lineno": 3, "function": "f", "vars": {"x": 1.0}}])),
            labels: labels.clone(),
            context: context(json!({"db": {"statement": tricky, "rows_affected": 3}, "destination": {"address": "::1", "port": 5432}})),
            links: links.clone(),
            otel: Some(Box::new(OtelData { kind: Some(SpanKind::Client), attributes: attributes.clone(), ..Default::default() })),
            ..Default::default()
        };
        let stats = |target_name: Option<&str>| DroppedSpanStats {
            destination_resource: "mysql/shop".into(),
            target_type: "mysql".into(),
            target_name: target_name.map(str::to_owned),
            outcome: Outcome::Unknown,
            count: 2,
            sum_us: 300,
        };
        let transaction = TransactionRecord {
            id: SpanId([0x34; 8]),
            trace_id: TraceId([0xfe; 16]),
            parent_id: Some(SpanId([0x78; 8])),
            name: "GET /orders/<id>".into(),
            transaction_type: "request".into(),
            result: Some("HTTP 2xx".into()),
            outcome: Outcome::Success,
            timestamp_us: 1_795_280_317_687_000,
            duration_us: 1,
            sampled: true,
            sample_rate: Some(1.0),
            spans_started: 4,
            spans_dropped: 3,
            dropped_spans_stats: vec![stats(Some("shop")), stats(None)],
            labels,
            context: context(json!({"request": {"method": "GET", "headers": {"user-agent": tricky}}, "response": {"status_code": 200}})),
            links,
            otel: Some(Box::new(OtelData { kind: Some(SpanKind::Server), ..Default::default() })),
        };
        let error = ErrorRecord {
            id: "0123456789abcdef0123456789abcdef".into(),
            timestamp_us: 1_795_280_317_687_100,
            transaction: Some(ErrorTransaction {
                id: SpanId([0x34; 8]),
                trace_id: TraceId([0xfe; 16]),
                parent_id: SpanId([0x12; 8]),
                sampled: false,
                transaction_type: "request".into(),
                name: tricky.into(),
            }),
            culprit: Some("app.view".into()),
            exception: Some(json!({"message": tricky, "type": "ValueError", "handled": false, "stacktrace": []})),
            log: Some(json!({"message": "m", "level": "error"})),
            labels: Labels::default(),
            context: context(json!({})),
        };
        let mut metricset = Metricset {
            timestamp_us: 1_795_280_318_686_937,
            samples: vec![
                MetricSample { name: "span.self_time.sum.us".into(), value: 10160.5, kind: MetricKind::DeltaCounter },
                MetricSample { name: "dropped".into(), value: f64::INFINITY, kind: MetricKind::Gauge },
                MetricSample { name: tricky.into(), value: -3.0, kind: MetricKind::Gauge },
            ],
            transaction: Some(MetricTransaction { name: tricky.into(), transaction_type: "request".into() }),
            span: Some(MetricSpan { span_type: "db".into(), subtype: "mysql".into() }),
            ..Default::default()
        };
        metricset.labels.set("k", LabelValue::Str("v".into()));
        let attributes_only = SpanRecord {
            otel: Some(Box::new(OtelData { attributes: attributes.clone(), ..Default::default() })),
            context: json!({"tags": {"only": "tags"}}).as_object().cloned().unwrap(),
            ..Default::default()
        };
        let nothing_otel = SpanRecord { otel: Some(Box::default()), ..Default::default() };
        vec![
            Event::Span(Box::new(span)),
            Event::Transaction(Box::new(transaction)),
            Event::Error(Box::new(error)),
            Event::Metricset(Box::new(metricset)),
            Event::Span(Box::new(attributes_only)),
            Event::Span(Box::new(nothing_otel)),
            Event::Transaction(Box::default()),
            Event::Error(Box::default()),
            Event::Metricset(Box::default()),
        ]
    }

    /// What goes on the wire, byte for byte: APM Server has read these lines, any change to them
    /// must be deliberate.
    #[test]
    fn lines_are_byte_for_byte_as_sent() {
        let mut out = Vec::new();
        for event in every_field() {
            encode_event(&event, &mut out);
        }
        let expected = include_str!("../tests/intake_lines.ndjson");
        let actual = String::from_utf8(out).unwrap();
        for (expected, actual) in expected.lines().zip(actual.lines()) {
            assert_eq!(actual, expected);
        }
        assert_eq!(actual, expected);
    }

    #[test]
    fn metricset_lines_as_elastic_agents_send_them() {
        let sample = |name: &str, value: f64, kind| MetricSample { name: name.into(), value, kind };
        let breakdown = Metricset {
            timestamp_us: 1_795_280_318_686_937,
            samples: vec![sample("span.self_time.count", 1.0, MetricKind::DeltaCounter), sample("span.self_time.sum.us", 10160.0, MetricKind::DeltaCounter)],
            transaction: Some(MetricTransaction { name: "GET /users".into(), transaction_type: "request".into() }),
            span: Some(MetricSpan { span_type: "app".into(), subtype: String::new() }),
            ..Default::default()
        };
        let v = line(Event::Metricset(Box::new(breakdown)));
        assert_eq!(
            v,
            serde_json::json!({"metricset": {
                "timestamp": 1_795_280_318_686_937u64,
                "samples": {"span.self_time.count": {"value": 1.0, "type": "counter"}, "span.self_time.sum.us": {"value": 10160.0, "type": "counter"}},
                "transaction": {"name": "GET /users", "type": "request"},
                "span": {"type": "app", "subtype": ""},
            }})
        );
        let mut system = Metricset {
            samples: vec![sample("system.memory.total", 2e9, MetricKind::Gauge), sample("bad", f64::NAN, MetricKind::Gauge)],
            ..Default::default()
        };
        system.labels.set("k", LabelValue::Str("v".into()));
        let v = line(Event::Metricset(Box::new(system)));
        assert_eq!(v["metricset"]["samples"], serde_json::json!({"system.memory.total": {"value": 2e9, "type": "gauge"}}));
        assert_eq!(v["metricset"]["tags"], serde_json::json!({"k": "v"}));
        assert!(v["metricset"].get("transaction").is_none() && v["metricset"].get("span").is_none());
    }
}
