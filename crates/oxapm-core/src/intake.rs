//! Elastic APM intake v2 encoding: one JSON object per line, `metadata` first in every request.
//! Field names and shapes follow the schemas in specs/intake-v2. The lines are written with
//! `json`, field by field in the order APM Server has always been sent them.

use crate::json::{self, Array, Object};
use crate::model::{
    AttributeValue, Attributes, DroppedSpanStats, ErrorRecord, Event, JsonMap, LabelValue, Labels, Link, MetricKind, Metricset, OtelData, SpanRecord,
    TransactionRecord,
};
use crate::service_target::{self, ServiceTarget};
use serde_json::Value;

/// Appends the event as one NDJSON line (OpenTelemetry metrics as several).
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    match event {
        Event::Span(span) => line(out, "span", |o| span_fields(o, span)),
        Event::Transaction(txn) => line(out, "transaction", |o| transaction_fields(o, txn)),
        Event::Error(error) => line(out, "error", |o| error_fields(o, error)),
        Event::Metricset(metricset) => line(out, "metricset", |o| metricset_fields(o, metricset)),
        Event::Log(record) => crate::intake_log::encode(record, out),
        // Lines of their own, one per time and attribute set.
        Event::Metrics(metrics) => crate::intake_meters::encode(metrics, out),
    }
}

pub fn metadata_line(metadata: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut line = Object::new(&mut out);
    json::value(line.key("metadata"), metadata);
    line.end();
    out.push(b'\n');
    out
}

/// `{"<kind>":{<fields>}}` and a newline.
pub(crate) fn line(out: &mut Vec<u8>, kind: &'static str, fields: impl FnOnce(&mut Object)) {
    let mut line = Object::new(out);
    let mut object = Object::new(line.key(kind));
    fields(&mut object);
    object.end();
    line.end();
    out.push(b'\n');
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

pub(crate) fn id<const N: usize>(o: &mut Object, name: &'static str, bytes: &[u8; N]) {
    json::hex(o.key(name), bytes);
}

fn optional_str(o: &mut Object, name: &'static str, value: Option<&str>) {
    if let Some(value) = value {
        json::string(o.key(name), value);
    }
}

/// A float JSON can carry as a number, any other as text (`NaN`, `inf`), as Elastic agents send
/// such labels.
fn float_or_text(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        json::f64(out, value);
    } else {
        json::string(out, &value.to_string());
    }
}

fn labels(out: &mut Vec<u8>, labels: &Labels) {
    let mut o = Object::new(out);
    for (key, value) in &labels.0 {
        let out = o.entry(key);
        match value {
            LabelValue::Str(v) => json::string(out, v),
            LabelValue::Bool(v) => json::bool(out, *v),
            LabelValue::Int(v) => json::i64(out, *v),
            LabelValue::Float(v) => float_or_text(out, *v),
        }
    }
    o.end();
}

pub(crate) fn attribute_value(out: &mut Vec<u8>, value: &AttributeValue) {
    fn array<T>(out: &mut Vec<u8>, items: &[T], item: impl Fn(&mut Vec<u8>, &T)) {
        let mut array = Array::new(out);
        for value in items {
            item(array.item(), value);
        }
        array.end();
    }
    match value {
        AttributeValue::Str(v) => json::string(out, v),
        AttributeValue::Bool(v) => json::bool(out, *v),
        AttributeValue::Int(v) => json::i64(out, *v),
        AttributeValue::Float(v) => float_or_text(out, *v),
        AttributeValue::StrArray(v) => array(out, v, |out, v| json::string(out, v)),
        AttributeValue::BoolArray(v) => array(out, v, |out, v| json::bool(out, *v)),
        AttributeValue::IntArray(v) => array(out, v, |out, v| json::i64(out, *v)),
        AttributeValue::FloatArray(v) => array(out, v, |out, v| float_or_text(out, *v)),
    }
}

fn attributes(out: &mut Vec<u8>, attributes: &Attributes) {
    let mut o = Object::new(out);
    for (key, value) in &attributes.entries {
        attribute_value(o.entry(key), value);
    }
    o.end();
}

/// `otel`: the OpenTelemetry attributes as they were given, and the kind of OTel-started spans.
fn otel(o: &mut Object, otel: &Option<Box<OtelData>>) {
    let Some(otel) = otel.as_deref().filter(|o| o.kind.is_some() || !o.attributes.is_empty()) else { return };
    let mut view = Object::new(o.key("otel"));
    if !otel.attributes.is_empty() {
        attributes(view.key("attributes"), &otel.attributes);
    }
    optional_str(&mut view, "span_kind", otel.kind.map(|k| k.as_str()));
    view.end();
}

