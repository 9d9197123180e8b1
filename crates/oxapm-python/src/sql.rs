//! SQL databases for the database instrumentations: a connection's endpoint, read once when it
//! connects, and the exit span of each statement, started in one call.

use crate::convert::{text, to_python};
use crate::trace::{begin_exit, Span};
use oxapm_core::model::JsonMap;
use pyo3::prelude::*;
use pyo3::types::PyString;
use serde_json::Value;

/// The statements whose span reports the rows they changed (as Elastic's agents do for DML).
const CHANGING_ROWS: [&str; 5] = ["INSERT", "UPDATE", "DELETE", "MERGE", "REPLACE"];

/// Elastic's agents send at most this many characters of a statement.
const MAX_STATEMENT_CHARS: usize = 10000;

/// The database one connection talks to: the span subtype (the database system), and the
/// `context.db` and `context.destination` every span on that connection carries.
#[pyclass(module = "oxapm._core", frozen)]
pub struct SqlEndpoint {
    subtype: String,
    db: JsonMap,
    destination: JsonMap,
}

#[pymethods]
impl SqlEndpoint {
    #[new]
    #[pyo3(signature = (subtype, instance=None, user=None, address=None, port=None))]
    fn new(subtype: String, instance: Option<String>, user: Option<String>, address: Option<String>, port: Option<i64>) -> Self {
        let mut db = JsonMap::from_iter([("type".into(), Value::from("sql"))]);
        for (key, value) in [("instance", instance), ("user", user)] {
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                db.insert(key.into(), Value::String(value));
            }
        }
        let mut destination = JsonMap::new();
        if let Some(address) = address.filter(|a| !a.is_empty()) {
            destination.insert("address".into(), Value::String(address));
        }
        if let Some(port) = port.filter(|p| *p != 0) {
            destination.insert("port".into(), Value::from(port));
        }
        SqlEndpoint { subtype, db, destination }
    }

    #[getter]
    fn subtype(&self) -> &str {
        &self.subtype
    }

    /// `context.db` of its spans, without the statement.
    #[getter]
    fn db<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &Value::Object(self.db.clone()))
    }

    /// `context.destination` of its spans: the server's address and port, when known.
    #[getter]
    fn destination<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &Value::Object(self.destination.clone()))
    }

    /// The context sections of a span on this connection (of connecting, without `statement`).
    #[pyo3(signature = (statement=None))]
    fn context<'py>(&self, py: Python<'py>, statement: Option<&Bound<'py, PyString>>) -> PyResult<Bound<'py, PyAny>> {
        to_python(py, &Value::Object(self.span_context(statement.map(|s| text(s)).as_deref())))
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other.cast::<SqlEndpoint>().is_ok_and(|other| {
            let other = other.get();
            (&self.subtype, &self.db, &self.destination) == (&other.subtype, &other.db, &other.destination)
        })
    }

    fn __repr__(&self) -> String {
        format!("SqlEndpoint({:?}, {}, {})", self.subtype, Value::Object(self.db.clone()), Value::Object(self.destination.clone()))
    }
}

impl SqlEndpoint {
    fn span_context(&self, statement: Option<&str>) -> JsonMap {
        let mut db = self.db.clone();
        if let Some(statement) = statement {
            let cut = statement.char_indices().nth(MAX_STATEMENT_CHARS).map_or(statement, |(at, _)| &statement[..at]);
            db.insert("statement".into(), Value::String(cut.to_owned()));
        }
        let mut context = JsonMap::from_iter([("db".into(), Value::Object(db))]);
        if !self.destination.is_empty() {
            context.insert("destination".into(), Value::Object(self.destination.clone()));
        }
        context
    }
}

/// Starts the span of `statement` on a connection to `endpoint`, under `parent`: named by the
/// statement's signature (`SELECT FROM users`), or for the action `exec` (a stored procedure
/// call, `statement` its name) `name()`. None when nothing is recorded.
#[pyfunction]
#[pyo3(signature = (parent, endpoint, statement, action="query"))]
pub fn begin_sql_span(
    parent: &Bound<'_, PyAny>,
    endpoint: &Bound<'_, SqlEndpoint>,
    statement: &Bound<'_, PyString>,
    action: &str,
) -> PyResult<Option<Py<Span>>> {
    let endpoint = endpoint.get();
    let statement = text(statement);
    let name = if action == "exec" { format!("{statement}()") } else { oxapm_core::sql::signature(&statement) };
    begin_exit(parent, &name, "db", Some(&endpoint.subtype), Some(action), endpoint.span_context(Some(&statement)))
}

/// Whether the span named `name` (a statement's signature) reports the rows the statement changed.
#[pyfunction]
pub fn changes_rows(name: &str) -> bool {
    CHANGING_ROWS.iter().any(|verb| name.starts_with(verb))
}

impl Span {
    /// Ends a statement's span: with the rows it changed, when the library knows; `failed` when
    /// it raised.
    pub(crate) fn end_statement(&mut self, py: Python<'_>, rows_affected: Option<i64>, failed: bool) {
        if let Some(rows) = rows_affected {
            if let Value::Object(db) = self.active.record.context.entry("db").or_insert_with(|| Value::Object(JsonMap::new())) {
                db.insert("rows_affected".into(), Value::from(rows));
            }
        }
        self._end(py, failed);
    }
}
