//! The agent's own failures inside a call it traces: reported once per instrumentation, by
//! `oxapm.instrumentation.base.report_failure`, and never raised into the application.

use crate::python_attribute::PythonAttribute;
use pyo3::prelude::*;

static REPORT_FAILURE: PythonAttribute = PythonAttribute::new("oxapm.instrumentation.base", "report_failure");

/// Reports `error` as a failure of the instrumentation `name`.
pub(crate) fn report_failure(name: &Bound<'_, PyAny>, error: PyErr) {
    let py = name.py();
    if let Err(error) = REPORT_FAILURE.bind(py).and_then(|report| report.call1((name, error.value(py)))) {
        error.write_unraisable(py, None);
    }
}
