//! The records the engine exports. Both the Elastic API and the OpenTelemetry API produce these;
//! every encoder serializes them.

use crate::ids::{SpanId, TraceId};
use serde_json::{Map, Value};
use std::sync::Arc;

pub type JsonMap = Map<String, Value>;

/// Longest keyword string Elastic accepts; longer names, types and labels are truncated.
pub const MAX_KEYWORD_LEN: usize = 1024;

#[derive(Clone, Debug, PartialEq)]
pub enum LabelValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
}

/// Labels in insertion order; setting an existing key replaces its value (dict `update` semantics).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Labels(pub Vec<(String, LabelValue)>);

impl Labels {
    pub fn set(&mut self, key: &str, value: LabelValue) {
        let key = sanitize_label_key(key);
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key, value)),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `.`, `*` and `"` are not allowed in label keys; Elastic replaces them with `_`.
pub fn sanitize_label_key(key: &str) -> String {
    truncate_keyword(&key.replace(['.', '*', '"'], "_")).into_owned()
}

/// Longer strings keep their first 1023 characters and end in `…`, as the Elastic agent cuts them.
pub fn truncate_keyword(s: &str) -> std::borrow::Cow<'_, str> {
    // No more bytes than the limit, no more characters: nothing to count.
    if s.len() <= MAX_KEYWORD_LEN {
        return std::borrow::Cow::Borrowed(s);
    }
    match s.char_indices().nth(MAX_KEYWORD_LEN) {
        Some(_) => {
            let (cut, _) = s.char_indices().nth(MAX_KEYWORD_LEN - 1).unwrap_or((s.len(), ' '));
            std::borrow::Cow::Owned(format!("{}…", &s[..cut]))
        }
        None => std::borrow::Cow::Borrowed(s),
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Outcome {
    #[default]
    Unknown,
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Unknown => "unknown",
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "unknown" => Some(Outcome::Unknown),
            "success" => Some(Outcome::Success),
            "failure" => Some(Outcome::Failure),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// OpenTelemetry link attributes; the Elastic API gives none.
    pub attributes: Attributes,
}

/// An OpenTelemetry attribute value: a primitive or a homogeneous array of one.
#[derive(Clone, Debug, PartialEq)]
pub enum AttributeValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    StrArray(Vec<String>),
    BoolArray(Vec<bool>),
    IntArray(Vec<i64>),
    FloatArray(Vec<f64>),
}

impl AttributeValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            AttributeValue::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            AttributeValue::Int(i) => Some(*i),
            AttributeValue::Str(s) => s.parse().ok(),
            _ => None,
        }
    }
}

/// How many attributes, events and links a span keeps, and how long a string value may be
/// (`OTEL_ATTRIBUTE_*` and `OTEL_SPAN_*` limits). What goes over is counted as dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanLimits {
    pub attribute_count: usize,
    pub attribute_value_length: Option<usize>,
    pub event_count: usize,
    pub link_count: usize,
    pub event_attribute_count: usize,
    pub link_attribute_count: usize,
}

impl Default for SpanLimits {
    fn default() -> Self {
        SpanLimits {
            attribute_count: 128,
            attribute_value_length: None,
            event_count: 128,
            link_count: 128,
            event_attribute_count: 128,
            link_attribute_count: 128,
        }
    }
}

/// Attributes in insertion order; setting an existing key replaces its value. New keys past the
/// limit are dropped and counted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Attributes {
    pub entries: Vec<(String, AttributeValue)>,
    pub dropped: u32,
}

impl Attributes {
    pub fn set(&mut self, key: &str, value: AttributeValue, max_count: usize, max_length: Option<usize>) {
        let value = match max_length {
            Some(max) => truncate_attribute(value, max),
            None => value,
        };
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else if self.entries.len() < max_count {
            self.entries.push((key.to_owned(), value));
        } else {
            self.dropped += 1;
        }
    }
    pub fn get(&self, key: &str) -> Option<&AttributeValue> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// The first of `keys` present: old and stable semantic-convention names of one thing.
    pub fn first(&self, keys: &[&str]) -> Option<&AttributeValue> {
        keys.iter().find_map(|key| self.get(key))
    }
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn truncate_attribute(value: AttributeValue, max: usize) -> AttributeValue {
    let cut = |s: String| match s.char_indices().nth(max) {
        Some((at, _)) => s[..at].to_owned(),
        None => s,
    };
    match value {
        AttributeValue::Str(s) => AttributeValue::Str(cut(s)),
        AttributeValue::StrArray(items) => AttributeValue::StrArray(items.into_iter().map(cut).collect()),
        other => other,
    }
}

/// OpenTelemetry span kinds, numbered as the OTel API numbers them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SpanKind {
    #[default]
    Internal = 0,
    Server = 1,
    Client = 2,
    Producer = 3,
    Consumer = 4,
}

