"""Real OpenTelemetry contrib instrumentations (requests, flask, sqlite3) feeding the oxapm engine
through the OpenTelemetry API, with oxapm's propagators carrying the trace between them."""

import http.server
import threading

import pytest
from conftest import exported
from opentelemetry import propagate, trace

from oxapm.otel.propagators import propagator_from_names
from oxapm.otel.trace import TracerProvider

requests = pytest.importorskip("requests")
flask = pytest.importorskip("flask")
RequestsInstrumentor = pytest.importorskip("opentelemetry.instrumentation.requests").RequestsInstrumentor
FlaskInstrumentor = pytest.importorskip("opentelemetry.instrumentation.flask").FlaskInstrumentor
SQLite3Instrumentor = pytest.importorskip("opentelemetry.instrumentation.sqlite3").SQLite3Instrumentor


@pytest.fixture
def provider(client, monkeypatch):
    provider = TracerProvider(client)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    monkeypatch.setattr(propagate, "_HTTP_TEXT_FORMAT", propagator_from_names("tracecontext,baggage"))
    return provider


class _EchoHeaders(http.server.BaseHTTPRequestHandler):
    received = []

    def do_GET(self):
        _EchoHeaders.received.append(dict(self.headers))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoHeaders)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _EchoHeaders.received.clear()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def test_flask_requests_and_sqlite3_spans_land_on_the_engine(provider, client, http_server):
    import sqlite3

    app = flask.Flask("shop")

    @app.route("/orders/<int:order>")
    def order(order):
        connection = sqlite3.connect(":memory:")
        cursor = connection.cursor()
        cursor.execute("CREATE TABLE orders (id INTEGER)")
        cursor.execute("SELECT id FROM orders WHERE id = ?", (order,))
        connection.close()
        requests.get(http_server + "/stock")
        return "done"

    FlaskInstrumentor().instrument_app(app)
    RequestsInstrumentor().instrument()
    SQLite3Instrumentor().instrument()
    try:
        incoming = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
        response = app.test_client().get("/orders/7", headers=incoming)
        assert response.status_code == 200
    finally:
        SQLite3Instrumentor().uninstrument()
        RequestsInstrumentor().uninstrument()
        FlaskInstrumentor().uninstrument_app(app)

    events = exported(client)
    (transaction,) = events.transactions
    assert transaction["type"] == "request" and transaction["name"] == "GET /orders/<int:order>"
    assert transaction["trace_id"] == "0af7651916cd43dd8448eb211c80319c" and transaction["parent_id"] == "b7ad6b7169203331"
    assert transaction["result"] == "HTTP 2xx" and transaction["otel"]["span_kind"] == "SERVER"
    spans = events.spans
    db = [s for s in spans if s["type"] == "db"]
    assert {s["subtype"] for s in db} == {"sqlite"} and len(db) == 2
    (outgoing,) = [s for s in spans if s["type"] == "external"]
    assert outgoing["subtype"] == "http" and outgoing["otel"]["span_kind"] == "CLIENT"
    assert outgoing["context"]["destination"]["service"]["resource"] == http_server.split("//")[1]
    assert all(s["transaction_id"] == transaction["id"] and s["parent_id"] == transaction["id"] for s in spans)
    # The outgoing call carried the client span's context, written by oxapm's propagator.
    (headers,) = _EchoHeaders.received
    assert headers["traceparent"] == "00-%s-%s-01" % (transaction["trace_id"], outgoing["id"])
