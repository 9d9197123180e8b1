"""Trace shaping as the Elastic agents do it, on spans of the Elastic API, of the instrumentations
and of the OpenTelemetry API alike: span compression, the fast drop of short exit spans,
``transaction_max_spans`` and ``dropped_spans_stats``; over intake v2 (schema-validated) and OTLP."""

import http.server
import sqlite3
import threading
import time
import urllib.request

import pytest
from conftest import attributes, exported, spans_of, use_otlp
from dbtesting import instrumented
from opentelemetry.trace import SpanKind

import oxapm
from oxapm.instrumentation.http_client import HttpClientInstrumentation
from oxapm.instrumentation.sqlite3 import SQLite3Instrumentation
from oxapm.otel.trace import TracerProvider


@pytest.fixture(autouse=True)
def _compression_as_configured(monkeypatch):
    """The conftest turns compression off for the other tests; here it has its default."""
    monkeypatch.delenv("ELASTIC_APM_SPAN_COMPRESSION_ENABLED")


@pytest.fixture
def database():
    with instrumented(SQLite3Instrumentation):
        connection = sqlite3.connect(":memory:")
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        yield connection
        connection.close()


def memory_client(**options):
    return oxapm.Client(service_name="shaping", traces_exporter="memory", **options)


def in_transaction(client, work):
    client.begin_transaction("request")
    work()
    client.end_transaction("GET /items", "HTTP 2xx")
    events = exported(client)
    (transaction,) = events.transactions
    return transaction, events.spans


def test_consecutive_identical_queries_become_one_exact_match_composite(database):
    client = memory_client()

    def work():
        for item_id in range(5):
            database.execute("SELECT name FROM items WHERE id = ?", (item_id,)).fetchall()
        database.execute("INSERT INTO items (name) VALUES ('x')")

    transaction, spans = in_transaction(client, work)
    client.close()
    assert [(span["name"], (span.get("composite") or {}).get("count")) for span in spans] == [("SELECT FROM items", 5), ("INSERT INTO items", None)]
    composite, first = spans[0]["composite"], spans[0]
    assert composite["compression_strategy"] == "exact_match"
    assert 0 < composite["sum"] <= first["duration"], "the sum of the durations, within first start to last end"
    assert transaction["span_count"] == {"started": 2, "dropped": 0}


def test_same_kind_compression_is_named_after_the_service(database):
    client = memory_client(span_compression_same_kind_max_duration="1s")

    def work():
        database.execute("SELECT name FROM items").fetchall()
        database.execute("INSERT INTO items (name) VALUES ('x')")
        database.execute("DELETE FROM items")

    transaction, spans = in_transaction(client, work)
    client.close()
    assert len(spans) == 1
    assert spans[0]["name"] == "Calls to sqlite"
    assert spans[0]["composite"]["compression_strategy"] == "same_kind" and spans[0]["composite"]["count"] == 3
    assert transaction["span_count"]["started"] == 1


def test_calls_that_propagate_their_context_are_never_compressed():
    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = memory_client()
    try:
        with instrumented(HttpClientInstrumentation):
            url = "http://127.0.0.1:%d/stock" % server.server_address[1]
            transaction, spans = in_transaction(client, lambda: [urllib.request.urlopen(url).read() for _ in range(3)])
    finally:
        server.shutdown()
        client.close()
    assert [span["name"] for span in spans] == ["GET 127.0.0.1:%d" % server.server_address[1]] * 3
    assert not any("composite" in span for span in spans)


def test_failed_and_non_exit_spans_interrupt_compression():
    client = memory_client()

    def call(name, outcome=None, leaf=True):
        with oxapm.capture_span(name, span_type="db", span_subtype="redis", leaf=leaf) as span:
            if outcome:
                span.outcome = outcome

    def work():
        call("GET")
        call("GET")
        call("GET", outcome="failure")
        call("GET")
        call("GET", leaf=False)
        call("GET")

    transaction, spans = in_transaction(client, work)
    client.close()
    counts = [(span.get("composite") or {}).get("count", 1) for span in spans]
    assert counts == [2, 1, 1, 1, 1]
    assert transaction["span_count"] == {"started": 5, "dropped": 0}


def test_short_exit_spans_are_dropped_and_counted_by_service(database):
    client = memory_client(exit_span_min_duration="1s", span_compression_enabled=False)

    def work():
        for _ in range(3):
            database.execute("SELECT 1").fetchall()
        with oxapm.capture_span("slow", span_type="app"):
            pass  # not an exit span: kept however short

    transaction, spans = in_transaction(client, work)
    client.close()
    assert [span["name"] for span in spans] == ["slow"]
    assert transaction["span_count"] == {"started": 1, "dropped": 3}
    (stats,) = transaction["dropped_spans_stats"]
    assert stats["destination_service_resource"] == "sqlite" and stats["service_target_type"] == "sqlite"
    assert stats["outcome"] == "success" and stats["duration"]["count"] == 3 and stats["duration"]["sum"]["us"] >= 0


