//! `Config` and `Engine`: option resolution, the pipeline, errors, flush and close.

use crate::convert::{dict_to_map, epoch_micros, merge_context, to_json};
use crate::trace::Transaction;
use oxapm_core::config::{self, ConfigValue};
use oxapm_core::diag;
use oxapm_core::engine;
use oxapm_core::model::{now_epoch_us, ErrorRecord, ErrorTransaction, Event};
use oxapm_core::opamp::Deactivation;
use oxapm_core::otlp::proto::any_value;
use oxapm_core::remote_config::{Applied, Change};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

fn string_map(d: Option<&Bound<'_, PyDict>>) -> HashMap<String, String> {
    let Some(d) = d else { return HashMap::new() };
    d.iter()
        .filter(|(_, v)| !v.is_none())
        .filter_map(|(k, v)| {
            let key = k.str().ok()?.to_string_lossy().into_owned();
            // Lists and dicts given inline are joined the way the environment would spell them.
            let value = if let Ok(list) = v.cast::<PyList>() {
                list.iter().filter_map(|i| i.str().ok().map(|s| s.to_string_lossy().into_owned())).collect::<Vec<_>>().join(",")
            } else if let Ok(map) = v.cast::<PyDict>() {
                map.iter().filter_map(|(k, v)| Some(format!("{}={}", k.str().ok()?, v.str().ok()?))).collect::<Vec<_>>().join(",")
            } else {
                v.str().ok()?.to_string_lossy().into_owned()
            };
            Some((key, value))
        })
        .collect()
}

/// The resolved configuration. `as_dict()` gives every option by its lower-case name.
#[pyclass(module = "oxapm._core", frozen)]
pub struct Config {
    pub(crate) inner: config::Config,
}

#[pymethods]
impl Config {
    #[new]
    #[pyo3(signature = (env, inline=None, defaults=None))]
    fn new(env: &Bound<'_, PyDict>, inline: Option<&Bound<'_, PyDict>>, defaults: Option<&Bound<'_, PyDict>>) -> Self {
        Config { inner: config::Config::resolve(&string_map(Some(env)), &string_map(inline), &string_map(defaults)) }
    }

    #[getter]
    fn warnings(&self) -> Vec<String> {
        self.inner.warnings.clone()
    }

    fn as_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (key, value) in self.inner.entries() {
            out.set_item(key.to_ascii_lowercase(), config_value(py, value)?)?;
        }
        Ok(out)
    }
}

/// The new values of changed options, by lower-case name.
fn changed_values<'py>(py: Python<'py>, changes: &[Change]) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    for change in changes {
        out.set_item(change.key.to_ascii_lowercase(), config_value(py, &change.new)?)?;
    }
    Ok(out)
}

fn config_value<'py>(py: Python<'py>, value: &ConfigValue) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        ConfigValue::Unset => py.None().into_bound(py),
        ConfigValue::Str(s) => s.into_pyobject(py)?.into_any(),
        ConfigValue::Bool(b) => b.into_pyobject(py)?.to_owned().into_any(),
        ConfigValue::Int(i) => i.into_pyobject(py)?.into_any(),
        ConfigValue::Float(f) => f.into_pyobject(py)?.into_any(),
        ConfigValue::List(l) => PyList::new(py, l)?.into_any(),
        ConfigValue::Map(m) => PyDict::from_sequence(&PyList::new(py, m)?.into_any())?.into_any(),
    })
}

#[pyclass(module = "oxapm._core", frozen)]
pub struct Engine {
    pub(crate) inner: Arc<engine::Engine>,
}

#[pymethods]
impl Engine {
    #[new]
    fn new(config: &Bound<'_, Config>, metadata: &Bound<'_, PyDict>, agent_version: &str) -> Self {
        let config = config.get().inner.clone();
        let metadata = to_json(metadata.as_any());
        Engine { inner: Arc::new(engine::Engine::start(config, &metadata, agent_version)) }
    }

