//! The engine's callables that stand in a class as methods (the instrumentations' patches): bound
//! to an instance as Python functions are.

use pyo3::prelude::*;

#[cfg(not(windows))]
extern "C" {
    // Not in the stable ABI, though every CPython 3 exports it (see `context`).
    fn PyMethod_New(function: *mut pyo3::ffi::PyObject, instance: *mut pyo3::ffi::PyObject) -> *mut pyo3::ffi::PyObject;
}

/// `function` bound to `instance`: what `__get__` returns for an instance.
pub(crate) fn bound_method<'py>(function: &Bound<'py, PyAny>, instance: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    #[cfg(not(windows))]
    {
        // SAFETY: both are live objects and the GIL is held; a NULL result has set the error.
        unsafe { Bound::from_owned_ptr_or_err(function.py(), PyMethod_New(function.as_ptr(), instance.as_ptr())) }
    }
    #[cfg(windows)]
    {
        function.py().import("types")?.getattr("MethodType")?.call1((function, instance))
    }
}

/// What `__get__` returns: `function` bound to `instance`, or itself through the class.
pub(crate) fn bound_if_instance<'py>(function: &Bound<'py, PyAny>, instance: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    match instance {
        Some(instance) if !instance.is_none() => bound_method(function, instance),
        _ => Ok(function.clone()),
    }
}
