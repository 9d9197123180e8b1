//! `PropagationFormat`: one of the engine's propagation formats, for the OpenTelemetry propagators
//! of `oxapm.otel.propagators`, which make one call per extract or inject; and the headers of the
//! instrumentations' requests, read and written in every configured format in one call.

use crate::client::current_client;
use crate::http::Headers;
use crate::python_attribute::PythonAttribute;
use crate::trace::{Span, Transaction};
use oxapm_core::ids::{SpanId, TraceId};
use oxapm_core::propagation::{self, Format, Propagated, SpanContext};
use oxapm_core::traceparent::{TraceParent, TraceState};
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

/// `(trace_id, span_id, trace_flags, tracestate)`: ids as the ints OpenTelemetry's `SpanContext`
/// holds, the tracestate as its header.
type PySpanContext = (u128, u64, u8, String);

#[pyclass(module = "oxapm._core", frozen)]
pub struct PropagationFormat {
    format: Format,
}

#[pymethods]
impl PropagationFormat {
    #[new]
    fn new(name: &str) -> PyResult<Self> {
        let format = Format::parse(name).ok_or_else(|| PyValueError::new_err(format!("no propagation format is named {name:?}")))?;
        Ok(PropagationFormat { format })
    }

    #[getter]
    fn name(&self) -> &'static str {
        self.format.name()
    }

    #[getter]
    fn extracted_headers(&self) -> Vec<&'static str> {
        self.format.extracted_headers().to_vec()
    }

    #[getter]
    fn injected_headers(&self) -> Vec<&'static str> {
        self.format.injected_headers().to_vec()
    }

    #[getter]
    fn baggage_prefix(&self) -> Option<&'static str> {
        self.format.baggage_prefix()
    }

    #[getter]
    fn carries_span(&self) -> bool {
        self.format.carries_span()
    }

    #[getter]
    fn carries_baggage(&self) -> bool {
        self.format.carries_baggage()
    }

    /// The span context (or `None`) and baggage entries carried by `headers`, `(name, value)` pairs.
    fn extract(&self, headers: Vec<(String, String)>) -> (Option<PySpanContext>, Vec<(String, String)>) {
        let Propagated { span, baggage } = propagation::extract(self.format, &headers);
        let span = span.map(|s| (u128::from_be_bytes(s.trace_id.0), u64::from_be_bytes(s.span_id.0), s.flags, s.tracestate.to_header()));
        (span, baggage)
    }

    /// The `(name, value)` headers carrying `span` and `baggage`.
    fn inject(&self, span: Option<PySpanContext>, baggage: Vec<(String, String)>) -> Vec<(String, String)> {
        let span = span.map(|(trace_id, span_id, flags, tracestate)| SpanContext {
            trace_id: TraceId(trace_id.to_be_bytes()),
            span_id: SpanId(span_id.to_be_bytes()),
            flags,
            tracestate: TraceState::parse(&tracestate),
        });
        propagation::inject(self.format, &Propagated { span, baggage })
    }
}

static PROPAGATION: PythonAttribute = PythonAttribute::module("oxapm.instrumentation.propagation");
static SYS_MODULES: PythonAttribute = PythonAttribute::new("sys", "modules");

/// The `(name, value)` headers carrying `current` (a transaction, or a span of one) to the
/// service called: in each format the current client writes (`propagation._configured`), with
/// OpenTelemetry's baggage when OpenTelemetry is in use; a header two formats write (tracestate)
/// once, as the first writes it. Empty for anything else. Every outgoing call of the
/// instrumentations makes one such call.
#[pyfunction]
pub fn outgoing_headers(current: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String)>> {
    let py = current.py();
    let written = configured_formats(&current_client(py)?)?.getattr(intern!(py, "written"))?;
    let baggage = match SYS_MODULES.bind(py)?.contains("opentelemetry.baggage")? {
        true => PROPAGATION.bind(py)?.call_method0(intern!(py, "_current_baggage"))?.extract()?,
        false => Vec::new(),
    };
    Ok(headers_carrying(current, &formats_in(written.cast()?), baggage))
}

/// The formats of `client`, the current client (`propagation._configured()`), with no Python call
/// once they are known.
fn configured_formats<'py>(client: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = client.py();
    let propagation = PROPAGATION.bind(py)?;
    match propagation.getattr(intern!(py, "_configuration"))?.cast_into::<PyTuple>() {
        Ok(known) if known.get_item(0)?.is(client) => known.get_item(1),
        _ => propagation.call_method0(intern!(py, "_configured")),
    }
}

/// The formats of a list of `PropagationFormat` (read in place: this runs on every request).
fn formats_in(formats: &Bound<'_, PyList>) -> Vec<Format> {
    formats.iter().filter_map(|format| format.cast::<PropagationFormat>().ok().map(|format| format.get().format)).collect()
}

fn headers_carrying(current: &Bound<'_, PyAny>, formats: &[Format], baggage: Vec<(String, String)>) -> Vec<(String, String)> {
    let span = if let Ok(transaction) = current.cast::<Transaction>() {
        span_context(&transaction.borrow(), None)
    } else if let Ok(span) = current.cast::<Span>() {
        let Ok(mut span) = span.try_borrow_mut() else { return Vec::new() };
        // Its id goes out as the callee's parent: the span must be reported as it is.
        span.active.record.propagated |= !formats.is_empty();
        span_context(&span.transaction.bind(current.py()).borrow(), Some(span.active.record.id))
    } else {
        return Vec::new();
    };
    let propagated = Propagated { span: Some(span), baggage };
    let mut headers: Vec<(String, String)> = Vec::new();
    for &format in formats {
        for (name, value) in propagation::inject(format, &propagated) {
            if !headers.iter().any(|(written, _)| written.eq_ignore_ascii_case(&name)) {
                headers.push((name, value));
            }
        }
    }
    headers
}

fn span_context(transaction: &Transaction, span_id: Option<SpanId>) -> SpanContext {
    let traceparent = transaction.active.traceparent(span_id);
    SpanContext { trace_id: traceparent.trace_id, span_id: traceparent.parent_id, flags: traceparent.flags, tracestate: transaction.active.tracestate.clone() }
}

/// The parent an incoming request names in `headers` (as `Headers::from_python` reads them), read
/// in each of `formats` in turn: `(traceparent, tracestate)` headers, or None when none carries a
/// valid one.
#[pyfunction]
pub fn incoming_parent(formats: &Bound<'_, PyList>, headers: &Bound<'_, PyAny>) -> PyResult<Option<(String, String)>> {
    Ok(parent_in(&formats_in(formats), &Headers::from_python(headers)?))
}

/// `incoming_parent` in the formats `client`, the current client, reads.
pub(crate) fn configured_incoming_parent(client: &Bound<'_, PyAny>, headers: &Headers) -> PyResult<Option<(String, String)>> {
    Ok(parent_in(&formats_in(configured_formats(client)?.getattr(intern!(client.py(), "read"))?.cast()?), headers))
}

fn parent_in(formats: &[Format], headers: &Headers) -> Option<(String, String)> {
    for &format in formats.iter().filter(|f| f.carries_span()) {
        let pairs: Vec<(&str, &str)> = format.extracted_headers().iter().filter_map(|&name| headers.get(name).map(|value| (name, value))).collect();
        if pairs.is_empty() {
            continue;
        }
        if let Some(span) = propagation::extract(format, &pairs).span {
            let traceparent = TraceParent { version: 0, trace_id: span.trace_id, parent_id: span.span_id, flags: span.flags };
            return Some((traceparent.to_header(), span.tracestate.to_header()));
        }
    }
    None
}
