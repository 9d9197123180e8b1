"""urllib3 (1.26 and 2.x): ``HTTPConnectionPool.urlopen``, which every request goes through, once
per redirect followed by a ``PoolManager`` (its own retries and redirects are inside the first).
Its connections are http.client's, which write the trace context headers (on every retry and
redirect inside the call)."""

from __future__ import annotations

from oxapm.instrumentation.outgoing_http import OutgoingHttpInstrumentation, argument, set_headers, with_argument

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any

    from oxapm.instrumentation.outgoing_http import Headers, Request


class Urllib3Instrumentation(OutgoingHttpInstrumentation):
    name = "urllib3"
    status_attribute = "status"
    over_http_client = True

    def apply(self) -> None:
        from http.client import HTTPConnection

        from urllib3._collections import HTTPHeaderDict
        from urllib3.connectionpool import HTTPConnectionPool

        self._header_dict = HTTPHeaderDict
        self._http_connection = HTTPConnection
        self.wrap_traced(HTTPConnectionPool, "urlopen")

    def request_of(self, instance: Any, args: tuple, kwargs: dict) -> Request:
        method, url = argument(args, kwargs, 0, "method"), argument(args, kwargs, 1, "url")
        if url.startswith("/"):
            return method, instance.scheme, instance.host, instance.port, url
        return method, url  # the absolute URL sent to a proxy

    def through_http_client(self, instance: Any, args: tuple, kwargs: dict) -> bool:
        return issubclass(instance.ConnectionCls, self._http_connection)  # not so with HTTP/2

    def with_headers(self, instance: Any, args: tuple, kwargs: dict, headers: Headers) -> tuple:
        given = argument(args, kwargs, 3, "headers")
        # A copy: the caller's dict, or the pool's own headers that urlopen uses without one.
        request_headers = self._header_dict(instance.headers if given is None else given)
        set_headers(request_headers, headers)
        return with_argument(args, kwargs, 3, "headers", request_headers)
