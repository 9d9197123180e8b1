"""What the web framework tests share: real servers on loopback for each kind of application,
the events a client exported gathered as they arrive (validated against the intake schemas), and
the checks every framework's transactions must pass.

Each framework's test module serves an application with the same routes (see ROUTES); the tests
of ``web_suite`` run these checks against it."""

import asyncio
import contextlib
import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, List

import pytest
import requests
from conftest import Exported, attributes, spans_of, use_otlp

import oxapm
from oxapm.instrumentation import base, control

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_ID, PARENT_ID = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
LONG_TEXT = "x" * 12000

# What every test application serves (the route templates are in each framework's syntax):
#   GET  /users/{id}     "user <id>", a capture_span "load-user" and an OpenTelemetry span
#                        "otel-op" inside; headers x-trace-parent (get_trace_parent_header()) and
#                        x-served-by; a cookie "flavor"
#   POST /echo           reads the body as the framework reads it, answers it
#   POST /form           reads the form as the framework parses it, answers "a=..;b=.."
#   POST /echo-then-boom reads the body, then raises ValueError("after body")
#   GET  /boom           raises ValueError("boom")
#   GET  /stream         3 chunks "chunk <i>\n", each in a span "chunk"; waits for GATE before
#                        the last one
#   GET  /endless        chunks until the client goes away
#   GET  /renamed        calls oxapm.set_transaction_name("custom name")
#   GET  /slow/{n}       (async frameworks) label n, sleeps, a span "slow" around an await
GATE = threading.Event()
ENDLESS_CLOSED = threading.Event()


def otel_tracer():
    from oxapm.otel.trace import TracerProvider

    return TracerProvider(oxapm.get_client()).get_tracer("tests.web")


# --- servers ------------------------------------------------------------------------------------


def _loopback_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


def _url(sock: socket.socket) -> str:
    return "http://127.0.0.1:%d" % sock.getsockname()[1]


@contextlib.contextmanager
def wsgi_server(app):
    """Werkzeug's threaded development server."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "http://127.0.0.1:%d" % server.server_port
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def asgi_server(app):
    """Uvicorn, in a thread of its own."""
    import uvicorn

    sock = _loopback_socket()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", ws="none", log_level="critical", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    _wait(lambda: server.started, "uvicorn did not start")
    try:
        yield _url(sock)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextlib.contextmanager
def event_loop_thread():
    """An asyncio loop running in a thread: ``run(coroutine)`` runs one there."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coroutine, timeout=30):
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    try:
        yield run
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@contextlib.contextmanager
def aiohttp_server(app):
    """aiohttp's own runner."""
    from aiohttp import web

    sock = _loopback_socket()
    with event_loop_thread() as run:
        runner = web.AppRunner(app, access_log=None)
        run(runner.setup())
        run(web.SockSite(runner, sock).start())
        try:
            yield _url(sock)
        finally:
            run(runner.cleanup())


@contextlib.contextmanager
def sanic_server(app):
    """Sanic's own server, started as ``app.run`` starts it (touch-up included), in this process.
    Sanic's test mode lets applications start one after the other (its touch-up keeps the
    original methods to recompile)."""
    from sanic import Sanic

    Sanic.test_mode = True
    sock = _loopback_socket()
    with event_loop_thread() as run:

        async def start():
            server = await app.create_server(sock=sock, return_asyncio_server=True)
            await server.startup()
            await server.before_start()
            await server.after_start()
            return server

        async def stop(server):
            await server.before_stop()
            closing = server.close()
            if closing is not None:
                await closing
            await server.after_stop()

        server = run(start())
        try:
            yield _url(sock)
        finally:
            run(stop(server))


def _wait(predicate: Callable[[], bool], message: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.01)


# --- what the client exported ---------------------------------------------------------------------


