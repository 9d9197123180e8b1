//! The traced methods of DB-API 2 connection and cursor proxies (`oxapm.instrumentation.dbapi`):
//! a cursor's `execute`, a connection's `commit`..., one exit span each (see `sql`). A proxy is a
//! `wrapt.ObjectProxy` keeping the library's object (`__wrapped__`), its `Database`
//! (`_self_database`: the instrumentation's name, `cursor_proxy`) and its connection's
//! `SqlEndpoint` (`_self_endpoint`).
//!
//! A synchronous method is a `TracedMethod` in the proxy's class: called with no Python frame of
//! the agent's. An asynchronous one is a coroutine function of dbapi.py around its `start`,
//! `finish` and `fail`. Nothing here raises into the application: the agent's failures are
//! reported once per instrumentation (`base.report_failure`), and the statement runs untraced.

use crate::context::CURRENT;
use crate::failures;
use crate::method::bound_if_instance;
use crate::python_attribute::PythonAttribute;
use crate::sql::{begin_sql_span, changes_rows, SqlEndpoint};
use crate::trace::Span;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

/// The names a statement argument goes by when passed by keyword, across the libraries.
const STATEMENT_KEYWORDS: [&str; 6] = ["query", "sql", "operation", "statement", "procname", "sql_script"];

/// `sql_spans.text`: a statement that is not a str (bytes, psycopg's `sql.Composable`) as text.
static STATEMENT_TEXT: PythonAttribute = PythonAttribute::new("oxapm.instrumentation.sql_spans", "text");

/// A statement's span while it runs, and the token to make its parent current again.
type Started = (Py<Span>, Py<PyAny>);

/// One traced method of a proxy class: its span's action, its statement (a fixed one, else the
/// call's first argument), whether it returns a new cursor (a connection's `execute`), whether
/// the `rowcount` counts its rows afterwards, and whose: the cursor it returns
/// (`rows_from_result`, a connection's `execute`) or the proxy's own.
#[pyclass(module = "oxapm._core", frozen)]
pub struct TracedMethod {
    name: Py<PyString>,
    action: String,
    statement: Option<Py<PyString>>,
    returns_cursor: bool,
    counts_rows: bool,
    rows_from_result: bool,
}

#[pymethods]
impl TracedMethod {
    /// `traced` is a `dbapi.Traced`.
    #[new]
    fn new(name: Py<PyString>, traced: &Bound<'_, PyAny>, rows_from_result: bool) -> PyResult<Self> {
        Ok(TracedMethod {
            name,
            action: traced.getattr("action")?.extract()?,
            statement: traced.getattr("statement")?.extract()?,
            returns_cursor: traced.getattr("returns_cursor")?.is_truthy()?,
            counts_rows: traced.getattr("counts_rows")?.is_truthy()?,
            rows_from_result,
        })
    }

    #[getter]
    fn __name__(&self, py: Python<'_>) -> Py<PyString> {
        self.name.clone_ref(py)
    }

