//! `Transaction` and `Span` objects handed to Python. Each finishes into a record pushed to the
//! engine's queue; the hot path is one call to start a span and one to end it.

use crate::convert::{dict_to_map, epoch_micros, merge_context, update_labels};
use crate::hooks;
use crate::otel::{self, OtelTarget};
use oxapm_core::engine::Engine;
use oxapm_core::ids::{SpanId, TraceId};
use oxapm_core::model::{truncate_keyword, Event, JsonMap, Labels, Link, OtelData, Outcome, SpanKind, SpanRecord};
use oxapm_core::trace::{split_span_type, ActiveSpan, ActiveTransaction, TransactionStart};
use oxapm_core::traceparent::{TraceParent, TraceState};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedStr;
use pyo3::types::{PyDict, PyTuple, PyWeakrefReference};
use std::sync::Arc;

pub fn links_from(links: Option<Vec<(String, String)>>) -> Vec<Link> {
    links
        .unwrap_or_default()
        .iter()
        .filter_map(|(trace_id, span_id)| {
            Some(Link { trace_id: TraceId::from_hex(trace_id)?, span_id: SpanId::from_hex(span_id)?, attributes: Default::default() })
        })
        .collect()
}

/// `None` until an outcome is set, as the Elastic agent's attribute reads.
fn outcome_name(outcome: Outcome) -> Option<&'static str> {
    Some(outcome).filter(|o| *o != Outcome::Unknown).map(Outcome::as_str)
}

fn parse_outcome(outcome: &str) -> PyResult<Outcome> {
    Outcome::parse(outcome).ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("outcome must be success, failure or unknown, not {outcome:?}")))
}

/// Subclassed in Python (`oxapm.traces.Transaction`) for the methods that need the shared context.
/// Also an OpenTelemetry span: the root span of its trace in this process.
#[pyclass(module = "oxapm._core", subclass)]
pub struct Transaction {
    pub(crate) active: ActiveTransaction,
    pub(crate) engine: Arc<Engine>,
    /// The OTel API's `TraceState` of this trace, made when a span context is first asked for.
    trace_state: Option<Py<PyAny>>,
    /// The web request this transaction serves (`served::serving`), weakly: the request holds
    /// its transaction.
    pub(crate) served: Option<Py<PyWeakrefReference>>,
}

impl Transaction {
    fn otel_trace_state(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(state) = &self.trace_state {
            return Ok(state.clone_ref(py));
        }
        let state = otel::trace_state(py, &self.active.tracestate.to_header())?;
        self.trace_state = Some(state.clone_ref(py));
        Ok(state)
    }

    pub fn context_snapshot(&self) -> JsonMap {
        self.active.record.context.clone()
    }
    pub fn labels_snapshot(&self) -> Labels {
        self.active.record.labels.clone()
    }
}

/// What a new span is made of: the arguments of `capture_span`.
pub struct SpanArgs<'a, 'py> {
    pub name: &'a str,
    pub span_type: &'a str,
    pub subtype: Option<&'a str>,
    pub action: Option<&'a str>,
    pub labels: Option<&'a Bound<'py, PyDict>>,
    pub leaf: bool,
    pub extra: Option<&'a Bound<'py, PyDict>>,
    pub links: &'a [Link],
    pub start_epoch_us: Option<u64>,
}

/// `parent` as a span, borrowed for the accounting of its children: `Some(None)` when the parent
/// is the transaction, None when the span is in use elsewhere.
fn borrow_parent_span<'py>(parent: &Bound<'py, PyAny>) -> Option<Option<PyRefMut<'py, Span>>> {
    match parent.cast::<Span>() {
        Ok(span) => span.try_borrow_mut().ok().map(Some),
        Err(_) => Some(None),
    }
}

fn begin_child(transaction: &Bound<'_, Transaction>, parent: &Bound<'_, PyAny>, args: &SpanArgs<'_, '_>) -> Option<Span> {
    let mut txn = transaction.borrow_mut();
    let mut parent_span = borrow_parent_span(parent)?;
    let (main_type, subtype, action) = split_span_type(args.span_type, args.subtype, args.action);
    let parent_active = parent_span.as_deref_mut().map(|span| &mut span.active);
    let mut active = txn.active.start_span(parent_active, &truncate_keyword(args.name), &truncate_keyword(main_type), args.start_epoch_us)?;
    active.record.subtype = subtype.map(|s| truncate_keyword(s).into_owned());
    active.record.action = action.map(|s| truncate_keyword(s).into_owned());
    if let Some(labels) = args.labels {
        update_labels(&mut active.record.labels, labels);
    }
    if let Some(extra) = args.extra {
        active.record.context = dict_to_map(extra);
    }
    active.record.links = args.links.to_vec();
    active.record.exit = args.leaf;
    Some(Span { active, transaction: transaction.clone().unbind(), parent: parent.clone().unbind(), engine: txn.engine.clone(), http_call: None })
}