impl SpanKind {
    pub fn from_api(value: i64) -> Option<SpanKind> {
        Some(match value {
            0 => SpanKind::Internal,
            1 => SpanKind::Server,
            2 => SpanKind::Client,
            3 => SpanKind::Producer,
            4 => SpanKind::Consumer,
            _ => return None,
        })
    }
    /// As Elastic writes it in `otel.span_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Internal => "INTERNAL",
            SpanKind::Server => "SERVER",
            SpanKind::Client => "CLIENT",
            SpanKind::Producer => "PRODUCER",
            SpanKind::Consumer => "CONSUMER",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SpanEvent {
    pub name: String,
    pub timestamp_us: u64,
    pub attributes: Attributes,
}

/// The instrumentation scope (library) a tracer was obtained for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scope {
    pub name: String,
    pub version: Option<String>,
    pub schema_url: Option<String>,
    pub attributes: Attributes,
}

/// What the OpenTelemetry API adds to a transaction or span. Boxed in the records and absent
/// until used, so the Elastic API pays nothing for it.
#[derive(Clone, Debug, Default)]
pub struct OtelData {
    /// Set when the OTel API started the span: its Elastic type, result and outcome are then
    /// inferred from kind, attributes and status (see `bridge`). Elastic-started spans can still
    /// get attributes, from instrumentations that annotate the current span.
    pub kind: Option<SpanKind>,
    pub scope: Option<Arc<Scope>>,
    pub attributes: Attributes,
    pub events: Vec<SpanEvent>,
    pub dropped_events: u32,
    pub dropped_links: u32,
    pub status: StatusCode,
    pub status_description: Option<String>,
}

impl OtelData {
    /// As the OTel specification says: OK is final, UNSET is ignored, a description goes with
    /// ERROR only.
    pub fn set_status(&mut self, code: StatusCode, description: Option<String>) {
        if self.status == StatusCode::Ok || code == StatusCode::Unset {
            return;
        }
        self.status = code;
        self.status_description = description.filter(|_| code == StatusCode::Error);
    }

    pub fn add_event(&mut self, event: SpanEvent, limits: &SpanLimits) {
        if self.events.len() < limits.event_count {
            self.events.push(event);
        } else {
            self.dropped_events += 1;
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompressionStrategy {
    /// Siblings of the same name.
    ExactMatch,
    /// Siblings calling the same service, whatever their names.
    SameKind,
}

impl CompressionStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionStrategy::ExactMatch => "exact_match",
            CompressionStrategy::SameKind => "same_kind",
        }
    }
}

/// What a composite span stands for: `count` consecutive sibling spans, `sum_us` their durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Composite {
    pub strategy: CompressionStrategy,
    pub count: u32,
    pub sum_us: u64,
}

/// Exit spans dropped from a transaction (`transaction_max_spans`, `exit_span_min_duration`),
/// counted by the service they called and their outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedSpanStats {
    pub destination_resource: String,
    pub target_type: String,
    pub target_name: Option<String>,
    pub outcome: Outcome,
    pub count: u64,
    pub sum_us: u64,
}

#[derive(Clone, Debug, Default)]
pub struct SpanRecord {
    pub id: SpanId,
    pub trace_id: TraceId,
    pub transaction_id: SpanId,
    pub parent_id: SpanId,
    pub name: String,
    pub span_type: String,
    pub subtype: Option<String>,
    pub action: Option<String>,
    /// Start, in microseconds since the Unix epoch.
    pub timestamp_us: u64,
    pub duration_us: u64,
    pub outcome: Outcome,
    pub sample_rate: Option<f64>,
    /// Started as a leaf (`capture_span(..., leaf=True)`): an exit span, a call to another service,
    /// whose service target is inferred on export (`service_target`).
    pub exit: bool,
    /// Its trace context went out with a call: it cannot be compressed or dropped, as the callee
    /// names it as its parent.
    pub propagated: bool,
    /// Set when consecutive siblings were compressed into this span.
    pub composite: Option<Composite>,
    /// Intake `stacktrace` frames, captured when the span lasted `span_stack_trace_min_duration`.
    pub stacktrace: Option<Value>,
    pub labels: Labels,
    /// Elastic span context (`db`, `http`, `destination`, `service`, `message`), tags excluded.
    pub context: JsonMap,
    pub links: Vec<Link>,
    pub otel: Option<Box<OtelData>>,
}