    fn __get__<'py>(slf: &Bound<'py, Self>, instance: Option<&Bound<'py, PyAny>>, _owner: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        bound_if_instance(slf.as_any(), instance)
    }

    #[pyo3(signature = (proxy, *args, **kwargs))]
    fn __call__<'py>(&self, proxy: &Bound<'py, PyAny>, args: &Bound<'py, PyTuple>, kwargs: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyAny>> {
        let py = proxy.py();
        let wrapped = own_attribute(proxy, intern!(py, "__wrapped__"))?;
        let call = wrapped.getattr(&self.name)?;
        let started = self.start(proxy, args, kwargs);
        match call.call(args, kwargs) {
            Ok(result) => Ok(self.finish_of(proxy, Ok(wrapped), started, result)),
            Err(error) => {
                self.fail(proxy, started);
                Err(error)
            }
        }
    }

    /// Starts the span of a call with `args` and `kwargs` and makes it current: None when nothing
    /// is recorded (outside a transaction, no statement, a failure).
    #[pyo3(signature = (proxy, args, kwargs=None))]
    fn start(&self, proxy: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>, kwargs: Option<&Bound<'_, PyDict>>) -> Option<Started> {
        let py = proxy.py();
        let current = match CURRENT.get(py) {
            Ok(current) if current.is_none() => return None, // spares the statement's text and signature
            Ok(current) => current,
            Err(error) => return report_failure(proxy, error),
        };
        let started = || -> PyResult<Option<Started>> {
            let Some(statement) = self.statement_of(proxy, args, kwargs)? else { return Ok(None) };
            let endpoint = own_attribute(proxy, intern!(py, "_self_endpoint"))?;
            let Some(span) = begin_sql_span(&current, endpoint.cast::<SqlEndpoint>()?, &statement, &self.action)? else { return Ok(None) };
            let token = CURRENT.set(py, span.bind(py))?;
            Ok(Some((span, token)))
        };
        started().unwrap_or_else(|error| report_failure(proxy, error))
    }

    /// Ends the span of a call that returned `result`; returns what the caller gets: the proxy
    /// for the library's object itself, a cursor proxy for a new cursor.
    fn finish<'py>(&self, proxy: &Bound<'py, PyAny>, started: Option<Started>, result: Bound<'py, PyAny>) -> Bound<'py, PyAny> {
        self.finish_of(proxy, own_attribute(proxy, intern!(proxy.py(), "__wrapped__")), started, result)
    }

    /// Ends the span of a call that raised.
    fn fail(&self, proxy: &Bound<'_, PyAny>, started: Option<Started>) {
        if let Some((span, token)) = started {
            leave(proxy, &token);
            end_span(proxy, &span, None, true);
        }
    }
}

impl TracedMethod {
    /// `finish`, with the proxy's `__wrapped__` read already.
    fn finish_of<'py>(
        &self,
        proxy: &Bound<'py, PyAny>,
        wrapped: PyResult<Bound<'py, PyAny>>,
        started: Option<Started>,
        result: Bound<'py, PyAny>,
    ) -> Bound<'py, PyAny> {
        let py = proxy.py();
        let Some((span, token)) = started else { return self.given(proxy, wrapped.as_ref().ok(), result) };
        leave(proxy, &token);
        let rows = || -> PyResult<Option<i64>> {
            if !self.counts_rows || !span.bind(py).try_borrow().is_ok_and(|span| changes_rows(&span.active.record.name)) {
                return Ok(None);
            }
            let counting = if self.rows_from_result { &result } else { wrapped.as_ref().map_err(|error| error.clone_ref(py))? };
            Ok(counting.getattr(intern!(py, "rowcount"))?.extract::<Option<i64>>().ok().flatten().filter(|rows| *rows >= 0))
        };
        let rows = rows().unwrap_or_else(|error| report_failure(proxy, error));
        let given = self.given(proxy, wrapped.as_ref().ok(), result);
        end_span(proxy, &span, rows, false);
        given
    }

    /// The statement of a call: the fixed one, else the first argument, as text. None without one
    /// (the library will say what is missing).
    fn statement_of<'py>(
        &self,
        proxy: &Bound<'py, PyAny>,
        args: &Bound<'py, PyTuple>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        let py = proxy.py();
        if let Some(statement) = &self.statement {
            return Ok(Some(statement.bind(py).clone()));
        }
        let argument = match args.get_item(0) {
            Ok(first) => Some(first),
            Err(_) => match kwargs {
                Some(kwargs) => STATEMENT_KEYWORDS.iter().find_map(|key| kwargs.get_item(key).ok().flatten()),
                None => None,
            },
        };
        let Some(argument) = argument else { return Ok(None) };
        if let Ok(text) = argument.cast_exact::<PyString>() {
            return Ok(Some(text.clone()));
        }
        let wrapped = own_attribute(proxy, intern!(py, "__wrapped__"))?;
        Ok(Some(STATEMENT_TEXT.bind(py)?.call1((argument, wrapped))?.cast_into::<PyString>()?))
    }

    /// What the caller of a call that returned `result` gets.
    fn given<'py>(&self, proxy: &Bound<'py, PyAny>, wrapped: Option<&Bound<'py, PyAny>>, result: Bound<'py, PyAny>) -> Bound<'py, PyAny> {
        if wrapped.is_some_and(|wrapped| result.is(wrapped)) {
            return proxy.clone();
        }
        if !self.returns_cursor || result.is_none() {
            return result;
        }
        let py = proxy.py();
        let cursor =
            own_attribute(proxy, intern!(py, "_self_database")).and_then(|database| database.call_method1(intern!(py, "cursor_proxy"), (&result, proxy)));
        cursor.unwrap_or_else(|error| {
            report_failure::<()>(proxy, error);
            result
        })
    }
}

