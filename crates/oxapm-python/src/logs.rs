//! Log records from Python: `LogEmitter` queues the records of one OpenTelemetry `Logger`,
//! `LoggingRecords` those of a `logging` handler (read from the `LogRecord` in one pass), one call
//! each; `correlation` gives the ids of the current span for the fields a log format shows.

use crate::convert::text;
use crate::engine::Engine;
use crate::otel;
use crate::trace::{Span, Transaction};
use oxapm_core::engine;
use oxapm_core::ids::{SpanId, TraceId};
use oxapm_core::model::{now_epoch_us, severity_of_logging_level, severity_text_of_logging_level, AttributeValue, Attributes, LogRecord, LogValue, Scope};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Structured bodies nested deeper than this are cut (the rest becomes its `str()`).
const MAX_DEPTH: usize = 16;

/// The trace a record belongs to: ids and the sampled flag.
struct Correlation {
    trace_id: TraceId,
    transaction_id: Option<SpanId>,
    span_id: Option<SpanId>,
    sampled: bool,
}

/// The ids of `current`: an oxapm transaction or span (either API), an OpenTelemetry span of
/// another kind (a remote parent, a non-recording span), or `None`.
fn correlation_of(current: &Bound<'_, PyAny>) -> Option<Correlation> {
    if let Ok(transaction) = current.cast::<Transaction>() {
        let record = &transaction.try_borrow().ok()?.active.record;
        return Some(Correlation { trace_id: record.trace_id, transaction_id: Some(record.id), span_id: None, sampled: record.sampled });
    }
    if let Ok(span) = current.cast::<Span>() {
        let record = &span.try_borrow().ok()?.active.record;
        return Some(Correlation { trace_id: record.trace_id, transaction_id: Some(record.transaction_id), span_id: Some(record.id), sampled: true });
    }
    let context = current.call_method0("get_span_context").ok()?;
    let trace_id: u128 = context.getattr("trace_id").ok()?.extract().ok()?;
    let span_id: u64 = context.getattr("span_id").ok()?.extract().ok()?;
    let flags: u8 = context.getattr("trace_flags").ok()?.extract().ok()?;
    (trace_id != 0 && span_id != 0).then(|| Correlation {
        trace_id: TraceId(trace_id.to_be_bytes()),
        transaction_id: None,
        span_id: Some(SpanId(span_id.to_be_bytes())),
        sampled: flags & 1 == 1,
    })
}

/// Gives `record` the ids of `current`: the OTLP span id is the span's, else the transaction's.
fn correlate(record: &mut LogRecord, current: Option<&Bound<'_, PyAny>>) {
    let Some(found) = current.filter(|c| !c.is_none()).and_then(correlation_of) else { return };
    record.trace_id = Some(found.trace_id);
    record.span_id = found.span_id.or(found.transaction_id);
    record.transaction_id = found.transaction_id;
    record.trace_flags = u8::from(found.sampled);
}

/// `(trace_id, transaction_id, span_id, sampled)` of `current` (hex ids; the transaction's is
/// `None` for a span that is not oxapm's, the span's `None` when the transaction itself is
/// current), or `None` outside a trace.
#[pyfunction]
pub fn correlation(current: Option<&Bound<'_, PyAny>>) -> Option<(String, Option<String>, Option<String>, bool)> {
    let found = correlation_of(current.filter(|c| !c.is_none())?)?;
    Some((found.trace_id.to_string(), found.transaction_id.map(|id| id.to_string()), found.span_id.map(|id| id.to_string()), found.sampled))
}

