//! oxapm's Python modules, and attributes of theirs, that the engine calls or reads on hot paths (context
//! variables, functions), looked up once, when first used: the module is imported by then, since
//! what leads the engine there comes from it.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

pub(crate) struct PythonAttribute {
    module: &'static str,
    /// None: the module itself.
    name: Option<&'static str>,
    value: PyOnceLock<Py<PyAny>>,
}

impl PythonAttribute {
    pub(crate) const fn new(module: &'static str, name: &'static str) -> Self {
        PythonAttribute { module, name: Some(name), value: PyOnceLock::new() }
    }

    pub(crate) const fn module(module: &'static str) -> Self {
        PythonAttribute { module, name: None, value: PyOnceLock::new() }
    }

    pub(crate) fn bind<'py>(&self, py: Python<'py>) -> PyResult<&Bound<'py, PyAny>> {
        let value = self.value.get_or_try_init(py, || {
            let module = py.import(self.module)?.into_any();
            Ok::<_, PyErr>(
                match self.name {
                    Some(name) => module.getattr(name)?,
                    None => module,
                }
                .unbind(),
            )
        })?;
        Ok(value.bind(py))
    }
}
