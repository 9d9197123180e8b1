"""httplib2: ``Http.request``. Redirects are followed inside it (one span, the final status); a
response served from its cache is a span too."""

from __future__ import annotations

from oxapm.instrumentation.outgoing_http import OutgoingHttpInstrumentation, argument, merged, with_argument

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

    from oxapm.instrumentation.outgoing_http import Headers, Request


class Httplib2Instrumentation(OutgoingHttpInstrumentation):
    name = "httplib2"

    def apply(self) -> None:
        from httplib2 import Http

        self.wrap_traced(Http, "request")

    def request_of(self, instance: Any, args: tuple, kwargs: dict) -> Request:
        method = argument(args, kwargs, 1, "method") or "GET"
        return method, argument(args, kwargs, 0, "uri")

    def with_headers(self, instance: Any, args: tuple, kwargs: dict, headers: Headers) -> tuple:
        return with_argument(args, kwargs, 3, "headers", merged(argument(args, kwargs, 3, "headers"), headers))

    def status_of(self, response: Any) -> int:
        return response[0].status  # (response, content)
