"""Exit spans of outgoing HTTP calls, for the HTTP client instrumentations (http.client, urllib3,
requests, httpx, aiohttp, httplib2). Each of them says where a call's method, URL and headers are
and what status its response has; this module names the span, fills its context, puts the trace
context in the request's headers and sets the outcome.

The span is the Elastic agent's: named ``GET host`` (``host:port`` when the port is not the
scheme's default), type ``external``, subtype ``http``, no action; ``context.http`` holds the URL
(rebuilt from its parts: no user, password or fragment), the method and the status code,
``context.destination`` the address and port. The engine infers the destination service and the
service target. Outcome: failure for a status of 400 or more and for an exception, success
otherwise. The span ends when the call that returns the response returns, that is once the
response's headers are in (as the Elastic agent does): reading a streamed body is not part of it.

Trace context: the headers ``propagation.outgoing_headers()`` gives for the exit span or, when no
span is recorded (an unsampled transaction, the span limit reached), for the current transaction:
an unsampled trace goes on propagating, as with the Elastic agent. Outside a transaction nothing is
added. They replace the caller's headers of the same names, in any case: a traceparent already on a
request is almost always one forwarded from the incoming request, and keeping it would detach the
service called from this call (the Elastic agent overwrites it too).

Only the outermost instrumented layer of a call traces it (requests over urllib3 over http.client):
the layers below pass the call through untouched, since the exit span leaves them nothing to record.
When the call goes out through an http.client connection (requests' and urllib3's do), the
connection writes the headers, as the last of the request's (``_ConnectionHeaders``): put on the
request of the outermost layer, each header would go through the header handling of every layer
below, which costs more than the rest of the span.

The engine runs the calls (``_core.OutgoingHttp``, ``_core.HttpCall``): the libraries' functions
are replaced by its ``Patch``es, which call the instrumentation's methods below only for the
outermost layer, and let the layers below through with no Python frame of the agent's.
"""

from __future__ import annotations

import contextvars

from oxapm import _core
from oxapm.instrumentation.base import Instrumentation, report_failure

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple, Union

    Headers = List[Tuple[str, str]]
    # (method, absolute URL), or (method, scheme, host, port (None: the scheme's default), path
    # with query): what the engine's begin_http_span takes.
    Request = Union[Tuple[str, str], Tuple[str, str, str, Optional[int], str]]

# The call in progress, traced by its outermost instrumented layer, when it records no exit span
# (which, current, marks it): the layers below see it (``_core.call_in_progress``).
_traced_call: contextvars.ContextVar[Optional[_core.HttpCall]] = contextvars.ContextVar("oxapm_outgoing_http_call", default=None)


