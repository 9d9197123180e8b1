"""oxapm's instrumentations of HTTP clients (http.client with urllib.request, urllib3, requests,
httpx, aiohttp, httplib2) against a real loopback server that records the headers it receives:
the exit span of each call, its outcome, the trace context sent, both export formats, layered
libraries and OpenTelemetry's own requests instrumentation reported once, streamed responses,
disabling, removal and contained failures."""

import asyncio
import http.client
import http.server
import inspect
import logging
import socket
import ssl
import threading
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from conftest import attributes, exported, spans_of, use_otlp

import oxapm
from oxapm.instrumentation import base, control, propagation
from oxapm import _core

TRACE_CONTEXT_HEADERS = ("traceparent", "tracestate", "elastic-apm-traceparent")

# --- a loopback server recording what it receives ----------------------------------------------------


class _Recorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        received = {}
        for name, value in self.headers.items():
            received.setdefault(name.lower(), []).append(value)
        with server.lock:
            server.received.append(received)
        path = urlsplit(self.path).path
        if path.startswith("/status/"):
            self._answer(int(path.rsplit("/", 1)[1]), {})
        elif path == "/redirect":
            self._answer(302, {"Location": "/status/200"})
        elif path == "/stream":  # the headers now, the body once the test releases it
            self._answer(200, {"Content-Length": "4"}, body=b"")
            server.release.wait(10)
            self.wfile.write(b"body")
        else:
            self._answer(404, {})

    do_POST = do_GET

    def _answer(self, status, headers, body=b"ok"):
        self.send_response(status)
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls=None):
        super().__init__(("127.0.0.1", 0), _Recorder)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.received = []  # the headers of each request, by lower-case name: a list of values
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.port = self.server_address[1]
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)

    def headers(self):
        """The headers of the one request received."""
        (received,) = self.received
        return received


def _serving(server):
    # A short poll: shutdown() waits for one.
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def server():
    yield from _serving(Server())


@pytest.fixture
def refused_url():
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return "http://127.0.0.1:%d/status/200" % port


