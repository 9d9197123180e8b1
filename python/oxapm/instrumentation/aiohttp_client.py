"""aiohttp's client: ``ClientSession._request``, behind ``request``, ``get``, ``post``... of a
session. Redirects are followed inside it (one span, the final status); it returns once the
headers are in."""

from __future__ import annotations

from oxapm.instrumentation.outgoing_http import OutgoingHttpInstrumentation, argument, set_headers

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

    from oxapm.instrumentation.outgoing_http import Headers, Request


class AiohttpClientInstrumentation(OutgoingHttpInstrumentation):
    name = "aiohttp-client"
    status_attribute = "status"

    def apply(self) -> None:
        from aiohttp import ClientSession
        from multidict import CIMultiDict

        self._header_dict = CIMultiDict
        self.wrap(ClientSession, "_request", self.traced_async)

    def request_of(self, instance: Any, args: tuple, kwargs: dict) -> Request:
        method = argument(args, kwargs, 0, "method")
        url = instance._build_url(argument(args, kwargs, 1, "str_or_url"))  # joined to the session's base_url
        return method, url.scheme, url.host, url.port, url.raw_path_qs

    def with_headers(self, instance: Any, args: tuple, kwargs: dict, headers: Headers) -> tuple:
        # headers is a keyword-only argument; the session's default headers yield to it.
        request_headers = self._header_dict(kwargs.get("headers") or ())
        set_headers(request_headers, headers)
        kwargs["headers"] = request_headers
        return args, kwargs
