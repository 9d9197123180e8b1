"""OpenTelemetry spans exported over intake v2, mapped as Elastic's OTel bridge maps them: a span
with no local parent is a transaction, the others spans; types, destination, service target and
outcome inferred from kind, attributes (old and stable names) and status. Every event is validated
against the intake schemas (``exported``)."""

import pytest
from conftest import exported
from opentelemetry import trace
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from oxapm.otel.trace import TracerProvider


@pytest.fixture
def tracer(client):
    return TracerProvider(client).get_tracer("mapping")


@pytest.mark.parametrize(
    "kind, attributes, expected_type",
    [
        (SpanKind.SERVER, {"http.method": "GET", "http.scheme": "https"}, "request"),
        (SpanKind.SERVER, {"http.request.method": "GET", "url.scheme": "http"}, "request"),
        (SpanKind.SERVER, {"rpc.system": "grpc"}, "request"),
        (SpanKind.CONSUMER, {"messaging.system": "kafka"}, "messaging"),
        (SpanKind.SERVER, {}, "unknown"),
        (SpanKind.INTERNAL, {"http.method": "GET"}, "unknown"),
    ],
)
def test_transaction_types(tracer, client, kind, attributes, expected_type):
    with tracer.start_as_current_span("root", kind=kind, attributes=attributes):
        pass
    (transaction,) = exported(client).transactions
    assert transaction["type"] == expected_type
    assert transaction["otel"]["span_kind"] == kind.name
    assert transaction["otel"].get("attributes", {}) == attributes


@pytest.mark.parametrize(
    "kind, attributes, expected",
    [
        (
            SpanKind.CLIENT,
            {"db.system": "postgresql", "db.name": "shop", "net.peer.name": "db", "net.peer.port": 5432},
            {"type": "db", "subtype": "postgresql", "action": "query", "resource": "db:5432/shop", "target": {"type": "postgresql", "name": "shop"}},
        ),
        (
            SpanKind.CLIENT,
            {"db.system.name": "mysql", "db.namespace": "crm", "server.address": "maria", "server.port": 3306},
            {"type": "db", "subtype": "mysql", "action": "query", "resource": "maria:3306/crm", "target": {"type": "mysql", "name": "crm"}},
        ),
        (
            SpanKind.CLIENT,
            {"http.url": "https://api.example.com/v1/x", "http.method": "GET"},
            {"type": "external", "subtype": "http", "resource": "api.example.com:443", "target": {"type": "http", "name": "api.example.com:443"}},
        ),
        (
            SpanKind.CLIENT,
            {"url.full": "http://inventory:8080/items", "server.address": "inventory", "server.port": 8080},
            {"type": "external", "subtype": "http", "resource": "inventory:8080", "target": {"type": "http", "name": "inventory:8080"}},
        ),
        (
            SpanKind.PRODUCER,
            {"messaging.system": "rabbitmq", "messaging.destination.name": "orders"},
            {"type": "messaging", "subtype": "rabbitmq", "action": "send", "resource": "rabbitmq/orders", "target": {"type": "rabbitmq", "name": "orders"}},
        ),
        (
            SpanKind.CLIENT,
            {"rpc.system": "grpc", "rpc.service": "Greeter", "server.address": "greeter", "server.port": 50051},
            {"type": "external", "subtype": "grpc", "resource": "greeter:50051", "target": {"type": "grpc", "name": "greeter:50051"}},
        ),
        (SpanKind.INTERNAL, {"custom": 1}, {"type": "app", "subtype": "internal"}),
        (SpanKind.CLIENT, {}, {"type": "unknown"}),
    ],
)
def test_span_types_destination_and_service_target(tracer, client, kind, attributes, expected):
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("child", kind=kind, attributes=attributes):
            pass
    (span,) = exported(client).spans
    assert span["type"] == expected["type"]
    assert span.get("subtype") == expected.get("subtype")
    assert span.get("action") == expected.get("action")
    context = span.get("context", {})
    assert context.get("destination", {}).get("service", {}).get("resource") == expected.get("resource")
    assert context.get("service", {}).get("target") == expected.get("target")
    assert span["otel"] == {"span_kind": kind.name, **({"attributes": attributes} if attributes else {})}


@pytest.mark.parametrize("status, outcome", [(None, "unknown"), (StatusCode.OK, "success"), (StatusCode.ERROR, "failure")])
def test_outcome_from_status(tracer, client, status, outcome):
    with tracer.start_as_current_span("root") as root:
        with tracer.start_as_current_span("child") as child:
            if status is not None:
                child.set_status(Status(status))
        if status is not None:
            root.set_status(status)
    events = exported(client)
    assert events.spans[0]["outcome"] == outcome
    assert events.transactions[0]["outcome"] == outcome


def test_http_result_remote_parent_links_and_times(tracer, client):
    remote = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True, trace_flags=TraceFlags(1))
    linked = SpanContext(0x11111111111111111111111111111111, 0x2222222222222222, is_remote=True)
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    start = 1_700_000_000_000_000_000
    span = tracer.start_span(
        "GET /items",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "GET", "url.scheme": "http", "http.response.status_code": 503},
        links=[Link(linked)],
        start_time=start,
    )
    span.end(end_time=start + 2_500_000)
    (transaction,) = exported(client).transactions
    assert transaction["trace_id"] == "0af7651916cd43dd8448eb211c80319c" and transaction["parent_id"] == "b7ad6b7169203331"
    assert transaction["result"] == "HTTP 5xx" and transaction["type"] == "request"
    assert transaction["links"] == [{"trace_id": "11111111111111111111111111111111", "span_id": "2222222222222222"}]
    assert transaction["timestamp"] == start // 1000 and transaction["duration"] == 2.5