/// A new span under `parent` (a transaction or a span), or `None`: below a leaf span, in an
/// unsampled or ended transaction, or when `parent` is neither.
///
/// A context can still hold a span that ended elsewhere (a generator finished in another context):
/// the new span then goes under that span's nearest ancestor that is still open.
pub fn begin_under(parent: &Bound<'_, PyAny>, args: &SpanArgs<'_, '_>) -> Option<Span> {
    if let Ok(transaction) = parent.cast::<Transaction>() {
        return begin_child(transaction, parent, args);
    }
    let py = parent.py();
    let mut parent = parent.cast::<Span>().ok()?.clone();
    loop {
        let this = parent.borrow();
        if !this.active.is_ended() {
            if this.active.record.exit {
                return None;
            }
            let transaction = this.transaction.bind(py).clone();
            drop(this);
            return begin_child(&transaction, parent.as_any(), args);
        }
        let grandparent = this.parent.bind(py).clone();
        drop(this);
        match grandparent.cast_into::<Span>() {
            Ok(span) => parent = span,
            Err(transaction) => return begin_under(&transaction.into_inner(), args),
        }
    }
}

/// What `capture_span` packs once, in this order: (name, span_type, subtype, action, labels, leaf,
/// extra, links). One tuple argument instead of eight keeps the per-span call cheap.
type PackedSpanArgs<'py> = (
    PyBackedStr,
    PyBackedStr,
    Option<PyBackedStr>,
    Option<PyBackedStr>,
    Option<Bound<'py, PyDict>>,
    bool,
    Option<Bound<'py, PyDict>>,
    Option<Vec<(String, String)>>,
);

