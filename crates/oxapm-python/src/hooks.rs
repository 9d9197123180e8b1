//! Python span processors (`TracerProvider.add_span_processor`): told when a span starts and when
//! it ends. While none is registered, the only cost is one atomic load per span.

use oxapm_core::model::{AttributeValue, Attributes, Event, OtelData, StatusCode};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// `on_start(span)` gets the live span, `on_end(fields)` a dict of the finished one (see
/// `finished_fields`).
struct Hooks {
    on_start: Py<PyAny>,
    on_end: Py<PyAny>,
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static HOOKS: Mutex<Option<Hooks>> = Mutex::new(None);

pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed)
}

fn hook(py: Python<'_>, which: fn(&Hooks) -> &Py<PyAny>) -> Option<Py<PyAny>> {
    HOOKS.lock().ok()?.as_ref().map(|hooks| which(hooks).clone_ref(py))
}

/// Installs the span hooks, or removes them (`None`).
#[pyfunction]
#[pyo3(signature = (on_start=None, on_end=None))]
pub fn set_span_hooks(on_start: Option<Py<PyAny>>, on_end: Option<Py<PyAny>>) {
    let hooks = on_start.zip(on_end).map(|(on_start, on_end)| Hooks { on_start, on_end });
    ACTIVE.store(hooks.is_some(), Ordering::Relaxed);
    if let Ok(mut slot) = HOOKS.lock() {
        *slot = hooks;
    }
}

/// Passes a new span to `on_start` and gives it back. A processor's exception is reported, not
/// raised: it must not break the traced code.
pub fn started<T: pyo3::PyTypeInfo>(py: Python<'_>, span: Py<T>) -> Py<T> {
    if !active() {
        return span;
    }
    if let Some(on_start) = hook(py, |h| &h.on_start) {
        if let Err(error) = on_start.call1(py, (span.clone_ref(py),)) {
            error.write_unraisable(py, None);
        }
    }
    span
}

pub fn ended(py: Python<'_>, event: &Event) {
    let Some(on_end) = hook(py, |h| &h.on_end) else { return };
    let result = finished_fields(py, event).and_then(|fields| on_end.call1(py, (fields,)));
    if let Err(error) = result {
        error.write_unraisable(py, None);
    }
}

fn value<'py>(py: Python<'py>, value: &AttributeValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        AttributeValue::Str(s) => s.into_pyobject(py)?.into_any(),
        AttributeValue::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        AttributeValue::Int(i) => i.into_pyobject(py)?.into_any(),
        AttributeValue::Float(f) => f.into_pyobject(py)?.into_any(),
        AttributeValue::StrArray(v) => PyTuple::new(py, v)?.into_any(),
        AttributeValue::BoolArray(v) => PyTuple::new(py, v)?.into_any(),
        AttributeValue::IntArray(v) => PyTuple::new(py, v)?.into_any(),
        AttributeValue::FloatArray(v) => PyTuple::new(py, v)?.into_any(),
    })
}

fn attributes_dict<'py>(py: Python<'py>, attributes: &Attributes) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for (key, v) in &attributes.entries {
        out.set_item(key, value(py, v)?)?;
    }
    Ok(out)
}

/// What a `ReadableSpan` is made of: ids as integers, times in nanoseconds, the OTel data.
fn finished_fields<'py>(py: Python<'py>, event: &Event) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    // (name, trace id, id, parent id, parent remote, start, duration, outcome, sampled, otel, links)
    let (name, trace_id, id, parent_id, parent_is_remote, timestamp_us, duration_us, outcome, sampled, otel, links) = match event {
        Event::Span(s) => (&s.name, s.trace_id, s.id, Some(s.parent_id), false, s.timestamp_us, s.duration_us, s.outcome, true, s.otel.as_deref(), &s.links),
        Event::Transaction(t) => {
            (&t.name, t.trace_id, t.id, t.parent_id, t.parent_id.is_some(), t.timestamp_us, t.duration_us, t.outcome, t.sampled, t.otel.as_deref(), &t.links)
        }
        Event::Error(_) | Event::Metricset(_) | Event::Metrics(_) | Event::Log(_) => return Ok(out),
    };
    out.set_item("name", name)?;
    out.set_item("trace_id", u128::from_be_bytes(trace_id.0))?;
    out.set_item("span_id", u64::from_be_bytes(id.0))?;
    out.set_item("parent_id", parent_id.map(|p| u64::from_be_bytes(p.0)))?;
    out.set_item("parent_is_remote", parent_is_remote)?;
    out.set_item("start_time", timestamp_us * 1000)?;
    out.set_item("end_time", (timestamp_us + duration_us) * 1000)?;
    out.set_item("outcome", outcome.as_str())?;
    out.set_item("sampled", sampled)?;
    let default = OtelData::default();
    let otel = otel.unwrap_or(&default);
    out.set_item("kind", otel.kind.unwrap_or_default() as i64)?;
    out.set_item("attributes", attributes_dict(py, &otel.attributes)?)?;
    out.set_item("dropped_attributes", otel.attributes.dropped)?;
    let status_code = match otel.status {
        StatusCode::Unset => 0,
        StatusCode::Ok => 1,
        StatusCode::Error => 2,
    };
    out.set_item("status", (status_code, otel.status_description.as_deref()))?;
    let events = otel.events.iter().map(|e| Ok((e.name.as_str(), e.timestamp_us * 1000, attributes_dict(py, &e.attributes)?))).collect::<PyResult<Vec<_>>>()?;
    out.set_item("events", events)?;
    out.set_item("dropped_events", otel.dropped_events)?;
    let links = links
        .iter()
        .map(|l| Ok((u128::from_be_bytes(l.trace_id.0), u64::from_be_bytes(l.span_id.0), attributes_dict(py, &l.attributes)?)))
        .collect::<PyResult<Vec<_>>>()?;
    out.set_item("links", links)?;
    out.set_item("dropped_links", otel.dropped_links)?;
    let scope = otel.scope.as_ref().map(|s| (s.name.as_str(), s.version.as_deref(), s.schema_url.as_deref()));
    out.set_item("scope", scope)?;
    Ok(out)
}
