//! The records the engine exports. Both the Elastic API and (later) the OpenTelemetry API produce
//! these; every encoder serializes them.

use crate::ids::{SpanId, TraceId};
use serde_json::{Map, Value};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
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
    pub labels: Labels,
    /// Elastic span context (`db`, `http`, `destination`, `service`, `message`), tags excluded.
    pub context: JsonMap,
    pub links: Vec<Link>,
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
    pub spans_started: u32,
    pub spans_dropped: u32,
    pub labels: Labels,
    /// Elastic transaction context (`custom`, `user`, `request`, `response`, ...), tags excluded.
    pub context: JsonMap,
    pub links: Vec<Link>,
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

#[derive(Clone, Debug)]
pub enum Event {
    Span(Box<SpanRecord>),
    Transaction(Box<TransactionRecord>),
    Error(Box<ErrorRecord>),
}

pub fn now_epoch_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_are_sanitized_and_updated_in_place() {
        let mut labels = Labels::default();
        labels.set("a.b*c\"d", LabelValue::Int(1));
        labels.set("x", LabelValue::Bool(true));
        labels.set("a_b_c_d", LabelValue::Str("two".into()));
        assert_eq!(labels.0, vec![("a_b_c_d".into(), LabelValue::Str("two".into())), ("x".into(), LabelValue::Bool(true))]);
    }

    #[test]
    fn keywords_are_cut_at_1024_characters() {
        let long = "é".repeat(2000);
        let cut = truncate_keyword(&long);
        assert_eq!(cut.chars().count(), 1024);
        assert!(cut.ends_with("é…"));
        assert_eq!(truncate_keyword(&"x".repeat(1024)).chars().count(), 1024);
        assert_eq!(truncate_keyword("short"), "short");
    }
}
