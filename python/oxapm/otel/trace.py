"""The OpenTelemetry trace SDK on the oxapm engine: ``TracerProvider``, ``Tracer`` and the spans
they start, which are oxapm's own transactions and spans (see ``oxapm.traces``)."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

from opentelemetry import trace as trace_api
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.status import Status, StatusCode

from oxapm import _core, traces
from oxapm.base import _weakly
from oxapm.otel.context import register_span_types
from oxapm.otel.readable import ReadableSpan, Resource

logger = logging.getLogger("oxapm")

_INTERNAL = trace_api.SpanKind.INTERNAL
_NonRecordingSpan = trace_api.NonRecordingSpan
_get_current = traces._current.get
_set_current = traces._current.set
_reset_current = traces._current.reset

register_span_types()


def _use_one_context() -> None:
    """Puts oxapm's runtime context in place of the API's default one (unless
    ``OTEL_PYTHON_CONTEXT=oxapm`` already did): the API reads it through this module attribute."""
    from opentelemetry import context as context_api

    from oxapm.otel.context import OxapmRuntimeContext

    if not isinstance(context_api._RUNTIME_CONTEXT, OxapmRuntimeContext):
        context_api._RUNTIME_CONTEXT = OxapmRuntimeContext()  # type: ignore[attr-defined]


def _kind_value(kind: Any) -> int:
    return 0 if kind is _INTERNAL or kind is None else int(kind.value)


class Tracer(trace_api.Tracer):
    """Spans of one instrumentation scope. ``start_as_current_span`` returns a plain context
    manager (not the API's generator-based one): it is the hot path of instrumented code."""

    def __init__(self, core: _core.Tracer, provider: TracerProvider):
        self._start = core.start
        # Kept alive by its tracers: the provider moves them to a forked child's engine.
        self._provider = provider

    def _rebind(self, core: _core.Tracer) -> None:
        self._start = core.start

    def start_span(
        self,
        name: str,
        context: Optional[Any] = None,
        kind: trace_api.SpanKind = _INTERNAL,
        attributes: Any = None,
        links: Any = None,
        start_time: Optional[int] = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        parent = _get_current() if context is None else context.get(_SPAN_KEY)
        try:
            span = self._start(parent, str(name), _kind_value(kind), attributes, links, start_time)
        except Exception:  # a bad argument must not break the traced code
            logger.warning("could not start span %r; a non-recording span is used", name, exc_info=True)
            span = None
        if span is None:
            return _NonRecordingSpan(parent.get_span_context() if parent is not None else trace_api.INVALID_SPAN_CONTEXT)
        return span

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Optional[Any] = None,
        kind: trace_api.SpanKind = _INTERNAL,
        attributes: Any = None,
        links: Any = None,
        start_time: Optional[int] = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> "_CurrentSpan":
        return _CurrentSpan(self, (name, context, kind, attributes, links, start_time), record_exception, set_status_on_exception, end_on_exit)


class _CurrentSpan:
    """``with tracer.start_as_current_span(...) as span``, and the same as a decorator."""

    __slots__ = ("_tracer", "_args", "_flags", "_span", "_token")

    def __init__(self, tracer: Tracer, args: tuple, record_exception: bool, set_status_on_exception: bool, end_on_exit: bool):
        self._tracer = tracer
        self._args = args
        self._flags = (record_exception, set_status_on_exception, end_on_exit)

    def __enter__(self) -> trace_api.Span:
        # start_span, inlined: one Python call less on the hot path.
        name, context, kind, attributes, links, start_time = self._args
        parent = _get_current() if context is None else context.get(_SPAN_KEY)
        try:
            span = self._tracer._start(parent, name, 0 if kind is _INTERNAL else kind.value, attributes, links, start_time)
        except Exception:  # arguments of unexpected types: the forgiving path
            span = self._tracer.start_span(*self._args)
        if span is None:
            span = _NonRecordingSpan(parent.get_span_context())
        self._span = span
        self._token = _set_current(span)
        return span

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            _reset_current(self._token)
        except (ValueError, RuntimeError):
            traces._restore(self._token)
        span = self._span
        record_exception, set_status, end_on_exit = self._flags
        if exc is not None and span.is_recording():
            if record_exception:
                span.record_exception(exc)
            if set_status:
                span.set_status(Status(StatusCode.ERROR, "%s: %s" % (type(exc).__name__, exc)))
        if end_on_exit:
            span.end()
        return False

    def __call__(self, func):
        import functools

        @functools.wraps(func)
        def decorated(*args, **kwargs):
            with _CurrentSpan(self._tracer, self._args, *self._flags):
                return func(*args, **kwargs)

        return decorated


class TracerProvider(trace_api.TracerProvider):
    """Tracers whose spans go to an oxapm ``Client``'s engine: the given one, else the current
    one, else a new one configured from the environment (and ``config``)."""

    def __init__(self, client: Optional[Any] = None, config: Optional[Dict[str, Any]] = None):
        import oxapm

        _use_one_context()
        self._client = client or oxapm.get_client() or oxapm.Client(config)
        self._tracers: Dict[Tuple[Any, ...], Tracer] = {}
        self._processors: List[Any] = []
        self._lock = threading.Lock()
        self._resource: Optional[Resource] = None
        os.register_at_fork(after_in_child=_weakly(self, "_after_fork"))

    @property
    def client(self) -> Any:
        return self._client

    @property
    def resource(self) -> Resource:
        if self._resource is None:
            engine = self._client._engine
            self._resource = Resource(engine.resource_attributes() if engine is not None else {})
        return self._resource

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: Optional[str] = None,
        schema_url: Optional[str] = None,
        attributes: Optional[Any] = None,
    ) -> trace_api.Tracer:
        engine = self._client._engine
        if engine is None:  # disabled (ELASTIC_APM_ENABLED=false, OTEL_SDK_DISABLED=true)
            return trace_api.NoOpTracer()
        name = str(instrumenting_module_name or "")
        if not name:
            logger.warning("get_tracer() called without an instrumentation scope name; using an empty one")
        key = (name, instrumenting_library_version, schema_url, tuple(sorted(dict(attributes or {}).items())))
        with self._lock:
            tracer = self._tracers.get(key)
            if tracer is None:
                tracer = Tracer(self._core_tracer(engine, key), self)
                self._tracers[key] = tracer
        return tracer

    def _core_tracer(self, engine: Any, key: Tuple[Any, ...]) -> _core.Tracer:
        name, version, schema_url, attributes = key
        return _core.Tracer(engine, traces.Transaction, name, version, schema_url, dict(attributes) or None)

    def _after_fork(self) -> None:
        """The client gave the child a fresh engine; tracers start their spans on it."""
        engine = self._client._engine
        if engine is not None:
            for key, tracer in self._tracers.items():
                tracer._rebind(self._core_tracer(engine, key))

    def add_span_processor(self, span_processor: Any) -> None:
        """``span_processor.on_start(span, parent_context)`` and ``on_end(readable_span)`` are
        called for every span of either API from now on."""
        with self._lock:
            self._processors.append(span_processor)
            _core.set_span_hooks(self._on_start, self._on_end)

    def _on_start(self, span: Any) -> None:
        for processor in self._processors:
            try:
                processor.on_start(span, parent_context=None)
            except Exception:
                logger.warning("span processor %r failed in on_start", processor, exc_info=True)

    def _on_end(self, fields: Dict[str, Any]) -> None:
        readable = ReadableSpan(fields, self.resource)
        for processor in self._processors:
            try:
                processor.on_end(readable)
            except Exception:
                logger.warning("span processor %r failed in on_end", processor, exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flushed = all(_call(processor, "force_flush", timeout_millis) is not False for processor in self._processors)
        return self._client.flush(timeout_millis / 1000.0) and flushed

    def shutdown(self) -> None:
        with self._lock:
            processors, self._processors = self._processors, []
            _core.set_span_hooks(None, None)
        for processor in processors:
            _call(processor, "shutdown")
        self._client.close()


def _call(processor: Any, method: str, *args: Any) -> Any:
    try:
        return getattr(processor, method)(*args)
    except Exception:
        logger.warning("span processor %r failed in %s", processor, method, exc_info=True)
        return False


__all__: Sequence[str] = ["Tracer", "TracerProvider"]
