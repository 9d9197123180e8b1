//! The OpenTelemetry span interface, shared by `Transaction` and `Span`: Python values to
//! attributes, events, links and status, and the OTel API objects (`SpanContext`) made on demand.
//! `opentelemetry` is imported only when one of these is first needed.

use oxapm_core::diag;
use oxapm_core::ids::{SpanId, TraceId};
use oxapm_core::model::{AttributeValue, Attributes, Link, OtelData, SpanEvent, SpanLimits, StatusCode};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::sync::atomic::{AtomicBool, Ordering};

/// Only the first invalid attribute value is reported: a loop setting one would flood the log.
static WARNED_INVALID_ATTRIBUTE: AtomicBool = AtomicBool::new(false);

pub fn warn_invalid(key: &str, value: &Bound<'_, PyAny>) {
    if !WARNED_INVALID_ATTRIBUTE.swap(true, Ordering::Relaxed) {
        let type_name = value.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        diag::warn(&format!(
            "attribute {key:?}: a {type_name} is not an OpenTelemetry attribute value (str, bool, int, float or a sequence of one of them); dropped, and further invalid values silently"
        ));
    }
}

/// A primitive, or a list or tuple of one primitive type (`None` items are skipped).
pub fn attribute_value(value: &Bound<'_, PyAny>) -> Option<AttributeValue> {
    if let Ok(b) = value.cast::<PyBool>() {
        return Some(AttributeValue::Bool(b.is_true()));
    }
    if let Ok(s) = value.cast::<PyString>() {
        return Some(AttributeValue::Str(crate::convert::text(s).into_owned()));
    }
    if value.cast::<PyInt>().is_ok() {
        return value.extract::<i64>().ok().map(AttributeValue::Int);
    }
    if let Ok(f) = value.cast::<PyFloat>() {
        return Some(AttributeValue::Float(f.value()));
    }
    if value.cast::<PyList>().is_ok() || value.cast::<PyTuple>().is_ok() {
        let items: Vec<AttributeValue> =
            value.try_iter().ok()?.filter_map(Result::ok).filter(|i| !i.is_none()).map(|i| attribute_value(&i)).collect::<Option<_>>()?;
        return homogeneous_array(items);
    }
    None
}

fn homogeneous_array(items: Vec<AttributeValue>) -> Option<AttributeValue> {
    macro_rules! all_of {
        ($variant:ident, $array:ident) => {
            items
                .iter()
                .map(|i| if let AttributeValue::$variant(v) = i { Some(v.clone()) } else { None })
                .collect::<Option<Vec<_>>>()
                .map(AttributeValue::$array)
        };
    }
    match items.first() {
        None => Some(AttributeValue::StrArray(Vec::new())),
        Some(AttributeValue::Str(_)) => all_of!(Str, StrArray),
        Some(AttributeValue::Bool(_)) => all_of!(Bool, BoolArray),
        Some(AttributeValue::Int(_)) => all_of!(Int, IntArray),
        Some(AttributeValue::Float(_)) => all_of!(Float, FloatArray),
        Some(_) => None,
    }
}

/// Sets one attribute; an invalid value is dropped (and reported once).
fn set_attribute(attributes: &mut Attributes, key: &str, value: &Bound<'_, PyAny>, max_count: usize, limits: &SpanLimits) {
    match attribute_value(value) {
        Some(value) => attributes.set(key, value, max_count, limits.attribute_value_length),
        None => warn_invalid(key, value),
    }
}

/// Attributes from any mapping (a dict, or the API's `BoundedAttributes`).
pub fn attributes_from(mapping: Option<&Bound<'_, PyAny>>, max_count: usize, limits: &SpanLimits) -> Attributes {
    let mut out = Attributes::default();
    let Some(mapping) = mapping.filter(|m| !m.is_none()) else { return out };
    let items = match mapping.cast::<PyDict>() {
        Ok(dict) => dict.items().into_any(),
        Err(_) => match mapping.call_method0("items") {
            Ok(items) => items,
            Err(_) => return out,
        },
    };
    if let Ok(iter) = items.try_iter() {
        for item in iter.filter_map(Result::ok) {
            if let Ok((key, value)) = item.extract::<(String, Bound<'_, PyAny>)>() {
                set_attribute(&mut out, &key, &value, max_count, limits);
            }
        }
    }
    out
}

pub fn otel_data(otel: &mut Option<Box<OtelData>>) -> &mut OtelData {
    otel.get_or_insert_with(Default::default)
}

