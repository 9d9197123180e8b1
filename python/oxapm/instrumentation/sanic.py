"""Sanic: each request a transaction, around ``Sanic.handle_request`` (routing, middleware, the
handler, and the sending of its response, streamed ones included), named after the route's URI
template: ``GET /users/<id:int>``. An exception the error handler answers with a 5xx is captured.

Sanic's "touch-up" recompiles ``handle_request`` from its source when an application starts, which
drops a patch: the patch is put back after each start.

The body: ``request.body``, which Sanic has read before the handler runs (except on streaming
routes, whose handlers read the stream themselves: nothing is captured there).
"""

from __future__ import annotations

from oxapm.instrumentation import web
from oxapm.instrumentation.base import Instrumentation, report_failure

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any


class SanicInstrumentation(Instrumentation):
    name = "sanic"

    def apply(self) -> None:
        import wrapt
        from sanic import Sanic
        from sanic.handlers import ErrorHandler

        async def handle_request(wrapped, instance, args, kwargs):
            request = args[0] if args else kwargs.get("request")
            served = web.serve(self.name, incoming, request)
            if served is None:
                return await wrapped(*args, **kwargs)
            served.body_source = lambda: request.body
            token = served.activate()
            try:
                return await wrapped(*args, **kwargs)
            except BaseException as exc:
                served.failed(exc)
                raise
            finally:
                _responded(served, request)
                served.end()
                served.deactivate(token)

        def error_response(wrapped, instance, args, kwargs):
            served = web.current()
            exc = args[1] if len(args) > 1 else kwargs.get("exception")
            if served is not None and isinstance(exc, BaseException):
                served.raised(exc)
            return wrapped(*args, **kwargs)

        async def startup(wrapped, instance, args, kwargs):
            await wrapped(*args, **kwargs)
            if not isinstance(vars(Sanic).get("handle_request"), wrapt.FunctionWrapper):  # touched up
                self.wrap(Sanic, "handle_request", handle_request)

        self.wrap(Sanic, "handle_request", handle_request)
        self.wrap(Sanic, "_startup", startup)
        self.wrap(ErrorHandler, "response", error_response)


def incoming(request: Any) -> web.Incoming:
    return web.Incoming(
        method=request.method,
        scheme=request.scheme,
        host=request.host,
        path=request.path,
        query=request.query_string,
        http_version=request.version,
        remote_address=request.ip or None,
        headers=request.headers.items(),
    )


def _responded(served: web.Served, request: Any) -> None:
    """The route and the response of a handled request."""
    try:
        template = request.uri_template
        if template is not None:
            served.route(template)
        response = getattr(request.stream, "response", None)
        if response is not None:
            served.respond(response.status, response.headers.items())
    except Exception:
        report_failure(served.instrumentation)