def test_spans_past_transaction_max_spans_are_counted_not_reported(database):
    client = memory_client(transaction_max_spans=2, span_compression_enabled=False)

    def work():
        for item_id in range(5):
            with oxapm.capture_span("step %d" % item_id):
                database.execute("SELECT name FROM items WHERE id = ?", (item_id,)).fetchall()

    transaction, spans = in_transaction(client, work)
    client.close()
    assert [span["name"] for span in spans] == ["SELECT FROM items", "step 0"]
    # "step 1" and everything after it, with their queries (a dropped span's children are too).
    assert transaction["span_count"] == {"started": 2, "dropped": 8}
    assert transaction["dropped_spans_stats"][0]["duration"]["count"] == 4


def test_opentelemetry_client_spans_are_compressed_and_dropped_too(otlp_http, monkeypatch):
    use_otlp(monkeypatch, otlp_http.url)
    client = oxapm.Client(service_name="shaping", transaction_max_spans=3)
    tracer = TracerProvider(client).get_tracer("tests.shaping")
    with tracer.start_as_current_span("GET /items", kind=SpanKind.SERVER):
        for _ in range(4):
            with tracer.start_as_current_span("SELECT items", kind=SpanKind.CLIENT, attributes={"db.system": "postgresql", "db.name": "shop"}):
                pass
        with tracer.start_as_current_span("render"):
            pass
        for _ in range(3):
            with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={"db.system": "redis"}):
                pass
    client.close()
    spans = {span.name: span for span in spans_of(otlp_http.requests)}
    assert sorted(spans) == ["GET", "GET /items", "SELECT items", "render"]
    compressed = attributes(spans["SELECT items"].attributes)
    assert compressed["elastic.span.composite.compression_strategy"] == "exact_match"
    assert compressed["elastic.span.composite.count"] == 4
    assert 0 <= compressed["elastic.span.composite.sum.us"] <= (spans["SELECT items"].end_time_unix_nano - spans["SELECT items"].start_time_unix_nano) / 1000
    # The third reported span is the first GET; the two after it are over the maximum of 3.
    assert "elastic.span.composite.count" not in attributes(spans["GET"].attributes)


def test_the_shaping_options_over_intake(intake):
    client = oxapm.Client(service_name="shaping", server_url=intake.url, exit_span_min_duration="1s", metrics_interval="0ms")
    client.begin_transaction("job")
    for _ in range(2):
        with oxapm.capture_span("GET", span_type="db", span_subtype="redis", leaf=True):
            pass
    client.end_transaction("job")
    client.close()
    events = intake.events()
    transactions = [body for kind, body in events if kind == "transaction"]
    assert [kind for kind, _ in events if kind == "span"] == []
    assert transactions[0]["span_count"] == {"started": 0, "dropped": 2}
    assert transactions[0]["dropped_spans_stats"][0]["service_target_type"] == "redis"


def _spans_with_stacks(**options):
    client = memory_client(**options)

    def work():
        with oxapm.capture_span("quick"):
            pass
        with oxapm.capture_span("slow"):
            time.sleep(0.02)

    _, spans = in_transaction(client, work)
    client.close()
    return {span["name"]: span.get("stacktrace") for span in spans}


def test_spans_longer_than_span_stack_trace_min_duration_carry_their_stack():
    stacks = _spans_with_stacks()  # the default minimum: 5 ms
    assert stacks["quick"] is None
    frames = stacks["slow"]
    assert frames[0]["function"] == "work" and frames[0]["filename"].endswith("test_shaping.py")
    assert not any(frame.get("module", "").startswith("oxapm") for frame in frames), "the agent's frames are left out"
    assert all(stack is not None for stack in _spans_with_stacks(span_stack_trace_min_duration="0ms").values())
    assert all(stack is None for stack in _spans_with_stacks(span_stack_trace_min_duration="-1ms").values())
    # The deprecated option, the other way round: -1 for every span.
    assert all(stack is not None for stack in _spans_with_stacks(span_frames_min_duration=-1).values())


def test_opentelemetry_client_spans_whose_context_went_out_are_not_compressed():
    from oxapm.otel.propagators import TraceContextPropagator

    client = memory_client()
    tracer = TracerProvider(client).get_tracer("tests.shaping")
    propagator, sent = TraceContextPropagator(), []
    with tracer.start_as_current_span("GET /orders", kind=SpanKind.SERVER):
        for _ in range(3):
            with tracer.start_as_current_span("GET", kind=SpanKind.CLIENT, attributes={"http.url": "http://stock:8080/items"}):
                headers = {}
                propagator.inject(headers)
                sent.append(headers["traceparent"].split("-")[2])
    spans = exported(client).spans
    client.close()
    assert sorted(span["id"] for span in spans) == sorted(sent), "every parent a callee names is reported"
    assert not any("composite" in span for span in spans)
