"""httpx: the transports that send requests on the network, ``HTTPTransport.handle_request`` and
``AsyncHTTPTransport.handle_async_request``, under ``Client``, ``AsyncClient`` and the module's
functions alike. They return once the headers are in; a redirect followed is a request of its own."""

from __future__ import annotations

from oxapm.instrumentation.outgoing_http import OutgoingHttpInstrumentation, argument, set_headers

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

    from oxapm.instrumentation.outgoing_http import Headers, Request


class HttpxInstrumentation(OutgoingHttpInstrumentation):
    name = "httpx"
    status_attribute = "status_code"

    def apply(self) -> None:
        from httpx import AsyncHTTPTransport, HTTPTransport

        self.wrap_traced(HTTPTransport, "handle_request")
        self.wrap(AsyncHTTPTransport, "handle_async_request", self.traced_async)

    def request_of(self, instance: Any, args: tuple, kwargs: dict) -> Request:
        request = argument(args, kwargs, 0, "request")
        url = request.url
        return request.method, url.scheme, url.host, url.port, url.raw_path.decode("ascii")

    def with_headers(self, instance: Any, args: tuple, kwargs: dict, headers: Headers) -> tuple:
        set_headers(argument(args, kwargs, 0, "request").headers, headers)
        return args, kwargs
