"""Trace context across process boundaries, for instrumentations: the headers an outgoing request
carries, and the parent an incoming request names. Every format ``OTEL_PROPAGATORS`` configures
(tracecontext and baggage by default) is written and read; Elastic's legacy
``elastic-apm-traceparent`` header is written when ``use_elastic_traceparent_header`` is on, and
always read, as the Elastic agent does. The engine parses and writes the headers.
"""

from __future__ import annotations

import os
import sys

from oxapm import _core, traces
from oxapm.base import get_client
from oxapm.utils.disttracing import TraceParent, TracingOptions
from oxapm.utils.lazylog import LazyLogger

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Callable, Dict, List, Optional, Tuple

logger = LazyLogger("oxapm.instrumentation")

_DEFAULT_NAMES = "tracecontext,baggage"
class _Formats:
    """The formats written and read for one configuration, with what each reads, precomputed:
    they are used on every request and every outgoing call."""

    __slots__ = ("written", "read")

    def __init__(self, written: List[_core.PropagationFormat], read: List[_core.PropagationFormat]) -> None:
        self.written = written
        # (format, the lower-case names of the headers it reads), for the formats that carry a span
        self.read = [(f, [name.lower() for name in f.extracted_headers]) for f in read if f.carries_span]


# (OTEL_PROPAGATORS, elastic header on) -> the formats
_configurations: Dict[Tuple[str, bool], _Formats] = {}


def outgoing_headers() -> List[Tuple[str, str]]:
    """The (name, value) headers that carry the current span (or transaction), and the current
    OpenTelemetry baggage, to the service called; empty outside a transaction."""
    current = traces._get_current()
    if isinstance(current, _core.Span):
        header, tracestate = current.transaction.traceparent(current.id), current.transaction.tracestate
    elif isinstance(current, _core.Transaction):
        header, tracestate = current.traceparent(), current.tracestate
    else:
        return []
    # The engine writes "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>".
    span = (int(header[3:35], 16), int(header[36:52], 16), int(header[53:55], 16), tracestate)
    baggage = _current_baggage()
    headers: Dict[str, Tuple[str, str]] = {}  # by lower-case name: formats share tracestate
    for propagation_format in _configured().written:
        for name, value in propagation_format.inject(span, baggage):
            headers.setdefault(name.lower(), (name, value))
    return list(headers.values())


def incoming_parent(header: Callable[[str], Optional[str]]) -> Optional[TraceParent]:
    """The parent named by an incoming request's headers; ``header(name)`` returns the value of
    the header named ``name`` (lower case), or None. Formats are tried in configured order; a
    malformed header is no parent."""
    for propagation_format, names in _configured().read:
        pairs = [(name, value) for name, value in zip(names, map(header, names)) if value is not None]
        if not pairs:
            continue
        span, _ = propagation_format.extract(pairs)
        if span is not None:
            trace_id, span_id, flags, tracestate = span
            return TraceParent(0, "%032x" % trace_id, "%016x" % span_id, TracingOptions(byte=flags), tracestate or None)
    return None


def _configured() -> _Formats:
    client = get_client()
    names = os.environ.get("OTEL_PROPAGATORS", "").strip() or _DEFAULT_NAMES
    elastic = bool(client.config.use_elastic_traceparent_header) if client is not None else True
    configuration = _configurations.get((names, elastic))
    if configuration is None:
        written = _formats_named(names)
        if any(f.name == "elastic" for f in written):
            configuration = _Formats(written, written)
        else:
            legacy = [_core.PropagationFormat("elastic")]
            configuration = _Formats(written + legacy if elastic else written, written + legacy)
        _configurations[(names, elastic)] = configuration
    return configuration


def _formats_named(names: str) -> List[_core.PropagationFormat]:
    """``none`` anywhere means none; a name the engine does not know is skipped with one warning
    (another package's propagator reaches OpenTelemetry's own propagation, not ours)."""
    found: List[_core.PropagationFormat] = []
    for name in dict.fromkeys(n.strip() for n in names.split(",") if n.strip()):
        if name.lower() == "none":
            return []
        try:
            found.append(_core.PropagationFormat(name))
        except ValueError:
            logger.warning("OTEL_PROPAGATORS: oxapm's instrumentations know no propagator named %r; ignored", name)
    return found


def _current_baggage() -> List[Tuple[str, str]]:
    """OpenTelemetry's baggage, when OpenTelemetry is in use (it is not imported for it)."""
    if "opentelemetry.baggage" not in sys.modules:
        return []
    from opentelemetry import baggage

    return [(str(k), str(v)) for k, v in baggage.get_all().items()]