/// A Logs API value: primitives, bytes, sequences and mappings of them; anything else its `str()`.
fn log_value(value: &Bound<'_, PyAny>, depth: usize) -> LogValue {
    if let Ok(b) = value.cast::<PyBool>() {
        return LogValue::Bool(b.is_true());
    }
    if let Ok(s) = value.cast::<PyString>() {
        return LogValue::Str(text(s).into_owned());
    }
    if value.cast::<PyInt>().is_ok() {
        if let Ok(i) = value.extract::<i64>() {
            return LogValue::Int(i);
        }
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        return LogValue::Float(f.value());
    }
    if let Ok(b) = value.cast::<PyBytes>() {
        return LogValue::Bytes(b.as_bytes().to_vec());
    }
    if let Ok(b) = value.cast::<PyByteArray>() {
        return LogValue::Bytes(b.to_vec());
    }
    if depth < MAX_DEPTH {
        if let Ok(dict) = value.cast::<PyDict>() {
            return LogValue::Map(dict.iter().map(|(k, v)| (crate::convert::display(&k), log_value(&v, depth + 1))).collect());
        }
        if value.cast::<PyList>().is_ok() || value.cast::<PyTuple>().is_ok() {
            if let Ok(items) = value.try_iter() {
                return LogValue::Array(items.filter_map(Result::ok).map(|item| log_value(&item, depth + 1)).collect());
            }
        }
    }
    LogValue::Str(crate::convert::display(value))
}

/// The records of one instrumentation scope, queued to the engine.
#[pyclass(module = "oxapm._core", frozen)]
pub struct LogEmitter {
    engine: Arc<engine::Engine>,
    scope: Arc<Scope>,
}

#[pymethods]
impl LogEmitter {
    #[new]
    #[pyo3(signature = (engine, name, version=None, schema_url=None, attributes=None))]
    fn new(engine: &Bound<'_, Engine>, name: &str, version: Option<String>, schema_url: Option<String>, attributes: Option<&Bound<'_, PyAny>>) -> Self {
        let engine = engine.get().inner.clone();
        let limits = engine.config.span_limits;
        let attributes = otel::attributes_from(attributes, limits.attribute_count, &limits);
        LogEmitter { engine, scope: Arc::new(Scope { name: name.to_owned(), version, schema_url, attributes }) }
    }

    /// Whether records are exported at all (`OTEL_LOGS_EXPORTER=none` says no).
    #[getter]
    fn enabled(&self) -> bool {
        self.engine.exports_logs()
    }

    /// Queues one record. Times are nanoseconds since the epoch (the observed time defaults to
    /// now); `current` is the span the record belongs to (see `correlation`); `attributes` a
    /// mapping of attribute values, kept within the attribute limits.
    #[pyo3(signature = (timestamp, observed_timestamp, severity_number, severity_text, body, attributes, current, event_name=None))]
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        timestamp: Option<u64>,
        observed_timestamp: Option<u64>,
        severity_number: Option<i64>,
        severity_text: Option<String>,
        body: Option<&Bound<'_, PyAny>>,
        attributes: Option<&Bound<'_, PyAny>>,
        current: Option<&Bound<'_, PyAny>>,
        event_name: Option<String>,
    ) {
        if !self.engine.exports_logs() {
            return;
        }
        let limits = self.engine.config.span_limits;
        let mut record = LogRecord {
            timestamp_us: otel::ns_to_us(timestamp).unwrap_or(0),
            observed_timestamp_us: otel::ns_to_us(observed_timestamp).unwrap_or_else(now_epoch_us),
            severity_number: severity_number.filter(|n| (0..=24).contains(n)).unwrap_or(0) as u8,
            severity_text,
            body: body.filter(|b| !b.is_none()).map(|b| log_value(b, 0)),
            attributes: otel::attributes_from(attributes, limits.attribute_count, &limits),
            scope: Some(self.scope.clone()),
            event_name,
            ..Default::default()
        };
        correlate(&mut record, current);
        self.engine.push_log(record);
    }

    #[getter]
    fn name(&self) -> &str {
        &self.scope.name
    }
}

/// Logger names are few; a program making them without end gets uncached scopes past this.
const MAX_CACHED_SCOPES: usize = 1024;

/// The records of a `logging` handler, each under the scope named after its logger.
#[pyclass(module = "oxapm._core", frozen)]
pub struct LoggingRecords {
    engine: Arc<engine::Engine>,
    /// `LogRecord` attributes that are not `extra` fields (`oxapm.logs.RECORD_FIELDS`).
    record_fields: HashSet<String>,
    scopes: Mutex<HashMap<String, Arc<Scope>>>,
}

