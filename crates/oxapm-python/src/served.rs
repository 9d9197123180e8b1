//! One request's transaction, from the request to the end of the response body: the half of
//! `oxapm.instrumentation.web.Served` that every request runs. That class subclasses this one
//! with what runs only for errors and request bodies (`_capture_error`, `_body`, `keep`) and with
//! `_failure`, which reports a failure of the agent once (`base.report_failure`). The conventions
//! are web.py's; none of these methods raises into the application.
//!
//! The request served in a context is found through what is current there (`serving`): the
//! transaction, or a span of it, knows the request it serves. One context variable set per
//! activation, not two: each set and reset costs a request a few thousand instructions.

use crate::client::{begin_transaction, recording_client};
use crate::context;
use crate::convert::merge_context;
use crate::engine::Engine;
use crate::failures::report_failure;
use crate::http::Incoming;
use crate::patch::Patch;
use crate::propagation::configured_incoming_parent;
use crate::python_attribute::PythonAttribute;
use crate::trace::{Span, Transaction};
use oxapm_core::model::{truncate_keyword, Outcome};
use pyo3::exceptions::PyException;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyDict, PyInt, PyString, PyTuple, PyWeakrefMethods, PyWeakrefReference};

/// Whether requests of `method` carry a body (the others get no `body` field).
fn carries_body(method: &str) -> bool {
    matches!(method, "POST" | "PUT" | "PATCH" | "DELETE")
}
const REDACTED: &str = "[REDACTED]";

/// The transaction's result for a response's status: `HTTP 2xx` for 200 to 299.
fn result_of(status: i64) -> String {
    let class = status.div_euclid(100);
    let mut result = String::from("HTTP ");
    match u32::try_from(class).ok().and_then(|class| char::from_digit(class, 10)) {
        Some(digit) => result.push(digit),
        None => result.push_str(&class.to_string()),
    }
    result.push_str("xx");
    result
}

/// `oxapm.instrumentation.web.Served`: this class with the methods that run only for errors and
/// request bodies.
static SERVED: PythonAttribute = PythonAttribute::new("oxapm.instrumentation.web", "Served");

/// Starts the transaction of a request, `describe(*args)` (`web.serve`): a `web.Served`, or None
/// when nothing is recorded: no recording client, an outer layer serving this request already, an
/// ignored URL (`transaction_ignore_urls`), or a failure of the agent (reported, and what was
/// recorded before it ended: the request goes on untraced).
#[pyfunction]
#[pyo3(signature = (instrumentation, describe, *args))]
pub fn serve<'py>(instrumentation: &Bound<'py, PyString>, describe: &Bound<'py, PyAny>, args: &Bound<'py, PyTuple>) -> Option<Bound<'py, Served>> {
    serve_described(instrumentation, || Ok(describe.call1(args)?.cast_into::<Incoming>()?))
}

/// The request served in this context (`web.current`): the `Served` of the current transaction,
/// or of the current span's; None elsewhere.
#[pyfunction]
pub fn serving(py: Python<'_>) -> Option<Bound<'_, Served>> {
    let current = context::CURRENT.get(py).ok()?;
    let transaction = match current.cast::<Transaction>() {
        Ok(transaction) => transaction.clone(),
        Err(_) => current.cast::<Span>().ok()?.try_borrow().ok()?.transaction.bind(py).clone(),
    };
    let served = transaction.try_borrow().ok()?.served.as_ref()?.bind(py).upgrade()?;
    served.cast_into::<Served>().ok()
}

/// `Role::Routing`: names the request served after the route template at `path` of the value of
/// `variable`, then calls the original.
pub(crate) fn route_patched<'py>(
    patch: &Patch,
    variable: &Bound<'py, PyAny>,
    path: &[Py<PyString>],
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = variable.py();
    let routed = serving(py).map_or(Ok(()), |served| {
        let mut value = context::value_of(variable)?;
        for name in path {
            if value.is_none() {
                return Ok(());
            }
            value = value.getattr(name.bind(py))?;
        }
        if !value.is_none() {
            Served::route(&served, &crate::convert::display(&value));
        }
        Ok(())
    });
    if let Err(error) = routed {
        report_failure(patch.name.bind(py), error);
    }
    patch.original.bind(py).call(args, kwargs)
}