/// Starts a span under `parent` (the current transaction or span), see `begin_under`: the hot path
/// of `capture_span`. Arguments of the wrong type raise `TypeError` for the caller to coerce.
#[pyfunction]
pub fn begin_span(parent: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<Option<Py<Span>>> {
    let (name, span_type, subtype, action, labels, leaf, extra, links): PackedSpanArgs<'_> = args.extract()?;
    let links = links_from(links);
    let span = begin_under(
        parent,
        &SpanArgs {
            name: &name,
            span_type: &span_type,
            subtype: subtype.as_deref(),
            action: action.as_deref(),
            labels: labels.as_ref(),
            leaf,
            extra: extra.as_ref(),
            links: &links,
            start_epoch_us: None,
        },
    );
    let py = parent.py();
    span.map(|span| Ok(hooks::started(py, Py::new(py, span)?))).transpose()
}

/// Starts an exit span (a leaf: a call to another service) under `parent`, with its context, for
/// the instrumentations. None when nothing is recorded: see `begin_under`; nor below a CLIENT span
/// started through the OpenTelemetry API (a contrib instrumentation patched over ours traces the
/// call already).
pub fn begin_exit(
    parent: &Bound<'_, PyAny>,
    name: &str,
    span_type: &str,
    subtype: Option<&str>,
    action: Option<&str>,
    context: JsonMap,
) -> PyResult<Option<Py<Span>>> {
    if is_otel_client(parent) {
        return Ok(None);
    }
    let args = SpanArgs { name, span_type, subtype, action, labels: None, leaf: true, extra: None, links: &[], start_epoch_us: None };
    let Some(mut span) = begin_under(parent, &args) else { return Ok(None) };
    span.active.record.context = context;
    let py = parent.py();
    Ok(Some(hooks::started(py, Py::new(py, span)?)))
}

/// `begin_exit` with the context as a dict (`{"db": {...}, "destination": {...}}`), for the
/// instrumentations whose spans have no dedicated call.
#[pyfunction]
#[pyo3(signature = (parent, name, span_type, subtype=None, action=None, context=None))]
pub fn begin_exit_span(
    parent: &Bound<'_, PyAny>,
    name: &str,
    span_type: &str,
    subtype: Option<&str>,
    action: Option<&str>,
    context: Option<&Bound<'_, PyDict>>,
) -> PyResult<Option<Py<Span>>> {
    begin_exit(parent, name, span_type, subtype, action, context.map(dict_to_map).unwrap_or_default())
}

fn is_otel_client(parent: &Bound<'_, PyAny>) -> bool {
    let client = |otel: &Option<Box<OtelData>>| otel.as_ref().is_some_and(|o| o.kind == Some(SpanKind::Client));
    if let Ok(span) = parent.cast::<Span>() {
        return client(&span.borrow().active.record.otel);
    }
    parent.cast::<Transaction>().is_ok_and(|transaction| client(&transaction.borrow().active.record.otel))
}

/// Ends records for the engine: span processors see them first, when there are any. (Boxed as
/// the engine reports them and queues them.)
#[allow(clippy::vec_box)]
fn finish_spans(py: Python<'_>, engine: &Engine, spans: Vec<Box<SpanRecord>>) {
    for span in spans {
        finish_into(py, engine, Event::Span(span));
    }
}

fn finish_into(py: Python<'_>, engine: &Engine, event: Event) {
    if hooks::active() {
        hooks::ended(py, &event);
    }
    engine.push(event);
}

#[pymethods]
impl Transaction {
    /// Starts a transaction; an invalid `traceparent` starts a new trace, as does a valid one when
    /// `trace_continuation_strategy` says so.
    #[new]
    #[pyo3(signature = (engine, transaction_type, traceparent=None, tracestate=None, links=None, start=None))]
    fn new(
        engine: &Bound<'_, crate::engine::Engine>,
        transaction_type: &str,
        traceparent: Option<&str>,
        tracestate: Option<&str>,
        links: Option<Vec<(String, String)>>,
        start: Option<f64>,
    ) -> Self {
        let engine = engine.get();
        let incoming = traceparent.and_then(TraceParent::parse).map(|tp| (tp, TraceState::parse(tracestate.unwrap_or(""))));
        let mut links = links_from(links);
        let parent = engine.inner.continuation().resolve(incoming, &mut links);
        let active = ActiveTransaction::start(TransactionStart {
            transaction_type: &truncate_keyword(transaction_type),
            parent,
            sampler: engine.inner.sampler(),
            start_epoch_us: epoch_micros(start),
            links,
            shaping: engine.inner.shaping(),
        });
        Transaction { active, engine: engine.inner.clone(), trace_state: None, served: None }
    }

    #[getter]
    fn id(&self) -> String {
        self.active.record.id.to_string()
    }
    #[getter]
    fn trace_id(&self) -> String {
        self.active.record.trace_id.to_string()
    }
    #[getter]
    fn parent_id(&self) -> Option<String> {
        self.active.record.parent_id.map(|p| p.to_string())
    }
    #[getter]
    fn transaction_type(&self) -> &str {
        &self.active.record.transaction_type
    }
    #[getter]
    fn get_name(&self) -> &str {
        &self.active.record.name
    }
    #[setter]
    fn set_name(&mut self, name: &str) {
        self.active.record.name = truncate_keyword(name).into_owned();
    }
    #[getter]
    fn get_result(&self) -> Option<&str> {
        self.active.record.result.as_deref()
    }
    #[setter]
    fn set_result(&mut self, result: Option<&str>) {
        self.active.record.result = result.map(|r| truncate_keyword(r).into_owned());
    }
    #[getter]
    fn get_outcome(&self) -> Option<&'static str> {
        outcome_name(self.active.record.outcome)
    }
    #[setter]
    fn set_outcome(&mut self, outcome: &str) -> PyResult<()> {
        self.active.record.outcome = parse_outcome(outcome)?;
        Ok(())
    }
    #[getter]
    fn is_sampled(&self) -> bool {
        self.active.is_sampled()
    }
    #[getter]
    fn sample_rate(&self) -> Option<f64> {
        self.active.record.sample_rate
    }
    #[getter]
    fn ended(&self) -> bool {
        self.active.is_ended()
    }
    #[getter]
    fn tracestate(&self) -> String {
        self.active.tracestate.to_header()
    }

    /// The `traceparent` header for an outgoing call made from `span_id` (or the transaction).
    #[pyo3(signature = (span_id=None))]
    fn traceparent(&self, span_id: Option<&str>) -> String {
        self.active.traceparent(span_id.and_then(SpanId::from_hex)).to_header()
    }

    fn _label(&mut self, labels: &Bound<'_, PyDict>) {
        update_labels(&mut self.active.record.labels, labels);
    }

    /// Merges `data` into `context[key]` (`custom`, `user`, `request`, ...); `.`, `*` and `"` in
    /// its keys become `_`.
    fn _set_context(&mut self, key: &str, data: &Bound<'_, PyDict>) {
        merge_context(&mut self.active.record.context, key, data, true);
    }

    /// Sets `context.request` from an `oxapm.instrumentation.web.Incoming` request (see
    /// `oxapm_core::http::request_context`).
    fn _set_request(&mut self, incoming: &Bound<'_, crate::http::Incoming>, capture_headers: bool) -> PyResult<()> {
        self.set_request(incoming.py(), incoming.get(), capture_headers)
    }

    /// Sets `context.response`: the status, and `headers` (name, value pairs) when given.
    #[pyo3(signature = (status, headers=None))]
    fn _set_response(&mut self, status: i64, headers: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        self.set_response(status, headers)
    }

    /// A copy of `context[key]`, or None.
    fn _context<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.active.record.context.get(key).map(|value| crate::convert::to_python(py, value)).transpose()
    }

    /// Links to a span of another trace: a `TraceParent` or an OTel `SpanContext`.
    #[pyo3(signature = (context, attributes=None))]
    fn add_link(&mut self, context: &Bound<'_, PyAny>, attributes: Option<&Bound<'_, PyAny>>) {
        self.otel().add_link(context, attributes);
    }

    /// Ends the transaction and queues it; `duration` in seconds overrides the measured one.
    /// Returns false when it had already ended.
    #[pyo3(signature = (duration=None))]
    fn _end(&mut self, py: Python<'_>, duration: Option<f64>) -> bool {
        let duration_us = duration.filter(|d| d.is_finite() && *d >= 0.0).map(|d| (d * 1e6) as u64);
        let end_us = duration_us.map(|d| self.active.record.timestamp_us + d);
        self.finish(py, end_us)
    }

    // The OpenTelemetry span interface.

    /// Ends the transaction, now or at `end_time` (nanoseconds since the epoch).
    #[pyo3(signature = (end_time=None))]
    fn end(&mut self, py: Python<'_>, end_time: Option<u64>) {
        self.finish(py, otel::ns_to_us(end_time));
    }

    fn is_recording(&self) -> bool {
        self.active.is_sampled() && !self.active.is_ended()
    }

    #[getter]
    fn kind<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        otel::span_kind(py, &self.active.record.otel)
    }

    fn get_span_context(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let state = self.otel_trace_state(py)?;
        otel::span_context(py, self.active.record.trace_id, self.active.record.id, self.active.trace_flags, &state)
    }

    fn update_name(&mut self, name: &str) {
        self.set_name(name);
    }

    fn set_attribute(&mut self, key: &str, value: &Bound<'_, PyAny>) {
        self.otel().set_attribute(key, value);
    }
    fn set_attributes(&mut self, attributes: &Bound<'_, PyAny>) {
        self.otel().set_attributes(attributes);
    }
    #[pyo3(signature = (name, attributes=None, timestamp=None))]
    fn add_event(&mut self, name: &str, attributes: Option<&Bound<'_, PyAny>>, timestamp: Option<u64>) {
        self.otel().add_event(name, attributes, timestamp);
    }
    #[pyo3(signature = (status, description=None))]
    fn set_status(&mut self, status: &Bound<'_, PyAny>, description: Option<String>) {
        self.otel().set_status(status, description);
    }
    #[pyo3(signature = (exception, attributes=None, timestamp=None, escaped=false))]
    fn record_exception(&mut self, exception: &Bound<'_, PyAny>, attributes: Option<&Bound<'_, PyAny>>, timestamp: Option<u64>, escaped: bool) -> PyResult<()> {
        self.otel().record_exception(exception, attributes, timestamp, escaped)
    }
}