/// What the OTel span methods change in a record (a transaction's or a span's), within limits.
pub struct OtelTarget<'a> {
    pub otel: &'a mut Option<Box<OtelData>>,
    pub links: &'a mut Vec<Link>,
    pub limits: SpanLimits,
}

impl OtelTarget<'_> {
    pub fn set_attribute(self, key: &str, value: &Bound<'_, PyAny>) {
        let limits = self.limits;
        set_attribute(&mut otel_data(self.otel).attributes, key, value, limits.attribute_count, &limits);
    }

    pub fn set_attributes(self, attributes: &Bound<'_, PyAny>) {
        let given = attributes_from(Some(attributes), usize::MAX, &self.limits);
        let target = &mut otel_data(self.otel).attributes;
        for (key, value) in given.entries {
            target.set(&key, value, self.limits.attribute_count, None);
        }
    }

    pub fn add_event(self, name: &str, attributes: Option<&Bound<'_, PyAny>>, timestamp: Option<u64>) {
        add_event(self.otel, &self.limits, name, attributes, timestamp);
    }

    pub fn set_status(self, status: &Bound<'_, PyAny>, description: Option<String>) {
        if let Some((code, description)) = status_of(status, description) {
            otel_data(self.otel).set_status(code, description);
        }
    }

    pub fn record_exception(self, exception: &Bound<'_, PyAny>, attributes: Option<&Bound<'_, PyAny>>, timestamp: Option<u64>, escaped: bool) -> PyResult<()> {
        let event = exception_event(exception, attributes, timestamp, escaped, &self.limits)?;
        otel_data(self.otel).add_event(event, &self.limits);
        Ok(())
    }

    /// A link to a `TraceParent` or an OTel `SpanContext`; past the limit it is counted as dropped.
    pub fn add_link(self, context: &Bound<'_, PyAny>, attributes: Option<&Bound<'_, PyAny>>) {
        let Some(link) = link_to(context, attributes, &self.limits) else { return };
        if self.links.len() < self.limits.link_count {
            self.links.push(link);
        } else {
            otel_data(self.otel).dropped_links += 1;
        }
    }
}

/// Nanoseconds since the epoch, as the OTel API gives times, in microseconds.
pub fn ns_to_us(ns: Option<u64>) -> Option<u64> {
    ns.filter(|ns| *ns > 0).map(|ns| ns / 1000)
}

fn add_event(otel: &mut Option<Box<OtelData>>, limits: &SpanLimits, name: &str, attributes: Option<&Bound<'_, PyAny>>, timestamp: Option<u64>) {
    let event = SpanEvent {
        name: name.to_owned(),
        timestamp_us: ns_to_us(timestamp).unwrap_or_else(oxapm_core::model::now_epoch_us),
        attributes: attributes_from(attributes, limits.event_attribute_count, limits),
    };
    otel_data(otel).add_event(event, limits);
}

/// The code of a `Status` or a `StatusCode` (their `.value`: 0 unset, 1 ok, 2 error) and the
/// description that goes with it.
fn status_of(status: &Bound<'_, PyAny>, description: Option<String>) -> Option<(StatusCode, Option<String>)> {
    let (code, description) = match status.getattr("status_code") {
        Ok(code) => (code, status.getattr("description").ok().and_then(|d| d.extract::<Option<String>>().ok()).flatten()),
        Err(_) => (status.clone(), description),
    };
    let code = match code.getattr("value").ok()?.extract::<i64>().ok()? {
        0 => StatusCode::Unset,
        1 => StatusCode::Ok,
        2 => StatusCode::Error,
        _ => return None,
    };
    Some((code, description))
}

/// The `exception` event of `record_exception`, with the attributes the OTel conventions name.
fn exception_event(
    exception: &Bound<'_, PyAny>,
    attributes: Option<&Bound<'_, PyAny>>,
    timestamp: Option<u64>,
    escaped: bool,
    limits: &SpanLimits,
) -> PyResult<SpanEvent> {
    let py = exception.py();
    let kind = exception.get_type();
    let module: String = kind.getattr("__module__").and_then(|m| m.extract()).unwrap_or_default();
    let qualname = kind.qualname()?.to_string();
    let type_name = if module.is_empty() || module == "builtins" { qualname } else { format!("{module}.{qualname}") };
    let traceback = py.import("traceback")?;
    let lines = traceback.call_method1("format_exception", (kind, exception, exception.getattr("__traceback__")?))?;
    let stacktrace: String = PyString::new(py, "").call_method1("join", (lines,))?.extract()?;
    let max = limits.event_attribute_count;
    let mut event_attributes = Attributes::default();
    event_attributes.set("exception.type", AttributeValue::Str(type_name), max, limits.attribute_value_length);
    event_attributes.set("exception.message", AttributeValue::Str(exception.str()?.to_string_lossy().into_owned()), max, limits.attribute_value_length);
    event_attributes.set("exception.stacktrace", AttributeValue::Str(stacktrace), max, limits.attribute_value_length);
    event_attributes.set("exception.escaped", AttributeValue::Bool(escaped), max, limits.attribute_value_length);
    for (key, value) in attributes_from(attributes, max, limits).entries {
        event_attributes.set(&key, value, max, limits.attribute_value_length);
    }
    Ok(SpanEvent {
        name: "exception".to_owned(),
        timestamp_us: ns_to_us(timestamp).unwrap_or_else(oxapm_core::model::now_epoch_us),
        attributes: event_attributes,
    })
}

