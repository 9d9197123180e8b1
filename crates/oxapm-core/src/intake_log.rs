//! Log records as Elastic intake v2 `log` events, the shape APM Server's `log` decoder reads
//! (apm-data modeldecoder v2): ECS field names written flat (`"log.level"`, `"trace.id"`),
//! `@timestamp` in microseconds. The OpenTelemetry attributes the `logging` handler sets map to
//! their ECS fields (origin, thread, error); the others become `labels`. Service fields are left
//! to the request's metadata.

use crate::intake;
use crate::json::{self, Object};
use crate::model::{sanitize_label_key, truncate_keyword, AttributeValue, LogRecord, LogValue};
use serde_json::Value;

/// OpenTelemetry attributes with an ECS field of their own, old and stable semantic-convention
/// names, written in this order.
const ECS_FIELDS: &[(&str, &[&str])] = &[
    ("log.origin.function", &["code.function.name", "code.function"]),
    ("log.origin.file.name", &["code.file.path", "code.filepath"]),
    ("log.origin.file.line", &["code.line.number", "code.lineno"]),
    ("process.thread.name", &["thread.name"]),
    ("error.type", &["exception.type"]),
    ("error.message", &["exception.message"]),
    ("error.stack_trace", &["exception.stacktrace"]),
];

/// Attributes the intake has no field for and that would only be noise as labels.
const NOT_LABELS: &[&str] = &["thread.id"];

/// Appends the record as one NDJSON line, `{"log": {...}}`.
pub fn encode(record: &LogRecord, out: &mut Vec<u8>) {
    intake::line(out, "log", |o| fields(o, record));
}

fn fields(o: &mut Object, record: &LogRecord) {
    let timestamp = if record.timestamp_us > 0 { record.timestamp_us } else { record.observed_timestamp_us };
    json::u64(o.key("@timestamp"), timestamp);
    json::string(o.key("message"), &message(record.body.as_ref()));
    if let Some(level) = level(record) {
        json::string(o.key("log.level"), &level);
    }
    if let Some(scope) = &record.scope {
        json::string(o.key("log.logger"), &truncate_keyword(&scope.name));
    }
    for &(field, keys) in ECS_FIELDS {
        let Some(value) = record.attributes.first(keys) else { continue };
        let out = o.key(field);
        match value {
            AttributeValue::Int(line) => json::i64(out, *line),
            _ if field == "log.origin.file.line" => match value.as_int() {
                Some(line) => json::i64(out, line),
                None => out.extend_from_slice(b"null"),
            },
            other => intake::attribute_value(out, other),
        }
    }
    if let Some(trace_id) = record.trace_id {
        intake::id(o, "trace.id", &trace_id.0);
    }
    if let Some(transaction_id) = record.transaction_id {
        intake::id(o, "transaction.id", &transaction_id.0);
    }
    if let Some(span_id) = record.span_id {
        intake::id(o, "span.id", &span_id.0);
    }
    let mut labels = label_attributes(record).peekable();
    if labels.peek().is_some() {
        let mut view = Object::new(o.key("labels"));
        for (key, value) in labels {
            let out = view.entry(&sanitize_label_key(key));
            match value {
                AttributeValue::Str(text) => json::string(out, &truncate_keyword(text)),
                AttributeValue::Bool(_) | AttributeValue::Int(_) | AttributeValue::Float(_) => intake::attribute_value(out, value),
                array => {
                    let mut text = Vec::new();
                    intake::attribute_value(&mut text, array);
                    // What `json` writes is UTF-8.
                    json::string(out, std::str::from_utf8(&text).unwrap_or_default());
                }
            }
        }
        view.end();
    }
}

/// The body as text: a string as it is, anything structured as JSON.
fn message(body: Option<&LogValue>) -> String {
    match body {
        None => String::new(),
        Some(LogValue::Str(s)) => s.clone(),
        Some(other) => json_value(other).to_string(),
    }
}

fn json_value(value: &LogValue) -> Value {
    match value {
        LogValue::Str(s) => Value::from(s.as_str()),
        LogValue::Bool(b) => Value::from(*b),
        LogValue::Int(i) => Value::from(*i),
        LogValue::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or_else(|| Value::from(f.to_string())),
        LogValue::Bytes(b) => Value::from(b.iter().map(|byte| format!("{byte:02x}")).collect::<String>()),
        LogValue::Array(items) => Value::Array(items.iter().map(json_value).collect()),
        LogValue::Map(entries) => Value::Object(entries.iter().map(|(k, v)| (k.clone(), json_value(v))).collect()),
    }
}

/// The level as Python's `logging` names it, lower case as ECS loggers write it (`warning`, not
/// OpenTelemetry's `WARN`), from the severity number; the severity text when there is no number.
fn level(record: &LogRecord) -> Option<String> {
    let name = match record.severity_number {
        0 => return record.severity_text.as_deref().filter(|t| !t.is_empty()).map(|t| truncate_keyword(&t.to_ascii_lowercase()).into_owned()),
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warning",
        17..=20 => "error",
        _ => "critical",
    };
    Some(name.to_owned())
}