class Recorded:
    """The events a memory client exported, gathered as they arrive (ending a transaction may
    happen after the response reached the test), each validated against its schema."""

    def __init__(self, client: oxapm.Client):
        self.client = client
        self.events: List[Any] = []

    def poll(self) -> "Recorded":
        assert self.client.flush(5.0)
        self.events.extend(Exported(self.client._engine.take_memory()).all)
        return self

    def of(self, kind: str) -> List[Dict[str, Any]]:
        return [body for k, body in self.events if k == kind]

    @property
    def transactions(self):
        """The requests' transactions (an OpenTelemetry span of an untraced request is a
        transaction of its own)."""
        return [t for t in self.of("transaction") if t["type"] == "request"]

    @property
    def spans(self):
        return self.of("span")

    @property
    def errors(self):
        return self.of("error")

    def wait_for_transactions(self, count: int = 1, timeout: float = 10.0) -> List[Dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.poll().transactions) < count:
            assert time.monotonic() < deadline, "%d transactions after %.0f s: %s" % (len(self.transactions), timeout, self.transactions)
            time.sleep(0.02)
        return self.transactions

    def transaction(self) -> Dict[str, Any]:
        (transaction,) = self.wait_for_transactions(1)
        return transaction


def make_client(**options) -> oxapm.Client:
    return oxapm.Client(service_name="web-tests", traces_exporter="memory", **options)


@contextlib.contextmanager
def _fresh_failure_reports():
    reported = set(base._reported)
    base._reported.clear()
    try:
        yield
    finally:
        base._reported.clear()
        base._reported.update(reported)


@pytest.fixture
def recorded():
    """A memory client, then ``oxapm.instrument()`` (which reads the client's configuration), for
    one test; failure reports fresh."""
    with _fresh_failure_reports():
        client = make_client()
        oxapm.instrument()
        yield Recorded(client)
        oxapm.uninstrument()
        client.close()


@pytest.fixture
def client_with():
    """``client_with(**options)``: a memory client configured so, instrumented, for this test."""
    made = []
    with _fresh_failure_reports():

        def make(**options) -> Recorded:
            client = make_client(**options)
            made.append(client)
            oxapm.instrument()
            return Recorded(client)

        yield make
        oxapm.uninstrument()
        for client in made:
            client.close()


# --- the checks -----------------------------------------------------------------------------------


def check_request(url: str, recorded: Recorded, name: str, env: bool = False) -> Dict[str, Any]:
    """A routed GET: name, type, result, outcome, request and response context, trace context
    from the caller, the handler's spans (Elastic and OpenTelemetry) as children."""
    response = requests.get(url + "/users/42?q=1&r=2", headers={"traceparent": TRACEPARENT, "X-Custom": "abc"}, cookies={"flavor": "mint"})
    assert response.status_code == 200 and response.text == "user 42"
    transaction = recorded.transaction()
    assert transaction["name"] == name and transaction["type"] == "request"
    assert transaction["result"] == "HTTP 2xx" and transaction["outcome"] == "success"
    assert transaction["trace_id"] == TRACE_ID and transaction["parent_id"] == PARENT_ID
    request = transaction["context"]["request"]
    host, port = url[len("http://"):].split(":")
    assert request["method"] == "GET"
    assert request["url"] == {
        "full": url + "/users/42?q=1&r=2", "protocol": "http:", "hostname": host, "port": port,
        "pathname": "/users/42", "search": "?q=1&r=2",
    }
    assert request["http_version"] == "1.1" and request["socket"] == {"remote_address": "127.0.0.1"}
    assert request["headers"]["x-custom"] == "abc" and request["headers"]["traceparent"] == TRACEPARENT
    assert "cookie" not in request["headers"] and request["cookies"] == {"flavor": "mint"}
    assert ("env" in request) is env
    if env:
        assert request["env"]["REMOTE_ADDR"] == "127.0.0.1" and request["env"]["SERVER_PORT"] == port
    assert transaction["context"]["response"]["status_code"] == 200
    assert transaction["context"]["response"]["headers"]["x-served-by"] == "test-app"
    spans = {span["name"]: span for span in recorded.spans}
    assert set(spans) == {"load-user", "otel-op"}
    for span in spans.values():
        assert span["transaction_id"] == span["parent_id"] == transaction["id"] and span["trace_id"] == TRACE_ID
    # get_trace_parent_header() in the handler named the transaction (or the span then current).
    assert response.headers["x-trace-parent"].startswith("00-%s-" % TRACE_ID)
    assert response.headers["x-trace-parent"].split("-")[2] in (transaction["id"], spans["load-user"]["id"])
    return transaction


