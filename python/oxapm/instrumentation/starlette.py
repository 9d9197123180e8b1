"""Starlette and FastAPI: each HTTP request a transaction (``contrib.asgi.traced_call`` around the
application's ``__call__``), named after the route template: ``GET /users/{id}``, mounts included
(``GET /api/users/{id}``; an application mounted without routes of its own: ``GET /static/{path}``).

Two instrumentations, so that each can be disabled by its name: ``starlette`` traces Starlette
applications that are not FastAPI ones, ``fastapi`` FastAPI applications. Both read the template
(``path_format``: ``{id}``, without the convertor of ``{id:int}``) from Starlette's routing
(``Route.handle``, ``Mount.handle``: patched once, while either is applied). FastAPI versions that
route included routers themselves report the full template through their telemetry hook
(``fastapi.routing._route_selected``), read as well. While oxapm traces a FastAPI request,
FastAPI's own OpenTelemetry instrumentation stands aside for it (as it does for OpenTelemetry's
middleware): its server span would be a second transaction for the same request.
"""

from __future__ import annotations

import sys
from _thread import allocate_lock

from oxapm.contrib import asgi
from oxapm.instrumentation import web
from oxapm.instrumentation.base import Instrumentation, report_failure

# Set in a scope by FastAPI's route hook for the route (or mount) it selected: Starlette's routing
# then handles that same route, which is not to be counted twice.
_SELECTED = "oxapm.route_selected"
# A request whose scope holds this key is not traced by FastAPI's own telemetry.
_FASTAPI_TELEMETRY = "fastapi.telemetry"


class StarletteInstrumentation(Instrumentation):
    name = "starlette"

    def apply(self) -> None:
        from starlette.applications import Starlette

        def call(wrapped, instance, args, kwargs):
            arguments = asgi.call_arguments(args, kwargs)
            fastapi = sys.modules.get("fastapi")
            # A FastAPI application is the fastapi instrumentation's (whether it is applied or not).
            if arguments is None or (fastapi is not None and isinstance(instance, getattr(fastapi, "FastAPI", ()))):
                return wrapped(*args, **kwargs)
            return asgi.traced_call(self.name, wrapped, *arguments)

        self.wrap(Starlette, "__call__", call)
        _routing.acquire(self)

    def uninstrument(self) -> None:
        _routing.release(self)
        super().uninstrument()


class FastAPIInstrumentation(Instrumentation):
    name = "fastapi"

    def apply(self) -> None:
        import fastapi
        from fastapi import routing

        def call(wrapped, instance, args, kwargs):
            arguments = asgi.call_arguments(args, kwargs)
            if arguments is None:
                return wrapped(*args, **kwargs)
            scope = arguments[0]
            if isinstance(scope, dict) and scope.get("type") == "http" and _FASTAPI_TELEMETRY not in scope:
                scope[_FASTAPI_TELEMETRY] = None
            return asgi.traced_call(self.name, wrapped, *arguments)

        def route_selected(wrapped, instance, args, kwargs):
            served = web.current()
            path = kwargs.get("path")
            if served is not None and isinstance(path, str):
                try:
                    if kwargs.get("mount"):
                        served.mount(_mount_template(path))
                    else:
                        served.route(path)
                    kwargs["scope"][_SELECTED] = True
                except Exception:
                    report_failure(self.name)
            return wrapped(*args, **kwargs)

        self.wrap(fastapi.FastAPI, "__call__", call)
        if hasattr(routing, "_route_selected"):  # FastAPI's telemetry hook, in recent versions
            self.wrap(routing, "_route_selected", route_selected)
        _routing.acquire(self)

    def uninstrument(self) -> None:
        _routing.release(self)
        super().uninstrument()


class _Routing(Instrumentation):
    """Starlette's routing, patched while the starlette or the fastapi instrumentation is applied."""

    name = "starlette"

    def __init__(self) -> None:
        super().__init__()
        self._users: set = set()
        self._lock = allocate_lock()

    def acquire(self, user: Instrumentation) -> None:
        with self._lock:
            if not self._users:
                self.instrument()
            self._users.add(user)

    def release(self, user: Instrumentation) -> None:
        with self._lock:
            if user in self._users:
                self._users.discard(user)
                if not self._users:
                    self.uninstrument()

    def apply(self) -> None:
        from starlette import routing

        def route_handle(wrapped, instance, args, kwargs):
            _selected(instance, args, kwargs, mounted=False)
            return wrapped(*args, **kwargs)

        def mount_handle(wrapped, instance, args, kwargs):
            _selected(instance, args, kwargs, mounted=True)
            return wrapped(*args, **kwargs)

        self.wrap(routing.Route, "handle", route_handle)
        self.wrap(routing.Mount, "handle", mount_handle)


def _selected(route, args: tuple, kwargs: dict, mounted: bool) -> None:
    """Starlette's router handles ``route``: the request is named after it."""
    served = web.current()
    if served is None:
        return
    try:
        scope = args[0] if args else kwargs["scope"]
        if scope.pop(_SELECTED, False):
            return
        if mounted:
            served.mount(_mount_template(route.path_format))
        else:
            served.route(route.path_format)
    except Exception:
        report_failure(served.instrumentation)


def _mount_template(path_format: str) -> str:
    """A mount's own template: its ``path_format`` ends with the ``/{path}`` it hands down."""
    return path_format[: -len("/{path}")] if path_format.endswith("/{path}") else path_format


_routing = _Routing()
