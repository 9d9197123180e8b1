"""WSGI applications traced: ``app = OxapmMiddleware(app)`` makes each request a transaction.

Any WSGI application can be wrapped by hand; the Flask and Django instrumentations trace theirs
with the same ``traced_call``. The transaction is current while the application runs and while
each piece of the response body is produced, so that a streamed body's spans are its children,
and it ends when the body ends: exhausted, or closed by the server (a client gone away).

Without a framework to tell the route, transactions are named ``METHOD unknown route`` (as the
Elastic agent's generic middleware names them); ``oxapm.set_transaction_name`` in the application
names them better.
"""

from __future__ import annotations

from oxapm import _core
from oxapm.instrumentation import web

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

    from oxapm.instrumentation.base import Instrumentation

    WSGIApp = Callable[[Dict[str, Any], Callable[..., Any]], Iterable[bytes]]

__all__ = ["OxapmMiddleware", "traced_call", "wrap_application"]


class OxapmMiddleware:
    """Wraps a WSGI application: ``OxapmMiddleware(app)`` is the same application, traced."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return traced_call("wsgi", self.app, environ, start_response)


#: ``traced_call(instrumentation, app, environ, start_response)`` calls ``app(environ,
#: start_response)`` as one request's transaction (unless an outer layer serves the request
#: already): the engine starts the transaction, makes the call and produces the body. When the
#: request body is to be captured, ``wsgi.input`` becomes a ``_RecordingInput``.
traced_call = _core.serve_wsgi


def wrap_application(instrumentation: Instrumentation, owner: type) -> None:
    """Has ``owner.__call__(environ, start_response)``, a framework's WSGI application, serve each
    request as ``traced_call`` does (the engine's patch)."""
    name = instrumentation.name
    instrumentation.wrap_in_engine(owner, "__call__", lambda original, binds: _core.Patch.serving_wsgi(original, binds, name))


class _RecordingInput:
    """``wsgi.input`` keeping what the application reads of it: the body is read once, by the
    application, as it would be without the agent."""

    __slots__ = ("_input", "_served")

    def __init__(self, stream: Any, served: web.Served) -> None:
        self._input = stream
        self._served = served

    def read(self, *args: Any) -> bytes:
        data = self._input.read(*args)
        self._served.keep(data)
        return data

    def readinto(self, buffer: Any) -> Optional[int]:
        # Werkzeug reads this way when the server's stream can (and falls back to read()).
        readinto = getattr(self._input, "readinto", None)
        if readinto is None:
            data = self._input.read(len(buffer))
            buffer[: len(data)] = data
            size: Optional[int] = len(data)
        else:
            size = readinto(buffer)
        if size:
            self._served.keep(memoryview(buffer)[:size])
        return size

    def readline(self, *args: Any) -> bytes:
        line = self._input.readline(*args)
        self._served.keep(line)
        return line

    def readlines(self, *args: Any) -> List[bytes]:
        lines = self._input.readlines(*args)
        for line in lines:
            self._served.keep(line)
        return lines

    def __iter__(self) -> Iterator[bytes]:
        for line in self._input:
            self._served.keep(line)
            yield line

    def __getattr__(self, name: str) -> Any:
        return getattr(self._input, name)
