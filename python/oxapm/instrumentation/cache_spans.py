"""Exit spans for cache commands, shared by the redis and memcached instrumentations: each command a
client sends is a span of type ``db`` with the cache as subtype (``redis``, ``memcached``), action
``query``, ``context.db.type`` the cache, and the server it went to as ``context.destination``. The
engine infers the service target from those at export.

No statement: neither keys nor values are recorded. Values are application data; keys routinely
carry user ids, e-mail addresses or session tokens that no sanitizing rule would recognize, and
would make each span unique. Elastic's agents record no arguments either: the command (the span
name) is what groups the spans.
"""

from __future__ import annotations

from oxapm import traces
from oxapm.instrumentation.base import report_failure
from oxapm.instrumentation.spans import end_span, start_span

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, Optional, Union

    from oxapm.instrumentation.base import Instrumentation
    from oxapm.instrumentation.spans import Started

    Destination = Optional[Dict[str, Any]]
    # A span name, or how to make it from the client and the call's arguments.
    Naming = Union[str, Callable[[Any, tuple], str]]
    Wrapper = Callable[[Callable[..., Any], Any, tuple, dict], Any]


def destination(address: str, port: Any = None) -> Dict[str, Any]:
    """The destination context of a server. A unix socket has no port: its path is the address,
    as OpenTelemetry's ``server.address`` has it."""
    if port is None:
        return {"address": address}
    return {"address": address, "port": int(port)}


class CacheSpans:
    """Wraps one library's commands in exit spans. ``destination_of(client)`` tells where a client
    sends its commands, or None when it cannot tell (several servers: the key decides)."""

    __slots__ = ("instrumentation", "subtype", "destination_of", "db")

    def __init__(self, instrumentation: str, subtype: str, destination_of: Callable[[Any], Destination]) -> None:
        self.instrumentation = instrumentation
        self.subtype = subtype
        self.destination_of = destination_of
        self.db = {"type": subtype}  # the same for every span: built once

    def wrapper(self, name: Naming) -> Wrapper:
        """A wrapt wrapper making each call of a blocking command a span."""
        start, instrumentation = self._start, self.instrumentation

        def traced(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
            started = start(name, instance, args)
            if started is None:
                return wrapped(*args, **kwargs)
            try:
                result = wrapped(*args, **kwargs)
            except BaseException:
                end_span(instrumentation, started, failed=True)
                raise
            end_span(instrumentation, started)
            return result

        return traced

    def async_wrapper(self, name: Naming) -> Wrapper:
        """The same for a coroutine command (asyncio clients): the span lasts until it is awaited."""
        start, instrumentation = self._start, self.instrumentation

        async def traced(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
            started = start(name, instance, args)
            if started is None:
                return await wrapped(*args, **kwargs)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException:
                end_span(instrumentation, started, failed=True)
                raise
            end_span(instrumentation, started)
            return result

        return traced

    def wrap_methods(self, instrumentation: Instrumentation, owner: type, methods: Iterable[str]) -> None:
        """Wraps those of ``methods`` that ``owner`` has (versions differ), each span named
        ``Class.method``, as Elastic's memcached instrumentations name them."""
        for method in methods:
            if hasattr(owner, method):
                instrumentation.wrap(owner, method, self.wrapper("%s.%s" % (owner.__name__, method)))

    def _start(self, name: Naming, client: Any, args: tuple) -> Optional[Started]:
        try:
            parent = traces._get_current()
            if parent is None:
                return None
            context: Dict[str, Any] = {"db": self.db}
            where = self.destination_of(client)
            if where is not None:
                context["destination"] = where
            span_name = name if name.__class__ is str else name(client, args)  # type: ignore[operator]
        except Exception:
            report_failure(self.instrumentation)
            return None
        return start_span(self.instrumentation, span_name, "db", self.subtype, "query", context)

