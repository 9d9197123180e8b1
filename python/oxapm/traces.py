"""The current transaction and span of each execution context, and the span API.

One ``ContextVar`` holds the innermost active object: a ``Transaction`` or a ``Span`` (whose
``transaction`` is known), or, when the OpenTelemetry API attached one, another span object (a
remote parent, a non-recording span). Both APIs read and write it, so either one's spans are the
parents of the other's. Threads start empty; asyncio tasks inherit a copy when created, so
concurrent requests never see each other's spans.
"""

from __future__ import annotations

import contextvars

from oxapm import _core
from oxapm.conf.constants import OUTCOME
from oxapm.utils.disttracing import TraceParent
from oxapm.utils.lazylog import LazyLogger

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, List, Optional, Union

logger = LazyLogger("oxapm.traces")

Span = _core.Span

_current: "contextvars.ContextVar[Union[Transaction, Span, None]]" = contextvars.ContextVar("oxapm_current", default=None)

# Bound once: these run on every span.
_begin_span = _core.begin_span
_get_current = _current.get
_set_current = _current.set
_reset_current = _current.reset


def _span_stack() -> Optional[List[Dict[str, Any]]]:
    """The stack of a span ending after ``span_stack_trace_min_duration`` (the engine calls it):
    intake frames, innermost first, the agent's own frames left out."""
    from oxapm import base, stacks  # imported when a span first lasts long enough

    client = base.get_client()
    return stacks.stack_frames(0, client.config) if client is not None else None


_core.set_span_stack_capture(_span_stack)


def _link_ids(links: Optional[List[TraceParent]]) -> Optional[List[tuple]]:
    if not links:
        return None
    return [(link.trace_id, link.span_id) for link in links if isinstance(link, TraceParent)]


def _restore(token: contextvars.Token, variable: contextvars.ContextVar = _current, default: Any = None) -> None:
    """Undoes ``variable.set`` when the token cannot be reset because it belongs to another context
    (a generator resumed elsewhere, a context copied into a thread): sets the previous value again."""
    previous = token.old_value
    variable.set(default if previous is contextvars.Token.MISSING else previous)


class Transaction(_core.Transaction):
    """A transaction, with the Elastic agent's methods that act on the current context."""

    __slots__ = ()

    @property
    def trace_parent(self) -> TraceParent:
        return TraceParent.from_string(self.traceparent(), self.tracestate)

    def begin_span(
        self,
        name: str,
        span_type: str,
        context: Optional[Dict[str, Any]] = None,
        leaf: bool = False,
        labels: Optional[Dict[str, Any]] = None,
        span_subtype: Optional[str] = None,
        span_action: Optional[str] = None,
        sync: Optional[bool] = None,
        start: Optional[float] = None,
        auto_activate: bool = True,
        links: Optional[List[TraceParent]] = None,
    ) -> Optional[Span]:
        """Starts a span below the current span of this transaction and makes it current."""
        current = _current.get()
        parent = current if isinstance(current, Span) and current.transaction is self else self
        args = (name, span_type, span_subtype, span_action, labels, leaf, context, _link_ids(links))
        try:
            span = _begin_span(parent, args)
        except (TypeError, ValueError, OverflowError):
            span = _begin_span_coerced(parent, args)
        if span is not None and auto_activate:
            _current.set(span)
        return span

    def end_span(self, skip_frames: int = 0, duration: Optional[float] = None, outcome: str = "unknown") -> Optional[Span]:
        """Ends the current span and makes its parent current."""
        span = _current.get()
        if not isinstance(span, Span) or span.transaction is not self:
            return None
        if outcome in (OUTCOME.SUCCESS, OUTCOME.FAILURE):
            span.outcome = outcome
        span._end()
        _current.set(span.parent)
        return span

    def label(self, **labels: Any) -> None:
        self._label(labels)

    def set_success(self) -> None:
        self.outcome = OUTCOME.SUCCESS

    def set_failure(self) -> None:
        self.outcome = OUTCOME.FAILURE