@pytest.fixture
def silent_url():
    """A loopback port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield "http://127.0.0.1:%d/status/200" % sock.getsockname()[1]


# --- one GET per library, returning the status --------------------------------------------------------


def with_urllib(url, headers=None, timeout=5):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        with error:
            return error.code


def with_http_client(url, headers=None, timeout=5):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.request("GET", parts.path + ("?" + parts.query if parts.query else ""), headers=headers or {})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def with_urllib3(url, headers=None, timeout=5):
    import urllib3

    return urllib3.PoolManager(timeout=timeout).request("GET", url, headers=headers, retries=False).status


def with_requests(url, headers=None, timeout=5):
    import requests

    return requests.get(url, headers=headers, timeout=timeout).status_code


def with_httpx(url, headers=None, timeout=5):
    import httpx

    return httpx.get(url, headers=headers, timeout=timeout).status_code


def with_httpx_client(url, headers=None, timeout=5):
    import httpx

    with httpx.Client(timeout=timeout) as session:
        return session.get(url, headers=headers).status_code


def with_httpx_async(url, headers=None, timeout=5):
    import httpx

    async def get():
        async with httpx.AsyncClient(timeout=timeout) as session:
            return (await session.get(url, headers=headers)).status_code

    return asyncio.run(get())


def with_aiohttp(url, headers=None, timeout=5):
    import aiohttp

    async def get():
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            async with session.get(url, headers=headers) as response:
                await response.read()
                return response.status

    return asyncio.run(get())


def with_httplib2(url, headers=None, timeout=5):
    import httplib2

    response, _ = httplib2.Http(timeout=timeout).request(url, "GET", headers=headers)
    return response.status


# id: (module needed, the instrumentation that traces it, the call)
LIBRARIES = {
    "urllib.request": ("urllib.request", "http-client", with_urllib),
    "http.client": ("http.client", "http-client", with_http_client),
    "urllib3": ("urllib3", "urllib3", with_urllib3),
    "requests": ("requests", "requests", with_requests),
    "httpx": ("httpx", "httpx", with_httpx),
    "httpx.Client": ("httpx", "httpx", with_httpx_client),
    "httpx.AsyncClient": ("httpx", "httpx", with_httpx_async),
    "aiohttp": ("aiohttp", "aiohttp-client", with_aiohttp),
    "httplib2": ("httplib2", "httplib2", with_httplib2),
}

# What each instrumentation patches: restored by uninstrument.
PATCHED = {
    "http-client": ("http.client", "HTTPConnection", ("request", "getresponse")),
    "urllib3": ("urllib3.connectionpool", "HTTPConnectionPool", ("urlopen",)),
    "requests": ("requests", "Session", ("send",)),
    "httpx": ("httpx", "HTTPTransport", ("handle_request",)),
    "httpx-async": ("httpx", "AsyncHTTPTransport", ("handle_async_request",)),
    "aiohttp-client": ("aiohttp", "ClientSession", ("_request",)),
    "httplib2": ("httplib2", "Http", ("request",)),
}


@pytest.fixture(params=list(LIBRARIES))
def library(request):
    module, _, call = LIBRARIES[request.param]
    pytest.importorskip(module)
    return call


@pytest.fixture
def agent():
    """Makes a memory client with the given options and instruments; removes the instrumentations
    afterwards."""
    made = []

    def make(**options):
        client = oxapm.Client(service_name="test-service", traces_exporter="memory", **options)
        made.append(client)
        oxapm.instrument()
        return client

    yield make
    oxapm.uninstrument()
    for client in made:
        client.close()


def traced(client, call, *args, **kwargs):
    """Runs ``call`` in a transaction; returns its result, the transaction and the exported events."""
    transaction = client.begin_transaction("request")
    try:
        result = call(*args, **kwargs)
    finally:
        client.end_transaction("GET /", "HTTP 2xx")
    return result, transaction, exported(client)


def ids(traceparent):
    """The trace id, parent id and sampled flag a traceparent header carries."""
    _, trace_id, span_id, flags = traceparent.split("-")
    return trace_id, span_id, bool(int(flags, 16) & 1)


def carries(headers, transaction, span_id, sampled=True):
    """Whether the recorded request headers carry this trace context, once each."""
    (traceparent,), (legacy,), (_,) = headers["traceparent"], headers["elastic-apm-traceparent"], headers["tracestate"]
    return legacy == traceparent and ids(traceparent) == (transaction.trace_id, span_id, sampled)


# --- the exit span ------------------------------------------------------------------------------------


def test_the_exit_span_of_a_call(agent, server, library):
    status, transaction, events = traced(agent(), library, server.url + "/status/200?page=2")
    assert status == 200
    (span,) = events.spans
    assert span["name"] == "GET 127.0.0.1:%d" % server.port
    assert (span["type"], span["subtype"], span.get("action")) == ("external", "http", None)
    assert span["parent_id"] == transaction.id and span["outcome"] == "success"
    # The destination's service and the service target are the engine's, inferred from the URL.
    authority = "127.0.0.1:%d" % server.port
    assert span["context"] == {
        "http": {"url": server.url + "/status/200?page=2", "method": "GET", "status_code": 200, "response": {"status_code": 200}},
        "destination": {"address": "127.0.0.1", "port": server.port, "service": {"resource": authority, "name": "", "type": ""}},
        "service": {"target": {"type": "http", "name": authority}},
    }
    assert carries(server.headers(), transaction, span["id"])


@pytest.mark.parametrize("status, outcome", [(200, "success"), (404, "failure"), (500, "failure")])
def test_outcome_follows_the_status(agent, server, library, status, outcome):
    answered, _, events = traced(agent(), library, server.url + "/status/%d" % status)
    assert answered == status
    (span,) = events.spans
    assert (span["outcome"], span["context"]["http"]["status_code"]) == (outcome, status)


def test_connection_refused_is_a_failure(agent, refused_url, library):
    client = agent()
    with pytest.raises(Exception):
        traced(client, library, refused_url)
    (span,) = exported(client).spans
    port = urlsplit(refused_url).port
    assert (span["name"], span["outcome"]) == ("GET 127.0.0.1:%d" % port, "failure")
    assert "status_code" not in span["context"]["http"]


def test_a_timeout_is_a_failure(agent, silent_url, library):
    client = agent()
    with pytest.raises(Exception):
        traced(client, library, silent_url, timeout=0.2)
    (span,) = exported(client).spans
    assert span["outcome"] == "failure"


@pytest.mark.parametrize("call", [with_requests, with_urllib3, with_httpx, with_httpx_async, with_aiohttp], ids=lambda c: c.__name__)
def test_credentials_in_the_url_are_left_out(agent, server, call):
    url = server.url.replace("//", "//alice:s3cret@") + "/status/200"
    _, _, events = traced(agent(), call, url)
    (span,) = events.spans
    assert span["context"]["http"]["url"] == server.url + "/status/200"
    assert "s3cret" not in str(events.all) and "alice" not in str(events.all)


def exit_span_of(client, request):
    """The exported exit span the engine starts for ``request`` (see ``_core.begin_http_span``)."""
    transaction = client.begin_transaction("request")
    _core.begin_http_span(transaction, request)._end_http(200)
    client.end_transaction("GET /")
    (span,) = exported(client).spans
    return span


@pytest.mark.parametrize("method, scheme, host, port, target, name, url, destination", [
    ("get", "HTTP", "example.com", None, "/", "GET example.com", "http://example.com/", {"address": "example.com", "port": 80}),
    ("POST", "https", "example.com", 443, "/a?b=c", "POST example.com", "https://example.com/a?b=c", {"address": "example.com", "port": 443}),
    ("GET", "https", "example.com", 8443, "/", "GET example.com:8443", "https://example.com:8443/", {"address": "example.com", "port": 8443}),
    ("GET", "http", "::1", 8080, "/", "GET [::1]:8080", "http://[::1]:8080/", {"address": "::1", "port": 8080}),
    ("GET", "http", "[::1]", None, "/", "GET [::1]", "http://[::1]/", {"address": "::1", "port": 80}),
    ("GET", "ftp", "files", None, "/x", "GET files", "ftp://files/x", {"address": "files"}),
])
def test_span_names_urls_and_destinations(agent, method, scheme, host, port, target, name, url, destination):
    span = exit_span_of(agent(), (method, scheme, host, port, target))
    assert (span["name"], span["type"], span["subtype"], span.get("action")) == (name, "external", "http", None)
    assert span["context"]["http"]["url"] == url and span["context"]["http"]["method"] == method.upper()
    assert span["context"]["destination"]["address"] == destination["address"]
    assert span["context"]["destination"].get("port") == destination.get("port")


@pytest.mark.parametrize("url, parts", [
    ("https://alice:s3cret@Example.com:8443/a/b?c=d#frag", ("https", "example.com", 8443, "/a/b?c=d")),
    ("http://example.com", ("http", "example.com", None, "/")),
    ("http://[::1]:81/x", ("http", "::1", 81, "/x")),
    ("http://example.com:port/", ("http", "example.com", None, "/")),
])
def test_an_absolute_url_is_split_as_urlsplit_splits_it(agent, url, parts):
    client = agent()
    assert exit_span_of(client, ("GET", url))["context"]["http"]["url"] == exit_span_of(client, ("GET",) + parts)["context"]["http"]["url"]


def test_redirects_followed_by_requests_are_one_span_with_the_final_status(agent, server):
    status, _, events = traced(agent(), with_requests, server.url + "/redirect")
    (span,) = events.spans
    assert status == 200 and span["context"]["http"]["url"] == server.url + "/redirect"
    assert span["context"]["http"]["status_code"] == 200
    assert [ids(headers["traceparent"][0])[:2] for headers in server.received] == [(span["trace_id"], span["id"])] * 2


def test_each_redirect_httpx_follows_is_a_span(agent, server):
    httpx = pytest.importorskip("httpx")
    _, _, events = traced(agent(), lambda: httpx.get(server.url + "/redirect", follow_redirects=True).status_code)
    assert [(s["context"]["http"]["url"], s["context"]["http"]["status_code"]) for s in events.spans] == [
        (server.url + "/redirect", 302), (server.url + "/status/200", 200)]
    assert [headers["traceparent"][0].split("-")[2] for headers in server.received] == [s["id"] for s in events.spans]


@pytest.fixture
def tls_server(certificates):
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    yield from _serving(Server(tls))


def test_https(agent, tls_server, certificates):
    httpx = pytest.importorskip("httpx")
    trusting = ssl.create_default_context(cafile=str(certificates / "ca.pem"))
    trusting.verify_flags &= ~getattr(ssl, "VERIFY_X509_STRICT", 0)  # 3.13's default; the test CA has no keyUsage

    def both():
        connection = http.client.HTTPSConnection("127.0.0.1", tls_server.port, context=trusting, timeout=5)
        connection.request("GET", "/status/200")
        connection.getresponse().read()
        connection.close()
        httpx.get(tls_server.url + "/status/200", verify=trusting)

    _, _, events = traced(agent(), both)
    assert [(s["name"], s["context"]["http"]["url"], s["context"]["destination"]["port"]) for s in events.spans] == [
        ("GET 127.0.0.1:%d" % tls_server.port, tls_server.url + "/status/200", tls_server.port)] * 2


# --- trace context sent -----------------------------------------------------------------------------------


def test_the_caller_s_trace_context_headers_are_replaced_and_others_kept(agent, server, library):
    forwarded = {"TraceParent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "other=1", "X-Request-Id": "r-1"}
    _, transaction, events = traced(agent(), library, server.url + "/status/200", headers=forwarded)
    (span,) = events.spans
    headers = server.headers()
    assert carries(headers, transaction, span["id"])
    assert headers["tracestate"] != ["other=1"] and headers["x-request-id"] == ["r-1"]


def test_without_the_elastic_header(agent, server, library):
    _, transaction, events = traced(agent(use_elastic_traceparent_header=False), library, server.url + "/status/200")
    (span,) = events.spans
    headers = server.headers()
    (traceparent,) = headers["traceparent"]
    assert ids(traceparent) == (transaction.trace_id, span["id"], True)
    assert "elastic-apm-traceparent" not in headers


def test_b3_from_otel_propagators(agent, server, library, monkeypatch):
    monkeypatch.setenv("OTEL_PROPAGATORS", "b3")
    _, transaction, events = traced(agent(use_elastic_traceparent_header=False), library, server.url + "/status/200")
    (span,) = events.spans
    headers = server.headers()
    assert headers["b3"] == ["%s-%s-1" % (transaction.trace_id, span["id"])]
    assert "traceparent" not in headers


def test_opentelemetry_s_baggage_goes_out_with_the_call(agent, server, library):
    baggage = pytest.importorskip("opentelemetry.baggage")
    from opentelemetry import context

    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        traced(agent(), library, server.url + "/status/200")
    finally:
        context.detach(token)
    assert server.headers()["baggage"] == ["tenant=acme"]


def test_an_unsampled_transaction_still_propagates(agent, server, library):
    status, transaction, events = traced(agent(transaction_sample_rate=0), library, server.url + "/status/200")
    assert status == 200 and events.spans == []
    assert carries(server.headers(), transaction, transaction.id, sampled=False)


def test_outside_a_transaction_nothing_is_recorded_or_sent(agent, server, library):
    client = agent()
    assert library(server.url + "/status/200") == 200
    assert exported(client).all == []
    assert not set(server.headers()) & set(TRACE_CONTEXT_HEADERS)


# --- export formats --------------------------------------------------------------------------------------


def test_the_exit_span_over_otlp(otlp_http, monkeypatch, server, library):
    use_otlp(monkeypatch, otlp_http.url, OTEL_SERVICE_NAME="shop")
    client = oxapm.Client()
    oxapm.instrument()
    try:
        client.begin_transaction("request")
        library(server.url + "/status/404")
        client.end_transaction("GET /", "HTTP 2xx")
    finally:
        oxapm.uninstrument()
        client.close()
    exit_spans = [s for s in spans_of(otlp_http.requests) if s.parent_span_id]
    (span,) = exit_spans
    found = attributes(span.attributes)
    assert span.name == "GET 127.0.0.1:%d" % server.port and span.kind == span.SPAN_KIND_CLIENT
    assert span.status.code == span.status.STATUS_CODE_ERROR
    assert (found["url.full"], found["http.request.method"], found["http.response.status_code"]) == (server.url + "/status/404", "GET", 404)
    assert (found["server.address"], found["server.port"]) == ("127.0.0.1", server.port)
    (traceparent,) = server.headers()["traceparent"]
    assert ids(traceparent) == (span.trace_id.hex(), span.span_id.hex(), True)


# --- layers, and OpenTelemetry's requests instrumentation --------------------------------------------


def test_requests_over_urllib3_over_http_client_is_one_span(agent, server):
    pytest.importorskip("requests")
    client = agent()
    assert {"requests", "urllib3", "http-client"} <= set(control.applied())
    _, transaction, events = traced(client, with_requests, server.url + "/status/200")
    (span,) = events.spans
    assert carries(server.headers(), transaction, span["id"])


def test_a_disabled_layer_leaves_the_call_to_the_one_below(agent, server):
    pytest.importorskip("requests")
    client = agent(disabled_instrumentations="requests")
    assert "requests" not in control.applied() and "urllib3" in control.applied()
    _, transaction, events = traced(client, with_requests, server.url + "/status/500")
    (span,) = events.spans  # urllib3's
    assert (span["name"], span["outcome"]) == ("GET 127.0.0.1:%d" % server.port, "failure")
    assert carries(server.headers(), transaction, span["id"])


def test_without_http_client_s_instrumentation_requests_and_urllib3_still_send_the_headers(agent, server):
    """The connection writes the headers of the layers above (see ``outgoing_http``): the hook
    that does stays while any layer over http.client is applied."""
    pytest.importorskip("requests")
    client = agent(disabled_instrumentations="http-client")
    for call in (with_requests, with_urllib3):
        _, transaction, events = traced(client, call, server.url + "/status/200")
        (span,) = events.spans
        assert carries(server.received.pop(), transaction, span["id"])


def test_requests_through_an_adapter_of_its_own_carries_the_headers_on_the_request(agent):
    """An adapter that is not requests' own may not send through http.client: the headers go on
    the PreparedRequest it is given."""
    requests = pytest.importorskip("requests")
    sent = []

    class Replying(requests.adapters.BaseAdapter):
        def send(self, request, **kwargs):
            sent.append(request.headers)
            response = requests.Response()
            response.status_code, response.request, response.url = 204, request, request.url
            return response

        def close(self):
            pass

    def call():
        with requests.Session() as session:
            session.mount("mem://", Replying())
            return session.get("mem://service/items").status_code

    status, transaction, events = traced(agent(), call)
    (span,) = events.spans
    (headers,) = sent
    assert status == 204 and span["context"]["http"]["status_code"] == 204
    assert carries({name.lower(): [headers[name]] for name in headers}, transaction, span["id"])


def test_requests_own_adapter_in_a_session_with_another_mounted_sends_the_headers_once(agent, server):
    """With another adapter mounted for some other prefix, a call through requests' own adapter
    carries the headers on the request (the connection is not asked to): still one of each."""
    requests = pytest.importorskip("requests")

    class Unused(requests.adapters.BaseAdapter):
        def close(self):
            pass

    def call():
        with requests.Session() as session:
            session.mount("mem://", Unused())
            return session.get(server.url + "/status/200").status_code

    status, transaction, events = traced(agent(), call)
    (span,) = events.spans
    assert status == 200 and carries(server.headers(), transaction, span["id"])


@pytest.mark.parametrize("disabled, hooked", [("", True), ("http-client", True), ("requests,urllib3", True), ("requests,urllib3,http-client", False)])
def test_the_connection_writes_the_headers_while_a_layer_over_it_is_applied(agent, disabled, hooked):
    original = vars(http.client.HTTPConnection)["endheaders"]
    agent(disabled_instrumentations=disabled)
    assert (vars(http.client.HTTPConnection)["endheaders"] is not original) == hooked
    oxapm.uninstrument()
    assert vars(http.client.HTTPConnection)["endheaders"] is original


@pytest.mark.parametrize("sample_rate", [1.0, 0.0])
def test_a_connection_whose_endheaders_another_tool_wrapped_still_writes_the_headers(monkeypatch, agent, server, sample_rate):
    """Over another tool's wrapt wrapper the connection's hook is Python's, which finds the call in
    progress as the engine does: through its exit span when current, else through the mark of a
    call that recorded none."""
    pytest.importorskip("requests")
    import wrapt

    seen = []
    original = vars(http.client.HTTPConnection)["endheaders"]
    # Undone after the agent's fixture has removed the instrumentations (set up first, torn down last).
    monkeypatch.setattr(http.client.HTTPConnection, "endheaders", wrapt.FunctionWrapper(original, lambda wrapped, instance, args, kwargs: seen.append(1) or wrapped(*args, **kwargs)))
    _, transaction, events = traced(agent(transaction_sample_rate=sample_rate), with_requests, server.url + "/status/200")
    assert seen == [1]
    span_id = events.spans[0]["id"] if sample_rate else transaction.id
    assert len(events.spans) == int(sample_rate) and carries(server.headers(), transaction, span_id, sampled=bool(sample_rate))


def test_headers_written_into_a_connection_s_request():
    buffer = [b"GET /items HTTP/1.1", b"Host: shop", b"TraceParent: 00-forwarded", b"X-Id: 1", b"tracestate:other=1"]
    _core.put_connection_headers(buffer, _core.HeaderLines([("traceparent", "00-ours"), ("tracestate", "es=s:1"), ("baggage", "k=v\r\nX-Evil: 1")]))
    assert buffer == [b"GET /items HTTP/1.1", b"Host: shop", b"X-Id: 1", b"traceparent: 00-ours", b"tracestate: es=s:1"]


def test_urllib3_without_its_instrumentation(agent, server):
    """urllib3 1.26 sends through http.client's HTTPConnection.request (and tries getresponse with
    Python 2's buffering=True first): the http-client instrumentation traces it then. urllib3 2
    writes its requests itself."""
    urllib3 = pytest.importorskip("urllib3")
    client = agent(disabled_instrumentations="urllib3")
    _, transaction, events = traced(client, with_urllib3, server.url + "/status/200")
    if urllib3.__version__.startswith("1."):
        (span,) = events.spans
        assert (span["outcome"], span["context"]["http"]["status_code"]) == ("success", 200)
        assert carries(server.headers(), transaction, span["id"])
    else:
        assert events.spans == [] and "traceparent" not in server.headers()


def test_an_exit_span_of_the_application_above_gets_the_headers(agent, server, library):
    """An exit span the application (or another instrumentation) started around the call: nothing
    below it is recorded, and the call carries its context."""
    client = agent()
    transaction = client.begin_transaction("request")
    with oxapm.capture_span("search", span_type="db", span_subtype="elasticsearch", leaf=True):
        library(server.url + "/status/200")
    client.end_transaction("GET /")
    (span,) = exported(client).spans
    assert span["name"] == "search" and carries(server.headers(), transaction, span["id"])


@pytest.fixture
def otel_requests(client, monkeypatch):
    """OpenTelemetry's requests instrumentation on the engine, with oxapm's propagators; ``apply``
    instruments both, in the given order, and the fixture removes them in the reverse order."""
    requests_instrumentation = pytest.importorskip("opentelemetry.instrumentation.requests")
    from opentelemetry import propagate, trace

    from oxapm.otel.propagators import propagator_from_names
    from oxapm.otel.trace import TracerProvider

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", TracerProvider(client))
    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", propagator_from_names("tracecontext,baggage"))
    contrib = requests_instrumentation.RequestsInstrumentor()
    removals = []

    def apply(oxapm_first):
        steps = [(oxapm.instrument, oxapm.uninstrument), (contrib.instrument, contrib.uninstrument)]
        for instrument, uninstrument in steps if oxapm_first else steps[::-1]:
            instrument()
            removals.insert(0, uninstrument)

    yield apply
    for uninstrument in removals:
        uninstrument()


@pytest.mark.parametrize("oxapm_first", [True, False], ids=["contrib-outside", "oxapm-outside"])
def test_with_opentelemetry_s_requests_instrumentation_one_span(client, otel_requests, server, oxapm_first):
    otel_requests(oxapm_first)
    _, transaction, events = traced(client, with_requests, server.url + "/status/200")
    (span,) = events.spans
    assert span["parent_id"] == transaction.id
    (traceparent,) = server.headers()["traceparent"]
    assert ids(traceparent) == (transaction.trace_id, span["id"], True)


# --- streamed responses and concurrency --------------------------------------------------------------------


def stream_requests(url, headers_in):
    import requests

    with requests.get(url, stream=True, timeout=5) as response:
        headers_in()
        return response.content


def stream_urllib3(url, headers_in):
    import urllib3

    response = urllib3.PoolManager().request("GET", url, preload_content=False)
    headers_in()
    return response.read()


def stream_http_client(url, headers_in):
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    connection.request("GET", parts.path)
    response = connection.getresponse()
    headers_in()
    try:
        return response.read()
    finally:
        connection.close()


def stream_httpx(url, headers_in):
    import httpx

    with httpx.stream("GET", url) as response:
        headers_in()
        return response.read()


def stream_httpx_async(url, headers_in):
    import httpx

    async def get():
        async with httpx.AsyncClient() as session:
            async with session.stream("GET", url) as response:
                headers_in()
                return await response.aread()

    return asyncio.run(get())


def stream_aiohttp(url, headers_in):
    import aiohttp

    async def get():
        async with aiohttp.ClientSession() as session:
            async with session.get(url) as response:
                headers_in()
                return await response.read()

    return asyncio.run(get())


# the module needed, and a call that runs ``headers_in()`` between the response's headers and its body
STREAMS = {
    "requests": ("requests", stream_requests),
    "urllib3": ("urllib3", stream_urllib3),
    "http.client": ("http.client", stream_http_client),
    "httpx": ("httpx", stream_httpx),
    "httpx.AsyncClient": ("httpx", stream_httpx_async),
    "aiohttp": ("aiohttp", stream_aiohttp),
}


@pytest.mark.parametrize("library_name", list(STREAMS))
def test_a_streamed_response_s_span_ends_with_its_headers(agent, server, library_name):
    module, stream = STREAMS[library_name]
    pytest.importorskip(module)
    client = agent()
    before_the_body = []

    def headers_in():
        before_the_body.extend(exported(client).spans)  # the body is held by the server meanwhile
        server.release.set()

    body, _, events = traced(client, stream, server.url + "/stream", headers_in)
    assert body == b"body"
    (span,) = before_the_body
    assert (span["context"]["http"]["status_code"], span["outcome"]) == (200, "success")
    assert events.spans == []


def test_http_client_s_span_is_not_current_between_request_and_response(agent, server):
    client = agent()
    transaction = client.begin_transaction("request")
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    connection.request("GET", "/status/201")
    with oxapm.capture_span("meanwhile"):
        pass
    response = connection.getresponse()
    response.read()
    connection.request("GET", "/status/200")  # never asked for: ended by the next request
    connection.close()
    connection.request("GET", "/status/202")
    connection.getresponse().read()
    connection.close()
    client.end_transaction("GET /")
    spans = exported(client).spans
    assert [s["name"] for s in spans] == ["meanwhile"] + ["GET 127.0.0.1:%d" % server.port] * 3
    assert all(s["parent_id"] == transaction.id for s in spans)
    assert [s["context"]["http"].get("status_code") for s in spans[1:]] == [201, None, 202]


@pytest.mark.parametrize("library_name", ["httpx", "aiohttp"])
def test_concurrent_async_calls_are_sibling_spans(agent, server, library_name):
    pytest.importorskip(library_name)

    async def get_three():
        if library_name == "httpx":
            import httpx

            async with httpx.AsyncClient() as session:
                await asyncio.gather(*(session.get(server.url + "/status/20%d" % i) for i in range(3)))
        else:
            import aiohttp

            async with aiohttp.ClientSession() as session:
                async def get(i):
                    async with session.get(server.url + "/status/20%d" % i) as response:
                        await response.read()

                await asyncio.gather(*(get(i) for i in range(3)))

    _, transaction, events = traced(agent(), asyncio.run, get_three())
    assert len(events.spans) == 3 and {s["parent_id"] for s in events.spans} == {transaction.id}
    by_path = {s["context"]["http"]["url"].rsplit("/", 1)[1]: s["id"] for s in events.spans}
    sent = {h["traceparent"][0].split("-")[2] for h in server.received}
    assert sent == set(by_path.values())


# --- disabling, removal, failures ---------------------------------------------------------------------------


def _patched_attributes(name):
    module_name, owner_name, attributes_ = PATCHED[name]
    owner = getattr(pytest.importorskip(module_name), owner_name)
    return {(owner, attribute): vars(owner)[attribute] for attribute in attributes_}


@pytest.mark.parametrize("name", list(PATCHED))
def test_uninstrument_restores_the_library(agent, name):
    originals = _patched_attributes(name)
    agent()
    assert all(vars(owner)[attribute] is not original for (owner, attribute), original in originals.items())
    oxapm.uninstrument()
    assert all(vars(owner)[attribute] is original for (owner, attribute), original in originals.items())


@pytest.mark.parametrize("name", ["http-client", "urllib3", "requests", "httpx", "httplib2"])
def test_synchronous_calls_are_the_engine_s_and_pass_for_the_library_s_methods(agent, name):
    originals = _patched_attributes(name)
    agent()
    for (owner, attribute), original in originals.items():
        patched = vars(owner)[attribute]
        assert type(patched) is _core.Patch and patched.__wrapped__ is original
        assert (patched.__name__, patched.__qualname__) == (original.__name__, original.__qualname__)
        assert inspect.signature(patched) == inspect.signature(original)
        instance = object.__new__(owner)
        bound = getattr(instance, attribute)
        assert (bound.__self__, bound.__func__) == (instance, patched)
        assert getattr(owner, attribute) is patched  # through the class: unbound


@pytest.mark.parametrize("name", list(PATCHED))
def test_disabled_by_name(agent, name):
    originals = _patched_attributes(name)
    agent(disabled_instrumentations=name.replace("httpx-async", "httpx"))
    assert all(vars(owner)[attribute] is original for (owner, attribute), original in originals.items())


def test_disabling_every_layer_sends_nothing_more(agent, server):
    pytest.importorskip("requests")
    _, _, events = traced(agent(disabled_instrumentations="requests,urllib3,http-client"), with_requests, server.url + "/status/200")
    assert events.spans == [] and not set(server.headers()) & set(TRACE_CONTEXT_HEADERS)


@pytest.mark.parametrize("library_name", list(LIBRARIES))
def test_a_failure_of_the_agent_leaves_the_call_working_with_one_warning(agent, server, library_name, monkeypatch, caplog):
    module, instrumentation, library = LIBRARIES[library_name]
    pytest.importorskip(module)

    def broken():
        raise RuntimeError("agent bug")

    monkeypatch.setattr(base, "_reported", set())
    monkeypatch.setattr(propagation, "_configuration", None)  # the formats are looked up again...
    monkeypatch.setattr(propagation, "_configured", broken)  # ...and cannot be
    caplog.set_level(logging.WARNING, logger="oxapm")
    client = agent()
    client.begin_transaction("request")
    assert [library(server.url + "/status/200") for _ in range(2)] == [200, 200]
    client.end_transaction("GET /")
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "the %s instrumentation failed" % instrumentation in warning.getMessage() and warning.exc_info[0] is RuntimeError
    spans = exported(client).spans
    assert len(spans) == 2 and all(s["outcome"] == "success" for s in spans)  # recorded, not propagated
    assert all("traceparent" not in headers for headers in server.received)