/// A record's context with its labels as `tags`; for an exit span, its service target written
/// over what the context says of it.
fn context(o: &mut Object, context: &JsonMap, labels: &Labels, target: Option<&ServiceTarget>) {
    if context.is_empty() && labels.is_empty() && target.is_none() {
        return;
    }
    let mut view = Object::new(o.key("context"));
    let members = context.iter().filter(|(key, _)| *key != "tags");
    match target {
        None => overlay(&mut view, members, &[]),
        Some(target) => {
            let or_empty: &Overlay = &|out, given| match given {
                Some(value) => json::value(out, value),
                None => json::string(out, ""),
            };
            let resource: &Overlay = &|out, _| json::string(out, &target.resource);
            let destination_service: &Overlay = &|out, given| overlaid(out, given, &[("name", or_empty), ("resource", resource), ("type", or_empty)]);
            let destination: &Overlay = &|out, given| overlaid(out, given, &[("service", destination_service)]);
            let service_target: &Overlay = &|out, _| {
                let mut object = Object::new(out);
                optional_str(&mut object, "name", target.name.as_deref());
                json::string(object.key("type"), &target.target_type);
                object.end();
            };
            let service: &Overlay = &|out, given| overlaid(out, given, &[("target", service_target)]);
            overlay(&mut view, members, &[("destination", destination), ("service", service)]);
        }
    }
    if !labels.is_empty() {
        self::labels(view.key("tags"), labels);
    }
    view.end();
}

/// Writes a member's value over the value the record gives it, if any.
type Overlay<'a> = dyn Fn(&mut Vec<u8>, Option<&Value>) + 'a;

/// Writes `members` of a map and `overlays` into `object`, in the order of their names (the order
/// of a map holding them all); a name in both is written by its overlay.
fn overlay<'a>(object: &mut Object, members: impl Iterator<Item = (&'a String, &'a Value)>, overlays: &[(&'static str, &Overlay)]) {
    let mut overlays = overlays.iter().peekable();
    for (name, value) in members {
        while let Some((overlay_name, write)) = overlays.next_if(|(overlay_name, _)| *overlay_name < name.as_str()) {
            write(object.key(overlay_name), None);
        }
        match overlays.next_if(|(overlay_name, _)| *overlay_name == name) {
            Some((overlay_name, write)) => write(object.key(overlay_name), Some(value)),
            None => json::value(object.entry(name), value),
        }
    }
    for (overlay_name, write) in overlays {
        write(object.key(overlay_name), None);
    }
}

