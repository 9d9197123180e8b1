"""The OpenTelemetry metrics SDK on the oxapm engine: ``MeterProvider``, its meters and
instruments, and the ``View`` and aggregation classes that shape what they report.

The engine aggregates (``crates/oxapm-core/src/meters``): a synchronous instrument's ``add``,
``record`` or ``set`` is one call into Rust. Observable instruments' callbacks are called on the
engine's export thread at each collection (every ``metrics_interval`` /
``OTEL_METRIC_EXPORT_INTERVAL``, and at each flush and close), never on the application's threads.
"""

from __future__ import annotations

import os
import threading
from types import GeneratorType

from opentelemetry import metrics as metrics_api
from opentelemetry.metrics import CallbackOptions, Observation

from oxapm import _core
from oxapm.base import _weakly
from oxapm.utils.lazylog import LazyLogger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

logger = LazyLogger("oxapm")

# --- Views and aggregations (the names of opentelemetry-sdk's, without importing it) -------------


class Aggregation:
    """What a view makes of the measurements of the instruments it selects."""

    _spec: Tuple[Any, ...] = ("default",)


class DefaultAggregation(Aggregation):
    """Sums for counters, the last value for gauges, explicit-bucket histograms for histograms."""


class DropAggregation(Aggregation):
    _spec = ("drop",)


class SumAggregation(Aggregation):
    _spec = ("sum",)


class LastValueAggregation(Aggregation):
    _spec = ("last_value",)


class ExplicitBucketHistogramAggregation(Aggregation):
    """Buckets (-inf, b0], (b0, b1], ..., (bn, +inf); by default the SDK's boundaries."""

    def __init__(self, boundaries: Optional[Sequence[float]] = None, record_min_max: bool = True):
        bounds = (0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0, 10000.0)
        self._spec = ("explicit_bucket_histogram", [float(b) for b in (bounds if boundaries is None else boundaries)], bool(record_min_max))


class ExponentialBucketHistogramAggregation(Aggregation):
    """A base-2 exponential histogram of at most ``max_size`` buckets per sign, starting at
    ``max_scale``."""

    def __init__(self, max_size: int = 160, max_scale: int = 20):
        self._spec = ("exponential_bucket_histogram", int(max_size), int(max_scale), True)


# The API classes, most specific first, and the engine's names for them.
_KINDS = (
    (metrics_api.ObservableUpDownCounter, "observable_up_down_counter"),
    (metrics_api.ObservableCounter, "observable_counter"),
    (metrics_api.ObservableGauge, "observable_gauge"),
    (metrics_api.UpDownCounter, "up_down_counter"),
    (metrics_api.Counter, "counter"),
    (metrics_api.Histogram, "histogram"),
    (metrics_api._Gauge, "gauge"),
)


def _kind_of(instrument_type: Optional[type]) -> Optional[str]:
    if instrument_type is None:
        return None
    for api_class, kind in _KINDS:
        if issubclass(instrument_type, api_class):
            return kind
    raise ValueError("%r is not an OpenTelemetry instrument type" % (instrument_type,))


class View:
    """Selects instruments (every criterion given must match; ``instrument_name`` may use ``*``)
    and says what their stream becomes: another ``name`` or ``description``, only the
    ``attribute_keys`` listed, another ``aggregation``, another ``cardinality_limit``."""

    def __init__(
        self,
        instrument_type: Optional[type] = None,
        instrument_name: Optional[str] = None,
        meter_name: Optional[str] = None,
        meter_version: Optional[str] = None,
        meter_schema_url: Optional[str] = None,
        name: Optional[str] = None,
        description: Optional[str] = None,
        attribute_keys: Optional[Iterable[str]] = None,
        aggregation: Optional[Aggregation] = None,
        instrument_unit: Optional[str] = None,
        cardinality_limit: Optional[int] = None,
    ):
        criteria = (instrument_type, instrument_name, meter_name, meter_version, meter_schema_url, instrument_unit)
        if all(criterion is None for criterion in criteria):
            raise ValueError("a View needs at least one instrument selection criterion")
        self._spec: Dict[str, Any] = {
            "instrument_kind": _kind_of(instrument_type),
            "instrument_name": instrument_name,
            "instrument_unit": instrument_unit,
            "meter_name": meter_name,
            "meter_version": meter_version,
            "meter_schema_url": meter_schema_url,
            "name": name,
            "description": description,
            "attribute_keys": None if attribute_keys is None else [str(k) for k in attribute_keys],
            "aggregation": aggregation._spec if aggregation is not None else None,
            "cardinality_limit": cardinality_limit,
        }


# --- Instruments ----------------------------------------------------------------------------------


class _Described:
    """The name, unit and description every instrument shows, and its provider, which an
    instrument keeps alive: the provider moves it to a forked child's engine."""

    _provider: Optional[MeterProvider] = None

    def _describe(self, name: str, unit: str, description: str) -> None:
        self.name = name
        self.unit = unit
        self.description = description