/// `serve`, with the request described by `describe()`.
pub(crate) fn serve_described<'py>(
    instrumentation: &Bound<'py, PyString>,
    describe: impl FnOnce() -> PyResult<Bound<'py, Incoming>>,
) -> Option<Bound<'py, Served>> {
    let py = instrumentation.py();
    let mut begun = None;
    let served = (|| {
        if serving(py).is_some() {
            return Ok(None);
        }
        let Some(client) = recording_client(py)? else { return Ok(None) };
        let incoming = describe()?;
        let request = incoming.get();
        if client.getattr(intern!(py, "_engine"))?.cast::<Engine>()?.get().ignores_url(&request.path) {
            return Ok(None);
        }
        let (traceparent, tracestate) = configured_incoming_parent(&client, &request.headers)?.unzip();
        let transaction = begin_transaction(&client, "request", traceparent.as_deref(), tracestate.as_deref(), None, None)?;
        begun = Some(transaction.clone());
        let served = SERVED.bind(py)?.call1((instrumentation, &client, &transaction, &incoming))?.cast_into::<Served>()?;
        transaction.try_borrow_mut()?.served = Some(PyWeakrefReference::new(&served)?.unbind());
        Ok(Some(served))
    })();
    served.unwrap_or_else(|error: PyErr| {
        report_failure(instrumentation, error);
        if let Some(mut transaction) = begun.and_then(|t| t.try_borrow_mut().ok()) {
            transaction.finish(py, None);
        }
        None
    })
}

#[pyclass(module = "oxapm._core", subclass, weakref)]
pub struct Served {
    #[pyo3(get)]
    instrumentation: Py<PyString>,
    #[pyo3(get)]
    client: Py<PyAny>,
    #[pyo3(get)]
    transaction: Py<Transaction>,
    #[pyo3(get)]
    incoming: Py<Incoming>,
    #[pyo3(get)]
    status: Option<i64>,
    /// For frameworks that buffer the body themselves: returns its bytes, or the parsed form.
    #[pyo3(get, set)]
    body_source: Option<Py<PyAny>>,
    /// For frameworks that know the user: returns `context.user`, or None.
    #[pyo3(get, set)]
    user_source: Option<Py<PyAny>>,
    /// The body read so far, when it is to be captured (`keep`).
    #[pyo3(get, name = "_kept")]
    kept: Option<Py<PyByteArray>>,
    body_in_errors: bool,
    #[pyo3(get)]
    pub(crate) ended: bool,
    body_in_transactions: bool,
    capture_headers: bool,
    /// The route templates of the applications mounted on the way (`mount`).
    prefix: String,
    /// The name this request gave the transaction: another one was given by the application.
    name: String,
    response_headers: Option<Py<PyAny>>,
    raised: Option<Py<PyAny>>,
    captured: Option<Py<PyAny>>,
    failed: bool,
}