#[derive(Clone, Debug, Default)]
pub struct TransactionRecord {
    pub id: SpanId,
    pub trace_id: TraceId,
    pub parent_id: Option<SpanId>,
    pub name: String,
    pub transaction_type: String,
    pub result: Option<String>,
    pub outcome: Outcome,
    pub timestamp_us: u64,
    pub duration_us: u64,
    pub sampled: bool,
    pub sample_rate: Option<f64>,
    /// Spans reported (a composite counts once) and spans not reported.
    pub spans_started: u32,
    pub spans_dropped: u32,
    /// At most `MAX_DROPPED_SPAN_STATS` groups.
    pub dropped_spans_stats: Vec<DroppedSpanStats>,
    pub labels: Labels,
    /// Elastic transaction context (`custom`, `user`, `request`, `response`, ...), tags excluded.
    pub context: JsonMap,
    pub links: Vec<Link>,
    pub otel: Option<Box<OtelData>>,
}

/// What an error records of the transaction it happened in.
#[derive(Clone, Debug)]
pub struct ErrorTransaction {
    pub id: SpanId,
    pub trace_id: TraceId,
    pub parent_id: SpanId,
    pub sampled: bool,
    pub transaction_type: String,
    pub name: String,
}

#[derive(Clone, Debug, Default)]
pub struct ErrorRecord {
    pub id: String,
    pub timestamp_us: u64,
    pub transaction: Option<ErrorTransaction>,
    pub culprit: Option<String>,
    /// Intake `exception` object (message, type, module, stacktrace, cause, handled).
    pub exception: Option<Value>,
    /// Intake `log` object (message, param_message, level, logger_name, stacktrace).
    pub log: Option<Value>,
    pub labels: Labels,
    pub context: JsonMap,
}

/// How a metric sample adds up over time, which decides its OTLP shape (a Gauge or a Sum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// A reading at the collection time.
    Gauge,
    /// A count since the engine started.
    Counter,
    /// A count since the previous collection (the breakdown metrics).
    DeltaCounter,
}

#[derive(Clone, Debug, PartialEq)]
pub struct MetricSample {
    pub name: String,
    pub value: f64,
    pub kind: MetricKind,
}

/// The transaction a breakdown metricset describes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MetricTransaction {
    pub name: String,
    pub transaction_type: String,
}

/// The kind of span a breakdown metricset describes (type `app`, subtype empty: the transaction's
/// own time).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MetricSpan {
    pub span_type: String,
    pub subtype: String,
}

/// Samples collected at one time that share their transaction, span and labels.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metricset {
    pub timestamp_us: u64,
    /// For delta counters: when the interval they count began.
    pub start_us: u64,
    pub samples: Vec<MetricSample>,
    pub transaction: Option<MetricTransaction>,
    pub span: Option<MetricSpan>,
    pub labels: Labels,
}

/// A log record body or attribute value as the OpenTelemetry Logs API allows it (`AnyValue`):
/// primitives, bytes, and arrays and maps of these, nested.
#[derive(Clone, Debug, PartialEq)]
pub enum LogValue {
    Str(String),
    Bool(bool),
    Int(i64),
    Float(f64),
    Bytes(Vec<u8>),
    Array(Vec<LogValue>),
    Map(Vec<(String, LogValue)>),
}

/// One log record, from the OpenTelemetry Logs API or a `logging` handler. Times are
/// microseconds since the epoch (0: not given); ids are those of the span current where the
/// record was made.
#[derive(Clone, Debug, Default)]
pub struct LogRecord {
    pub timestamp_us: u64,
    pub observed_timestamp_us: u64,
    /// OpenTelemetry `SeverityNumber`, 1 (TRACE) to 24 (FATAL4); 0 when not given.
    pub severity_number: u8,
    pub severity_text: Option<String>,
    pub body: Option<LogValue>,
    /// Within the span limits' attribute limits, as the SDK applies `OTEL_ATTRIBUTE_*` to logs.
    pub attributes: Attributes,
    pub trace_id: Option<TraceId>,
    pub span_id: Option<SpanId>,
    /// Elastic correlation: the transaction the span belongs to (intake `transaction.id`).
    pub transaction_id: Option<SpanId>,
    pub trace_flags: u8,
    pub scope: Option<Arc<Scope>>,
    pub event_name: Option<String>,
}