def _begin_span_coerced(parent, args: tuple) -> Optional[Span]:
    """The slow path for arguments of the wrong type: strings are made of what was given, labels
    and extra that are not dicts are dropped, with a warning; the application is not interrupted."""
    name, span_type, subtype, action, labels, leaf, extra, links = args
    logger.warning(
        "capture_span(%r): arguments of unexpected types (span_type=%r, labels=%s, extra=%s); coerced or ignored",
        name, span_type, type(labels).__name__, type(extra).__name__,
    )
    text = lambda value: None if value is None else str(value)  # noqa: E731
    coerced = (
        str(name),
        str(span_type or "code.custom"),
        text(subtype),
        text(action),
        labels if isinstance(labels, dict) else None,
        bool(leaf),
        extra if isinstance(extra, dict) else None,
        links if isinstance(links, list) else None,
    )
    return _begin_span(parent, coerced)


def get_transaction() -> Optional[Transaction]:
    current = _current.get()
    if isinstance(current, Span):
        return current.transaction
    return current if isinstance(current, Transaction) else None


def get_span() -> Optional[Span]:
    current = _current.get()
    return current if isinstance(current, Span) else None


def set_transaction(transaction: Optional[Transaction]) -> None:
    _current.set(transaction)


class capture_span:
    """A span around a block (``with capture_span("name"):``) or a function (``@capture_span()``).

    Outside a transaction, below a leaf span or in an unsampled transaction it records nothing.
    """

    # The engine's begin_span arguments, packed once at construction.
    __slots__ = ("_args", "_span", "_token")

    def __init__(
        self,
        name: Optional[str] = None,
        span_type: str = "code.custom",
        extra: Optional[Dict[str, Any]] = None,
        skip_frames: int = 0,
        leaf: bool = False,
        labels: Optional[Dict[str, Any]] = None,
        span_subtype: Optional[str] = None,
        span_action: Optional[str] = None,
        start: Optional[float] = None,
        duration: Optional[float] = None,
        sync: Optional[bool] = None,
        links: Optional[List[TraceParent]] = None,
    ):
        # skip_frames, start, duration and sync are accepted for compatibility: stack traces leave
        # the agent's frames out by themselves, and explicit span timing is not recorded yet.
        self._args = (name or "", span_type, span_subtype, span_action, labels, leaf, extra, _link_ids(links) if links else None)

    @property
    def name(self) -> str:
        return self._args[0]

    @name.setter
    def name(self, name: str) -> None:
        self._args = (name,) + self._args[1:]

    def __enter__(self) -> Optional[Span]:
        parent = _get_current()
        if parent is not None:
            try:
                span = _begin_span(parent, self._args)
            except (TypeError, ValueError, OverflowError):
                span = _begin_span_coerced(parent, self._args)
            if span is not None:
                self._span = span
                self._token = _set_current(span)
                return span
        self._token = None
        return None

    def __exit__(self, exc_type, exc_value, traceback) -> bool:
        token = self._token
        if token is not None:
            self._token = None
            try:
                _reset_current(token)
            except (ValueError, RuntimeError):
                _restore(token)
            self._span._end(exc_type is not None)
        return False

    def _copy(self) -> "capture_span":
        """A fresh instance per call of a decorated function: calls may overlap (threads, tasks,
        recursion), so the decorator's own instance never holds per-call state."""
        copy = object.__new__(type(self))
        copy._args = self._args
        return copy

    def __call__(self, func: Callable) -> Callable:
        import functools  # only decorators need it: not imported at start

        self.name = self.name or _name_of(func)

        @functools.wraps(func)
        def decorated(*args, **kwargs):
            with self._copy():
                return func(*args, **kwargs)

        return decorated