    /// Applies central configuration's latest values (all of them: an option left out reverts to
    /// its local value). Returns the options whose value changed, by lower-case name, with their
    /// new values, for the attributes of the Python `Config`.
    fn reconfigure<'py>(&self, py: Python<'py>, remote: HashMap<String, String>) -> PyResult<Bound<'py, PyDict>> {
        let engine = self.inner.clone();
        let applied = py.detach(move || engine.reconfigure(&remote));
        changed_values(py, &applied.changes)
    }

    /// Starts asking APM Server for central configuration on an engine thread, when the
    /// configuration says to; returns whether it did. `on_change(values, changes)` is called with
    /// each configuration the server sends, `changes` as `reconfigure` returns them.
    fn start_central_config(&self, on_change: Py<PyAny>) -> bool {
        let listener = move |values: &HashMap<String, String>, changes: &[Change]| {
            // Not once the interpreter is finalizing.
            Python::try_attach(|py| {
                let told = changed_values(py, changes).and_then(|changes| on_change.call1(py, (values.clone(), changes)));
                if let Err(e) = told {
                    diag::warn(&format!("applying central configuration failed: {e}"));
                }
            });
        };
        self.inner.start_central_config(Box::new(listener))
    }

    /// Starts an OpAMP client of the server at `endpoint` on an engine thread; returns whether it
    /// did. `on_config(changes, deactivate_all, deactivated)` is called with each remote
    /// configuration applied (`changes` as `reconfigure` returns them, then the instrumentations it
    /// turns off); an exception it raises is reported to the server as the reason it failed.
    fn start_opamp(&self, endpoint: &str, agent_version: &str, on_config: Py<PyAny>) -> bool {
        let listener = move |applied: &Applied, deactivation: &Deactivation| -> Result<(), String> {
            let told = Python::try_attach(|py| {
                let changes = changed_values(py, &applied.changes)?;
                on_config.call1(py, (changes, deactivation.all, deactivation.names.clone()))
            });
            match told {
                Some(Ok(_)) => Ok(()),
                Some(Err(e)) => Err(format!("applying the configuration failed: {e}")),
                None => Err("the interpreter is shutting down".to_owned()),
            }
        };
        self.inner.start_opamp(endpoint, agent_version, Box::new(listener))
    }

    /// What transactions started now report of their spans (for tests).
    fn shaping<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let shaping = self.inner.shaping();
        let out = PyDict::new(py);
        out.set_item("max_spans", shaping.max_spans)?;
        out.set_item("compression", shaping.compression.map(|c| (c.exact_match_max_us, c.same_kind_max_us)))?;
        out.set_item("exit_span_min_us", shaping.exit_span_min_us)?;
        out.set_item("stack_trace_min_us", shaping.stack_trace_min_us)?;
        Ok(out)
    }

    /// Queues an error. `exception` and `log` are intake objects built by the Python side; the
    /// error takes the context, labels and ids of `transaction`, under `parent_id` if given.
    #[pyo3(signature = (exception=None, log=None, culprit=None, context=None, custom=None, timestamp=None, transaction=None, parent_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn capture_error(
        &self,
        exception: Option<&Bound<'_, PyDict>>,
        log: Option<&Bound<'_, PyDict>>,
        culprit: Option<String>,
        context: Option<&Bound<'_, PyDict>>,
        custom: Option<&Bound<'_, PyDict>>,
        timestamp: Option<f64>,
        transaction: Option<&Bound<'_, Transaction>>,
        parent_id: Option<&str>,
    ) -> String {
        let mut error = ErrorRecord {
            id: oxapm_core::ids::random_error_id(),
            timestamp_us: epoch_micros(timestamp).unwrap_or_else(now_epoch_us),
            culprit: culprit.map(|c| oxapm_core::model::truncate_keyword(&c).into_owned()),
            exception: exception.map(|e| to_json(e.as_any())),
            log: log.map(|l| to_json(l.as_any())),
            ..Default::default()
        };
        if let Some(txn) = transaction {
            let txn = txn.borrow();
            let record = &txn.active.record;
            error.transaction = Some(ErrorTransaction {
                id: record.id,
                trace_id: record.trace_id,
                parent_id: parent_id.and_then(oxapm_core::ids::SpanId::from_hex).unwrap_or(record.id),
                sampled: record.sampled,
                transaction_type: record.transaction_type.clone(),
                name: record.name.clone(),
            });
            error.context = txn.context_snapshot();
            error.labels = txn.labels_snapshot();
        }
        if let Some(context) = context {
            for (key, value) in dict_to_map(context) {
                error.context.insert(key, value);
            }
        }
        if let Some(custom) = custom {
            merge_context(&mut error.context, "custom", custom, true);
        }
        let id = error.id.clone();
        self.inner.push(Event::Error(Box::new(error)));
        id
    }

    /// For `gc.callbacks`: counts each finished garbage collection by generation, for the metrics
    /// the export thread collects without the GIL. Anything unexpected is ignored.
    fn gc_callback(&self, phase: &Bound<'_, PyAny>, info: &Bound<'_, PyAny>) {
        if phase.eq("stop").unwrap_or(false) {
            if let Ok(generation) = info.get_item("generation").and_then(|g| g.extract::<usize>()) {
                self.inner.gc_collected(generation);
            }
        }
    }

    /// Whether `transaction_ignore_urls` says a request for `path` starts no transaction.
    pub(crate) fn ignores_url(&self, path: &str) -> bool {
        self.inner.policy().ignores_url(path)
    }

    /// Waits, without holding the GIL, until queued events are sent or `timeout` seconds pass.
    fn flush(&self, py: Python<'_>, timeout: f64) -> bool {
        let engine = self.inner.clone();
        py.detach(move || engine.flush(seconds(timeout)))
    }

    /// Flushes and stops the export thread within `timeout` seconds.
    fn close(&self, py: Python<'_>, timeout: f64) -> bool {
        let engine = self.inner.clone();
        py.detach(move || engine.shutdown(seconds(timeout)))
    }

    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.stats();
        let out = PyDict::new(py);
        out.set_item("queued", s.queued)?;
        out.set_item("dropped_queue_full", s.dropped_queue_full)?;
        out.set_item("sent", s.sent)?;
        out.set_item("retries", s.retries)?;
        out.set_item("dropped_buffer_full", s.dropped_buffer_full)?;
        out.set_item("failed", s.failed)?;
        out.set_item("requests", s.requests)?;
        out.set_item("failed_requests", s.failed_requests)?;
        Ok(out)
    }

    /// The OpenTelemetry resource attributes of this process (what OTLP sends).
    fn resource_attributes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for kv in &self.inner.resource.attributes {
            let value = kv.value.as_ref().and_then(|v| v.value.as_ref());
            out.set_item(&kv.key, value.map(|v| any_value(py, v)).transpose()?)?;
        }
        Ok(out)
    }

    /// Intake v2 lines held by the in-memory exporter, taken (tests).
    fn take_memory(&self) -> Vec<String> {
        self.inner.take_memory()
    }
}

fn any_value<'py>(py: Python<'py>, value: &any_value::Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        any_value::Value::StringValue(s) => s.into_pyobject(py)?.into_any(),
        any_value::Value::BoolValue(b) => b.into_pyobject(py)?.to_owned().into_any(),
        any_value::Value::IntValue(i) => i.into_pyobject(py)?.into_any(),
        any_value::Value::DoubleValue(f) => f.into_pyobject(py)?.into_any(),
        any_value::Value::ArrayValue(array) => {
            let items = array.values.iter().filter_map(|v| v.value.as_ref()).map(|v| any_value(py, v)).collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, items)?.into_any()
        }
        _ => py.None().into_bound(py),
    })
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(if s.is_finite() { s.clamp(0.0, 3600.0) } else { 0.0 })
}
