"""requests: ``Session.send``, which every request goes through. Redirects are followed inside it
(one span, the final status); with ``stream=True`` it returns once the headers are in."""

from __future__ import annotations

from oxapm.instrumentation.outgoing_http import OutgoingHttpInstrumentation, argument, set_headers

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

    from oxapm.instrumentation.outgoing_http import Headers, Request


class RequestsInstrumentation(OutgoingHttpInstrumentation):
    name = "requests"

    def apply(self) -> None:
        from requests import Session

        self.wrap(Session, "send", self.traced)

    def request_of(self, instance: Any, args: tuple, kwargs: dict) -> Request:
        request = argument(args, kwargs, 0, "request")
        return request.method, request.url

    def with_headers(self, instance: Any, args: tuple, kwargs: dict, headers: Headers) -> tuple:
        set_headers(argument(args, kwargs, 0, "request").headers, headers)  # the PreparedRequest sent
        return args, kwargs

    def status_of(self, response: Any) -> int:
        return response.status_code
