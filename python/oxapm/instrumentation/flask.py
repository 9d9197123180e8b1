"""Flask: each request a transaction (``contrib.wsgi.traced_call`` around ``Flask.__call__``, so
middleware set as ``app.wsgi_app`` is inside it), named after the URL rule as Flask writes it
(``GET /users/<int:id>``), with the exceptions no error handler took captured.
"""

from __future__ import annotations

from oxapm import _core
from oxapm.contrib import wsgi
from oxapm.instrumentation import web
from oxapm.instrumentation.base import Instrumentation


class FlaskInstrumentation(Instrumentation):
    name = "flask"

    def apply(self) -> None:
        import flask
        from flask.globals import _cv_request  # read directly: the ``request`` proxy costs ten times more

        def handle_exception(wrapped, instance, args, kwargs):
            # Called for the exceptions no error handler took; Flask answers 500.
            served = web.current()
            exc = args[0] if args else kwargs.get("e")
            if served is not None and isinstance(exc, BaseException):
                served.raised(exc)
            return wrapped(*args, **kwargs)

        wsgi.wrap_application(self, flask.Flask)
        # The URL was matched when the request context was pushed, before this runs: the engine
        # names the transaction after ``_cv_request.get().request.url_rule.rule``.
        rule = ["request", "url_rule", "rule"]
        self.wrap_in_engine(flask.Flask, "full_dispatch_request", lambda original, binds: _core.Patch.routing(original, binds, self.name, _cv_request, rule))
        self.wrap(flask.Flask, "handle_exception", handle_exception)