/// The OpenTelemetry severity of a Python `logging` level, as OpenTelemetry's SDK maps them:
/// DEBUG 5, INFO 9, WARNING 13, ERROR 17, CRITICAL 21, up to three steps above each for the levels
/// between; below DEBUG unspecified (0), above 53 FATAL4 (24).
pub fn severity_of_logging_level(levelno: i64) -> u8 {
    match levelno {
        ..=9 => 0,
        54.. => 24,
        _ => (4 * (levelno / 10) + 1 + (levelno % 10).min(3)) as u8,
    }
}

/// OpenTelemetry's display names where Python's level names differ.
pub fn severity_text_of_logging_level(levelname: &str) -> &str {
    match levelname {
        "WARNING" => "WARN",
        "CRITICAL" => "FATAL",
        other => other,
    }
}

#[derive(Clone, Debug)]
pub enum Event {
    Span(Box<SpanRecord>),
    Transaction(Box<TransactionRecord>),
    Error(Box<ErrorRecord>),
    Metricset(Box<Metricset>),
    /// The OpenTelemetry metrics of one meter, as one collection found them.
    Metrics(Box<crate::meters::points::ScopeMetrics>),
    Log(Box<LogRecord>),
}

pub fn now_epoch_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logging_levels_map_to_severities_as_the_sdk_maps_them() {
        let levels = [0, 5, 10, 20, 25, 30, 40, 44, 50, 53, 60];
        assert_eq!(levels.map(severity_of_logging_level), [0, 0, 5, 9, 12, 13, 17, 20, 21, 24, 24]);
        assert_eq!(["WARNING", "CRITICAL", "INFO", "NOTICE"].map(severity_text_of_logging_level), ["WARN", "FATAL", "INFO", "NOTICE"]);
    }

    #[test]
    fn label_keys_are_sanitized_and_updated_in_place() {
        let mut labels = Labels::default();
        labels.set("a.b*c\"d", LabelValue::Int(1));
        labels.set("x", LabelValue::Bool(true));
        labels.set("a_b_c_d", LabelValue::Str("two".into()));
        assert_eq!(labels.0, vec![("a_b_c_d".into(), LabelValue::Str("two".into())), ("x".into(), LabelValue::Bool(true))]);
    }

    #[test]
    fn attributes_keep_the_limits() {
        let mut attributes = Attributes::default();
        attributes.set("a", AttributeValue::Str("abcdef".into()), 2, Some(3));
        attributes.set("b", AttributeValue::StrArray(vec!["wxyz".into()]), 2, Some(3));
        attributes.set("c", AttributeValue::Int(1), 2, Some(3));
        attributes.set("a", AttributeValue::Bool(true), 2, Some(3));
        assert_eq!(attributes.entries, vec![("a".into(), AttributeValue::Bool(true)), ("b".into(), AttributeValue::StrArray(vec!["wxy".into()]))]);
        assert_eq!(attributes.dropped, 1);
    }

    #[test]
    fn status_rules() {
        let mut otel = OtelData::default();
        otel.set_status(StatusCode::Error, Some("boom".into()));
        assert_eq!((otel.status, otel.status_description.as_deref()), (StatusCode::Error, Some("boom")));
        otel.set_status(StatusCode::Unset, None);
        assert_eq!(otel.status, StatusCode::Error);
        otel.set_status(StatusCode::Ok, Some("ignored".into()));
        assert_eq!((otel.status, otel.status_description.as_deref()), (StatusCode::Ok, None));
        otel.set_status(StatusCode::Error, None);
        assert_eq!(otel.status, StatusCode::Ok);
    }

    #[test]
    fn keywords_are_cut_at_1024_characters() {
        let long = "é".repeat(2000);
        let cut = truncate_keyword(&long);
        assert_eq!(cut.chars().count(), 1024);
        assert!(cut.ends_with("é…"));
        assert_eq!(truncate_keyword(&"x".repeat(1024)).chars().count(), 1024);
        assert_eq!(truncate_keyword("short"), "short");
        assert_eq!(truncate_keyword(&"é".repeat(1024)).chars().count(), 1024);
        assert_eq!(truncate_keyword(&"x".repeat(1025)).chars().count(), 1024);
    }
}
