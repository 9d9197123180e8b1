//! The context variables of oxapm's Python side that the engine reads and sets on every request
//! and every traced call: `oxapm.traces._current` (the current span or transaction) and
//! `oxapm.instrumentation.outgoing_http._traced_call` (the outgoing HTTP call in progress).
//!
//! They are read and set through CPython's own functions, which every CPython 3 exports, though
//! not in the stable ABI (as `convert::text` does): a Python-level call costs several times more,
//! and these run several times per request.

use crate::python_attribute::PythonAttribute;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// A context variable of one of oxapm's Python modules.
pub(crate) struct Variable(PythonAttribute);

pub(crate) static CURRENT: Variable = Variable(PythonAttribute::new("oxapm.traces", "_current"));
pub(crate) static TRACED_CALL: Variable = Variable(PythonAttribute::new("oxapm.instrumentation.outgoing_http", "_traced_call"));

/// `oxapm.traces._restore`, for a token of another context.
static RESTORE: PythonAttribute = PythonAttribute::new("oxapm.traces", "_restore");

#[cfg(not(windows))]
extern "C" {
    fn PyContextVar_Get(var: *mut pyo3::ffi::PyObject, default: *mut pyo3::ffi::PyObject, value: *mut *mut pyo3::ffi::PyObject) -> std::os::raw::c_int;
    fn PyContextVar_Set(var: *mut pyo3::ffi::PyObject, value: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject;
    fn PyContextVar_Reset(var: *mut pyo3::ffi::PyObject, token: *mut pyo3::ffi::PyObject) -> std::os::raw::c_int;
}

impl Variable {
    /// `variable.get()`: its value, None included (each of these has None for default).
    pub(crate) fn get<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        value_of(self.0.bind(py)?)
    }

    /// `variable.set(value)`: the token.
    pub(crate) fn set(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let variable = self.0.bind(py)?;
        #[cfg(not(windows))]
        {
            // SAFETY: both are live objects and the GIL is held; a NULL result has set the error.
            unsafe { Bound::from_owned_ptr_or_err(py, PyContextVar_Set(variable.as_ptr(), value.as_ptr())) }.map(Bound::unbind)
        }
        #[cfg(windows)]
        {
            variable.call_method1("set", (value,)).map(Bound::unbind)
        }
    }

    /// `variable.reset(token)`; a token of another context (a copied one, a thread) cannot be
    /// reset: the value before is set again instead (`traces._restore`).
    pub(crate) fn reset(&self, py: Python<'_>, token: &Py<PyAny>) -> PyResult<()> {
        let variable = self.0.bind(py)?;
        let Err(error) = reset_in_place(py, variable, token) else { return Ok(()) };
        if !(error.is_instance_of::<PyValueError>(py) || error.is_instance_of::<PyRuntimeError>(py)) {
            return Err(error);
        }
        RESTORE.bind(py)?.call1((token, variable)).map(drop)
    }
}

/// The value of the context variable `variable` in this context; None when it has none (and no
/// default).
pub(crate) fn value_of<'py>(variable: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = variable.py();
    #[cfg(not(windows))]
    {
        let mut value = std::ptr::null_mut();
        // SAFETY: the GIL is held; a `variable` that is no context variable is a TypeError; on
        // success `value` is a new reference (the variable's default when unset), on -1 the error
        // is set.
        if unsafe { PyContextVar_Get(variable.as_ptr(), std::ptr::null_mut(), &mut value) } < 0 {
            return Err(PyErr::fetch(py));
        }
        // SAFETY: a new reference, or NULL for a variable with no value and no default (then None).
        Ok(unsafe { Bound::from_owned_ptr_or_opt(py, value) }.unwrap_or_else(|| py.None().into_bound(py)))
    }
    #[cfg(windows)]
    {
        variable.call_method1("get", (py.None(),))
    }
}

fn reset_in_place(py: Python<'_>, variable: &Bound<'_, PyAny>, token: &Py<PyAny>) -> PyResult<()> {
    #[cfg(not(windows))]
    {
        // SAFETY: both are live objects and the GIL is held; -1 has set the error.
        if unsafe { PyContextVar_Reset(variable.as_ptr(), token.as_ptr()) } < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(())
    }
    #[cfg(windows)]
    {
        let _ = py;
        variable.call_method1("reset", (token,)).map(drop)
    }
}
