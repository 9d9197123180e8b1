//! A WSGI application called as one request's transaction (`oxapm.contrib.wsgi.traced_call`):
//! the transaction is current while the application runs and while each piece of the response
//! body is produced, so that a streamed body's spans are its children, and it ends when the body
//! ends: exhausted, or closed by the server (a client gone away).

use crate::failures::report_failure;
use crate::http::wsgi_incoming;
use crate::patch::Patch;
use crate::python_attribute::PythonAttribute;
use crate::served::{serve_described, Served};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyString, PyTuple};

/// `oxapm.contrib.wsgi._RecordingInput`: `wsgi.input`, keeping what the application reads of it.
static RECORDING_INPUT: PythonAttribute = PythonAttribute::new("oxapm.contrib.wsgi", "_RecordingInput");

/// `app(environ, start_response)` as one request's transaction, unless an outer layer serves the
/// request already (`contrib.wsgi.traced_call`).
#[pyfunction]
pub fn serve_wsgi<'py>(
    instrumentation: &Bound<'py, PyString>,
    app: &Bound<'py, PyAny>,
    environ: &Bound<'py, PyAny>,
    start_response: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = app.py();
    let served = serve_described(instrumentation, || Bound::new(py, wsgi_incoming(environ.cast::<PyDict>()?)?));
    let Some(served) = served else { return app.call1((environ, start_response)) };
    if served.try_borrow().is_ok_and(|served| served.keeps_body()) {
        if let Err(error) = record_input(&served, environ) {
            report_failure(instrumentation, error); // the body is not captured
        }
    }
    Ok(Bound::new(py, call_wsgi_app(&served, app, environ, start_response)?)?.into_any())
}

/// Replaces `wsgi.input` with a stream keeping what the application reads.
fn record_input(served: &Bound<'_, Served>, environ: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = served.py();
    let input = intern!(py, "wsgi.input");
    if let Ok(stream) = environ.get_item(input) {
        environ.set_item(input, RECORDING_INPUT.bind(py)?.call1((stream, served))?)?;
    }
    Ok(())
}

/// `Role::ServingWsgi`: a framework's application called as `app(environ, start_response)`
/// (`Flask.__call__`, Django's `WSGIHandler.__call__`) is served as `serve_wsgi` serves it. A call
/// of another shape is left to the original.
pub(crate) fn serve_patched<'py>(
    patch: &Patch,
    instance: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = instance.py();
    let original = patch.original.bind(py);
    let given = patch.without_instance(args);
    if given.len() != 2 || kwargs.is_some_and(|kwargs| !kwargs.is_empty()) {
        return original.call(args, kwargs);
    }
    serve_wsgi(patch.name.bind(py), &patch.bound_original(instance)?, &given.get_item(0)?, &given.get_item(1)?)
}

/// Calls `app(environ, start_response)` with `served` current; the body it returns is produced
/// the same way and ends the transaction.
fn call_wsgi_app(served: &Bound<'_, Served>, app: &Bound<'_, PyAny>, environ: &Bound<'_, PyAny>, start_response: &Bound<'_, PyAny>) -> PyResult<ResponseBody> {
    let py = served.py();
    let observed = StartResponse { served: served.clone().unbind(), start_response: start_response.clone().unbind() };
    let token = Served::activate(served)?;
    let called = app.call1((environ, observed));
    if let Err(error) = &called {
        Served::failed(served, error.value(py).as_any());
        Served::end(served);
    }
    Served::deactivate(served, token)?;
    Ok(ResponseBody { body: called?.unbind(), iterator: None, served: served.clone().unbind() })
}

/// The server's `start_response`, noting the status and headers the application answers with.
#[pyclass(module = "oxapm._core", frozen)]
pub struct StartResponse {
    served: Py<Served>,
    start_response: Py<PyAny>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__(&self, py: Python<'_>, status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>, exc_info: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let code: String = crate::convert::text(&status.str()?).chars().take(3).collect(); // "200 OK"
        let code = match code.parse::<i64>() {
            Ok(code) => code.into_pyobject(py)?.into_any(),
            Err(_) => PyString::new(py, &code).into_any(), // reported as not a status
        };
        Served::respond(self.served.bind(py), &code, Some(headers));
        let start_response = self.start_response.bind(py);
        Ok(match exc_info {
            None => start_response.call1((status, headers))?,
            Some(exc_info) => start_response.call1((status, headers, exc_info))?,
        }
        .unbind())
    }
}

/// The application's response body, produced with the transaction current; its end (or
/// `close()`, which servers call when the client goes away too) ends the transaction.
#[pyclass(module = "oxapm._core")]
pub struct ResponseBody {
    body: Py<PyAny>,
    iterator: Option<Py<PyIterator>>,
    served: Py<Served>,
}

#[pymethods]
impl ResponseBody {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let served = self.served.clone_ref(py);
        let served = served.bind(py);
        let token = Served::activate(served)?;
        let next = self.next_piece(py);
        match &next {
            Ok(Some(_)) => {}
            Ok(None) => Served::end(served),
            Err(error) => {
                Served::failed(served, error.value(py).as_any());
                Served::end(served);
            }
        }
        Served::deactivate(served, token)?;
        next
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let served = self.served.bind(py);
        let close = self.body.bind(py).getattr_opt(pyo3::intern!(py, "close"))?;
        if served.try_borrow().is_ok_and(|s| s.ended) {
            // The body was exhausted: closing is no part of the request any more.
            return close.map_or(Ok(()), |close| close.call0().map(drop));
        }
        let token = Served::activate(served)?;
        let closed = close.map_or(Ok(()), |close| close.call0().map(drop));
        if let Err(error) = &closed {
            Served::failed(served, error.value(py).as_any());
        }
        Served::end(served);
        Served::deactivate(served, token)?;
        closed
    }
}

impl ResponseBody {
    fn next_piece(&mut self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let mut iterator = match &self.iterator {
            Some(iterator) => iterator.bind(py).clone(),
            None => {
                let iterator = self.body.bind(py).try_iter()?;
                self.iterator = Some(iterator.clone().unbind());
                iterator
            }
        };
        iterator.next().transpose().map(|piece| piece.map(Bound::unbind))
    }
}
