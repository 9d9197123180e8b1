//! Outgoing HTTP calls traced by the engine: the half of `oxapm.instrumentation.outgoing_http`
//! that every call runs. The conventions (the span, its trace context headers, which layer of
//! requests over urllib3 over http.client traces a call) are that module's; each library's
//! instrumentation says, in Python, what request a call makes (`request_of`), whether its
//! http.client connection writes the headers (`through_http_client`), how to put them on the
//! request otherwise (`with_headers`), and what status the response has (`status_attribute`, read
//! here, or `status_of`).
//!
//! The library's functions are replaced by `Patch`es (roles `TracedHttp`, `Below`,
//! `ConnectionHeaders`): called by Python with no Python frame of the agent's in between, they
//! trace the outermost layer of a call and let the layers below through at the cost of reading the
//! current span. A call in progress is marked by its exit span, made current; a call that records
//! none (an unsampled transaction, the span limit reached) by the `_traced_call` variable.
//!
//! Nothing here raises into the application: the agent's failures are reported once per
//! instrumentation (`base.report_failure`) and the call goes on.

use crate::context::{CURRENT, TRACED_CALL};
use crate::failures;
use crate::http::{begin_http_span, put_connection_headers, HeaderLines};
use crate::patch::Patch;
use crate::propagation::outgoing_headers;
use crate::trace::Span;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

fn report_failure(py: Python<'_>, instrumentation: &Py<PyString>, error: PyErr) {
    failures::report_failure(instrumentation.bind(py), error);
}

/// One HTTP client library's instrumentation (an `OutgoingHttpInstrumentation`), as its traced
/// calls use it: its name and its methods, bound once.
#[pyclass(module = "oxapm._core", frozen)]
pub struct OutgoingHttp {
    pub(crate) name: Py<PyString>,
    over_http_client: bool,
    request_of: Py<PyAny>,
    through_http_client: Py<PyAny>,
    with_headers: Py<PyAny>,
    /// How the status of a response is read.
    status: Status,
}

/// The response's attribute holding its status (`status_attribute`), or the instrumentation's
/// `status_of` when it has none.
enum Status {
    Attribute(Py<PyString>),
    Method(Py<PyAny>),
}

/// The arguments of a call, without the instance of a method.
type Arguments<'py> = (Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>);

/// What `begin` returns: the call, and its arguments.
type Begun<'py> = (Bound<'py, HttpCall>, Bound<'py, PyTuple>, Option<Bound<'py, PyDict>>);

#[pymethods]
impl OutgoingHttp {
    #[new]
    fn new(instrumentation: &Bound<'_, PyAny>) -> PyResult<Self> {
        let method = |name: &str| instrumentation.getattr(name).map(Bound::unbind);
        Ok(OutgoingHttp {
            name: instrumentation.getattr("name")?.cast_into::<PyString>()?.unbind(),
            over_http_client: instrumentation.getattr("over_http_client")?.is_truthy()?,
            request_of: method("request_of")?,
            through_http_client: method("through_http_client")?,
            with_headers: method("with_headers")?,
            status: match instrumentation.getattr("status_attribute")?.cast_into::<PyString>() {
                Ok(attribute) => Status::Attribute(attribute.unbind()),
                Err(_) => Status::Method(method("status_of")?),
            },
        })
    }

    /// Starts tracing a call of `instance` (None for a function) with `args` and `kwargs`: None
    /// outside a transaction and in the layers below the one tracing it, where the call goes on
    /// as it is; otherwise the call, and its arguments with the trace context headers (when the
    /// request carries them).
    fn begin<'py>(
        slf: &Bound<'py, Self>,
        instance: &Bound<'py, PyAny>,
        args: Bound<'py, PyTuple>,
        kwargs: Option<Bound<'py, PyDict>>,
    ) -> PyResult<Option<Begun<'py>>> {
        let Some(current) = tracing_point(slf.py(), &slf.get().name) else { return Ok(None) };
        let (call, (args, kwargs)) = Self::start(slf, current, instance, (args, kwargs))?;
        Ok(Some((call, args, kwargs)))
    }
}