/// The attributes no ECS field takes, as labels: keys sanitized as label keys are, scalar values
/// as they are, arrays as their JSON text (labels hold scalars only).
fn label_attributes(record: &LogRecord) -> impl Iterator<Item = &(String, AttributeValue)> {
    let mapped = |key: &str| NOT_LABELS.contains(&key) || ECS_FIELDS.iter().any(|(_, keys)| keys.contains(&key));
    record.attributes.entries.iter().filter(move |(key, _)| !mapped(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SpanId, TraceId};
    use crate::model::{Attributes, Scope};
    use serde_json::json;
    use std::sync::Arc;

    fn line(record: &LogRecord) -> Value {
        let mut out = Vec::new();
        encode(record, &mut out);
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_logging_record_has_the_intake_log_shape() {
        let mut attributes = Attributes::default();
        for (key, value) in [
            ("code.function", AttributeValue::Str("checkout".into())),
            ("code.filepath", AttributeValue::Str("/app/shop.py".into())),
            ("code.lineno", AttributeValue::Int(42)),
            ("thread.name", AttributeValue::Str("MainThread".into())),
            ("exception.type", AttributeValue::Str("ValueError".into())),
            ("exception.message", AttributeValue::Str("bad".into())),
            ("exception.stacktrace", AttributeValue::Str("Traceback ...".into())),
            ("order.id", AttributeValue::Int(7)),
            ("tags", AttributeValue::StrArray(vec!["a".into()])),
            ("ratio", AttributeValue::Float(f64::NAN)),
            ("thread.id", AttributeValue::Int(140_000)),
        ] {
            attributes.set(key, value, 128, None);
        }
        let record = LogRecord {
            timestamp_us: 1_700_000_000_000_001,
            severity_number: 13,
            severity_text: Some("WARN".into()),
            body: Some(LogValue::Str("payment failed".into())),
            attributes,
            trace_id: Some(TraceId([1; 16])),
            span_id: Some(SpanId([2; 8])),
            transaction_id: Some(SpanId([3; 8])),
            scope: Some(Arc::new(Scope { name: "shop.payments".into(), ..Default::default() })),
            ..Default::default()
        };
        assert_eq!(
            line(&record),
            json!({"log": {
                "@timestamp": 1_700_000_000_000_001u64,
                "message": "payment failed",
                "log.level": "warning",
                "log.logger": "shop.payments",
                "log.origin.function": "checkout",
                "log.origin.file.name": "/app/shop.py",
                "log.origin.file.line": 42,
                "process.thread.name": "MainThread",
                "error.type": "ValueError",
                "error.message": "bad",
                "error.stack_trace": "Traceback ...",
                "trace.id": "01010101010101010101010101010101",
                "transaction.id": "0303030303030303",
                "span.id": "0202020202020202",
                "labels": {"order_id": 7, "tags": "[\"a\"]", "ratio": "NaN"},
            }})
        );
    }

    /// What goes on the wire, byte for byte, for records that take every branch of the encoder.
    #[test]
    fn lines_are_byte_for_byte_as_sent() {
        let tricky = "q\"b\\s/\n\t\u{1}\u{7f} é 日本 \u{2028} 😀";
        let mut attributes = Attributes::default();
        for (key, value) in [
            ("code.function", AttributeValue::Bool(true)),
            ("code.filepath", AttributeValue::StrArray(vec![tricky.into()])),
            ("code.lineno", AttributeValue::Str("not a number".into())),
            ("thread.name", AttributeValue::Float(f64::INFINITY)),
            ("exception.type", AttributeValue::FloatArray(vec![0.5, f64::NAN])),
            ("exception.message", AttributeValue::Str(tricky.into())),
            ("a.b*c\"d", AttributeValue::Str(tricky.into())),
            ("int", AttributeValue::Int(-1)),
            ("float", AttributeValue::Float(2.0)),
            ("nan", AttributeValue::Float(f64::NAN)),
            ("bools", AttributeValue::BoolArray(vec![true, false])),
            ("ints", AttributeValue::IntArray(vec![1, 2])),
            ("texts", AttributeValue::StrArray(vec![tricky.into()])),
            ("floats", AttributeValue::FloatArray(vec![1.0, f64::NEG_INFINITY])),
        ] {
            attributes.set(key, value, 128, None);
        }
        let full = LogRecord {
            timestamp_us: 1_700_000_000_000_001,
            severity_number: 24,
            body: Some(LogValue::Str(tricky.into())),
            attributes,
            trace_id: Some(TraceId([1; 16])),
            span_id: Some(SpanId([2; 8])),
            transaction_id: Some(SpanId([3; 8])),
            scope: Some(Arc::new(Scope { name: tricky.into(), ..Default::default() })),
            ..Default::default()
        };
        let mut lineno = Attributes::default();
        lineno.set("code.lineno", AttributeValue::Str("12".into()), 128, None);
        let structured = |body| LogRecord { severity_text: Some("Notice".into()), body: Some(body), attributes: lineno.clone(), ..Default::default() };
        let bodies = [
            LogValue::Map(vec![("k".into(), LogValue::Array(vec![LogValue::Float(f64::NAN), LogValue::Float(1.5), LogValue::Bool(false)]))]),
            LogValue::Bytes(vec![0, 0xab, 0xff]),
            LogValue::Int(7),
        ];
        let mut out = Vec::new();
        for record in [full, LogRecord::default()].into_iter().chain(bodies.map(structured)) {
            encode(&record, &mut out);
        }
        assert_eq!(String::from_utf8(out).unwrap(), include_str!("../tests/intake_log_lines.ndjson"));
    }

    #[test]
    fn outside_a_span_and_with_a_structured_body() {
        let record = LogRecord {
            observed_timestamp_us: 5,
            severity_text: Some("NOTICE".into()),
            body: Some(LogValue::Map(vec![("k".into(), LogValue::Int(1))])),
            ..Default::default()
        };
        assert_eq!(line(&record), json!({"log": {"@timestamp": 5, "message": "{\"k\":1}", "log.level": "notice"}}));
    }
}
