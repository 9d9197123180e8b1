"""http.client, and with it urllib.request, which sends every http and https request through
``HTTPConnection.request`` and ``getresponse``. The exit span starts in ``request`` and ends when
``getresponse`` returns; in between it is not current, since the application runs there. The
trace context headers are written by ``endheaders``, replacing the caller's of the same names.

A response never asked for (the connection closed first) ends its span, without a status, at the
connection's next ``request``; the span is lost when there is none.
"""

from __future__ import annotations

from oxapm import _core
from oxapm.instrumentation.outgoing_http import OutgoingHttpInstrumentation, argument

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable

    from oxapm.instrumentation.outgoing_http import Request

# The call of a connection waiting for its response, in the connection's attributes.
_WAITING = "_oxapm_outgoing_http_call"


class HttpClientInstrumentation(OutgoingHttpInstrumentation):
    name = "http-client"
    status_attribute = "status"
    over_http_client = True

    def apply(self) -> None:
        from http.client import HTTPConnection

        # Below a call requests or urllib3 traces, the engine lets both through.
        below = lambda wrapper: lambda original, binds: _core.Patch.below(original, binds, self.name, wrapper)  # noqa: E731
        self.wrap(HTTPConnection, "request", self._request, below(self._request))
        self.wrap(HTTPConnection, "getresponse", self._getresponse, below(self._getresponse))

    def _request(self, wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        unanswered = instance.__dict__.pop(_WAITING, None)
        if unanswered is not None:
            unanswered.end()
        started = self._outgoing.begin(instance, args, kwargs)
        if started is None:
            return wrapped(*args, **kwargs)
        call, args, kwargs = started
        try:
            result = wrapped(*args, **kwargs)
        except BaseException:
            call.end(failed=True)
            raise
        call.detach()
        instance.__dict__[_WAITING] = call
        return result

    def _getresponse(self, wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        call = instance.__dict__.get(_WAITING)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            response = wrapped(*args, **kwargs)
        except TypeError:
            # Arguments getresponse does not take: urllib3 1.26 tries Python 2's buffering=True,
            # then calls again without. The response is still to come.
            if not (args or kwargs):
                self._answered(instance, call, failed=True)
            raise
        except BaseException:
            self._answered(instance, call, failed=True)
            raise
        self._answered(instance, call, response)
        return response

    def _answered(self, instance: Any, call: _core.HttpCall, response: Any = None, failed: bool = False) -> None:
        instance.__dict__.pop(_WAITING, None)
        call.end(response, failed)

    def request_of(self, instance: Any, args: tuple, kwargs: dict) -> Request:
        method, url = argument(args, kwargs, 0, "method"), argument(args, kwargs, 1, "url")
        if not url.startswith("/") and "://" in url:  # the absolute URL sent to a proxy
            return method, url
        # Through a CONNECT tunnel (set_tunnel) the connection's host is the proxy's.
        tunnel = getattr(instance, "_tunnel_host", None)
        host, port = (tunnel, instance._tunnel_port) if tunnel else (instance.host, instance.port)
        # HTTPSConnection, and the TLS connections of other libraries built on HTTPConnection.
        scheme = "https" if instance.default_port == 443 else "http"
        return method, scheme, host, port, url

    def through_http_client(self, instance: Any, args: tuple, kwargs: dict) -> bool:
        return True