class OutgoingHttpInstrumentation(Instrumentation):
    """An HTTP client library's instrumentation. Subclasses patch the library's call with
    ``traced`` (``traced_async`` for a coroutine function) and say, for the arguments of that call,
    what request it makes (``request_of``), whether it goes out through an http.client connection
    (``through_http_client``), how headers are added to it otherwise (``with_headers``), and for
    what it returns, the status: the attribute that holds it (``status_attribute``, read by the
    engine), or ``status_of`` when no attribute does. Those whose calls can go out through
    http.client set ``over_http_client``."""

    over_http_client = False
    status_attribute: Optional[str] = None

    def __init__(self) -> None:
        super().__init__()
        self._outgoing = _core.OutgoingHttp(self)

    def wrap_traced(self, owner: Any, attribute: str) -> None:
        """Patches a synchronous call of the library with ``traced``, or the engine's version of it."""
        self.wrap(owner, attribute, self.traced, lambda original, binds: _core.Patch.traced_http(original, binds, self._outgoing))

    def instrument(self) -> None:
        super().instrument()
        if self.over_http_client:
            _connection_headers.hold(self.name)

    def uninstrument(self) -> None:
        _connection_headers.release(self.name)
        super().uninstrument()

    def request_of(self, instance: Any, args: tuple, kwargs: dict) -> Request:
        raise NotImplementedError

    def through_http_client(self, instance: Any, args: tuple, kwargs: dict) -> bool:
        """Whether the call goes out through an http.client connection (which then writes the
        headers); only asked when ``over_http_client``."""
        return False

    def with_headers(self, instance: Any, args: tuple, kwargs: dict, headers: Headers) -> Tuple[tuple, dict]:
        """The call's arguments with ``headers`` on the request, replacing those of the same names.
        Returns new arguments, or the same ones when the request object itself is changed."""
        raise NotImplementedError

    def status_of(self, response: Any) -> int:
        """The status of ``response``, for an instrumentation with no ``status_attribute``."""
        raise NotImplementedError

    def traced(self, wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        started = self._outgoing.begin(instance, args, kwargs)
        if started is None:
            return wrapped(*args, **kwargs)
        call, args, kwargs = started
        try:
            response = wrapped(*args, **kwargs)
        except BaseException:
            call.end(failed=True)
            raise
        call.end(response)
        return response

    async def traced_async(self, wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        started = self._outgoing.begin(instance, args, kwargs)
        if started is None:
            return await wrapped(*args, **kwargs)
        call, args, kwargs = started
        try:
            response = await wrapped(*args, **kwargs)
        except BaseException:
            call.end(failed=True)
            raise
        call.end(response)
        return response


def argument(args: tuple, kwargs: Mapping[str, Any], index: int, name: str, default: Any = None) -> Any:
    """The argument at position ``index`` (not counting ``self``) or named ``name``."""
    return args[index] if len(args) > index else kwargs.get(name, default)


def with_argument(args: tuple, kwargs: dict, index: int, name: str, value: Any) -> Tuple[tuple, dict]:
    """The arguments with ``value`` for the one at ``index`` or named ``name``, where it was given."""
    if len(args) > index:
        return args[:index] + (value,) + args[index + 1:], kwargs
    kwargs[name] = value  # wrapt hands each call its own dict
    return args, kwargs


def set_headers(mapping: Any, headers: Iterable[Tuple[str, str]]) -> None:
    """Sets ``headers`` on a mutable mapping whose names ignore case (requests', httpx's,
    multidict's, urllib3's): each replaces the values of its name."""
    for name, value in headers:
        mapping[name] = value


def merged(mapping: Optional[Mapping[str, Any]], headers: Headers) -> Dict[str, Any]:
    """A new dict of the caller's headers (a plain mapping, or None) and ``headers``, which replace
    those of the same names in any case: for libraries that take a dict."""
    names = {name.lower() for name, _ in headers}
    out = {key: value for key, value in mapping.items() if _text(key).lower() not in names} if mapping else {}
    out.update(headers)
    return out


def _text(name: Any) -> str:
    return name.decode("latin-1") if isinstance(name, bytes) else str(name)  # http.client takes bytes too


class _ConnectionHeaders(Instrumentation):
    """http.client's ``HTTPConnection.endheaders`` writing the trace context headers of the call in
    progress, when its outermost layer left them to the connection. Shared by the instrumentations
    over http.client: applied while any of them is (``hold``, ``release``), so that disabling one
    layer leaves the others their headers."""

    name = "http-client"

    def __init__(self) -> None:
        super().__init__()
        self._holders: Set[str] = set()

    def hold(self, holder: str) -> None:
        if not self._holders:
            self.instrument()
        self._holders.add(holder)

    def release(self, holder: str) -> None:
        if holder in self._holders:
            self._holders.discard(holder)
            if not self._holders:
                self.uninstrument()

    def apply(self) -> None:
        from http.client import HTTPConnection

        self.wrap(HTTPConnection, "endheaders", self._endheaders, lambda original, binds: _core.Patch.connection_headers(original, binds, self.name))

    def _endheaders(self, wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        call = _core.call_in_progress()
        if call is not None and call.connection_headers is not None:
            try:
                _core.put_connection_headers(instance._buffer, call.connection_headers)
            except Exception:
                report_failure(self.name)
        return wrapped(*args, **kwargs)


_connection_headers = _ConnectionHeaders()
