"""Spans around instrumented calls, for instrumentations: started and ended without ever raising
(a failure is reported once, see ``base.report_failure``, and the call goes on untraced).

An exit span (a call to another service: a database, a cache, an HTTP server) is a leaf: nothing
is recorded below it. That is what keeps one call from being reported twice when instrumented
libraries sit on each other (requests on urllib3 on http.client), or when an OpenTelemetry contrib
instrumentation of the same library patched it under ours. When the contrib one patched it over
ours, its CLIENT span is current: nothing is recorded below that either.
"""

from __future__ import annotations

from oxapm import _core, traces
from oxapm.instrumentation.base import report_failure

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from contextvars import Token
    from typing import Any, Dict, Optional, Tuple

    Started = Tuple[_core.Span, Optional[Token]]


def start_span(
    instrumentation: str,
    name: str,
    span_type: str,
    subtype: Optional[str] = None,
    action: Optional[str] = None,
    context: Optional[Dict[str, Any]] = None,
    exit: bool = True,
) -> Optional[Started]:
    """Starts a span under the current span or transaction and makes it current. None when nothing
    is recorded: no transaction, an unsampled one, an exit span above, or a failure."""
    try:
        parent = traces._get_current()
        if parent is None or _an_otel_client_span(parent):
            return None
        span = _core.begin_span(parent, (name, span_type, subtype, action, None, exit, context, None))
        if span is None:
            return None
        return span, traces._set_current(span)
    except Exception:
        report_failure(instrumentation)
        return None


def end_span(
    instrumentation: str,
    started: Optional[Started],
    failed: bool = False,
    outcome: Optional[str] = None,
    context: Optional[Dict[str, Dict[str, Any]]] = None,
) -> None:
    """Ends what ``start_span`` started: ``failed`` when the call raised; ``outcome`` (success or
    failure) when the call's result tells (an HTTP status); ``context`` sections merged in."""
    if started is None:
        return
    span, token = started
    try:
        if token is not None:
            _leave(token)
        for key, data in (context or {}).items():
            span.update_context(key, data)
        if outcome is not None:
            span.outcome = outcome
        span._end(failed)
    except Exception:
        report_failure(instrumentation)


def detach(instrumentation: str, started: Optional[Started]) -> Optional[Started]:
    """Makes the parent of what ``start_span`` started current again while the span stays open,
    for a call answered through another one (http.client's ``request``, then ``getresponse``):
    what the application does in between is not below it. ``end_span`` takes what it returns."""
    if started is None:
        return None
    span, token = started
    try:
        if token is not None:
            _leave(token)
    except Exception:
        report_failure(instrumentation)
    return span, None


def _leave(token: Token) -> None:
    try:
        traces._reset_current(token)
    except (ValueError, RuntimeError):  # left in another context (a callback, a thread)
        traces._restore(token)


def _an_otel_client_span(parent: Any) -> bool:
    """Whether ``parent`` is a CLIENT span started through the OpenTelemetry API."""
    if isinstance(parent, _core.Span):
        elastic_type = parent.type
    elif isinstance(parent, _core.Transaction):
        elastic_type = parent.transaction_type
    else:  # a span the engine does not record (remote, unsampled): nothing is recorded below it
        return False
    # What the OpenTelemetry API starts has type "unknown" until the export maps it: only those
    # are asked their kind, which imports opentelemetry.
    return elastic_type == "unknown" and parent.kind.name == "CLIENT"