class _Synchronous(_Described):
    """The constructor of the synchronous instruments: their ``_core`` base class measures into
    ``instrument``, the engine's."""

    def __init__(self, instrument: _core.MeterInstrument, name: str, unit: str = "", description: str = ""):
        self._describe(name, unit, description)


# _Synchronous comes before the API class, whose abstract __init__ it stands in for.
class Counter(_core.CounterHandle, _Synchronous, metrics_api.Counter):
    pass


class UpDownCounter(_core.CounterHandle, _Synchronous, metrics_api.UpDownCounter):
    pass


class Histogram(_core.HistogramHandle, _Synchronous, metrics_api.Histogram):
    pass


class Gauge(_core.GaugeHandle, _Synchronous, metrics_api._Gauge):
    pass


class _Observable(_Described):
    """Calls its callbacks when the engine collects: each one's exception is logged once, and the
    other callbacks still run."""

    def __init__(self, name: str, callbacks: Optional[Sequence[Any]], unit: str = "", description: str = ""):
        self._describe(name, unit, description)
        self._callbacks: List[Callable[[CallbackOptions], Iterable[Observation]]] = [_as_function(c) for c in callbacks or ()]
        self._failed: set = set()

    def _observe(self) -> List[Tuple[Any, Any]]:
        out: List[Tuple[Any, Any]] = []
        options = CallbackOptions()
        for callback in self._callbacks:
            try:
                out.extend((observation.value, observation.attributes) for observation in callback(options) or ())
            except Exception:
                if callback not in self._failed:
                    self._failed.add(callback)
                    logger.warning("callback %r of %s failed; its observations are missing (logged once)", callback, self.name, exc_info=True)
        return out


def _as_function(callback: Any) -> Callable[[CallbackOptions], Iterable[Observation]]:
    """A generator callback is sent the options and yields observations, as in the SDK."""
    if not isinstance(callback, GeneratorType):
        return callback
    next(callback)

    def send(options: CallbackOptions) -> Iterable[Observation]:
        try:
            return callback.send(options)
        except StopIteration:
            return ()

    return send


class ObservableCounter(_Observable, metrics_api.ObservableCounter):
    pass


class ObservableUpDownCounter(_Observable, metrics_api.ObservableUpDownCounter):
    pass


class ObservableGauge(_Observable, metrics_api.ObservableGauge):
    pass


# --- Meters and the provider ---------------------------------------------------------------------


class Meter(metrics_api.Meter):
    """The instruments of one instrumentation scope."""

    def __init__(self, provider: MeterProvider, name: str, version: Optional[str], schema_url: Optional[str], attributes: Any):
        super().__init__(name, version, schema_url)
        self._provider = provider
        self._scope = _core.MeterScope(name, version, schema_url, dict(attributes) if attributes else None)
        self._key = (name, version, schema_url, tuple(sorted(dict(attributes or {}).items())))

    def _sync(self, cls: type, kind: str, name: str, unit: str, description: str, boundaries: Optional[Sequence[float]] = None) -> Any:
        return self._provider._synchronous(self, cls, kind, str(name), unit or "", description or "", boundaries)

    def create_counter(self, name: str, unit: str = "", description: str = "") -> Counter:
        return self._sync(Counter, "counter", name, unit, description)

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> UpDownCounter:
        return self._sync(UpDownCounter, "up_down_counter", name, unit, description)

    def create_histogram(
        self, name: str, unit: str = "", description: str = "", *, explicit_bucket_boundaries_advisory: Optional[Sequence[float]] = None
    ) -> Histogram:
        boundaries = None if explicit_bucket_boundaries_advisory is None else [float(b) for b in explicit_bucket_boundaries_advisory]
        return self._sync(Histogram, "histogram", name, unit, description, boundaries)

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> Gauge:  # type: ignore[override]
        return self._sync(Gauge, "gauge", name, unit, description)

    def _observable(self, cls: type, kind: str, name: str, callbacks: Any, unit: str, description: str) -> Any:
        instrument = cls(str(name), callbacks, unit or "", description or "")
        self._provider._register_observable(self, kind, instrument)
        return instrument

    def create_observable_counter(self, name: str, callbacks: Any = None, unit: str = "", description: str = "") -> ObservableCounter:
        return self._observable(ObservableCounter, "observable_counter", name, callbacks, unit, description)

    def create_observable_up_down_counter(
        self, name: str, callbacks: Any = None, unit: str = "", description: str = ""
    ) -> ObservableUpDownCounter:
        return self._observable(ObservableUpDownCounter, "observable_up_down_counter", name, callbacks, unit, description)

    def create_observable_gauge(self, name: str, callbacks: Any = None, unit: str = "", description: str = "") -> ObservableGauge:
        return self._observable(ObservableGauge, "observable_gauge", name, callbacks, unit, description)