def check_unknown_route(url: str, recorded: Recorded) -> None:
    response = requests.get(url + "/no/such/route")
    assert response.status_code == 404
    transaction = recorded.transaction()
    assert transaction["name"] == "GET unknown route"
    assert transaction["result"] == "HTTP 4xx" and transaction["outcome"] == "success"
    assert transaction["context"]["response"]["status_code"] == 404
    assert recorded.errors == []


def check_unhandled_exception(url: str, recorded: Recorded, name: str) -> None:
    """The handler's exception: a 500, captured once as an unhandled error of the transaction."""
    response = requests.get(url + "/boom")
    assert response.status_code == 500
    transaction = recorded.transaction()
    assert transaction["name"] == name
    assert transaction["result"] == "HTTP 5xx" and transaction["outcome"] == "failure"
    (error,) = recorded.poll().errors
    assert error["exception"]["type"] == "ValueError" and error["exception"]["message"] == "ValueError: boom"
    assert error["exception"]["handled"] is False
    assert error["trace_id"] == transaction["trace_id"]
    assert error["transaction_id"] == error["parent_id"] == transaction["id"]
    assert error["transaction"]["name"] == name and error["transaction"]["type"] == "request"
    assert error["context"]["request"]["url"]["pathname"] == "/boom"


def check_app_renames(url: str, recorded: Recorded) -> None:
    assert requests.get(url + "/renamed").status_code == 200
    assert recorded.transaction()["name"] == "custom name"


def check_legacy_and_configured_propagators(url: str, recorded: Recorded, monkeypatch) -> None:
    """Elastic's legacy header is read; OTEL_PROPAGATORS (read when the client first propagates)
    chooses the others (b3 here)."""
    monkeypatch.setenv("OTEL_PROPAGATORS", "b3")
    requests.get(url + "/users/1", headers={"elastic-apm-traceparent": TRACEPARENT})
    requests.get(url + "/users/2", headers={"b3": "%s-%s-1" % ("1" * 32, "2" * 16)})
    legacy, b3 = sorted(recorded.wait_for_transactions(2), key=lambda t: t["context"]["request"]["url"]["pathname"])
    assert (legacy["trace_id"], legacy["parent_id"]) == (TRACE_ID, PARENT_ID)
    assert (b3["trace_id"], b3["parent_id"]) == ("1" * 32, "2" * 16)


def check_headers_not_captured(url: str, recorded: Recorded) -> None:
    requests.get(url + "/users/1", headers={"X-Custom": "abc"}, cookies={"flavor": "mint"})
    context = recorded.transaction()["context"]
    assert "headers" not in context["request"] and "cookies" not in context["request"]
    assert "headers" not in context["response"] and context["response"]["status_code"] == 200


