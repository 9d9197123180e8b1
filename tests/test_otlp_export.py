"""Export over OTLP: what the engine encodes, decoded with the official ``opentelemetry-proto``
package and compared field by field with the intake events of the same run; the variables of the
OTLP exporter specification (endpoints, headers, compression, timeout, batching); and bad values."""

import logging
import os

import pytest
from conftest import attributes, decoded, record, spans_of, use_otlp
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

import oxapm
from oxapm import TraceParent


def test_every_field_matches_the_intake_events_of_the_same_run(otlp_http, intake, monkeypatch):
    # Both exporters on at once: OTLP from OTEL_TRACES_EXPORTER, intake from ELASTIC_APM_SERVER_URL.
    use_otlp(
        monkeypatch,
        otlp_http.url,
        OTEL_SERVICE_NAME="shop",
        OTEL_RESOURCE_ATTRIBUTES="k8s.pod.name=pod-1,service.version=1.2",
        OTEL_EXPORTER_OTLP_HEADERS="x-tenant=acme",
        ELASTIC_APM_SERVER_URL=intake.url,
    )
    client = oxapm.Client(environment="prod")
    parent = TraceParent.from_string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    linked = TraceParent.from_string("00-11111111111111111111111111111111-2222222222222222-01")
    client.begin_transaction("request", trace_parent=parent, links=[linked])
    oxapm.label(tenant="acme", shard=3, ratio=0.5, beta=True)
    with oxapm.capture_span(
        "SELECT FROM users",
        span_type="db",
        span_subtype="postgresql",
        span_action="query",
        extra={"db": {"type": "sql", "statement": "SELECT * FROM users", "instance": "shop"}, "destination": {"address": "db.local", "port": 5432}},
        labels={"rows": 2},
    ):
        pass
    with pytest.raises(ZeroDivisionError):
        with oxapm.capture_span("compute"):
            1 / 0
    oxapm.set_transaction_outcome("success")
    client.end_transaction("GET /users", "HTTP 2xx")
    client.close()

    assert [r["path"] for r in otlp_http.requests] == ["/v1/traces"]
    headers = otlp_http.requests[0]["headers"]
    assert headers["content-type"] == "application/x-protobuf"
    assert headers["x-tenant"] == "acme"
    assert headers["user-agent"] == "oxapm/%s" % oxapm.VERSION
    (message,) = decoded(otlp_http.requests)
    (resource_spans,) = message.resource_spans
    resource = attributes(resource_spans.resource.attributes)
    assert resource["service.name"] == "shop" and resource["service.version"] == "1.2"
    assert resource["deployment.environment.name"] == "prod"
    assert resource["k8s.pod.name"] == "pod-1"
    assert resource["process.pid"] == os.getpid()
    assert resource["telemetry.sdk.name"] == "oxapm" and resource["telemetry.sdk.language"] == "python"
    assert resource["telemetry.sdk.version"] == oxapm.VERSION
    assert resource["host.name"] and resource["process.runtime.name"] == "CPython"
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("oxapm", oxapm.VERSION)
    otlp = {span.span_id.hex(): span for span in scope_spans.spans}

    intake_events = {body["id"]: (kind, body) for kind, body in intake.events() if kind in ("transaction", "span")}
    assert set(otlp) == set(intake_events)
    for span_id, (kind, event) in intake_events.items():
        span = otlp[span_id]
        assert span.trace_id.hex() == event["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        assert span.name == event["name"]
        assert span.start_time_unix_nano == event["timestamp"] * 1000
        assert span.end_time_unix_nano - span.start_time_unix_nano == round(event["duration"] * 1_000_000)
        # A trace continued without Elastic's tracestate entry has no known sample rate.
        assert span.trace_state == ("es=s:%g" % event["sample_rate"] if "sample_rate" in event else "")
        assert span.flags & 0xFF == 1 and span.flags & 0x100
        expected_status = {"success": Status.STATUS_CODE_OK, "failure": Status.STATUS_CODE_ERROR}
        assert span.status.code == expected_status.get(event["outcome"], Status.STATUS_CODE_UNSET)
        assert span.parent_span_id.hex() == event["parent_id"]

    (transaction,) = [s for s in otlp.values() if not attributes(s.attributes).get("elastic.span.type")]
    assert transaction.parent_span_id.hex() == "b7ad6b7169203331"
    assert transaction.flags & 0x200, "a parent from traceparent is remote"
    assert transaction.kind == Span.SPAN_KIND_SERVER
    assert attributes(transaction.attributes) == {
        "elastic.transaction.type": "request",
        "elastic.transaction.result": "HTTP 2xx",
        "tenant": "acme",
        "shard": 3,
        "ratio": 0.5,
        "beta": True,
    }
    (link,) = transaction.links
    assert (link.trace_id.hex(), link.span_id.hex()) == ("11111111111111111111111111111111", "2222222222222222")

    by_name = {s.name: s for s in otlp.values()}
    db = by_name["SELECT FROM users"]
    assert db.kind == Span.SPAN_KIND_CLIENT and not db.flags & 0x200
    assert attributes(db.attributes) == {
        "elastic.span.type": "db",
        "elastic.span.subtype": "postgresql",
        "elastic.span.action": "query",
        "db.system.name": "postgresql",
        "db.query.text": "SELECT * FROM users",
        "db.namespace": "shop",
        "server.address": "db.local",
        "server.port": 5432,
        "rows": 2,
    }
    assert by_name["compute"].kind == Span.SPAN_KIND_INTERNAL
    assert by_name["compute"].status.code == Status.STATUS_CODE_ERROR


def test_unsampled_transactions_are_not_exported(otlp_http, monkeypatch):
    use_otlp(monkeypatch, otlp_http.url)
    client = oxapm.Client(service_name="shop", transaction_sample_rate=0.0)
    client.begin_transaction("request")
    client.end_transaction("skipped")
    client.close()
    assert spans_of(otlp_http.requests) == []


def test_gzip_compression(otlp_http, monkeypatch):
    use_otlp(monkeypatch, otlp_http.url, OTEL_EXPORTER_OTLP_COMPRESSION="gzip")
    client = oxapm.Client(service_name="shop")
    client.begin_transaction("request")
    client.end_transaction("zipped")
    client.close()
    assert otlp_http.requests[0]["headers"]["content-encoding"] == "gzip"
    assert [s.name for s in spans_of(otlp_http.requests)] == ["zipped"]


def test_a_per_signal_endpoint_is_used_as_is(otlp_http, monkeypatch):
    use_otlp(monkeypatch, "http://127.0.0.1:9", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=otlp_http.url + "/custom/traces")
    client = oxapm.Client(service_name="shop")
    client.begin_transaction("request")
    client.end_transaction("routed")
    client.close()
    assert [r["path"] for r in otlp_http.requests] == ["/custom/traces"]


def test_batches_follow_the_bsp_variables(otlp_http, monkeypatch):
    use_otlp(monkeypatch, otlp_http.url, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="10", OTEL_BSP_SCHEDULE_DELAY="100")
    client = oxapm.Client(service_name="shop")
    record(client, *("t%d" % n for n in range(35)))
    # No flush: full batches go at once, the last partial one after the schedule delay.
    assert otlp_http.wait_for(lambda requests: sum(len(spans_of([r])) for r in requests) == 35, timeout=10)
    assert sorted(len(spans_of([r])) for r in otlp_http.requests) == [5, 10, 10, 10]
    client.close()


def test_batches_share_one_kept_alive_connection(otlp_http, monkeypatch):
    use_otlp(monkeypatch, otlp_http.url, OTEL_BSP_MAX_EXPORT_BATCH_SIZE="5")
    client = oxapm.Client(service_name="shop")
    record(client, *("t%d" % n for n in range(20)))
    client.close()
    assert len(otlp_http.requests) == 4
    assert len({r["client_port"] for r in otlp_http.requests}) == 1


def test_the_export_thread_does_no_python_io(otlp_http, monkeypatch):
    # The exporters are Rust: Python's socket layer (where instrumentations patch http.client,
    # urllib3 and requests) never sees them, so they can never report their own requests.
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("the exporter used Python's sockets")

    use_otlp(monkeypatch, otlp_http.url)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    client = oxapm.Client(service_name="shop")
    record(client, "native")
    client.close()
    monkeypatch.undo()
    assert [s.name for s in spans_of(otlp_http.requests)] == ["native"]


def test_the_queue_size_follows_otel_bsp_max_queue_size(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "100")
    assert oxapm.Client(service_name="shop", traces_exporter="none").config.max_queue_size == 100


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "OTLP traces export is off"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://host:port", "OTLP traces export is off"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "elastic:s3cret@collector:4318", "OTLP traces export is off"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%zzs3cret", "ignored entry 1"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "ten seconds", "using 10000 ms"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "sending uncompressed"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "using http/protobuf"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "trusting the system's CAs instead"),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/nonexistent/key.pem", "connecting without a client certificate"),
    ],
)
def test_bad_values_get_one_warning_naming_the_variable(variable, value, expected, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="oxapm")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv(variable, value)
    client = oxapm.Client(service_name="shop")
    client.begin_transaction("request")
    client.end_transaction("still works")
    client.close(timeout=0.5)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("oxapm")]
    naming = [m for m in messages if variable in m]
    assert len(naming) == 1, messages
    assert expected in naming[0]
    assert all("s3cret" not in m for m in messages)
