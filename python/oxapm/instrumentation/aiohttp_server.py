"""aiohttp's server: each request a transaction, around ``RequestHandler._handle_request`` (the
handler, middlewares included, then the writing of its response: a ``StreamResponse`` ends when
its body does), its status and headers as ``StreamResponse.prepare`` sends them. Named after the
resource's canonical route, sub-application prefixes included: ``GET /users/{id}``. Exceptions of
the handler other than ``web.HTTPException`` are captured when aiohttp answers them with a 5xx.

The body: what the application read with ``request.read()``/``text()``/``json()``/``post()``, as
aiohttp keeps it; nothing is read for the agent.
"""

from __future__ import annotations

from oxapm.instrumentation import web
from oxapm.instrumentation.base import Instrumentation, report_failure

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, Union


class AioHttpServerInstrumentation(Instrumentation):
    name = "aiohttp-server"

    def apply(self) -> None:
        from aiohttp import web_protocol, web_response
        from aiohttp.web_exceptions import HTTPException

        async def handle_request(wrapped, instance, args, kwargs):
            # (request, start_time, request_handler), positional in aiohttp's own call.
            if len(args) != 3 or kwargs:
                return await wrapped(*args, **kwargs)
            request, start_time, request_handler = args
            served = web.serve(self.name, incoming, request)
            if served is None:
                return await wrapped(*args, **kwargs)

            async def traced_handler(request):
                try:
                    return await request_handler(request)
                except HTTPException:
                    raise
                except Exception as exc:
                    served.raised(exc)
                    raise
                finally:
                    _name(served, request)

            served.body_source = lambda: _body(request)
            token = served.activate()
            try:
                # aiohttp answers the handler's exceptions itself; what leaves is a cancellation
                # or a failure to write the response (the client went away).
                return await wrapped(request, start_time, traced_handler)
            finally:
                served.end()
                served.deactivate(token)

        async def prepare(wrapped, instance, args, kwargs):
            writer = await wrapped(*args, **kwargs)
            served = web.current()
            # The first response prepared is the one sent: an error response aiohttp makes when
            # a streaming handler fails after that is not.
            if served is not None and served.status is None:
                try:
                    served.respond(instance.status, instance.headers.items())
                except Exception:
                    report_failure(self.name)
            return writer

        self.wrap(web_protocol.RequestHandler, "_handle_request", handle_request)
        self.wrap(web_response.StreamResponse, "prepare", prepare)


def incoming(request: Any) -> web.Incoming:
    return web.Incoming(
        method=request.method,
        scheme=request.scheme,
        host=request.host,
        path=request.path,
        query=request.query_string,
        http_version="%d.%d" % tuple(request.version),
        remote_address=request.remote,
        headers=request.headers.items(),
    )


def _name(served: web.Served, request: Any) -> None:
    try:
        resource = request.match_info.route.resource
        if resource is not None:  # None: no route matched (aiohttp's system route answered)
            served.route(resource.canonical)
    except Exception:
        report_failure(served.instrumentation)


def _body(request: Any) -> Union[bytes, Dict[str, Any], None]:
    """What aiohttp kept of the body the application read: the parsed form (files by file name
    under ``_files``) or the bytes."""
    form = getattr(request, "_post", None)
    if form:
        fields: Dict[str, Any] = {}
        files: Dict[str, Any] = {}
        for name, value in form.items():
            filename = getattr(value, "filename", None)
            web.add_field(files if filename is not None else fields, name, filename if filename is not None else value)
        if files:
            fields["_files"] = files
        return fields
    return getattr(request, "_read_bytes", None)
