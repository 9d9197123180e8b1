"""The generic WSGI middleware (``oxapm.contrib.wsgi.OxapmMiddleware``) around a framework-less
application, on Werkzeug's server and on gunicorn, with real HTTP requests."""

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import requests
import web_checks as checks
from web_checks import ENDLESS_CLOSED, GATE
from web_suite import Site
from web_suite import *  # noqa: F401,F403 (the tests every framework's application must pass)

import oxapm
from oxapm.contrib.wsgi import OxapmMiddleware

UNKNOWN = "GET unknown route"


def application(environ, start_response):
    """The test routes, by hand."""
    method, path = environ["REQUEST_METHOD"], environ["PATH_INFO"]
    body = []
    headers = [("Content-Type", "text/plain"), ("X-Served-By", "test-app")]
    if path.startswith("/users/"):
        with oxapm.capture_span("load-user"):
            headers.append(("X-Trace-Parent", oxapm.get_trace_parent_header() or ""))
        with checks.otel_tracer().start_as_current_span("otel-op"):
            pass
        body = [b"user " + path[len("/users/"):].encode()]
    elif method == "POST" and path in ("/echo", "/form", "/echo-then-boom"):
        data = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        if path == "/echo-then-boom":
            raise ValueError("after body")
        if path == "/form":
            data = ";".join("%s=%s" % item for item in sorted(parse_qsl(data.decode()))).encode()
        body = [data]
    elif path == "/boom":
        raise ValueError("boom")
    elif path == "/stream":
        start_response("200 OK", headers)
        return _stream()
    elif path == "/endless":
        start_response("200 OK", headers)
        return _endless()
    elif path == "/renamed":
        oxapm.set_transaction_name("custom name")
        body = [b"renamed"]
    else:
        start_response("404 Not Found", headers)
        return [b"not found"]
    start_response("200 OK", headers)
    return body


def _stream():
    for i in range(3):
        if i == 2:
            GATE.wait(10)
        with oxapm.capture_span("chunk"):
            chunk = ("chunk %d\n" % i).encode()
        yield chunk


def _endless():
    try:
        while True:
            yield b"x" * 4096
            time.sleep(0.005)
    finally:
        ENDLESS_CLOSED.set()


@pytest.fixture(scope="module")
def site():
    with checks.wsgi_server(OxapmMiddleware(application)) as url:
        yield Site(url, UNKNOWN, boom_name=UNKNOWN, wsgi=True, multipart=False, concurrent=False)


def test_an_exception_leaves_the_middleware_unchanged(recorded):
    raised = []

    def failing(environ, start_response):
        raised.append(KeyError("kept"))
        raise raised[0]

    traced = OxapmMiddleware(failing)
    caught = []

    def catching(environ, start_response):
        try:
            return traced(environ, start_response)
        except KeyError as exc:
            caught.append(exc)
            start_response("500 Internal Server Error", [])
            return [b"caught"]

    with checks.wsgi_server(catching) as url:
        assert requests.get(url + "/x").text == "caught"
    assert caught[0] is raised[0]
    transaction = recorded.transaction()
    assert transaction["result"] == "HTTP 5xx" and transaction["outcome"] == "failure"
    (error,) = recorded.poll().errors
    assert error["exception"]["type"] == "KeyError" and error["transaction_id"] == transaction["id"]