/// A cursor proxy of `class` (a `wrapt.ObjectProxy`) for `cursor`, made by the connection proxy
/// `connection`: it keeps the connection, and shares its `Database` and endpoint. Made with
/// wrapt's own `__init__` and no Python frame: a proxy is made for every statement a connection
/// executes (`Database.cursor_proxy` is this, bound to the class).
#[pyfunction]
pub fn cursor_proxy<'py>(class: &Bound<'py, PyAny>, cursor: &Bound<'py, PyAny>, connection: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = class.py();
    let proxy = class.call1((cursor,))?;
    for name in [intern!(py, "_self_database"), intern!(py, "_self_endpoint")] {
        set_own_attribute(&proxy, name, &own_attribute(connection, name)?)?;
    }
    set_own_attribute(&proxy, intern!(py, "_self_connection"), connection)?;
    Ok(proxy)
}

/// An attribute a proxy keeps itself (`__wrapped__`, `_self_...`), read as
/// `object.__getattribute__` reads it: the `__getattr__` hook of a wrapt proxy's subclass costs
/// several times more, and these are read on every statement.
fn own_attribute<'py>(proxy: &Bound<'py, PyAny>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: both are live objects and the GIL is held; NULL has set the error.
    unsafe { Bound::from_owned_ptr_or_err(proxy.py(), pyo3::ffi::PyObject_GenericGetAttr(proxy.as_ptr(), name.as_ptr())) }
}

/// Sets an attribute a proxy keeps itself (`_self_...`), as `object.__setattr__` sets it.
fn set_own_attribute(proxy: &Bound<'_, PyAny>, name: &Bound<'_, PyString>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    // SAFETY: all three are live objects and the GIL is held; -1 has set the error.
    if unsafe { pyo3::ffi::PyObject_GenericSetAttr(proxy.as_ptr(), name.as_ptr(), value.as_ptr()) } < 0 {
        return Err(PyErr::fetch(proxy.py()));
    }
    Ok(())
}

/// Makes the parent of a statement's span current again.
fn leave(proxy: &Bound<'_, PyAny>, token: &Py<PyAny>) {
    if let Err(error) = CURRENT.reset(proxy.py(), token) {
        report_failure::<()>(proxy, error);
    }
}

/// Ends a statement's span: with the rows it changed, when known; `failed` when it raised.
fn end_span(proxy: &Bound<'_, PyAny>, span: &Py<Span>, rows_affected: Option<i64>, failed: bool) {
    let py = proxy.py();
    match span.bind(py).try_borrow_mut() {
        Ok(mut span) => span.end_statement(py, rows_affected, failed),
        Err(error) => drop(report_failure::<()>(proxy, error.into())),
    }
}

/// Reports a failure of the agent under the proxy's instrumentation; None for what failed.
fn report_failure<T>(proxy: &Bound<'_, PyAny>, error: PyErr) -> Option<T> {
    let py = proxy.py();
    match own_attribute(proxy, intern!(py, "_self_database")).and_then(|database| database.getattr(intern!(py, "instrumentation"))) {
        Ok(name) => failures::report_failure(&name, error),
        Err(unnamed) => unnamed.write_unraisable(py, None),
    }
    None
}