impl Served {
    /// The response's status and headers, as sent.
    fn respond_with(&mut self, status: &Bound<'_, PyAny>, headers: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let status = match status.cast::<PyInt>() {
            Ok(status) => status.extract()?,
            Err(_) => status.py().get_type::<PyInt>().call1((status,))?.extract()?, // int("200")
        };
        self.status = Some(status);
        self.response_headers = headers.map(|h| h.clone().unbind());
        Ok(())
    }

    /// The result and outcome, where the application set none (a request the client left before
    /// any response has neither), and the context of a sampled transaction.
    fn conclude(slf: &Bound<'_, Self>, transaction: &Bound<'_, Transaction>, status: Option<i64>) -> PyResult<()> {
        let failed = slf.try_borrow()?.failed || status.is_some_and(|s| s >= 500);
        let sampled = {
            let mut transaction = transaction.try_borrow_mut()?;
            let record = &mut transaction.active.record;
            if status.is_some() || failed {
                if record.result.is_none() {
                    record.result = Some(match status {
                        Some(status) => result_of(status),
                        None => "HTTP 5xx".to_owned(),
                    });
                }
                if record.outcome == Outcome::Unknown {
                    record.outcome = if failed { Outcome::Failure } else { Outcome::Success };
                }
            }
            transaction.active.is_sampled()
        };
        if sampled {
            Self::add_context(slf, transaction, status)?;
        }
        Ok(())
    }

    fn add_context(slf: &Bound<'_, Self>, transaction: &Bound<'_, Transaction>, status: Option<i64>) -> PyResult<()> {
        let py = slf.py();
        let (headers, has_body) = {
            let this = slf.try_borrow()?;
            let headers = this.response_headers.as_ref().filter(|_| this.capture_headers).map(|h| h.clone_ref(py));
            (headers, this.has_body())
        };
        if let Some(status) = status {
            transaction.try_borrow_mut()?.set_response(status, headers.as_ref().map(|h| h.bind(py)))?;
        }
        if has_body {
            let body = Self::request_body(slf, false)?;
            if !body.is_none() {
                let request = PyDict::new(py);
                request.set_item(intern!(py, "body"), body)?;
                merge_context(&mut transaction.try_borrow_mut()?.active.record.context, "request", &request, true);
            }
        }
        Self::add_user(slf, transaction);
        Ok(())
    }

    /// `context.user`, from `user_source`.
    fn add_user(slf: &Bound<'_, Self>, transaction: &Bound<'_, Transaction>) {
        let Some(source) = slf.try_borrow().ok().and_then(|this| this.user_source.as_ref().map(|s| s.clone_ref(slf.py()))) else { return };
        let added = source.bind(slf.py()).call0().and_then(|user| {
            if let Ok(user) = user.cast::<PyDict>() {
                if !user.is_empty() {
                    merge_context(&mut transaction.try_borrow_mut()?.active.record.context, "user", user, true);
                }
            }
            Ok(())
        });
        Self::contain(slf, added);
    }

    /// Captures `exc` as an unhandled error of this transaction, once (`_capture_error`).
    fn capture(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>) {
        {
            let Ok(mut this) = slf.try_borrow_mut() else { return };
            if this.captured.as_ref().is_some_and(|c| c.is(exc)) {
                return;
            }
            this.captured = Some(exc.clone().unbind());
            this.failed = true;
        }
        let captured = slf.call_method1(intern!(slf.py(), "_capture_error"), (exc,));
        Self::contain(slf, captured.map(drop));
    }

    /// A failure of the agent is reported (once per instrumentation, `_failure`), never raised.
    fn contain<T>(slf: &Bound<'_, Self>, result: PyResult<T>) {
        if let Err(error) = result {
            let py = slf.py();
            if slf.call_method1(intern!(py, "_failure"), (error.value(py),)).is_err() {
                error.write_unraisable(py, None);
            }
        }
    }
}

#[pymethods]
impl Served {
    /// Names the transaction `METHOD unknown route` until a route matches, and records the
    /// request when the transaction is sampled.
    #[new]
    fn new(
        instrumentation: Bound<'_, PyString>,
        client: Bound<'_, PyAny>,
        transaction: Bound<'_, Transaction>,
        incoming: Bound<'_, Incoming>,
    ) -> PyResult<Self> {
        let py = client.py();
        let config = client.getattr(intern!(py, "config"))?;
        let capture_body = config.getattr(intern!(py, "capture_body"))?;
        let capture_body = if capture_body.is_truthy()? { crate::convert::display(&capture_body).to_lowercase() } else { "off".to_owned() };
        let capture_headers = config.getattr(intern!(py, "capture_headers"))?.is_truthy()?;
        let request = incoming.get();
        let name = truncate_keyword(&[request.method.as_str(), " unknown route"].concat()).into_owned();
        {
            let mut transaction = transaction.borrow_mut();
            transaction.active.record.name.clone_from(&name);
            if transaction.active.is_sampled() {
                transaction.set_request(py, request, capture_headers)?;
            }
        }
        let keeps_body = carries_body(&request.method) && capture_body != "off";
        Ok(Served {
            instrumentation: instrumentation.unbind(),
            client: client.unbind(),
            transaction: transaction.unbind(),
            incoming: incoming.unbind(),
            status: None,
            body_source: None,
            user_source: None,
            kept: keeps_body.then(|| PyByteArray::new(py, &[]).unbind()),
            body_in_errors: capture_body == "errors" || capture_body == "all",
            ended: false,
            body_in_transactions: capture_body == "transactions" || capture_body == "all",
            capture_headers,
            prefix: String::new(),
            name,
            response_headers: None,
            raised: None,
            captured: None,
            failed: false,
        })
    }

    /// Whether the body the application reads is to be kept (`keep`).
    #[getter]
    pub(crate) fn keeps_body(&self) -> bool {
        self.kept.is_some()
    }

    /// Whether the request's method carries a body (the others get no `body` field).
    #[getter]
    fn has_body(&self) -> bool {
        carries_body(&self.incoming.get().method)
    }

