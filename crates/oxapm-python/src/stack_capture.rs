//! Stack traces of long spans (`span_stack_trace_min_duration`). The frames are read by a Python
//! function (`oxapm.traces`), called only for spans that lasted long enough: short spans pay one
//! clock read.

use crate::convert::to_json;
use crate::trace::Transaction;
use oxapm_core::trace::ActiveSpan;
use pyo3::prelude::*;
use std::sync::Mutex;

static CAPTURE: Mutex<Option<Py<PyAny>>> = Mutex::new(None);

/// Installs the function that returns the caller's stack as intake frames.
#[pyfunction]
pub fn set_span_stack_capture(capture: Option<Py<PyAny>>) {
    if let Ok(mut slot) = CAPTURE.lock() {
        *slot = capture;
    }
}

/// Sets the stack trace of `span`, about to end, if it has lasted long enough. A failing capture
/// is reported, not raised.
pub fn capture_if_due(py: Python<'_>, transaction: &Py<Transaction>, span: &mut ActiveSpan) {
    let due = transaction.bind(py).try_borrow().is_ok_and(|t| t.active.wants_stack_trace(span));
    let Some(capture) = due.then(|| CAPTURE.lock().ok()?.as_ref().map(|c| c.clone_ref(py))).flatten() else { return };
    match capture.call0(py) {
        Ok(frames) if !frames.is_none(py) => span.record.stacktrace = Some(to_json(frames.bind(py))),
        Ok(_) => {}
        Err(error) => error.write_unraisable(py, None),
    }
}