impl LoggingRecords {
    fn scope(&self, name: &str) -> Arc<Scope> {
        let mut scopes = self.scopes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(scope) = scopes.get(name) {
            return scope.clone();
        }
        let scope = Arc::new(Scope { name: name.to_owned(), ..Default::default() });
        if scopes.len() < MAX_CACHED_SCOPES {
            scopes.insert(name.to_owned(), scope.clone());
        }
        scope
    }
}

#[pymethods]
impl LoggingRecords {
    #[new]
    fn new(engine: &Bound<'_, Engine>, record_fields: HashSet<String>) -> Self {
        LoggingRecords { engine: engine.get().inner.clone(), record_fields, scopes: Mutex::default() }
    }

    #[getter]
    fn enabled(&self) -> bool {
        self.engine.exports_logs()
    }

    /// Queues `record` (a `logging.LogRecord`) with `body`: severity from its level, `extra`
    /// fields, `code.*` and `thread.*` as attributes, and the `exception.*` attributes given (the
    /// handler formats the traceback); `current` is the span it belongs to.
    #[pyo3(signature = (record, body, exception, current))]
    fn emit(
        &self,
        record: &Bound<'_, PyAny>,
        body: &Bound<'_, PyAny>,
        exception: Option<&Bound<'_, PyDict>>,
        current: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if !self.engine.exports_logs() {
            return Ok(());
        }
        let limits = self.engine.config.span_limits;
        let (max_count, max_length) = (limits.attribute_count, limits.attribute_value_length);
        let mut attributes = Attributes::default();
        let (mut name, mut created, mut levelno, mut levelname) = (String::new(), 0.0, 0, String::new());
        let fields = record.getattr(pyo3::intern!(record.py(), "__dict__"))?;
        for (key, value) in fields.cast::<PyDict>()?.iter() {
            let Ok(key) = key.cast::<PyString>() else { continue };
            let key = text(key);
            let string = || value.cast::<PyString>().ok().map(|s| AttributeValue::Str(text(s).into_owned()));
            let int = || value.extract::<i64>().ok().map(AttributeValue::Int);
            let (attribute, value) = match key.as_ref() {
                "name" => {
                    name = crate::convert::display(&value);
                    continue;
                }
                "created" => {
                    created = value.extract::<f64>().unwrap_or(0.0);
                    continue;
                }
                "levelno" => {
                    levelno = value.extract::<i64>().unwrap_or(0);
                    continue;
                }
                "levelname" => {
                    levelname = crate::convert::display(&value);
                    continue;
                }
                "pathname" => ("code.file.path", string()),
                "funcName" => ("code.function.name", string()),
                "lineno" => ("code.line.number", int()),
                "thread" => ("thread.id", int()),
                "threadName" => ("thread.name", string()),
                standard if self.record_fields.contains(standard) => continue,
                extra => {
                    let value = otel::attribute_value(&value).unwrap_or_else(|| AttributeValue::Str(crate::convert::display(&value)));
                    attributes.set(extra, value, max_count, max_length);
                    continue;
                }
            };
            if let Some(value) = value {
                attributes.set(attribute, value, max_count, max_length);
            }
        }
        if let Some(exception) = exception {
            for (key, value) in exception.iter() {
                if let (Ok(key), Some(value)) = (key.extract::<String>(), otel::attribute_value(&value)) {
                    attributes.set(&key, value, max_count, max_length);
                }
            }
        }
        let mut record = LogRecord {
            timestamp_us: crate::convert::epoch_micros(Some(created)).unwrap_or(0),
            observed_timestamp_us: now_epoch_us(),
            severity_number: severity_of_logging_level(levelno),
            severity_text: Some(severity_text_of_logging_level(&levelname).to_owned()),
            body: Some(log_value(body, 0)),
            attributes,
            scope: Some(self.scope(&name)),
            ..Default::default()
        };
        correlate(&mut record, current);
        self.engine.push_log(record);
        Ok(())
    }
}