/// A link to `context`: an OTel `SpanContext` (integer ids) or a `TraceParent` (hex ids).
fn link_to(context: &Bound<'_, PyAny>, attributes: Option<&Bound<'_, PyAny>>, limits: &SpanLimits) -> Option<Link> {
    let trace_id = context.getattr("trace_id").ok()?;
    let span_id = context.getattr("span_id").ok()?;
    let (trace_id, span_id) = match (trace_id.extract::<u128>(), span_id.extract::<u64>()) {
        (Ok(t), Ok(s)) => (TraceId(t.to_be_bytes()), SpanId(s.to_be_bytes())),
        _ => (TraceId::from_hex(&trace_id.extract::<String>().ok()?)?, SpanId::from_hex(&span_id.extract::<String>().ok()?)?),
    };
    if !trace_id.is_valid() || !span_id.is_valid() {
        return None;
    }
    Some(Link { trace_id, span_id, attributes: attributes_from(attributes, limits.link_attribute_count, limits) })
}

/// Links from the API's `Sequence[Link]` (each with `context` and `attributes`), within the limit.
pub fn links_from_api(links: Option<&Bound<'_, PyAny>>, limits: &SpanLimits) -> (Vec<Link>, u32) {
    let mut out = Vec::new();
    let mut dropped = 0;
    let Some(iter) = links.filter(|l| !l.is_none()).and_then(|l| l.try_iter().ok()) else { return (out, 0) };
    for link in iter.filter_map(Result::ok) {
        let Ok(context) = link.getattr("context") else { continue };
        let attributes = link.getattr("attributes").ok();
        if let Some(link) = link_to(&context, attributes.as_ref(), limits) {
            if out.len() < limits.link_count {
                out.push(link);
            } else {
                dropped += 1;
            }
        }
    }
    (out, dropped)
}

/// `opentelemetry.trace` attributes, imported once.
fn otel_trace_attr<'py>(py: Python<'py>, cell: &'static PyOnceLock<Py<PyAny>>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || py.import("opentelemetry.trace")?.getattr(name).map(Bound::unbind)).map(|v| v.bind(py).clone())
}

static SPAN_CONTEXT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static SPAN_KIND: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The API's `SpanKind` of a span: its OTel kind, else INTERNAL (an Elastic-started one).
pub fn span_kind<'py>(py: Python<'py>, otel: &Option<Box<OtelData>>) -> PyResult<Bound<'py, PyAny>> {
    let kind = otel.as_deref().and_then(|o| o.kind).unwrap_or_default();
    otel_trace_attr(py, &SPAN_KIND, "SpanKind")?.call1((kind as i64,))
}
static TRACE_FLAGS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static TRACE_STATE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The API's `TraceState` for a `tracestate` header.
pub fn trace_state(py: Python<'_>, header: &str) -> PyResult<Py<PyAny>> {
    let class = otel_trace_attr(py, &TRACE_STATE, "TraceState")?;
    let state = if header.is_empty() { class.call0()? } else { class.call_method1("from_header", (vec![header],))? };
    Ok(state.unbind())
}

/// The API's `SpanContext` of a local span.
pub fn span_context(py: Python<'_>, trace_id: TraceId, span_id: SpanId, flags: u8, trace_state: &Py<PyAny>) -> PyResult<Py<PyAny>> {
    let flags = otel_trace_attr(py, &TRACE_FLAGS, "TraceFlags")?.call1((flags,))?;
    let class = otel_trace_attr(py, &SPAN_CONTEXT, "SpanContext")?;
    let trace_id = u128::from_be_bytes(trace_id.0);
    let span_id = u64::from_be_bytes(span_id.0);
    Ok(class.call1((trace_id, span_id, false, flags, trace_state))?.unbind())
}