impl OutgoingHttp {
    /// `begin` once the call is known to be traced here, under `current`. An error is the
    /// call's object not being made; a failure after that is reported, and the call goes on with
    /// what was done.
    fn start<'py>(
        slf: &Bound<'py, Self>,
        current: Bound<'py, PyAny>,
        instance: &Bound<'py, PyAny>,
        arguments: Arguments<'py>,
    ) -> PyResult<(Bound<'py, HttpCall>, Arguments<'py>)> {
        let py = slf.py();
        let call = HttpCall { outgoing: slf.clone().unbind(), span: None, current: current.clone().unbind(), lines: None, span_token: None, mark: None };
        let call = Bound::new(py, call)?;
        let mut arguments = arguments;
        if let Err(error) = slf.get().prepare(&call, &current, instance, &mut arguments) {
            report_failure(py, &slf.get().name, error);
        }
        Ok((call, arguments))
    }

    /// Starts the exit span and makes it current, marks the call as in progress, and arranges its
    /// trace context headers.
    fn prepare<'py>(
        &self,
        call: &Bound<'py, HttpCall>,
        current: &Bound<'py, PyAny>,
        instance: &Bound<'py, PyAny>,
        arguments: &mut Arguments<'py>,
    ) -> PyResult<()> {
        let py = call.py();
        let kwargs = arguments.1.clone().unwrap_or_else(|| PyDict::new(py));
        let request = self.request_of.bind(py).call1((instance, &arguments.0, &kwargs))?;
        match begin_http_span(current, request.cast()?)? {
            Some(span) => {
                let span = span.into_bound(py);
                span.try_borrow_mut()?.http_call = Some(call.clone().unbind());
                let token = CURRENT.set(py, &span)?;
                let mut this = call.borrow_mut();
                this.span_token = Some(token);
                this.current = span.clone().into_any().unbind();
                this.span = Some(span.unbind());
            }
            None => {
                let mark = TRACED_CALL.set(py, call)?;
                call.borrow_mut().mark = Some(mark);
            }
        }
        let current = call.borrow().current.clone_ref(py);
        let headers = outgoing_headers(current.bind(py))?;
        if headers.is_empty() {
            return Ok(());
        }
        if self.over_http_client && self.through_http_client.bind(py).call1((instance, &arguments.0, &kwargs))?.is_truthy()? {
            call.borrow_mut().lines = Some(Py::new(py, HeaderLines::new(headers))?);
        } else {
            // A copy: a dict given with ** may be the caller's own.
            let given = self.with_headers.bind(py).call1((instance, &arguments.0, kwargs.copy()?, headers))?;
            let (args, kwargs): (Bound<'py, PyTuple>, Bound<'py, PyDict>) = given.extract()?;
            *arguments = (args, Some(kwargs));
        }
        Ok(())
    }
}

/// What is current where a call is to be traced: None outside a transaction, under a call a
/// layer above traces (what it made current: its exit span, or the transaction when it records
/// none), and when the context cannot be read (a failure, reported under `instrumentation`).
fn tracing_point<'py>(py: Python<'py>, instrumentation: &Py<PyString>) -> Option<Bound<'py, PyAny>> {
    let found = CURRENT.get(py).and_then(|current| Ok((!current.is_none() && call_under(&current)?.is_none()).then_some(current)));
    found.unwrap_or_else(|error| {
        report_failure(py, instrumentation, error);
        None
    })
}

/// The call in progress where `current` is current: the call whose exit span it is, or the call
/// marked that recorded no span and left it current.
fn call_under<'py>(current: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, HttpCall>>> {
    let py = current.py();
    if let Ok(span) = current.cast::<Span>() {
        if let Some(call) = &span.try_borrow()?.http_call {
            return Ok(Some(call.bind(py).clone()));
        }
    }
    let marked = TRACED_CALL.get(py)?.cast_into::<HttpCall>().ok();
    Ok(marked.filter(|call| call.try_borrow().is_ok_and(|call| call.current.is(current))))
}