def test_a_failure_while_serving_is_reported_once_and_the_request_goes_on(recorded, caplog):
    """The engine's half of ``Served`` contains what fails in it (here a ``user_source`` that
    raises): each request is answered, its transaction still ends, and one warning tells why."""
    from oxapm.instrumentation import web

    def broken_user():
        raise RuntimeError("user source bug")

    def application(environ, start_response):
        web.current().user_source = broken_user
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"served"]

    caplog.set_level(logging.WARNING, logger="oxapm")
    with checks.wsgi_server(OxapmMiddleware(application)) as url:
        assert [requests.get(url + "/x").text for _ in range(2)] == ["served"] * 2
    transactions = recorded.wait_for_transactions(2)
    assert [(t["result"], "user" in t["context"]) for t in transactions] == [("HTTP 2xx", False)] * 2
    warnings = [r for r in caplog.records if r.name.startswith("oxapm") and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "user source bug" in caplog.text, [r.getMessage() for r in warnings]


def test_a_failure_to_record_the_body_is_reported_once_and_the_request_goes_on(client_with, caplog, monkeypatch):
    """``capture_body``: when ``wsgi.input`` cannot be wrapped, the body goes uncaptured and the
    application reads it as it came."""
    import oxapm.contrib.wsgi

    def broken(self, stream, served):
        raise RuntimeError("cannot record")

    # On the class: the engine looks the class up once.
    monkeypatch.setattr(oxapm.contrib.wsgi._RecordingInput, "__init__", broken)
    recorded = client_with(capture_body="all")
    caplog.set_level(logging.WARNING, logger="oxapm")
    with checks.wsgi_server(OxapmMiddleware(application)) as url:
        assert [requests.post(url + "/echo", data=b"body %d" % i).text for i in range(2)] == ["body 0", "body 1"]
    transactions = recorded.wait_for_transactions(2)
    assert [t["result"] for t in transactions] == ["HTTP 2xx"] * 2
    warnings = [r for r in caplog.records if r.name.startswith("oxapm") and r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "cannot record" in caplog.text, [r.getMessage() for r in warnings]


def test_the_request_served_is_found_through_what_is_current_and_freed_with_it(recorded):
    """``web.current()`` is the ``Served`` of the current transaction, from inside its spans too,
    and only there; the transaction holds it weakly, so it goes when the request ends, with the
    cyclic garbage collector off."""
    import gc
    import weakref

    from oxapm.instrumentation import web

    seen = []

    def application(environ, start_response):
        served = web.current()
        with oxapm.capture_span("inner"):
            seen.append((served, web.current() is served, OxapmMiddleware(inner)(environ, lambda *a: None)))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"served"]

    def inner(environ, start_response):  # an inner layer adds to the request served: no transaction
        return web.current()

    assert web.current() is None
    gc.disable()
    try:
        with checks.wsgi_server(OxapmMiddleware(application)) as url:
            assert requests.get(url + "/x").text == "served"
        (transaction,) = recorded.wait_for_transactions(1)
        ((served, same_inside_span, inner_served),) = seen
        assert isinstance(served, web.Served) and same_inside_span and inner_served is served
        gone = weakref.ref(served)
        del seen[:], served, inner_served
        assert gone() is None
    finally:
        gc.enable()
    assert [t["id"] for t in recorded.poll().transactions] == [transaction["id"]]


def test_under_gunicorn(tmp_path, intake):
    """A gunicorn worker (a forked process) reports each request to an APM Server."""
    (tmp_path / "traced_app.py").write_text(
        "import oxapm\n"
        "from oxapm.contrib.wsgi import OxapmMiddleware\n"
        "client = oxapm.Client(service_name='gunicorn-app', server_url=%r, api_request_time='50ms')\n"
        "def app(environ, start_response):\n"
        "    data = environ['wsgi.input'].read()\n"
        "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
        "    return [b'got ' + data]\n"
        "app = OxapmMiddleware(app)\n" % intake.url
    )
    sock = checks._loopback_socket()
    port = sock.getsockname()[1]
    sock.close()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(Path(oxapm.__file__).parent.parent)]), ELASTIC_APM_CAPTURE_BODY="all")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:%d" % port, "traced_app:app"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                response = requests.post("http://127.0.0.1:%d/orders?id=3" % port, data=b"two items")
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline and server.poll() is None, "gunicorn did not start"
                time.sleep(0.1)
        assert response.text == "got two items"
        assert intake.wait_for(lambda requests: any("transaction" in line for r in requests for line in r["lines"]), timeout=10)
    finally:
        server.terminate()
        server.wait(10)
    (transaction,) = [body for kind, body in intake.events() if kind == "transaction"]
    assert transaction["name"] == "POST unknown route" and transaction["result"] == "HTTP 2xx"
    assert transaction["context"]["request"]["body"] == "two items"
    assert transaction["context"]["request"]["url"]["search"] == "?id=3"
