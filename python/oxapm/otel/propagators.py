"""OpenTelemetry propagators whose headers are parsed and written by the engine: one class per
``OTEL_PROPAGATORS`` name (registered as ``opentelemetry_propagator`` entry points), and
:func:`propagator_from_names`, the composite propagator that variable selects.

Each extract or inject makes one engine call. A malformed header yields the context it was given
(so a new trace starts), never an exception and never a warning per request.
"""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Any, Dict, List, Optional, Set, Tuple, Type

from opentelemetry import baggage, trace
from opentelemetry.context import Context, get_current
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import CarrierT, Getter, Setter, TextMapPropagator, default_getter, default_setter

from oxapm import _core

_logger = logging.getLogger("oxapm")

DEFAULT_NAMES = "tracecontext,baggage"


class _EnginePropagator(TextMapPropagator):
    """A propagator for the engine format named ``format_name``."""

    format_name = ""

    def __init__(self) -> None:
        self._format = _core.PropagationFormat(self.format_name)
        self._reads = self._format.extracted_headers
        self._reads_lower = frozenset(name.lower() for name in self._reads)
        self._prefix = self._format.baggage_prefix
        self._fields = self._format.injected_headers

    def extract(self, carrier: CarrierT, context: Optional[Context] = None, getter: Getter[CarrierT] = default_getter) -> Context:
        if context is None:
            # As upstream: a trace header starts from an empty context, baggage adds to the current one.
            context = Context() if self._format.carries_span else get_current()
        try:
            headers = self._read(carrier, getter)
            if not headers:
                return context
            span, entries = self._format.extract(headers)
        except Exception:  # a getter or carrier we cannot read: as if the headers were absent
            _logger.debug("%s propagator could not read the carrier", self.format_name, exc_info=True)
            return context
        if span is not None:
            trace_id, span_id, flags, tracestate = span
            span_context = trace.SpanContext(
                trace_id,
                span_id,
                is_remote=True,
                trace_flags=trace.TraceFlags(flags),
                trace_state=trace.TraceState.from_header([tracestate]) if tracestate else None,
            )
            context = trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)
        for key, value in entries:
            context = baggage.set_baggage(key, value, context)
        return context

    def _read(self, carrier: CarrierT, getter: Getter[CarrierT]) -> List[Tuple[str, str]]:
        """The (name, value) headers the format reads. Names are looked up as upstream spells them,
        then, through the carrier's keys, in any other case (a plain dict does not fold case) and
        with the format's baggage prefix."""
        headers: List[Tuple[str, str]] = []
        found = set()
        for name in self._reads:
            if _add(headers, name, getter.get(carrier, name)):
                found.add(name.lower())
        try:
            keys = getter.keys(carrier)
        except Exception:  # some getters can only get: the names as spelled above will do
            keys = []
        for key in keys:
            lower = key.lower()
            if (lower in self._reads_lower and lower not in found) or (self._prefix and lower.startswith(self._prefix)):
                _add(headers, key, getter.get(carrier, key))
        return headers

    def inject(self, carrier: CarrierT, context: Optional[Context] = None, setter: Setter[CarrierT] = default_setter) -> None:
        span = None
        if self._format.carries_span:
            current = trace.get_current_span(context)
            span_context = current.get_span_context()
            if isinstance(current, _core.Span):
                current._mark_propagated()
            if span_context.is_valid:
                span = (span_context.trace_id, span_context.span_id, span_context.trace_flags, span_context.trace_state.to_header())
        entries = [(str(k), str(v)) for k, v in baggage.get_all(context).items()] if self._format.carries_baggage else []
        if span is None and not entries:
            return
        try:
            headers = self._format.inject(span, entries)
        except Exception:
            _logger.debug("%s propagator could not write the context", self.format_name, exc_info=True)
            return
        for name, value in headers:
            setter.set(carrier, name, value)

    @property
    def fields(self) -> Set[str]:
        return set(self._fields)


def _add(headers: List[Tuple[str, str]], name: str, values: Any) -> bool:
    """Appends each value a getter returned (a list, or a bare string from a lax getter)."""
    if not values:
        return False
    for value in [values] if isinstance(values, str) else values:
        headers.append((name, value))
    return True


class TraceContextPropagator(_EnginePropagator):
    """W3C ``traceparent`` and ``tracestate``; the trace flags travel as they are (Level 2)."""

    format_name = "tracecontext"


class BaggagePropagator(_EnginePropagator):
    """W3C ``baggage``."""

    format_name = "baggage"


class B3SinglePropagator(_EnginePropagator):
    """Zipkin B3, writing the single ``b3`` header; reads either form."""

    format_name = "b3"


class B3MultiPropagator(_EnginePropagator):
    """Zipkin B3, writing the ``X-B3-*`` headers; reads either form."""

    format_name = "b3multi"


class JaegerPropagator(_EnginePropagator):
    """Jaeger ``uber-trace-id``, and baggage in ``uberctx-*`` headers."""

    format_name = "jaeger"


class XRayPropagator(_EnginePropagator):
    """AWS X-Ray ``X-Amzn-Trace-Id``."""

    format_name = "xray"


class OTTracePropagator(_EnginePropagator):
    """OpenTracing ``ot-tracer-*``, and baggage in ``ot-baggage-*`` headers."""

    format_name = "ottrace"


class ElasticPropagator(_EnginePropagator):
    """Elastic's legacy ``elastic-apm-traceparent``, with ``tracestate``."""

    format_name = "elastic"


PROPAGATORS: Dict[str, Type[_EnginePropagator]] = {
    cls.format_name: cls
    for cls in (
        TraceContextPropagator,
        BaggagePropagator,
        B3SinglePropagator,
        B3MultiPropagator,
        JaegerPropagator,
        XRayPropagator,
        OTTracePropagator,
        ElasticPropagator,
    )
}


def propagator_from_names(value: str) -> CompositePropagator:
    """The propagator an ``OTEL_PROPAGATORS`` value names: ours by name, another package's
    ``opentelemetry_propagator`` entry point otherwise; ``none`` anywhere means none at all, an
    empty value the default. Names nobody provides are skipped, with one warning."""
    names = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip())) or DEFAULT_NAMES.split(",")
    if any(name.lower() == "none" for name in names):
        return CompositePropagator([])
    propagators: List[TextMapPropagator] = []
    unknown = []
    for name in names:
        if name in PROPAGATORS:
            propagators.append(PROPAGATORS[name]())
            continue
        entry_point = _entry_point(name)
        if entry_point is None:
            unknown.append(name)
            continue
        try:
            propagators.append(entry_point.load()())
        except Exception:
            _logger.warning("OTEL_PROPAGATORS: the %r propagator failed to load; ignored", name, exc_info=True)
    if unknown:
        _logger.warning("OTEL_PROPAGATORS: no propagator is named %s; ignored", ", ".join(map(repr, unknown)))
    return CompositePropagator(propagators)


def _entry_point(name: str) -> Optional[importlib.metadata.EntryPoint]:
    found: Any = importlib.metadata.entry_points()
    group = found.select(group="opentelemetry_propagator") if hasattr(found, "select") else found.get("opentelemetry_propagator", ())  # 3.9: a dict
    return next((entry_point for entry_point in group if entry_point.name == name), None)
