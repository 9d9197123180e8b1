"""Trace context across process boundaries, for instrumentations: the headers an outgoing request
carries, and the parent an incoming request names. Every format ``OTEL_PROPAGATORS`` configures
(tracecontext and baggage by default) is written and read; Elastic's legacy
``elastic-apm-traceparent`` header is written when ``use_elastic_traceparent_header`` is on, and
always read, as the Elastic agent does. The engine parses and writes the headers, in one call per
request.
"""

from __future__ import annotations

import os
import sys

from oxapm import _core, traces
from oxapm.base import get_client
from oxapm.utils.lazylog import LazyLogger

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Dict, List, Optional, Tuple

    from oxapm.base import Client

logger = LazyLogger("oxapm.instrumentation")

_DEFAULT_NAMES = "tracecontext,baggage"


class _Formats:
    """The formats written and read for one client."""

    __slots__ = ("written", "read")

    def __init__(self, written: List[_core.PropagationFormat], read: List[_core.PropagationFormat]) -> None:
        self.written = written
        self.read = read


# The client the formats were read for, and its formats: they are used on every request and every
# outgoing call, and the environment is read once per client.
_configuration: Optional[Tuple[Optional[Client], _Formats]] = None


def outgoing_headers() -> List[Tuple[str, str]]:
    """The (name, value) headers that carry the current span (or transaction), and the current
    OpenTelemetry baggage, to the service called; empty outside a transaction. (The engine reads
    the formats, ``_configured()``, and the baggage, ``_current_baggage()``.)"""
    current = traces._get_current()
    if current is None:
        return []
    return _core.outgoing_headers(current)


def incoming_parent(headers: Dict[str, str]) -> Optional[Tuple[str, str]]:
    """The parent named by an incoming request's ``headers`` (by lower-case name), as
    ``(traceparent, tracestate)`` headers: formats are tried in configured order; a malformed
    header is no parent."""
    return _core.incoming_parent(_configured().read, headers)


def _configured() -> _Formats:
    """The formats of the current client: those ``OTEL_PROPAGATORS`` names when the client first
    propagates, and the legacy Elastic header."""
    global _configuration
    client = get_client()
    configuration = _configuration
    if configuration is not None and configuration[0] is client:
        return configuration[1]
    names = os.environ.get("OTEL_PROPAGATORS", "").strip() or _DEFAULT_NAMES
    elastic = bool(client.config.use_elastic_traceparent_header) if client is not None else True
    written = _formats_named(names)
    if any(f.name == "elastic" for f in written):
        formats = _Formats(written, written)
    else:
        legacy = [_core.PropagationFormat("elastic")]
        formats = _Formats(written + legacy if elastic else written, written + legacy)
    _configuration = (client, formats)
    return formats


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
