//! Log records as OTLP logs: each record under the scope of the logger that made it (for a
//! `logging` handler, the Python logger's name), the Elastic correlation ids as the OTLP trace and
//! span ids. The transaction id has no OTLP field: a backend finds the transaction from the span.

use super::proto::{
    any_value, AnyValue, ArrayValue, ExportLogsServiceRequest, InstrumentationScope, KeyValue, KeyValueList, LogRecord as OtlpLogRecord, Resource,
    ResourceLogs, ScopeLogs,
};
use super::traces::{instrumentation_scope, key_values};
use crate::model::{LogRecord, LogValue, Scope};
use std::sync::Arc;

/// The log records of one export request, grouped by scope in order of first appearance.
#[derive(Default)]
pub struct LogsBatch {
    groups: Vec<(Option<Arc<Scope>>, Vec<OtlpLogRecord>)>,
    len: usize,
}

impl LogsBatch {
    pub fn add(&mut self, record: &LogRecord) {
        let scope = record.scope.as_ref();
        let same = |group: &Option<Arc<Scope>>| match (group, scope) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            (None, None) => true,
            _ => false,
        };
        let encoded = log_record(record);
        match self.groups.iter_mut().find(|(group, _)| same(group)) {
            Some((_, records)) => records.push(encoded),
            None => self.groups.push((scope.cloned(), vec![encoded])),
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

fn log_record(record: &LogRecord) -> OtlpLogRecord {
    OtlpLogRecord {
        time_unix_nano: record.timestamp_us * 1000,
        observed_time_unix_nano: record.observed_timestamp_us * 1000,
        severity_number: i32::from(record.severity_number),
        severity_text: record.severity_text.clone().unwrap_or_default(),
        body: record.body.as_ref().map(any),
        attributes: key_values(&record.attributes),
        dropped_attributes_count: record.attributes.dropped,
        flags: u32::from(record.trace_flags),
        trace_id: record.trace_id.map(|id| id.0.to_vec()).unwrap_or_default(),
        span_id: record.span_id.map(|id| id.0.to_vec()).unwrap_or_default(),
        event_name: record.event_name.clone().unwrap_or_default(),
    }
}

fn any(value: &LogValue) -> AnyValue {
    let value = match value {
        LogValue::Str(s) => any_value::Value::StringValue(s.clone()),
        LogValue::Bool(b) => any_value::Value::BoolValue(*b),
        LogValue::Int(i) => any_value::Value::IntValue(*i),
        LogValue::Float(f) => any_value::Value::DoubleValue(*f),
        LogValue::Bytes(b) => any_value::Value::BytesValue(b.clone()),
        LogValue::Array(items) => any_value::Value::ArrayValue(ArrayValue { values: items.iter().map(any).collect() }),
        LogValue::Map(entries) => any_value::Value::KvlistValue(KeyValueList {
            values: entries.iter().map(|(key, value)| KeyValue { key: key.clone(), value: Some(any(value)) }).collect(),
        }),
    };
    AnyValue { value: Some(value) }
}

/// One export request: the batch's records under the process's resource, records without a
/// scope under oxapm's.
pub fn request(resource: &Resource, oxapm_scope: &InstrumentationScope, batch: LogsBatch) -> ExportLogsServiceRequest {
    let scope_logs = batch
        .groups
        .into_iter()
        .map(|(scope, log_records)| match scope {
            Some(scope) => ScopeLogs { scope: Some(instrumentation_scope(&scope)), log_records, schema_url: scope.schema_url.clone().unwrap_or_default() },
            None => ScopeLogs { scope: Some(oxapm_scope.clone()), log_records, schema_url: String::new() },
        })
        .collect();
    ExportLogsServiceRequest { resource_logs: vec![ResourceLogs { resource: Some(resource.clone()), scope_logs, schema_url: String::new() }] }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{SpanId, TraceId};
    use crate::model::AttributeValue;
    use prost::Message;

    fn scope(name: &str) -> Arc<Scope> {
        Arc::new(Scope { name: name.into(), version: Some("1.0".into()), ..Default::default() })
    }

    #[test]
    fn records_are_grouped_by_scope_with_ids_severity_body_and_attributes() {
        let (shop, db) = (scope("shop"), scope("db"));
        let mut record = LogRecord {
            timestamp_us: 1_700_000_000_000_001,
            observed_timestamp_us: 1_700_000_000_000_002,
            severity_number: 17,
            severity_text: Some("ERROR".into()),
            body: Some(LogValue::Map(vec![("order".into(), LogValue::Array(vec![LogValue::Int(1), LogValue::Str("x".into())]))])),
            trace_id: Some(TraceId([1; 16])),
            span_id: Some(SpanId([2; 8])),
            trace_flags: 1,
            scope: Some(shop.clone()),
            event_name: Some("order.failed".into()),
            ..Default::default()
        };
        record.attributes.set("exception.type", AttributeValue::Str("ValueError".into()), 128, None);
        let mut batch = LogsBatch::default();
        batch.add(&record);
        batch.add(&LogRecord { scope: Some(db), ..Default::default() });
        batch.add(&LogRecord { scope: Some(shop), body: Some(LogValue::Str("second".into())), ..Default::default() });
        batch.add(&LogRecord::default());
        assert_eq!(batch.len(), 4);
        let oxapm = InstrumentationScope { name: "oxapm".into(), ..Default::default() };
        let request = ExportLogsServiceRequest::decode(request(&Resource::default(), &oxapm, batch).encode_to_vec().as_slice()).unwrap();
        let scopes = &request.resource_logs[0].scope_logs;
        let names: Vec<(&str, usize)> = scopes.iter().map(|s| (s.scope.as_ref().unwrap().name.as_str(), s.log_records.len())).collect();
        assert_eq!(names, vec![("shop", 2), ("db", 1), ("oxapm", 1)]);
        let first = &scopes[0].log_records[0];
        assert_eq!((first.time_unix_nano, first.observed_time_unix_nano), (1_700_000_000_000_001_000, 1_700_000_000_000_002_000));
        assert_eq!((first.severity_number, first.severity_text.as_str(), first.flags), (17, "ERROR", 1));
        assert_eq!((first.trace_id.as_slice(), first.span_id.as_slice()), (&[1u8; 16][..], &[2u8; 8][..]));
        assert_eq!(first.event_name, "order.failed");
        assert_eq!(first.attributes[0].key, "exception.type");
        let Some(any_value::Value::KvlistValue(body)) = first.body.as_ref().and_then(|b| b.value.as_ref()) else { panic!("{:?}", first.body) };
        assert_eq!(body.values[0].key, "order");
        let outside = &scopes[2].log_records[0];
        assert!(outside.trace_id.is_empty() && outside.span_id.is_empty() && outside.body.is_none());
    }
}
