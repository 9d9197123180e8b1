"""Django: each request a transaction, under WSGI (``WSGIHandler``) and ASGI (``ASGIHandler``),
through ``contrib.wsgi``/``contrib.asgi``'s ``traced_call``.

Transactions are named after the route pattern of the URL resolved, as Django joins it across
``include()``: ``GET /users/<int:id>/`` (the Elastic agent names them by view function; the route
is what stays stable across refactorings and what OpenTelemetry's ``http.route`` holds). A regular
expression route loses its ``^`` and ``$``. Exceptions Django turns into a 500 are captured.

``context.user`` comes from ``request.user`` (``django.contrib.auth``) only when the request has
already loaded it: reading it otherwise would cost a session and a user query on requests that
never needed them.
"""

from __future__ import annotations

from oxapm.contrib import asgi, wsgi
from oxapm.instrumentation import web
from oxapm.instrumentation.base import Instrumentation, report_failure

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, Optional


class DjangoInstrumentation(Instrumentation):
    name = "django"

    def apply(self) -> None:
        from django.core.handlers import asgi as django_asgi
        from django.core.handlers import base, exception
        from django.core.handlers import wsgi as django_wsgi
        from django.utils.functional import empty

        def asgi_call(wrapped, instance, args, kwargs):
            arguments = asgi.call_arguments(args, kwargs)
            if arguments is None:
                return wrapped(*args, **kwargs)
            return asgi.traced_call(self.name, wrapped, *arguments)

        def resolve_request(wrapped, instance, args, kwargs):
            served = web.current()
            if served is None:
                return wrapped(*args, **kwargs)
            try:
                request = args[0] if args else kwargs["request"]
                served.user_source = lambda: _user(request, empty)
            except Exception:
                report_failure(self.name)
            match = wrapped(*args, **kwargs)  # Resolver404 when no route matches: the name stays
            try:
                route = getattr(match, "route", None)
                if route is not None:
                    served.route(route_template(route))
            except Exception:
                report_failure(self.name)
            return match

        def handle_uncaught_exception(wrapped, instance, args, kwargs):
            served = web.current()
            exc_info = args[2] if len(args) > 2 else kwargs.get("exc_info")
            if served is not None and exc_info and isinstance(exc_info[1], BaseException):
                served.raised(exc_info[1])
            return wrapped(*args, **kwargs)

        wsgi.wrap_application(self, django_wsgi.WSGIHandler)
        self.wrap(django_asgi.ASGIHandler, "__call__", asgi_call)
        self.wrap(base.BaseHandler, "resolve_request", resolve_request)
        # Looked up as a module global by Django's exception handling: patched there.
        self.wrap(exception, "handle_uncaught_exception", handle_uncaught_exception)


def route_template(route: str) -> str:
    """``users/<int:id>/`` -> ``/users/<int:id>/``; ``^articles/(?P<year>[0-9]{4})/$`` ->
    ``/articles/(?P<year>[0-9]{4})/``."""
    if route.startswith("^"):
        route = route[1:]
    if route.endswith("$"):
        route = route[:-1]
    return route if route.startswith("/") else "/" + route


def _user(request: Any, empty: Any) -> Optional[Dict[str, Any]]:
    """The authenticated user, if the request loaded it (``AuthenticationMiddleware`` sets a lazy
    object, loaded on first use)."""
    user = request.__dict__.get("user")
    if user is None or getattr(user, "_wrapped", None) is empty:
        return None
    if not getattr(user, "is_authenticated", False):
        return None
    found: Dict[str, Any] = {}
    pk = getattr(user, "pk", None)
    if pk is not None:
        found["id"] = pk if isinstance(pk, int) and not isinstance(pk, bool) else str(pk)
    username = user.get_username() if hasattr(user, "get_username") else getattr(user, "username", None)
    if username:
        found["username"] = str(username)
    email = getattr(user, "email", None)
    if email:
        found["email"] = str(email)
    return found