/// The object `given` (anything else counts as an empty one) with `overlays` written over it.
fn overlaid(out: &mut Vec<u8>, given: Option<&Value>, overlays: &[(&'static str, &Overlay)]) {
    let mut object = Object::new(out);
    overlay(&mut object, given.and_then(Value::as_object).into_iter().flatten(), overlays);
    object.end();
}

fn links(o: &mut Object, links: &[Link]) {
    if links.is_empty() {
        return;
    }
    let mut array = Array::new(o.key("links"));
    for link in links {
        let mut view = Object::new(array.item());
        id(&mut view, "trace_id", &link.trace_id.0);
        id(&mut view, "span_id", &link.span_id.0);
        view.end();
    }
    array.end();
}

fn span_fields(o: &mut Object, s: &SpanRecord) {
    id(o, "id", &s.id.0);
    id(o, "transaction_id", &s.transaction_id.0);
    id(o, "parent_id", &s.parent_id.0);
    id(o, "trace_id", &s.trace_id.0);
    json::string(o.key("name"), &s.name);
    json::string(o.key("type"), &s.span_type);
    optional_str(o, "subtype", s.subtype.as_deref());
    optional_str(o, "action", s.action.as_deref());
    json::u64(o.key("timestamp"), s.timestamp_us);
    json::f64(o.key("duration"), ms(s.duration_us));
    json::string(o.key("outcome"), s.outcome.as_str());
    if let Some(rate) = s.sample_rate {
        json::f64(o.key("sample_rate"), rate);
    }
    context(o, &s.context, &s.labels, service_target::inferred(s).as_ref());
    links(o, &s.links);
    if let Some(composite) = s.composite {
        let mut view = Object::new(o.key("composite"));
        json::string(view.key("compression_strategy"), composite.strategy.as_str());
        json::u64(view.key("count"), composite.count.into());
        json::f64(view.key("sum"), ms(composite.sum_us));
        view.end();
    }
    if let Some(stacktrace) = &s.stacktrace {
        json::value(o.key("stacktrace"), stacktrace);
    }
    otel(o, &s.otel);
}

fn dropped_spans_stats(out: &mut Vec<u8>, stats: &[DroppedSpanStats]) {
    let mut array = Array::new(out);
    for s in stats {
        let mut view = Object::new(array.item());
        json::string(view.key("destination_service_resource"), &s.destination_resource);
        json::string(view.key("service_target_type"), &s.target_type);
        optional_str(&mut view, "service_target_name", s.target_name.as_deref());
        json::string(view.key("outcome"), s.outcome.as_str());
        let mut duration = Object::new(view.key("duration"));
        json::u64(duration.key("count"), s.count);
        let mut sum = Object::new(duration.key("sum"));
        json::u64(sum.key("us"), s.sum_us);
        sum.end();
        duration.end();
        view.end();
    }
    array.end();
}

fn transaction_fields(o: &mut Object, t: &TransactionRecord) {
    id(o, "id", &t.id.0);
    id(o, "trace_id", &t.trace_id.0);
    if let Some(parent_id) = t.parent_id {
        id(o, "parent_id", &parent_id.0);
    }
    json::string(o.key("name"), &t.name);
    json::string(o.key("type"), &t.transaction_type);
    optional_str(o, "result", t.result.as_deref());
    json::string(o.key("outcome"), t.outcome.as_str());
    json::u64(o.key("timestamp"), t.timestamp_us);
    json::f64(o.key("duration"), ms(t.duration_us));
    json::bool(o.key("sampled"), t.sampled);
    if let Some(rate) = t.sample_rate {
        json::f64(o.key("sample_rate"), rate);
    }
    let mut span_count = Object::new(o.key("span_count"));
    json::u64(span_count.key("started"), t.spans_started.into());
    json::u64(span_count.key("dropped"), t.spans_dropped.into());
    span_count.end();
    if !t.dropped_spans_stats.is_empty() {
        dropped_spans_stats(o.key("dropped_spans_stats"), &t.dropped_spans_stats);
    }
    context(o, &t.context, &t.labels, None);
    links(o, &t.links);
    otel(o, &t.otel);
}

fn error_fields(o: &mut Object, e: &ErrorRecord) {
    json::string(o.key("id"), &e.id);
    json::u64(o.key("timestamp"), e.timestamp_us);
    if let Some(txn) = &e.transaction {
        id(o, "trace_id", &txn.trace_id.0);
        id(o, "transaction_id", &txn.id.0);
        id(o, "parent_id", &txn.parent_id.0);
        let mut view = Object::new(o.key("transaction"));
        json::bool(view.key("sampled"), txn.sampled);
        json::string(view.key("type"), &txn.transaction_type);
        json::string(view.key("name"), &txn.name);
        view.end();
    }
    optional_str(o, "culprit", e.culprit.as_deref());
    if let Some(exception) = &e.exception {
        json::value(o.key("exception"), exception);
    }
    if let Some(log) = &e.log {
        json::value(o.key("log"), log);
    }
    context(o, &e.context, &e.labels, None);
}

/// Samples as `{"name": {"value": x, "type": "gauge"}}`; a value JSON cannot carry (NaN) is left out.
fn metricset_fields(o: &mut Object, m: &Metricset) {
    json::u64(o.key("timestamp"), m.timestamp_us);
    let mut samples = Object::new(o.key("samples"));
    for sample in m.samples.iter().filter(|sample| sample.value.is_finite()) {
        let kind = match sample.kind {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter | MetricKind::DeltaCounter => "counter",
        };
        let mut view = Object::new(samples.entry(&sample.name));
        json::f64(view.key("value"), sample.value);
        json::string(view.key("type"), kind);
        view.end();
    }
    samples.end();
    if !m.labels.is_empty() {
        labels(o.key("tags"), &m.labels);
    }
    if let Some(t) = &m.transaction {
        let mut view = Object::new(o.key("transaction"));
        json::string(view.key("name"), &t.name);
        json::string(view.key("type"), &t.transaction_type);
        view.end();
    }
    if let Some(s) = &m.span {
        let mut view = Object::new(o.key("span"));
        json::string(view.key("type"), &s.span_type);
        json::string(view.key("subtype"), &s.subtype);
        view.end();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SpanId, TraceId};
    use crate::model::{MetricSample, MetricSpan, MetricTransaction, Outcome};

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

    /// Spans as the export thread finishes them, exit spans with their service target and
    /// destination resource (and what the user set).
    #[test]
    fn exit_spans_as_sent_byte_for_byte() {
        let mut lines = Vec::new();
        for span in crate::service_target::test_spans() {
            let mut event = Event::Span(Box::new(span));
            crate::policy::Policy::default().finish(&mut event);
            encode_event(&event, &mut lines);
        }
        assert_eq!(String::from_utf8(lines).unwrap(), include_str!("../tests/intake_exit_spans.ndjson"));
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