class async_capture_span(capture_span):
    """``capture_span`` for ``async with`` and coroutine functions."""

    __slots__ = ()

    async def __aenter__(self) -> Optional[Span]:
        return self.__enter__()

    async def __aexit__(self, exc_type, exc_value, traceback) -> bool:
        return self.__exit__(exc_type, exc_value, traceback)

    def __call__(self, func: Callable) -> Callable:
        import functools  # only decorators need it: not imported at start

        self.name = self.name or _name_of(func)

        @functools.wraps(func)
        async def decorated(*args, **kwargs):
            async with self._copy():
                return await func(*args, **kwargs)

        return decorated


def _name_of(func: Callable) -> str:
    """``module.name``, as the Elastic agent names decorated functions."""
    import functools

    inner = getattr(func, "func", None)
    if isinstance(func, functools.partial) and inner is not None:
        return "partial(%s)" % _name_of(inner)
    name = getattr(func, "__name__", None) or type(func).__name__
    return "%s.%s" % (getattr(func, "__module__", None) or "<unknown>", name)


def set_transaction_name(name: str, override: bool = True) -> None:
    transaction = get_transaction()
    if transaction is not None and (override or not transaction.name):
        transaction.name = str(name)


def set_transaction_result(result: str, override: bool = True) -> None:
    transaction = get_transaction()
    if transaction is not None and (override or transaction.result is None):
        transaction.result = None if result is None else str(result)


def set_transaction_outcome(outcome: Optional[str] = None, http_status_code: Optional[Union[int, str]] = None, override: bool = True) -> None:
    """Sets ``success``, ``failure`` or ``unknown``; with only ``http_status_code``, 5xx is a failure."""
    transaction = get_transaction()
    if transaction is None:
        return
    if http_status_code is not None and outcome is None:
        try:
            outcome = OUTCOME.FAILURE if int(http_status_code) >= 500 else OUTCOME.SUCCESS
        except (TypeError, ValueError):
            logger.warning("invalid HTTP status code %r for the transaction outcome; ignored", http_status_code)
            return
    if outcome not in (OUTCOME.SUCCESS, OUTCOME.FAILURE, OUTCOME.UNKNOWN):
        logger.warning("invalid transaction outcome %r; expected success, failure or unknown", outcome)
        return
    if override or transaction.outcome is None:
        transaction.outcome = outcome


def get_transaction_id() -> Optional[str]:
    transaction = get_transaction()
    return transaction.id if transaction is not None else None


def get_trace_id() -> Optional[str]:
    transaction = get_transaction()
    return transaction.trace_id if transaction is not None else None


def get_span_id() -> Optional[str]:
    span = get_span()
    return span.id if span is not None else None


def get_trace_parent_header() -> Optional[str]:
    """The ``traceparent`` header for an outgoing call from the current span (or transaction)."""
    current = _current.get()
    if isinstance(current, Span):
        return current.transaction.traceparent(current.id)
    return current.traceparent() if isinstance(current, Transaction) else None


def set_context(data: Union[Dict[str, Any], Callable[[], Dict[str, Any]]], key: str = "custom") -> None:
    """Merges ``data`` (or what the callable returns) into the transaction's ``context[key]``."""
    transaction = get_transaction()
    if transaction is None:
        return
    if callable(data):
        if not transaction.is_sampled:
            return
        data = data()
    if isinstance(data, dict):
        transaction._set_context(key, data)


def set_custom_context(data: Dict[str, Any]) -> None:
    set_context(data, "custom")


def set_user_context(username: Optional[str] = None, email: Optional[str] = None, user_id: Any = None) -> None:
    data = {}
    if username is not None:
        data["username"] = str(username)
    if email is not None:
        data["email"] = str(email)
    if user_id is not None:
        data["id"] = str(user_id)
    if data:
        set_context(data, "user")


def label(**labels: Any) -> None:
    """Labels on the current transaction (and the errors captured in it)."""
    transaction = get_transaction()
    if transaction is None:
        logger.debug("ignored labels %s: no active transaction", sorted(labels))
        return
    transaction._label(labels)
