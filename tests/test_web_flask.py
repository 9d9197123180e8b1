"""The flask instrumentation: a Flask application on Werkzeug's server, real HTTP requests."""

import time

import pytest
import requests
import web_checks as checks
from web_checks import ENDLESS_CLOSED, GATE
from web_suite import Site
from web_suite import *  # noqa: F401,F403 (the tests every framework's application must pass)

import oxapm
from oxapm.contrib.wsgi import OxapmMiddleware

flask = pytest.importorskip("flask")

ROUTE_NAME = "GET /users/<int:user_id>"


def make_app():
    app = flask.Flask("web-tests")

    @app.route("/users/<int:user_id>")
    def user(user_id):
        with oxapm.capture_span("load-user"):
            trace_parent = oxapm.get_trace_parent_header() or ""
        with checks.otel_tracer().start_as_current_span("otel-op"):
            pass
        response = flask.make_response("user %d" % user_id)
        response.headers["x-trace-parent"] = trace_parent
        response.headers["x-served-by"] = "test-app"
        return response

    @app.route("/echo", methods=["POST"])
    def echo():
        return flask.request.get_data()

    @app.route("/form", methods=["POST"])
    def form():
        return ";".join("%s=%s" % item for item in sorted(flask.request.form.items()))

    @app.route("/echo-then-boom", methods=["POST"])
    def echo_then_boom():
        flask.request.get_data()
        raise ValueError("after body")

    @app.route("/boom")
    def boom():
        raise ValueError("boom")

    @app.route("/stream")
    def stream():
        def body():
            for i in range(3):
                if i == 2:
                    GATE.wait(10)
                with oxapm.capture_span("chunk"):
                    chunk = "chunk %d\n" % i
                yield chunk

        return flask.Response(body())

    @app.route("/endless")
    def endless():
        def body():
            try:
                while True:
                    yield b"x" * 4096
                    time.sleep(0.005)
            finally:
                ENDLESS_CLOSED.set()

        return flask.Response(body())

    @app.route("/renamed")
    def renamed():
        oxapm.set_transaction_name("custom name")
        return "renamed"

    return app


@pytest.fixture(scope="module")
def site():
    with checks.wsgi_server(make_app()) as url:
        yield Site(url, ROUTE_NAME, instrumentation="flask", wsgi=True, concurrent=False)


def test_uninstrument_restores_flask(url):
    originals = {name: vars(flask.Flask)[name] for name in ("__call__", "full_dispatch_request", "handle_exception")}
    client = checks.make_client()
    try:
        oxapm.instrument()
        assert vars(flask.Flask)["__call__"] is not originals["__call__"]
        oxapm.uninstrument()
        assert all(vars(flask.Flask)[name] is original for name, original in originals.items())
        assert requests.get(url + "/users/3").text == "user 3"
        assert checks.Recorded(client).poll().transactions == []
    finally:
        client.close()


def test_the_engine_s_patches_take_flask_s_methods_as_they_are(recorded):
    """Flask's ``__call__`` and ``full_dispatch_request`` are replaced by the engine's patches,
    which bind as the methods did."""
    from oxapm import _core

    for name in ("__call__", "full_dispatch_request"):
        patched = vars(flask.Flask)[name]
        assert type(patched) is _core.Patch and patched.__wrapped__.__name__ == name
        app = make_app()
        assert getattr(app, name).__self__ is app


def test_methods_another_tool_wrapped_first_are_traced_through_its_wrappers(recorded):
    """Another tool wrapped Flask's methods with wrapt before oxapm: oxapm wraps its wrappers,
    which still run, and the transaction is still named after the route."""
    import wrapt

    calls = []

    def counting(wrapped, instance, args, kwargs):
        calls.append(wrapped.__name__)
        return wrapped(*args, **kwargs)

    names = ("__call__", "full_dispatch_request")
    oxapm.uninstrument()
    originals = {name: vars(flask.Flask)[name] for name in names}
    for name in names:
        wrapt.wrap_function_wrapper(flask.Flask, name, counting)
    try:
        oxapm.instrument()
        assert all(isinstance(vars(flask.Flask)[name], wrapt.FunctionWrapper) for name in names)
        with checks.wsgi_server(make_app()) as url:
            assert requests.get(url + "/users/4").text == "user 4"
        assert recorded.transaction()["name"] == ROUTE_NAME
        assert calls == list(names)
    finally:
        oxapm.uninstrument()
        for name, original in originals.items():
            setattr(flask.Flask, name, original)


