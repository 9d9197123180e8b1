//! The Python `Client` (`oxapm.base`) as the engine's own paths use it on every request: the
//! current client, whether it records, and a transaction of its begun.

use crate::hooks;
use crate::python_attribute::PythonAttribute;
use crate::trace::Transaction;
use pyo3::intern;
use pyo3::prelude::*;

static BASE: PythonAttribute = PythonAttribute::module("oxapm.base");
/// `oxapm.traces.Transaction`: the Python subclass, with the methods that act on the context.
static TRANSACTION: PythonAttribute = PythonAttribute::new("oxapm.traces", "Transaction");

/// `Client.is_recording`: open, with `recording` on (central configuration can turn it off).
#[pyfunction]
pub fn client_is_recording(client: &Bound<'_, PyAny>) -> PyResult<bool> {
    let py = client.py();
    Ok(client.getattr(intern!(py, "_open"))?.is_truthy()? && client.getattr(intern!(py, "config"))?.getattr(intern!(py, "recording"))?.is_truthy()?)
}

/// The current client (`base.get_client()`), or None.
pub(crate) fn current_client(py: Python<'_>) -> PyResult<Bound<'_, PyAny>> {
    BASE.bind(py)?.getattr(intern!(py, "_client"))
}

/// The current client, when it records.
pub(crate) fn recording_client(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    let client = current_client(py)?;
    Ok((!client.is_none() && client_is_recording(&client)?).then_some(client))
}

/// `Client._begin_transaction` of a client that records: a transaction in the trace of the
/// `traceparent` and `tracestate` headers when given, not made current; the span processors are
/// told of its start.
#[pyfunction]
#[pyo3(signature = (client, transaction_type, traceparent=None, tracestate=None, links=None, start=None))]
pub fn begin_transaction<'py>(
    client: &Bound<'py, PyAny>,
    transaction_type: &str,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
    links: Option<&Bound<'py, PyAny>>,
    start: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, Transaction>> {
    let py = client.py();
    if client.getattr(intern!(py, "_pid"))?.extract::<i64>()? != i64::from(std::process::id()) {
        // Forked by a server that does not run os.register_at_fork hooks (uwsgi).
        client.call_method0(intern!(py, "_after_fork"))?;
    }
    let engine = client.getattr(intern!(py, "_engine"))?;
    let transaction = TRANSACTION.bind(py)?.call1((engine, transaction_type, traceparent, tracestate, links, start))?.cast_into::<Transaction>()?;
    Ok(hooks::started(py, transaction.unbind()).into_bound(py))
}