class MeterProvider(metrics_api.MeterProvider):
    """Meters whose measurements an oxapm ``Client``'s engine aggregates and exports (over
    intake as metricsets, over OTLP when metrics go there): the given client's, else the current
    one's, else a new one's configured from the environment (and ``config``). ``views`` shape
    the streams; ``cardinality_limit`` (default 2000) bounds the series of each. With metrics
    off (``metrics_interval`` 0) or the client disabled, meters are no-ops."""

    def __init__(
        self,
        client: Optional[Any] = None,
        config: Optional[Dict[str, Any]] = None,
        views: Sequence[View] = (),
        cardinality_limit: Optional[int] = None,
    ):
        import oxapm

        self._client = client or oxapm.get_client() or oxapm.Client(config)
        self._views = [view._spec for view in views]
        self._cardinality_limit = cardinality_limit
        self._lock = threading.Lock()
        self._meters: Dict[Tuple[Any, ...], Meter] = {}
        # (meter, kind, name, unit, description, boundaries) -> the instrument: asked again, the
        # same one is returned; kept to be registered again in a forked child.
        self._synchronous_instruments: Dict[Tuple[Any, ...], Any] = {}
        self._observable_instruments: List[Tuple[Meter, str, _Observable]] = []
        self._shut_down = False
        self._registry = self._new_registry()
        os.register_at_fork(after_in_child=_weakly(self, "_after_fork"))

    @property
    def client(self) -> Any:
        return self._client

    def _new_registry(self) -> Optional[_core.MeterRegistry]:
        engine = self._client._engine
        # Disabled (ELASTIC_APM_ENABLED=false, OTEL_SDK_DISABLED=true), or metrics off (metrics_interval 0).
        if engine is None or not self._client.config.metrics_interval:
            return None
        registry = _core.MeterRegistry(engine, self._views, self._cardinality_limit)
        registry.attach(engine)
        return registry

    def get_meter(self, name: str, version: Optional[str] = None, schema_url: Optional[str] = None, attributes: Any = None) -> metrics_api.Meter:
        if self._registry is None or self._shut_down:
            return metrics_api.NoOpMeter(name, version=version, schema_url=schema_url)
        name = str(name or "")
        if not name:
            logger.warning("get_meter() called without an instrumentation scope name; using an empty one")
        key = (name, version, schema_url, tuple(sorted(dict(attributes or {}).items())))
        with self._lock:
            meter = self._meters.get(key)
            if meter is None:
                meter = self._meters[key] = Meter(self, name, version, schema_url, attributes)
        return meter

    def _synchronous(self, meter: Meter, cls: type, kind: str, name: str, unit: str, description: str, boundaries: Any) -> Any:
        key = (meter._key, kind, name.lower(), unit, description, None if boundaries is None else tuple(boundaries))
        with self._lock:
            instrument = self._synchronous_instruments.get(key)
            if instrument is None:
                registered = self._registry.instrument(kind, meter._scope, name, unit, description, boundaries)
                instrument = self._synchronous_instruments[key] = cls(registered, name, unit, description)
                instrument._provider = self
        return instrument

    def _register_observable(self, meter: Meter, kind: str, instrument: _Observable) -> None:
        instrument._provider = self
        with self._lock:
            self._registry.instrument(kind, meter._scope, instrument.name, instrument.unit, instrument.description, None, instrument._observe)
            self._observable_instruments.append((meter, kind, instrument))

    def _after_fork(self) -> None:
        """The client gave the child a fresh engine: the instruments measure into a fresh registry
        attached to it, so nothing the parent measured is reported again by the child."""
        self._lock = threading.Lock()
        if self._shut_down:
            return
        self._registry = self._new_registry()
        if self._registry is None:
            return
        for (meter_key, kind, _, unit, description, boundaries), instrument in self._synchronous_instruments.items():
            meter = self._meters[meter_key]
            advised = None if boundaries is None else list(boundaries)
            instrument._bind(self._registry.instrument(kind, meter._scope, instrument.name, unit, description, advised))
        for meter, kind, observable in self._observable_instruments:
            self._registry.instrument(kind, meter._scope, observable.name, observable.unit, observable.description, None, observable._observe)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Collects and sends now; returns whether it was sent within the timeout."""
        return self._client.flush(timeout_millis / 1000.0)

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Sends what was measured; nothing measured afterwards is reported. The client stays
        open (the tracer provider may share it)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.force_flush(timeout_millis)
        engine = self._client._engine
        if self._registry is not None and engine is not None:
            self._registry.detach(engine)


__all__ = [
    "Aggregation",
    "Counter",
    "DefaultAggregation",
    "DropAggregation",
    "ExplicitBucketHistogramAggregation",
    "ExponentialBucketHistogramAggregation",
    "Gauge",
    "Histogram",
    "LastValueAggregation",
    "Meter",
    "MeterProvider",
    "ObservableCounter",
    "ObservableGauge",
    "ObservableUpDownCounter",
    "SumAggregation",
    "UpDownCounter",
    "View",
]
