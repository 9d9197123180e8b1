//! The OpenTelemetry metrics SDK seen from Python: a meter provider's `MeterRegistry` and the
//! instrument handles the Python instruments extend (`class Counter(_core.CounterHandle,
//! metrics.Counter)`), so `counter.add(1, {"k": "v"})` is one call into Rust. Observable
//! instruments' callbacks are called on the export thread, through `Python::try_attach`.

use crate::engine::Engine;
use crate::otel::{attribute_value, warn_invalid};
use oxapm_core::diag;
use oxapm_core::meters::aggregation::{Aggregation, Number};
use oxapm_core::meters::attributes::AttributeSet;
use oxapm_core::meters::points::MeterScope;
use oxapm_core::meters::view::{Selector, View};
use oxapm_core::meters::{self, InstrumentDescriptor, InstrumentKind, Observer};
use oxapm_core::model::AttributeValue;
use oxapm_core::wildcard::Wildcard;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn kind_named(name: &str) -> PyResult<InstrumentKind> {
    Ok(match name {
        "counter" => InstrumentKind::Counter,
        "up_down_counter" => InstrumentKind::UpDownCounter,
        "histogram" => InstrumentKind::Histogram,
        "gauge" => InstrumentKind::Gauge,
        "observable_counter" => InstrumentKind::ObservableCounter,
        "observable_up_down_counter" => InstrumentKind::ObservableUpDownCounter,
        "observable_gauge" => InstrumentKind::ObservableGauge,
        other => return Err(PyValueError::new_err(format!("unknown instrument kind {other:?}"))),
    })
}

/// `None`, or `(name, *parameters)` as `oxapm.otel.metrics` aggregations describe themselves.
fn aggregation_from(spec: Option<&Bound<'_, PyAny>>) -> PyResult<Aggregation> {
    let Some(spec) = spec.filter(|s| !s.is_none()) else { return Ok(Aggregation::Default) };
    let name: String = spec.get_item(0)?.extract()?;
    Ok(match name.as_str() {
        "default" => Aggregation::Default,
        "drop" => Aggregation::Drop,
        "sum" => Aggregation::Sum,
        "last_value" => Aggregation::LastValue,
        "explicit_bucket_histogram" => {
            let boundaries: Vec<f64> = spec.get_item(1)?.extract()?;
            if boundaries.windows(2).any(|w| w[0] >= w[1]) || boundaries.iter().any(|b| !b.is_finite()) {
                return Err(PyValueError::new_err(format!("bucket boundaries must be finite and increasing: {boundaries:?}")));
            }
            Aggregation::ExplicitBucketHistogram { boundaries: Arc::from(boundaries), record_min_max: spec.get_item(2)?.extract()? }
        }
        "exponential_bucket_histogram" => Aggregation::ExponentialHistogram {
            max_size: spec.get_item(1)?.extract()?,
            max_scale: spec.get_item(2)?.extract()?,
            record_min_max: spec.get_item(3)?.extract()?,
        },
        other => return Err(PyValueError::new_err(format!("unknown aggregation {other:?}"))),
    })
}

fn view_from(spec: &Bound<'_, PyDict>) -> PyResult<View> {
    let get = |key: &str| -> PyResult<Option<Bound<'_, PyAny>>> { Ok(spec.get_item(key)?.filter(|v| !v.is_none())) };
    let string = |key: &str| -> PyResult<Option<String>> { get(key)?.map(|v| v.extract()).transpose() };
    let selector = Selector {
        instrument_name: string("instrument_name")?.map(|pattern| Wildcard::new(&pattern)),
        instrument_kind: string("instrument_kind")?.map(|kind| kind_named(&kind)).transpose()?,
        instrument_unit: string("instrument_unit")?,
        meter_name: string("meter_name")?,
        meter_version: string("meter_version")?,
        meter_schema_url: string("meter_schema_url")?,
    };
    Ok(View {
        selector,
        name: string("name")?,
        description: string("description")?,
        attribute_keys: get("attribute_keys")?.map(|v| v.extract()).transpose()?,
        aggregation: aggregation_from(get("aggregation")?.as_ref())?,
        cardinality_limit: get("cardinality_limit")?.map(|v| v.extract()).transpose()?,
    })
}