def check_body_capture(url: str, recorded: Recorded, capture_body: str) -> None:
    """The application reads its body as usual (its answer is the body), and the body goes to
    the events ``capture_body`` names: forms as maps, other bodies as text cut to 10000
    characters; ``[REDACTED]`` elsewhere."""
    form = requests.post(url + "/form", data={"a": "1", "b": "two words"})
    assert form.status_code == 200 and form.text == "a=1;b=two words"
    text = requests.post(url + "/echo", data=LONG_TEXT.encode(), headers={"Content-Type": "text/plain"})
    assert text.status_code == 200 and text.text == LONG_TEXT
    failed = requests.post(url + "/echo-then-boom", data=b'{"k": "v"}', headers={"Content-Type": "application/json"})
    assert failed.status_code == 500
    by_path = {t["context"]["request"]["url"]["pathname"]: t for t in recorded.wait_for_transactions(3)}
    (error,) = recorded.poll().errors
    in_transactions = capture_body in ("transactions", "all")
    in_errors = capture_body in ("errors", "all")
    assert by_path["/form"]["context"]["request"]["body"] == ({"a": "1", "b": "two words"} if in_transactions else "[REDACTED]")
    assert by_path["/echo"]["context"]["request"]["body"] == (LONG_TEXT[:10000] if in_transactions else "[REDACTED]")
    assert by_path["/echo-then-boom"]["context"]["request"]["body"] == ('{"k": "v"}' if in_transactions else "[REDACTED]")
    assert error["context"]["request"]["body"] == ('{"k": "v"}' if in_errors else "[REDACTED]")
    assert error["context"]["request"]["method"] == "POST"


def check_sanitized(url: str, recorded: Recorded) -> None:
    """``sanitize_field_names`` (applied by the engine on export) reaches every place a secret
    of the request lands: headers, cookies, form fields, the query string."""
    response = requests.post(
        url + "/form?token=q-secret&page=2",
        data={"a": "1", "password": "f-secret"},
        headers={"Authorization": "Bearer h-secret"},
        cookies={"sessionid": "c-secret", "flavor": "mint"},
    )
    assert response.text == "a=1;password=f-secret"
    transaction = recorded.transaction()
    request = transaction["context"]["request"]
    assert request["headers"]["authorization"] == "[REDACTED]"
    assert request["cookies"] == {"sessionid": "[REDACTED]", "flavor": "mint"}
    assert request["body"] == {"a": "1", "password": "[REDACTED]"}
    assert "page=2" in request["url"]["search"]
    assert not [secret for secret in ("q-secret", "f-secret", "h-secret", "c-secret") if secret in repr(recorded.events)]


def check_multipart_form(url: str, recorded: Recorded) -> None:
    response = requests.post(url + "/form", data={"a": "1", "b": "2"}, files={"upload": ("notes.txt", b"file body")})
    assert response.status_code == 200 and response.text == "a=1;b=2"
    body = recorded.transaction()["context"]["request"]["body"]
    assert body == {"a": "1", "b": "2", "_files": {"upload": "notes.txt"}}


def check_ignored_urls(url: str, recorded: Recorded) -> None:
    """``transaction_ignore_urls=/users/*``: no transaction there (the request is served)."""
    assert requests.get(url + "/users/7").text == "user 7"
    assert requests.get(url + "/renamed").status_code == 200
    assert [t["name"] for t in recorded.wait_for_transactions(1)] == ["custom name"]
    time.sleep(0.2)
    assert len(recorded.poll().transactions) == 1


def check_streaming(url: str, recorded: Recorded) -> None:
    """A streamed body: the transaction ends when the body does, with each chunk's span in it."""
    GATE.clear()
    with requests.get(url + "/stream", stream=True) as response:
        chunks = response.iter_content(chunk_size=None)
        assert next(chunks).startswith(b"chunk 0")
        # The handler has returned; its body has not ended: no transaction yet.
        assert recorded.poll().transactions == []
        GATE.set()
        rest = b"".join(chunks)
    assert rest.endswith(b"chunk 2\n")
    transaction = recorded.transaction()
    assert transaction["result"] == "HTTP 2xx"
    chunk_spans = [s for s in recorded.poll().spans if s["name"] == "chunk"]
    assert len(chunk_spans) == 3
    assert all(s["transaction_id"] == s["parent_id"] == transaction["id"] for s in chunk_spans)


