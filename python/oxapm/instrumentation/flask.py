"""Flask: each request a transaction (``contrib.wsgi.traced_call`` around ``Flask.__call__``, so
middleware set as ``app.wsgi_app`` is inside it), named after the URL rule as Flask writes it
(``GET /users/<int:id>``), with the exceptions no error handler took captured.
"""

from __future__ import annotations

from oxapm.contrib import wsgi
from oxapm.instrumentation import web
from oxapm.instrumentation.base import Instrumentation, report_failure


class FlaskInstrumentation(Instrumentation):
    name = "flask"

    def apply(self) -> None:
        import flask
        from flask.globals import _cv_request  # read directly: the ``request`` proxy costs ten times more


        def call(wrapped, instance, args, kwargs):
            return wsgi.traced_call(self.name, wrapped, *args, **kwargs)

        def full_dispatch_request(wrapped, instance, args, kwargs):
            # The URL was matched when the request context was pushed, before this runs.
            served = web.current()
            if served is not None:
                try:
                    context = _cv_request.get(None)
                    rule = context.request.url_rule if context is not None else None
                    if rule is not None:
                        served.route(rule.rule)
                except Exception:
                    report_failure(self.name)
            return wrapped(*args, **kwargs)

        def handle_exception(wrapped, instance, args, kwargs):
            # Called for the exceptions no error handler took; Flask answers 500.
            served = web.current()
            exc = args[0] if args else kwargs.get("e")
            if served is not None and isinstance(exc, BaseException):
                served.raised(exc)
            return wrapped(*args, **kwargs)

        self.wrap(flask.Flask, "__call__", call)
        self.wrap(flask.Flask, "full_dispatch_request", full_dispatch_request)
        self.wrap(flask.Flask, "handle_exception", handle_exception)