/// Attributes from a dict (or any mapping); invalid values are dropped, the first one reported.
fn attribute_set(attributes: Option<&Bound<'_, PyAny>>) -> AttributeSet {
    let Some(attributes) = attributes.filter(|a| !a.is_none()) else { return AttributeSet::default() };
    let mut pairs = Vec::new();
    if let Ok(dict) = attributes.cast::<PyDict>() {
        pairs.reserve(dict.len());
        for (key, value) in dict.iter() {
            push_attribute(&mut pairs, &key, &value);
        }
    } else if let Ok(items) = attributes.call_method0("items").and_then(|items| items.try_iter()) {
        for item in items.filter_map(Result::ok) {
            if let Ok((key, value)) = item.extract::<(Bound<'_, PyAny>, Bound<'_, PyAny>)>() {
                push_attribute(&mut pairs, &key, &value);
            }
        }
    }
    AttributeSet::new(pairs)
}

fn push_attribute(pairs: &mut Vec<(String, AttributeValue)>, key: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) {
    let key = match key.cast::<PyString>() {
        Ok(key) => crate::convert::text(key).into_owned(),
        Err(_) => crate::convert::display(key),
    };
    match attribute_value(value) {
        Some(value) => pairs.push((key, value)),
        None => warn_invalid(&key, value),
    }
}

/// An int stays an int (one too large for 64 bits becomes a float); anything else is a float.
fn number(amount: &Bound<'_, PyAny>) -> Option<Number> {
    if let Ok(int) = amount.cast_exact::<PyInt>() {
        return Some(match int.extract::<i64>() {
            Ok(i) => Number::Int(i),
            Err(_) => Number::Float(int.extract::<f64>().ok()?),
        });
    }
    if let Ok(float) = amount.cast::<PyFloat>() {
        return Some(Number::Float(float.value()));
    }
    amount.extract::<f64>().ok().map(Number::Float)
}

/// Only the first value that is not a number is reported.
static WARNED_NOT_A_NUMBER: AtomicBool = AtomicBool::new(false);

fn measure(instrument: &meters::Instrument, amount: &Bound<'_, PyAny>, attributes: Option<&Bound<'_, PyAny>>) {
    if !instrument.is_enabled() {
        return;
    }
    match number(amount) {
        Some(value) => instrument.record(value, attribute_set(attributes)),
        None => {
            if !WARNED_NOT_A_NUMBER.swap(true, Ordering::Relaxed) {
                diag::warn(&format!("measurement {} is not a number; ignored, and further ones silently", crate::convert::display(amount)));
            }
        }
    }
}

/// One registered instrument, as `MeterRegistry.instrument` returns it; the handles measure
/// through it.
#[pyclass(module = "oxapm._core", frozen)]
pub struct MeterInstrument {
    inner: Arc<meters::Instrument>,
}

#[pymethods]
impl MeterInstrument {
    /// Whether measurements go anywhere (not when views drop them or the name was invalid).
    #[getter]
    fn enabled(&self) -> bool {
        self.inner.is_enabled()
    }
}

/// The base of the Python instruments that measure by `add`, `record` or `set`. `_bind` points
/// it at another registered instrument (a forked child's).
macro_rules! handle {
    ($name:ident, $method:ident, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(module = "oxapm._core", subclass)]
        pub struct $name {
            inner: Arc<meters::Instrument>,
        }

        #[pymethods]
        impl $name {
            #[new]
            #[pyo3(signature = (instrument, *_args, **_kwargs))]
            fn new(instrument: &Bound<'_, MeterInstrument>, _args: &Bound<'_, PyAny>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
                $name { inner: instrument.get().inner.clone() }
            }

            /// Never raises: a value that is not a number is ignored, with one warning.
            #[pyo3(signature = (amount, attributes=None, context=None))]
            fn $method(&self, amount: &Bound<'_, PyAny>, attributes: Option<&Bound<'_, PyAny>>, context: Option<&Bound<'_, PyAny>>) {
                let _ = context; // Exemplars are not recorded.
                measure(&self.inner, amount, attributes);
            }

            fn _bind(&mut self, instrument: &Bound<'_, MeterInstrument>) {
                self.inner = instrument.get().inner.clone();
            }
        }
    };
}