def check_client_goes_away(url: str, recorded: Recorded) -> None:
    """An endless body: the transaction ends when the client goes away."""
    ENDLESS_CLOSED.clear()
    with requests.get(url + "/endless", stream=True) as response:
        next(response.iter_content(chunk_size=None))
    (transaction,) = recorded.wait_for_transactions(1, timeout=20)
    assert transaction["context"]["response"]["status_code"] == 200
    # A client going away is no failure of the application.
    assert transaction["outcome"] == "success" and recorded.poll().errors == []


def check_concurrent_requests(url: str, recorded: Recorded, count: int = 8) -> None:
    """Requests served at once, on one event loop: each transaction has its own spans."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(lambda n: requests.get("%s/slow/%d" % (url, n)).text, range(count)))
    assert answers == ["slow %d" % n for n in range(count)]
    transactions = recorded.wait_for_transactions(count)
    spans = recorded.poll().spans
    assert len(spans) == count
    by_id = {t["id"]: t for t in transactions}
    for span in spans:
        transaction = by_id[span["transaction_id"]]
        assert span["parent_id"] == transaction["id"]
        # The span's label names the request it was started in.
        assert transaction["context"]["tags"]["n"] == span["context"]["tags"]["n"]
    assert sorted(t["context"]["tags"]["n"] for t in transactions) == list(range(count))


def check_otlp(url: str, otlp_http, monkeypatch, name: str) -> None:
    """Over OTLP, the transaction is a SERVER span with the HTTP attributes."""
    use_otlp(monkeypatch, otlp_http.url)
    client = oxapm.Client(service_name="web-otlp")
    try:
        assert requests.get(url + "/users/42", headers={"traceparent": TRACEPARENT}).status_code == 200
        deadline = time.monotonic() + 10
        while True:
            client.flush(5.0)
            server = [s for s in spans_of(otlp_http.requests) if s.kind == 2]  # SPAN_KIND_SERVER
            if server or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        client.close()
    (span,) = server
    assert span.name == name and span.trace_id.hex() == TRACE_ID and span.parent_span_id.hex() == PARENT_ID
    found = attributes(span.attributes)
    assert found["http.request.method"] == "GET" and found["http.response.status_code"] == 200
    assert found["url.full"] == url + "/users/42"
    assert found["elastic.transaction.type"] == "request" and found["elastic.transaction.result"] == "HTTP 2xx"
    assert span.status.code == 1  # STATUS_CODE_OK


def check_disabled(url: str, name: str, monkeypatch, variable: str) -> None:
    """Left out by name (OTEL_PYTHON_DISABLED_INSTRUMENTATIONS or ELASTIC_APM_DISABLED_INSTRUMENTATIONS):
    requests are served, untraced."""
    monkeypatch.setenv(variable, "some-other," + name)
    client = make_client()
    try:
        oxapm.instrument()
        assert name not in control.instrumenting()
        assert requests.get(url + "/users/1").text == "user 1"
        assert Recorded(client).poll().transactions == []
    finally:
        oxapm.uninstrument()
        client.close()


def check_internal_failure(url: str, recorded: Recorded, monkeypatch, caplog) -> None:
    """An agent helper failing inside a request: served as usual, one warning, however many
    requests."""
    from oxapm.instrumentation import propagation

    def broken(*args, **kwargs):
        raise RuntimeError("agent bug")

    monkeypatch.setattr(propagation, "_configuration", None)  # the formats are looked up again...
    monkeypatch.setattr(propagation, "_configured", broken)  # ...and cannot be
    caplog.set_level(logging.WARNING, logger="oxapm")
    for _ in range(2):
        response = requests.get(url + "/users/5", headers={"traceparent": TRACEPARENT})
        assert response.status_code == 200 and response.text == "user 5"
    warnings = [r for r in caplog.records if r.name.startswith("oxapm") and r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "agent bug" in caplog.text



async def wait_for_gate() -> None:
    """For async handlers: waits for GATE without blocking the loop."""
    for _ in range(1000):
        if GATE.is_set():
            return
        await asyncio.sleep(0.01)
