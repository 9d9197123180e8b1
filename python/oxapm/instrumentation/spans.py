"""Spans around instrumented calls, for instrumentations: started and ended without ever raising
(a failure is reported once, see ``base.report_failure``, and the call goes on untraced).

An exit span (a call to another service: a database, a cache, an HTTP server) is a leaf: nothing
is recorded below it. That is what keeps one call from being reported twice when instrumented
libraries sit on each other (requests on urllib3 on http.client), or when an OpenTelemetry contrib
instrumentation of the same library patched it under ours. When the contrib one patched it over
ours, its CLIENT span is current: nothing is recorded below that either (the engine sees to both).
"""

from __future__ import annotations

from oxapm import _core, traces
from oxapm.instrumentation.base import report_failure

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from contextvars import Token
    from typing import Any, Callable, Dict, Optional, Tuple

    Started = Tuple[_core.Span, Optional[Token]]


def start_span(
    instrumentation: str,
    name: str,
    span_type: str,
    subtype: Optional[str] = None,
    action: Optional[str] = None,
    context: Optional[Dict[str, Any]] = None,
) -> Optional[Started]:
    """Starts an exit span under the current span or transaction and makes it current. None when
    nothing is recorded: no transaction, an unsampled one, an exit span above, or a failure."""
    return start_exit(instrumentation, _core.begin_exit_span, name, span_type, subtype, action, context)


def start_exit(instrumentation: str, begin: Callable[..., Optional[_core.Span]], *args: Any) -> Optional[Started]:
    """Starts the exit span ``begin(parent, *args)`` makes under the current span or transaction
    (``begin`` one of the engine's ``begin_*_span``, which build a kind of span in one call), and
    makes it current; as ``start_span``."""
    try:
        parent = traces._get_current()
        if parent is None:
            return None
        span = begin(parent, *args)
        if span is None:
            return None
        return span, traces._set_current(span)
    except Exception:
        report_failure(instrumentation)
        return None


def end_span(instrumentation: str, started: Optional[Started], failed: bool = False, context: Optional[Dict[str, Dict[str, Any]]] = None) -> None:
    """Ends what ``start_span`` started: ``failed`` when the call raised; ``context`` sections
    merged in."""
    if started is None:
        return
    span, token = started
    try:
        if token is not None:
            leave(token)
    except Exception:
        report_failure(instrumentation)
    try:
        for key, data in (context or {}).items():
            span.update_context(key, data)
        span._end(failed)
    except Exception:
        report_failure(instrumentation)


def leave(token: Token) -> None:
    """Makes what was current before a span started current again."""
    try:
        traces._reset_current(token)
    except (ValueError, RuntimeError):  # left in another context (a callback, a thread)
        traces._restore(token)
