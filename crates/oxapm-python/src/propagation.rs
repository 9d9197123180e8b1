//! `PropagationFormat`: one of the engine's propagation formats, for the OpenTelemetry propagators
//! of `oxapm.otel.propagators`, which make one call per extract or inject.

use oxapm_core::ids::{SpanId, TraceId};
use oxapm_core::propagation::{self, Format, Propagated, SpanContext};
use oxapm_core::traceparent::TraceState;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

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
