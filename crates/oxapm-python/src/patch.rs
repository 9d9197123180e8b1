//! A library's function replaced by the engine's (`Patch`): called by Python with no Python frame
//! of the agent's in between. It is a method (`binds`: bound to its instance as functions are) or a
//! module's function; `__wrapped__` is the original, whose other attributes (`__name__`,
//! `__doc__`, ...) it also answers for. What it does when called is its `Role`, each written with
//! the instrumentations it serves.

use crate::method::{bound_if_instance, bound_method};
use crate::outgoing::{self, OutgoingHttp};
use crate::{served, wsgi};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

/// What a `Patch` does when called.
pub(crate) enum Role {
    /// Traces an outgoing HTTP call as its outermost layer (`outgoing::call_traced`).
    TracedHttp(Py<OutgoingHttp>),
    /// Calls `wrapper(wrapped, instance, args, kwargs)` (wrapt's convention), except below an
    /// outgoing HTTP call a layer above traces, where the original runs alone (`outgoing::call_below`).
    Below(Py<PyAny>),
    /// http.client's `endheaders`: writes the trace context headers of the outgoing call in
    /// progress, when its outermost layer left them to the connection.
    ConnectionHeaders,
    /// A WSGI application's `__call__(environ, start_response)`, served as one request's
    /// transaction (`wsgi::serve_patched`).
    ServingWsgi,
    /// A framework's method called once the route matched (Flask's `full_dispatch_request`): the
    /// route template, read at `path` (attribute names) from the value of the context variable
    /// `variable`, names the request served (`served::route_patched`).
    Routing { variable: Py<PyAny>, path: Vec<Py<PyString>> },
}

#[pyclass(module = "oxapm._core", frozen)]
pub struct Patch {
    pub(crate) original: Py<PyAny>,
    pub(crate) binds: bool,
    /// The instrumentation's, to report its failures by.
    pub(crate) name: Py<PyString>,
    role: Role,
}

#[pymethods]
impl Patch {
    #[staticmethod]
    fn traced_http(py: Python<'_>, original: Py<PyAny>, binds: bool, outgoing: Py<OutgoingHttp>) -> Self {
        let name = outgoing.get().name.clone_ref(py);
        Patch { original, binds, name, role: Role::TracedHttp(outgoing) }
    }

    #[staticmethod]
    fn below(original: Py<PyAny>, binds: bool, name: Py<PyString>, wrapper: Py<PyAny>) -> Self {
        Patch { original, binds, name, role: Role::Below(wrapper) }
    }

    #[staticmethod]
    fn connection_headers(original: Py<PyAny>, binds: bool, name: Py<PyString>) -> Self {
        Patch { original, binds, name, role: Role::ConnectionHeaders }
    }

    #[staticmethod]
    fn serving_wsgi(original: Py<PyAny>, binds: bool, name: Py<PyString>) -> Self {
        Patch { original, binds, name, role: Role::ServingWsgi }
    }

    #[staticmethod]
    fn routing(original: Py<PyAny>, binds: bool, name: Py<PyString>, variable: Py<PyAny>, path: Vec<Py<PyString>>) -> Self {
        Patch { original, binds, name, role: Role::Routing { variable, path } }
    }

    #[getter]
    fn __wrapped__(&self, py: Python<'_>) -> Py<PyAny> {
        self.original.clone_ref(py)
    }

    fn __getattr__<'py>(&self, py: Python<'py>, name: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyAny>> {
        self.original.bind(py).getattr(name)
    }

    fn __get__<'py>(slf: &Bound<'py, Self>, instance: Option<&Bound<'py, PyAny>>, _owner: Option<&Bound<'py, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        bound_if_instance(slf.as_any(), instance.filter(|_| slf.get().binds))
    }

    #[pyo3(signature = (*args, **kwargs))]
    fn __call__<'py>(slf: &Bound<'py, Self>, args: &Bound<'py, PyTuple>, kwargs: Option<&Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyAny>> {
        let this = slf.get();
        let py = slf.py();
        // A method called with no instance: the original says what is wrong.
        let instance = match this.binds {
            true if args.is_empty() => return this.original.bind(py).call(args, kwargs),
            true => args.get_item(0)?,
            false => py.None().into_bound(py),
        };
        match &this.role {
            Role::TracedHttp(outgoing) => outgoing::call_traced(this, outgoing.bind(py), &instance, args, kwargs),
            Role::Below(wrapper) => outgoing::call_below(this, wrapper.bind(py), &instance, args, kwargs),
            Role::ConnectionHeaders => outgoing::call_connection_headers(this, &instance, args, kwargs),
            Role::ServingWsgi => wsgi::serve_patched(this, &instance, args, kwargs),
            Role::Routing { variable, path } => served::route_patched(this, variable.bind(py), path, args, kwargs),
        }
    }
}

impl Patch {
    /// The original as `instance`'s method (itself, for a module's function).
    pub(crate) fn bound_original<'py>(&self, instance: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let original = self.original.bind(instance.py());
        if self.binds {
            bound_method(original, instance)
        } else {
            Ok(original.clone())
        }
    }

    /// The arguments of a call, without the instance of a method.
    pub(crate) fn without_instance<'py>(&self, args: &Bound<'py, PyTuple>) -> Bound<'py, PyTuple> {
        if self.binds {
            args.get_slice(1, args.len())
        } else {
            args.clone()
        }
    }
}