impl Transaction {
    pub(crate) fn set_request(&mut self, py: Python<'_>, incoming: &crate::http::Incoming, capture_headers: bool) -> PyResult<()> {
        let request = crate::http::incoming_request_context(incoming, py, capture_headers)?;
        self.active.record.context.insert("request".into(), serde_json::Value::Object(request));
        Ok(())
    }

    pub(crate) fn set_response(&mut self, status: i64, headers: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let response = crate::http::response(status, headers)?;
        self.active.record.context.insert("response".into(), serde_json::Value::Object(response));
        Ok(())
    }

    fn otel(&mut self) -> OtelTarget<'_> {
        OtelTarget { otel: &mut self.active.record.otel, links: &mut self.active.record.links, limits: self.engine.config.span_limits }
    }

    pub(crate) fn finish(&mut self, py: Python<'_>, end_us: Option<u64>) -> bool {
        let mut spans = Vec::new();
        let Some(record) = self.active.finish_at(end_us, &mut |span| spans.push(span)) else { return false };
        let self_times = self.active.take_self_times();
        if !self_times.is_empty() {
            self.engine.record_breakdown(&record.name, &record.transaction_type, &self_times);
        }
        finish_spans(py, &self.engine, spans);
        finish_into(py, &self.engine, Event::Transaction(Box::new(record)));
        true
    }
}