def test_a_propagated_exception_is_raised_unchanged_and_captured_once(recorded):
    """With PROPAGATE_EXCEPTIONS, the view's exception leaves Flask: the same object reaches the
    server side, and is one error."""
    app = make_app()
    app.config["PROPAGATE_EXCEPTIONS"] = True
    raised = []

    @app.route("/raise")
    def raise_():
        raised.append(KeyError("kept"))
        raise raised[0]

    caught = []

    def catching(environ, start_response):
        try:
            return app(environ, start_response)
        except KeyError as exc:
            caught.append(exc)
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"caught"]

    with checks.wsgi_server(catching) as url:
        assert requests.get(url + "/raise").text == "caught"
    assert caught == raised and caught[0] is raised[0]
    transaction = recorded.transaction()
    assert transaction["name"] == "GET /raise" and transaction["outcome"] == "failure"
    (error,) = recorded.poll().errors
    assert error["exception"]["type"] == "KeyError" and error["transaction_id"] == transaction["id"]


def test_inside_a_hand_placed_middleware_one_transaction_named_by_flask(recorded):
    with checks.wsgi_server(OxapmMiddleware(make_app())) as url:
        assert requests.get(url + "/users/8").text == "user 8"
    assert recorded.transaction()["name"] == ROUTE_NAME
    time.sleep(0.1)
    assert len(recorded.poll().transactions) == 1


def test_an_opentelemetry_instrumentation_of_the_same_app_is_no_second_transaction(recorded, monkeypatch):
    """OpenTelemetry's Flask instrumentation on an application oxapm traces finds oxapm's
    transaction current (one context): its span is a child, not another transaction."""
    FlaskInstrumentor = pytest.importorskip("opentelemetry.instrumentation.flask").FlaskInstrumentor
    from opentelemetry import propagate, trace

    from oxapm.otel.propagators import propagator_from_names
    from oxapm.otel.trace import TracerProvider

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", TracerProvider(recorded.client))
    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", propagator_from_names("tracecontext,baggage"))
    app = make_app()
    FlaskInstrumentor().instrument_app(app)
    try:
        with checks.wsgi_server(app) as url:
            assert requests.get(url + "/users/6", headers={"traceparent": checks.TRACEPARENT}).text == "user 6"
    finally:
        FlaskInstrumentor().uninstrument_app(app)
    transaction = recorded.transaction()
    time.sleep(0.1)
    assert [t["name"] for t in recorded.poll().of("transaction")] == [ROUTE_NAME]
    (contrib,) = [s for s in recorded.spans if s["name"] == ROUTE_NAME]
    assert contrib["parent_id"] == transaction["id"] and contrib["otel"]["span_kind"] == "INTERNAL"


def test_a_call_to_another_traced_service_continues_the_trace(url, recorded):
    """A handler calls another traced service with requests: that request's transaction is a
    child of the exit span, in the same trace."""
    caller = flask.Flask("caller")

    @caller.route("/call")
    def call():
        return requests.get(url + "/users/5").text

    with checks.wsgi_server(caller) as caller_url:
        assert requests.get(caller_url + "/call", headers={"traceparent": checks.TRACEPARENT}).text == "user 5"
    transactions = {t["name"]: t for t in recorded.wait_for_transactions(2)}
    outer, inner = transactions["GET /call"], transactions[ROUTE_NAME]
    (exit_span,) = [s for s in recorded.poll().spans if s["type"] == "external"]
    assert exit_span["transaction_id"] == exit_span["parent_id"] == outer["id"]
    assert inner["parent_id"] == exit_span["id"]
    assert outer["trace_id"] == inner["trace_id"] == exit_span["trace_id"] == checks.TRACE_ID