    /// The `body` of `context.request`, for the transaction or `for_errors`: `[REDACTED]` when
    /// `capture_body` leaves it out of those, else the body as `_body` decodes it (None when none
    /// was read). For a request that `has_body`.
    #[pyo3(name = "_request_body")]
    fn request_body<'py>(slf: &Bound<'py, Self>, for_errors: bool) -> PyResult<Bound<'py, PyAny>> {
        let captured = {
            let this = slf.try_borrow()?;
            if for_errors {
                this.body_in_errors
            } else {
                this.body_in_transactions
            }
        };
        if captured {
            slf.call_method0(intern!(slf.py(), "_body"))
        } else {
            Ok(PyString::new(slf.py(), REDACTED).into_any())
        }
    }

    /// Makes the transaction current (spans started now are its children, and this request is
    /// the one `serving`); `deactivate` undoes it with the token.
    pub(crate) fn activate(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        context::CURRENT.set(py, slf.try_borrow()?.transaction.bind(py))
    }

    /// Undoes `activate`.
    pub(crate) fn deactivate(slf: &Bound<'_, Self>, token: Py<PyAny>) -> PyResult<()> {
        context::CURRENT.reset(slf.py(), &token)
    }

    /// The request went to an application mounted at `prefix` (a route template): named
    /// `prefix/{path}` until a route of that application matches.
    fn mount(slf: &Bound<'_, Self>, prefix: &str) {
        if let Ok(mut this) = slf.try_borrow_mut() {
            this.prefix.push_str(prefix);
        }
        Self::route(slf, "/{path}");
    }

    /// Names the transaction after the route that matched (below the mounts), unless the
    /// application named it itself.
    fn route(slf: &Bound<'_, Self>, template: &str) {
        let named = slf.try_borrow_mut().map_err(PyErr::from).and_then(|mut this| {
            let mut transaction = this.transaction.bind(slf.py()).try_borrow_mut()?;
            if transaction.active.record.name == this.name {
                let name = truncate_keyword(&[this.incoming.get().method.as_str(), " ", &this.prefix, template].concat()).into_owned();
                transaction.active.record.name.clone_from(&name);
                drop(transaction);
                this.name = name;
            }
            Ok(())
        });
        Self::contain(slf, named);
    }

    /// The response's status and headers (name, value pairs; bytes or text), as sent.
    #[pyo3(signature = (status, headers))]
    pub(crate) fn respond(slf: &Bound<'_, Self>, status: &Bound<'_, PyAny>, headers: Option<&Bound<'_, PyAny>>) {
        let responded = slf.try_borrow_mut().map_err(PyErr::from).and_then(|mut this| this.respond_with(status, headers));
        Self::contain(slf, responded);
    }

    /// The framework turned `exc` into a response: it is an error if that response is a server
    /// error (captured at the end, when the status is known).
    fn raised(&mut self, exc: Py<PyAny>) {
        if self.raised.is_none() {
            self.raised = Some(exc);
        }
    }

    /// `exc` escaped the framework: captured now. A cancellation (the client went away) or an
    /// exit is no failure of the request.
    pub(crate) fn failed(slf: &Bound<'_, Self>, exc: &Bound<'_, PyAny>) {
        if exc.is_instance_of::<PyException>() {
            Self::capture(slf, exc);
        }
    }

    /// The response body ended (or the client went away): the transaction ends, once.
    pub(crate) fn end(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let (raised, status, transaction) = {
            let Ok(mut this) = slf.try_borrow_mut() else { return };
            if this.ended {
                return;
            }
            this.ended = true;
            (this.raised.as_ref().map(|r| r.clone_ref(py)), this.status, this.transaction.clone_ref(py))
        };
        if let Some(raised) = raised.filter(|_| status.is_none_or(|s| s >= 500)) {
            Self::capture(slf, raised.bind(py));
        }
        let transaction = transaction.bind(py);
        let concluded = Self::conclude(slf, transaction, status);
        Self::contain(slf, concluded);
        if let Ok(mut transaction) = transaction.try_borrow_mut() {
            transaction.finish(py, None);
        }
    }

    /// Adds `context.user` now (for an error captured before the end).
    fn _add_user(slf: &Bound<'_, Self>) {
        let Ok(transaction) = slf.try_borrow().map(|this| this.transaction.clone_ref(slf.py())) else { return };
        Self::add_user(slf, transaction.bind(slf.py()));
    }
}