handle!(CounterHandle, add, "Counters and up-down counters: `add(amount, attributes=None, context=None)`.");
handle!(HistogramHandle, record, "Histograms: `record(amount, attributes=None, context=None)`.");
handle!(GaugeHandle, set, "Gauges: `set(amount, attributes=None, context=None)`.");

/// A meter provider's instruments and views, collected by the engines it is attached to.
#[pyclass(module = "oxapm._core", frozen)]
pub struct MeterRegistry {
    inner: Arc<meters::MeterRegistry>,
}

#[pymethods]
impl MeterRegistry {
    /// `views` are dicts of the selection criteria and what the stream becomes (see
    /// `oxapm.otel.metrics.View`); `cardinality_limit` replaces the default 2000.
    #[new]
    #[pyo3(signature = (engine, views, cardinality_limit=None))]
    fn new(engine: &Bound<'_, Engine>, views: Vec<Bound<'_, PyDict>>, cardinality_limit: Option<usize>) -> PyResult<Self> {
        let mut settings = engine.get().inner.meter_settings();
        if let Some(limit) = cardinality_limit {
            settings.cardinality_limit = limit.max(1);
        }
        let views = views.iter().map(view_from).collect::<PyResult<Vec<_>>>()?;
        Ok(MeterRegistry { inner: Arc::new(meters::MeterRegistry::new(settings, views)) })
    }

    /// Has `engine`'s export thread collect this registry.
    fn attach(&self, engine: &Bound<'_, Engine>) {
        engine.get().inner.attach_meters(self.inner.clone());
    }

    fn detach(&self, engine: &Bound<'_, Engine>) {
        engine.get().inner.detach_meters(&self.inner);
    }

    /// Registers an instrument of `kind` (`counter`, `observable_gauge`, ...) of the meter
    /// `scope` (name, version, schema_url, attributes). An observable one's `observe()` is
    /// called at each collection and returns `[(value, attributes), ...]`.
    #[pyo3(signature = (kind, scope, name, unit, description, advised_boundaries=None, observe=None))]
    #[allow(clippy::too_many_arguments)]
    fn instrument(
        &self,
        kind: &str,
        scope: &Bound<'_, MeterScopeHandle>,
        name: String,
        unit: String,
        description: String,
        advised_boundaries: Option<Vec<f64>>,
        observe: Option<Py<PyAny>>,
    ) -> PyResult<MeterInstrument> {
        let descriptor = InstrumentDescriptor {
            scope: scope.get().inner.clone(),
            name,
            unit,
            description,
            kind: kind_named(kind)?,
            advised_boundaries: advised_boundaries.map(Arc::from),
        };
        let observer = observe.map(|observe| observer(observe, descriptor.name.clone()));
        Ok(MeterInstrument { inner: self.inner.instrument(descriptor, observer) })
    }
}

/// Calls `observe()` with the GIL (not once the interpreter is finalizing); an exception is a
/// warning (the Python side reports each callback's own, once).
fn observer(observe: Py<PyAny>, name: String) -> Observer {
    Box::new(move || {
        Python::try_attach(|py| {
            let observed = observe.call0(py).and_then(|list| {
                list.bind(py)
                    .try_iter()?
                    .map(|item| {
                        let (value, attributes): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
                        Ok(number(&value).map(|n| (n, attribute_set(Some(&attributes)))))
                    })
                    .collect::<PyResult<Vec<_>>>()
            });
            match observed {
                Ok(observations) => observations.into_iter().flatten().collect(),
                Err(e) => {
                    diag::warn(&format!("observing {name:?} failed: {e}"));
                    Vec::new()
                }
            }
        })
        .unwrap_or_default()
    })
}

/// A meter's instrumentation scope, made once per meter.
#[pyclass(module = "oxapm._core", frozen, name = "MeterScope")]
pub struct MeterScopeHandle {
    inner: Arc<MeterScope>,
}

#[pymethods]
impl MeterScopeHandle {
    #[new]
    #[pyo3(signature = (name, version=None, schema_url=None, attributes=None))]
    fn new(name: String, version: Option<String>, schema_url: Option<String>, attributes: Option<&Bound<'_, PyAny>>) -> Self {
        MeterScopeHandle { inner: Arc::new(MeterScope { name, version, schema_url, attributes: attribute_set(attributes) }) }
    }
}
