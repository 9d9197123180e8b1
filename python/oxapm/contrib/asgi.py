"""ASGI applications traced: ``app = OxapmMiddleware(app)`` makes each HTTP request a transaction.

Any ASGI application can be wrapped by hand; the Starlette, FastAPI and Django instrumentations
trace theirs with the same ``traced_call``. The transaction is current while the application runs
(tasks it starts inherit it), and ends when the application returns: after the last piece of a
streamed body, or when the client went away. WebSocket and lifespan scopes pass through untraced.

Without a framework to tell the route, transactions are named ``METHOD unknown route`` (as the
Elastic agent's generic middleware names them); ``oxapm.set_transaction_name`` in the application
names them better.
"""

from __future__ import annotations

from oxapm.instrumentation import web
from oxapm.instrumentation.base import report_failure

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Awaitable, Callable, Dict, MutableMapping, Optional

    Message = MutableMapping[str, Any]
    Receive = Callable[[], Awaitable[Message]]
    Send = Callable[[Message], Awaitable[None]]
    ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

__all__ = ["OxapmMiddleware", "traced_call"]


class OxapmMiddleware:
    """Wraps an ASGI 3 application: ``OxapmMiddleware(app)`` is the same application, traced."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        await traced_call("asgi", self.app, scope, receive, send)


async def traced_call(instrumentation: str, app: ASGIApp, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
    """Awaits ``app(scope, receive, send)`` as one request's transaction (unless it is not an
    HTTP request, or an outer layer serves it already)."""
    served = web.serve(instrumentation, incoming, scope) if scope.get("type") == "http" else None
    if served is None:
        await app(scope, receive, send)
        return
    token = served.activate()
    try:
        await app(scope, _recording(receive, served) if served.keeps_body else receive, _observing(send, served))
    except BaseException as exc:
        served.failed(exc)
        raise
    finally:
        served.end()
        served.deactivate(token)


def incoming(scope: MutableMapping[str, Any]) -> web.Incoming:
    """A request as the ASGI HTTP scope describes it."""
    headers = scope.get("headers") or ()
    scheme = scope.get("scheme") or "http"
    # ASGI header names are in lower case.
    host = next((value.decode("latin-1") for name, value in headers if name == b"host"), None)
    if not host:
        server = scope.get("server") or ("", None)
        host = server[0] if server[1] is None else "%s:%s" % (server[0], server[1])
    client = scope.get("client")
    return web.Incoming(
        method=scope.get("method", "GET"),
        scheme=scheme,
        host=host,
        path=scope.get("path") or "/",
        query=(scope.get("query_string") or b"").decode("latin-1"),
        http_version=scope.get("http_version"),
        remote_address=client[0] if client else None,
        headers=headers,
    )


def _recording(receive: Receive, served: web.Served) -> Receive:
    """``receive`` keeping the body the application reads."""

    async def receive_recorded() -> Message:
        message = await receive()
        try:
            if message.get("type") == "http.request":
                served.keep(message.get("body") or b"")
        except Exception:
            report_failure(served.instrumentation)
        return message

    return receive_recorded


def _observing(send: Send, served: web.Served) -> Send:
    """``send`` noting the response's status and headers."""

    async def send_observed(message: Message) -> None:
        try:
            if message.get("type") == "http.response.start":
                served.respond(message.get("status"), message.get("headers") or ())
        except Exception:
            report_failure(served.instrumentation)
        await send(message)

    return send_observed


def call_arguments(args: tuple, kwargs: Dict[str, Any]) -> Optional[tuple]:
    """``(scope, receive, send)`` of a call to a patched ASGI ``__call__``, however they were
    passed; None for other arguments (the patch then calls the method as it is, which raises
    what it raises: servers probe applications by calling them without arguments)."""
    if len(args) == 3 and not kwargs:
        return args
    given = dict(zip(("scope", "receive", "send"), args), **kwargs)
    if len(given) != 3 or len(args) > 3:
        return None
    return given.get("scope"), given.get("receive"), given.get("send")