/// The outgoing HTTP call in progress in this context (`outgoing_http._ConnectionHeaders`), or
/// None.
#[pyfunction]
pub fn call_in_progress(py: Python<'_>) -> PyResult<Option<Bound<'_, HttpCall>>> {
    call_under(&CURRENT.get(py)?)
}

/// One call traced by its outermost layer: its exit span (None when not recorded), what was
/// current once it started (the exit span, or the transaction when none is recorded), the trace
/// context headers its http.client connection is to write (None when the request carries them),
/// and the tokens to undo what it made current.
#[pyclass(module = "oxapm._core")]
pub struct HttpCall {
    outgoing: Py<OutgoingHttp>,
    span: Option<Py<Span>>,
    current: Py<PyAny>,
    lines: Option<Py<HeaderLines>>,
    span_token: Option<Py<PyAny>>,
    mark: Option<Py<PyAny>>,
}

#[pymethods]
impl HttpCall {
    /// The trace context headers the call's http.client connection is to write.
    #[getter]
    fn connection_headers(&self, py: Python<'_>) -> Option<Py<HeaderLines>> {
        self.lines.as_ref().map(|lines| lines.clone_ref(py))
    }

    /// For a call whose response comes through another method (http.client's `request`, then
    /// `getresponse`): the layers below are done, the span stays open but no longer current.
    pub(crate) fn detach(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let Ok(mut this) = slf.try_borrow_mut() else { return };
        let (mark, token) = (this.mark.take(), this.span_token.take());
        let name = this.outgoing.get().name.clone_ref(py);
        let span = this.span.as_ref().map(|span| span.clone_ref(py));
        drop(this);
        if let Some(mut span) = span.as_ref().and_then(|span| span.bind(py).try_borrow_mut().ok()) {
            span.http_call = None; // the call is no longer in progress (and the span lets it go)
        }
        for (variable, token) in [(&TRACED_CALL, mark), (&CURRENT, token)] {
            if let Some(Err(error)) = token.map(|token| variable.reset(py, &token)) {
                report_failure(py, &name, error);
            }
        }
    }

    /// Ends the call: with its `response`, when it returned one, or `failed` when it raised.
    #[pyo3(signature = (response=None, failed=false))]
    pub(crate) fn end(slf: &Bound<'_, Self>, response: Option<&Bound<'_, PyAny>>, failed: bool) {
        let py = slf.py();
        Self::detach(slf);
        let Ok(mut this) = slf.try_borrow_mut() else { return };
        let Some(span) = this.span.take() else { return };
        let outgoing = this.outgoing.clone_ref(py);
        drop(this);
        let outgoing = outgoing.get();
        let status = response.filter(|response| !response.is_none()).and_then(|response| {
            let status = match &outgoing.status {
                Status::Attribute(attribute) => response.getattr(attribute.bind(py)),
                Status::Method(status_of) => status_of.bind(py).call1((response,)),
            };
            let status = status.and_then(|status| status.extract::<i64>());
            status.map_err(|error| report_failure(py, &outgoing.name, error)).ok()
        });
        let ended = span.bind(py).try_borrow_mut().map(|mut span| span._end_http(py, status, failed));
        if let Err(error) = ended {
            report_failure(py, &outgoing.name, error.into());
        }
    }
}

/// `Role::TracedHttp`: the call traced as the outermost layer (see `OutgoingHttp`).
pub(crate) fn call_traced<'py>(
    patch: &Patch,
    outgoing: &Bound<'py, OutgoingHttp>,
    instance: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = outgoing.py();
    let original = patch.original.bind(py);
    let Some(current) = tracing_point(py, &patch.name) else { return original.call(args, kwargs) };
    let given = patch.without_instance(args);
    let (call, (call_args, call_kwargs)) = match OutgoingHttp::start(outgoing, current, instance, (given.clone(), kwargs.cloned())) {
        Ok(started) => started,
        Err(error) => {
            report_failure(py, &patch.name, error);
            return original.call(args, kwargs);
        }
    };
    // The arguments as the original takes them: the same ones, unless the headers changed them.
    let args = if call_args.is(&given) {
        args.clone()
    } else if patch.binds {
        PyTuple::new(py, std::iter::once(instance.clone()).chain(call_args.iter()).collect::<Vec<_>>())?
    } else {
        call_args
    };
    match original.call(&args, call_kwargs.as_ref()) {
        Ok(response) => {
            HttpCall::end(&call, Some(&response), false);
            Ok(response)
        }
        Err(error) => {
            HttpCall::end(&call, None, true);
            Err(error)
        }
    }
}

/// `Role::Below`: `wrapper(wrapped, instance, args, kwargs)`, or below a call a layer above
/// traces, the original alone.
pub(crate) fn call_below<'py>(
    patch: &Patch,
    wrapper: &Bound<'py, PyAny>,
    instance: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = wrapper.py();
    let original = patch.original.bind(py);
    let below = CURRENT.get(py).and_then(|current| Ok(!current.is_none() && call_under(&current)?.is_some()));
    if below.unwrap_or_else(|error| {
        report_failure(py, &patch.name, error);
        false
    }) {
        return original.call(args, kwargs);
    }
    wrapper.call1((patch.bound_original(instance)?, instance, patch.without_instance(args), kwargs.cloned().unwrap_or_else(|| PyDict::new(py))))
}

/// `Role::ConnectionHeaders`: the headers written, then the original called.
pub(crate) fn call_connection_headers<'py>(
    patch: &Patch,
    connection: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = connection.py();
    if let Err(error) = write_connection_headers(connection) {
        report_failure(py, &patch.name, error);
    }
    patch.original.bind(py).call(args, kwargs)
}

/// Writes the trace context headers of the call in progress into an http.client connection's
/// buffer, when its outermost layer left them to the connection.
fn write_connection_headers(connection: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = connection.py();
    let Some(call) = call_in_progress(py)? else { return Ok(()) };
    let Some(lines) = call.try_borrow()?.lines.as_ref().map(|lines| lines.clone_ref(py)) else { return Ok(()) };
    put_connection_headers(connection.getattr(intern!(py, "_buffer"))?.cast()?, lines.bind(py))
}
