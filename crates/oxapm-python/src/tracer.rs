//! `Tracer`: spans started through the OpenTelemetry API. One call starts a span under a local
//! parent, or a transaction when the parent is remote, foreign or absent.

use crate::engine::Engine;
use crate::hooks;
use crate::otel;
use crate::trace::{begin_under, SpanArgs, Transaction};
use oxapm_core::model::{OtelData, Scope, SpanKind};
use pyo3::prelude::*;
use std::sync::Arc;

/// The instrumentation scope (library) the spans of one `get_tracer` call belong to.
#[pyclass(module = "oxapm._core", frozen)]
pub struct Tracer {
    engine: Py<Engine>,
    /// The Python transaction class (`oxapm.traces.Transaction`) roots are made of.
    transaction_class: Py<PyAny>,
    scope: Arc<Scope>,
}

/// What a parent that is not ours tells: its trace, as a traceparent and tracestate.
fn remote_parent(parent: &Bound<'_, PyAny>) -> Option<(String, String)> {
    let context = parent.call_method0("get_span_context").ok()?;
    if !context.getattr("is_valid").ok()?.is_truthy().ok()? {
        return None;
    }
    let trace_id: u128 = context.getattr("trace_id").ok()?.extract().ok()?;
    let span_id: u64 = context.getattr("span_id").ok()?.extract().ok()?;
    let flags: u8 = context.getattr("trace_flags").ok()?.extract().ok()?;
    let tracestate: String = context.getattr("trace_state").ok()?.call_method0("to_header").ok()?.extract().ok()?;
    Some((format!("00-{trace_id:032x}-{span_id:016x}-{flags:02x}"), tracestate))
}

#[pymethods]
impl Tracer {
    #[new]
    #[pyo3(signature = (engine, transaction_class, name, version=None, schema_url=None, attributes=None))]
    fn new(
        engine: Py<Engine>,
        transaction_class: Py<PyAny>,
        name: &str,
        version: Option<String>,
        schema_url: Option<String>,
        attributes: Option<&Bound<'_, PyAny>>,
    ) -> Self {
        let limits = engine.get().inner.config.span_limits;
        let attributes = otel::attributes_from(attributes, limits.attribute_count, &limits);
        Tracer { engine, transaction_class, scope: Arc::new(Scope { name: name.to_owned(), version, schema_url, attributes }) }
    }

    /// Starts a span under `parent` (the current span of the context, or the one given). `None`
    /// means there is nothing to record (an unsampled trace, a leaf parent): the caller hands out
    /// a non-recording span with the parent's context. `kind` is the API's `SpanKind.value`;
    /// `start_time` is in nanoseconds since the epoch.
    #[pyo3(signature = (parent, name, kind=0, attributes=None, links=None, start_time=None))]
    #[allow(clippy::too_many_arguments)]
    fn start(
        &self,
        py: Python<'_>,
        parent: Option<&Bound<'_, PyAny>>,
        name: &str,
        kind: i64,
        attributes: Option<&Bound<'_, PyAny>>,
        links: Option<&Bound<'_, PyAny>>,
        start_time: Option<u64>,
    ) -> PyResult<Option<Py<PyAny>>> {
        let engine = self.engine.get();
        let limits = engine.inner.config.span_limits;
        let (links, dropped_links) = otel::links_from_api(links, &limits);
        let otel = Box::new(OtelData {
            kind: Some(SpanKind::from_api(kind).unwrap_or_default()),
            scope: Some(self.scope.clone()),
            attributes: otel::attributes_from(attributes, limits.attribute_count, &limits),
            dropped_links,
            ..Default::default()
        });
        let start_us = otel::ns_to_us(start_time);
        let parent = parent.filter(|p| !p.is_none());
        let local = parent.filter(|p| p.cast::<Transaction>().is_ok() || p.cast::<crate::trace::Span>().is_ok());
        if let Some(parent) = local {
            let args = SpanArgs {
                name,
                span_type: "unknown",
                subtype: None,
                action: None,
                labels: None,
                leaf: false,
                extra: None,
                links: &[],
                start_epoch_us: start_us,
            };
            let Some(mut span) = begin_under(parent, &args) else { return Ok(None) };
            span.active.record.otel = Some(otel);
            span.active.record.links = links;
            return Ok(Some(hooks::started(py, Py::new(py, span)?).into_any()));
        }
        let (traceparent, tracestate) = parent.and_then(remote_parent).unzip();
        let start_seconds = start_us.map(|us| us as f64 / 1e6);
        let transaction = self.transaction_class.call1(py, (self.engine.clone_ref(py), "unknown", traceparent, tracestate, None::<()>, start_seconds))?;
        {
            let mut txn = transaction.bind(py).cast::<Transaction>()?.borrow_mut();
            txn.active.record.name = oxapm_core::model::truncate_keyword(name).into_owned();
            txn.active.record.otel = Some(otel);
            txn.active.record.links = links;
        }
        Ok(Some(hooks::started(py, transaction)))
    }

    #[getter]
    fn name(&self) -> &str {
        &self.scope.name
    }
    #[getter]
    fn version(&self) -> Option<&str> {
        self.scope.version.as_deref()
    }
    #[getter]
    fn schema_url(&self) -> Option<&str> {
        self.scope.schema_url.as_deref()
    }
}