/// A span, for both APIs.
#[pyclass(module = "oxapm._core")]
pub struct Span {
    pub(crate) active: ActiveSpan,
    pub(crate) transaction: Py<Transaction>,
    /// The transaction or span this one was started under.
    parent: Py<PyAny>,
    engine: Arc<Engine>,
    /// The outgoing HTTP call this is the exit span of, while the call's layers run: current, the
    /// span marks the call in progress (`outgoing::call_in_progress`).
    pub(crate) http_call: Option<Py<crate::outgoing::HttpCall>>,
}

#[pymethods]
impl Span {
    #[getter]
    fn id(&self) -> String {
        self.active.record.id.to_string()
    }
    #[getter]
    fn trace_id(&self) -> String {
        self.active.record.trace_id.to_string()
    }
    #[getter]
    fn parent_id(&self) -> String {
        self.active.record.parent_id.to_string()
    }
    #[getter]
    fn transaction(&self, py: Python<'_>) -> Py<Transaction> {
        self.transaction.clone_ref(py)
    }
    #[getter]
    fn parent(&self, py: Python<'_>) -> Py<PyAny> {
        self.parent.clone_ref(py)
    }
    #[getter]
    fn get_name(&self) -> &str {
        &self.active.record.name
    }
    #[setter]
    fn set_name(&mut self, name: &str) {
        self.active.record.name = truncate_keyword(name).into_owned();
    }
    #[getter(r#type)]
    fn span_type(&self) -> &str {
        &self.active.record.span_type
    }
    #[getter]
    fn subtype(&self) -> Option<&str> {
        self.active.record.subtype.as_deref()
    }
    #[getter]
    fn action(&self) -> Option<&str> {
        self.active.record.action.as_deref()
    }
    #[getter]
    fn leaf(&self) -> bool {
        self.active.record.exit
    }
    #[getter]
    fn ended(&self) -> bool {
        self.active.is_ended()
    }
    #[getter]
    fn get_outcome(&self) -> Option<&'static str> {
        outcome_name(self.active.record.outcome)
    }
    #[setter]
    fn set_outcome(&mut self, outcome: &str) -> PyResult<()> {
        self.active.record.outcome = parse_outcome(outcome)?;
        Ok(())
    }

    fn set_success(&mut self) {
        self.active.record.outcome = Outcome::Success;
    }

    /// Its context was written into an outgoing call (an OpenTelemetry propagator's `inject`):
    /// the callee names it as its parent, so it is never compressed or dropped.
    fn _mark_propagated(&mut self) {
        self.active.record.propagated = true;
    }
    fn set_failure(&mut self) {
        self.active.record.outcome = Outcome::Failure;
    }

    #[pyo3(signature = (**labels))]
    fn label(&mut self, labels: Option<&Bound<'_, PyDict>>) {
        if let Some(labels) = labels {
            update_labels(&mut self.active.record.labels, labels);
        }
    }

    /// Merges `data` into `context[key]` (`db`, `http`, `destination`, ...).
    fn update_context(&mut self, key: &str, data: &Bound<'_, PyDict>) {
        merge_context(&mut self.active.record.context, key, data, false);
    }

    /// Links to a span of another trace: a `TraceParent` or an OTel `SpanContext`.
    #[pyo3(signature = (context, attributes=None))]
    fn add_link(&mut self, context: &Bound<'_, PyAny>, attributes: Option<&Bound<'_, PyAny>>) {
        self.otel().add_link(context, attributes);
    }

    /// Ends the span and queues it; `failed` marks an unset outcome as failure. Returns false when
    /// it had already ended.
    #[pyo3(signature = (failed=false))]
    pub(crate) fn _end(&mut self, py: Python<'_>, failed: bool) -> bool {
        self.finish(py, failed, None)
    }

    /// Ends the exit span of an HTTP call: with the response's `status` (its outcome failure from
    /// 400 on, success below), or `failed` when the call raised.
    #[pyo3(signature = (status=None, failed=false))]
    pub(crate) fn _end_http(&mut self, py: Python<'_>, status: Option<i64>, failed: bool) -> bool {
        if let Some(status) = status {
            let context = &mut self.active.record.context;
            let http = context.entry("http").or_insert_with(|| serde_json::Value::Object(JsonMap::new()));
            if let serde_json::Value::Object(http) = http {
                http.extend(oxapm_core::http::response_status(status));
            }
            self.active.record.outcome = if status >= 400 { Outcome::Failure } else { Outcome::Success };
        }
        self.finish(py, failed, None)
    }

    // The OpenTelemetry span interface.

    /// Ends the span, now or at `end_time` (nanoseconds since the epoch).
    #[pyo3(signature = (end_time=None))]
    fn end(&mut self, py: Python<'_>, end_time: Option<u64>) {
        self.finish(py, false, otel::ns_to_us(end_time));
    }

    fn is_recording(&self) -> bool {
        !self.active.is_ended()
    }

    #[getter]
    fn kind<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        otel::span_kind(py, &self.active.record.otel)
    }

    fn get_span_context(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut transaction = self.transaction.bind(py).borrow_mut();
        let state = transaction.otel_trace_state(py)?;
        otel::span_context(py, self.active.record.trace_id, self.active.record.id, transaction.active.trace_flags, &state)
    }

    fn update_name(&mut self, name: &str) {
        self.set_name(name);
    }

    fn set_attribute(&mut self, key: &str, value: &Bound<'_, PyAny>) {
        self.otel().set_attribute(key, value);
    }
    fn set_attributes(&mut self, attributes: &Bound<'_, PyAny>) {
        self.otel().set_attributes(attributes);
    }
    #[pyo3(signature = (name, attributes=None, timestamp=None))]
    fn add_event(&mut self, name: &str, attributes: Option<&Bound<'_, PyAny>>, timestamp: Option<u64>) {
        self.otel().add_event(name, attributes, timestamp);
    }
    #[pyo3(signature = (status, description=None))]
    fn set_status(&mut self, status: &Bound<'_, PyAny>, description: Option<String>) {
        self.otel().set_status(status, description);
    }
    #[pyo3(signature = (exception, attributes=None, timestamp=None, escaped=false))]
    fn record_exception(&mut self, exception: &Bound<'_, PyAny>, attributes: Option<&Bound<'_, PyAny>>, timestamp: Option<u64>, escaped: bool) -> PyResult<()> {
        self.otel().record_exception(exception, attributes, timestamp, escaped)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// `with span:` ends it, as the OTel API's spans do.
    fn __exit__(&mut self, py: Python<'_>, _exc_type: &Bound<'_, PyAny>, _exc: &Bound<'_, PyAny>, _tb: &Bound<'_, PyAny>) -> bool {
        self.finish(py, false, None);
        false
    }
}

impl Span {
    fn otel(&mut self) -> OtelTarget<'_> {
        OtelTarget { otel: &mut self.active.record.otel, links: &mut self.active.record.links, limits: self.engine.config.span_limits }
    }

    /// Ends the span in its transaction, which decides what is reported (see
    /// `ActiveTransaction::end_span`). Span processors run after the borrows are released.
    fn finish(&mut self, py: Python<'_>, failed: bool, end_us: Option<u64>) -> bool {
        crate::stack_capture::capture_if_due(py, &self.transaction, &mut self.active);
        let mut spans = Vec::new();
        let ended = {
            let Ok(mut transaction) = self.transaction.bind(py).try_borrow_mut() else { return false };
            let Some(mut parent_span) = borrow_parent_span(self.parent.bind(py)) else { return false };
            let parent_active = parent_span.as_deref_mut().map(|span| &mut span.active);
            transaction.active.end_span(&mut self.active, parent_active, failed, end_us, &mut |span| spans.push(span))
        };
        finish_spans(py, &self.engine, spans);
        ended
    }
}
