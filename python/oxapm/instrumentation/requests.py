"""requests: ``Session.send``, which every request goes through. Redirects are followed inside it
(one span, the final status); with ``stream=True`` it returns once the headers are in. Through
requests' own adapter (urllib3, then http.client) the connection writes the trace context
headers; through another, they are put on the ``PreparedRequest``."""

from __future__ import annotations

from oxapm.instrumentation.outgoing_http import OutgoingHttpInstrumentation, argument, set_headers

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

    from oxapm.instrumentation.outgoing_http import Headers, Request


class RequestsInstrumentation(OutgoingHttpInstrumentation):
    name = "requests"
    status_attribute = "status_code"
    over_http_client = True

    def apply(self) -> None:
        from requests import Session
        from requests.adapters import HTTPAdapter

        self._http_adapter = HTTPAdapter
        self.wrap_traced(Session, "send")

    # These run on every request: the request is read without ``argument``'s frame.
    def request_of(self, instance: Any, args: tuple, kwargs: dict) -> Request:
        request = args[0] if args else kwargs["request"]
        return request.method, request.url

    def through_http_client(self, instance: Any, args: tuple, kwargs: dict) -> bool:
        # Whatever the URL, when every adapter mounted is requests' own (as in a session nobody
        # changed). Cheaper than asking for the URL's adapter; when another is mounted, the
        # headers go on the request, which is right for any adapter.
        for adapter in instance.adapters.values():
            if not isinstance(adapter, self._http_adapter):
                return False
        return True

    def with_headers(self, instance: Any, args: tuple, kwargs: dict, headers: Headers) -> tuple:
        set_headers(argument(args, kwargs, 0, "request").headers, headers)  # the PreparedRequest sent
        return args, kwargs
