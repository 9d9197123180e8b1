"""Log records on the engine: the ``logging`` handler and the OpenTelemetry Logs API, exported over
OTLP (decoded with the official ``opentelemetry-proto``, and received by a real OTLP receiver) and
as intake ``log`` events (validated against tests/specs/intake-log.json)."""

import json
import logging
import os
import subprocess
import sys

import pytest
from conftest import attributes, decoded, exported, use_otlp
from opentelemetry import _logs, trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import get_current
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from otlp_receiver import rotel  # noqa: F401  (a fixture)

import oxapm
from oxapm.logs import attach_to_root_logger
from oxapm.otel.logs import LoggerProvider, LoggingHandler
from oxapm.otel.trace import TracerProvider


@pytest.fixture
def app_logger():
    """A logger of the application's, with the handler and nothing else, removed afterwards."""
    logger = logging.getLogger("shop.orders")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = LoggingHandler()
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)
    logger.propagate = True


def log_records(requests):
    """(scope name, scope version, record) of every OTLP log record sent to /v1/logs."""
    logs = [request for request in requests if request["path"] == "/v1/logs"]
    return [
        (scope_logs.scope.name, scope_logs.scope.version, record)
        for message in decoded(logs, ExportLogsServiceRequest)
        for resource_logs in message.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]


def test_logging_records_go_over_otlp_with_severity_body_attributes_exception_and_ids(otlp_http, monkeypatch, app_logger):
    use_otlp(monkeypatch, otlp_http.url, OTEL_SERVICE_NAME="shop")
    client = oxapm.Client()
    transaction = client.begin_transaction("request")
    with oxapm.capture_span("charge") as span:
        app_logger.warning("paid %s euros", 12, extra={"order_id": 7, "tags": ["a", "b"], "db.password": "hunter2", "when": object()})
        try:
            1 / 0
        except ZeroDivisionError:
            app_logger.exception("charge failed")
    client.end_transaction("POST /orders")
    app_logger.info({"structured": [1, "two"]})
    client.close()

    records = log_records(otlp_http.requests)
    assert [(scope, r.severity_number, r.severity_text) for scope, _, r in records] == [
        ("shop.orders", 13, "WARN"),
        ("shop.orders", 17, "ERROR"),
        ("shop.orders", 9, "INFO"),
    ]
    (_, _, paid), (_, _, failed), (_, _, outside) = records
    assert paid.body.string_value == "paid 12 euros"
    assert paid.time_unix_nano > 0 and paid.observed_time_unix_nano >= paid.time_unix_nano
    paid_attributes = attributes(paid.attributes)
    assert paid_attributes["order_id"] == 7
    assert [v.string_value for v in paid_attributes["tags"].values] == ["a", "b"]
    assert paid_attributes["db.password"] == "[REDACTED]"
    assert paid_attributes["when"].startswith("<object object")
    assert paid_attributes["code.function.name"] == "test_logging_records_go_over_otlp_with_severity_body_attributes_exception_and_ids"
    assert paid_attributes["code.file.path"] == __file__
    assert paid_attributes["code.line.number"] > 0 and paid_attributes["thread.name"] == "MainThread"
    assert not any(key.startswith(("otel", "elasticapm_")) for key in paid_attributes)
    for record in (paid, failed):
        assert record.trace_id.hex() == transaction.trace_id and record.span_id.hex() == span.id and record.flags == 1
    failed_attributes = attributes(failed.attributes)
    assert failed_attributes["exception.type"] == "ZeroDivisionError"
    assert failed_attributes["exception.message"] == "division by zero"
    assert "1 / 0" in failed_attributes["exception.stacktrace"] and "ZeroDivisionError" in failed_attributes["exception.stacktrace"]
    assert outside.trace_id == b"" and outside.span_id == b"" and outside.flags == 0
    (entry,) = outside.body.kvlist_value.values
    assert entry.key == "structured" and [v.WhichOneof("value") for v in entry.value.array_value.values] == ["int_value", "string_value"]


def test_the_logs_api_emits_records_with_the_ids_of_an_otel_span(otlp_http, monkeypatch):
    use_otlp(monkeypatch, otlp_http.url, OTEL_LOGS_EXPORTER="otlp")
    client = oxapm.Client()
    tracer = TracerProvider(client).get_tracer("checkout")
    logger = LoggerProvider(client).get_logger("inventory", "1.2")
    assert logger.enabled()
    with tracer.start_as_current_span("reserve") as span:
        logger.emit(_logs.LogRecord(severity_number=SeverityNumber.INFO, severity_text="INFO", body="reserved", attributes={"sku": "A-1"}, context=get_current()))
        logger.emit(severity_number=SeverityNumber.ERROR, body={"sku": "B-2", "left": 0}, event_name="stock.empty", exception=KeyError("B-2"))
    logger.emit(body=b"\x00\x01", timestamp=1_700_000_000_123_456_789)
    client.close()

    records = log_records(otlp_http.requests)
    assert {(scope, version) for scope, version, _ in records} == {("inventory", "1.2")}
    reserved, empty, outside = (record for _, _, record in records)
    context = span.get_span_context()
    for record in (reserved, empty):
        assert int.from_bytes(record.trace_id, "big") == context.trace_id
        assert int.from_bytes(record.span_id, "big") == context.span_id
    assert (reserved.severity_number, reserved.body.string_value, attributes(reserved.attributes)) == (9, "reserved", {"sku": "A-1"})
    assert empty.event_name == "stock.empty" and empty.severity_number == 17
    assert {kv.key for kv in empty.body.kvlist_value.values} == {"sku", "left"}
    assert attributes(empty.attributes)["exception.type"] == "KeyError"
    assert outside.body.bytes_value == b"\x00\x01" and outside.time_unix_nano == 1_700_000_000_123_456_000
    assert outside.trace_id == b""


def test_intake_log_events_carry_the_elastic_ids(client, app_logger):
    transaction = client.begin_transaction("request")
    app_logger.info("in the transaction")
    with oxapm.capture_span("query") as span:
        try:
            raise ValueError("no stock")
        except ValueError:
            app_logger.error("lookup failed", exc_info=True, extra={"sku": "A-1", "api_key": "s3cret"})
    client.end_transaction("GET /stock")
    app_logger.debug("after")

    logs = exported(client).logs  # validated against tests/specs/intake-log.json
    assert [log["message"] for log in logs] == ["in the transaction", "lookup failed", "after"]
    first, failed, after = logs
    assert (first["trace.id"], first["transaction.id"], first["span.id"]) == (transaction.trace_id, transaction.id, transaction.id)
    assert (failed["transaction.id"], failed["span.id"]) == (transaction.id, span.id)
    assert failed["log.level"] == "error" and failed["log.logger"] == "shop.orders"
    assert failed["log.origin.function"] == "test_intake_log_events_carry_the_elastic_ids" and failed["log.origin.file.name"] == __file__
    assert (failed["error.type"], failed["error.message"]) == ("ValueError", "no stock")
    assert failed["labels"] == {"sku": "A-1", "api_key": "[REDACTED]"}
    assert "trace.id" not in after and after["log.level"] == "debug"
    assert isinstance(after["@timestamp"], int)


def test_apm_server_receives_log_events_with_the_other_events(intake, app_logger):
    client = oxapm.Client(server_url=intake.url, service_name="shop")
    client.begin_transaction("request")
    app_logger.warning("to APM Server")
    client.end_transaction("t")
    client.close()
    kinds = [kind for kind, _ in intake.events()]  # validated, metadata included
    assert kinds.count("log") == 1 and "transaction" in kinds and kinds[0] == "metadata"


def test_the_agents_own_records_are_never_exported(client):
    root = logging.getLogger()
    assert attach_to_root_logger(client) is True
    assert attach_to_root_logger(client) is False, "attached once"
    try:
        logging.getLogger("oxapm.anything").warning("the agent speaking")
        logging.getLogger("oxapm").warning("the agent speaking")
        logging.getLogger("app").warning("the application speaking")
    finally:
        root.handlers[:] = [h for h in root.handlers if not isinstance(h, LoggingHandler)]
    assert [log["message"] for log in exported(client).logs] == ["the application speaking"]


def test_logs_exporter_none_sends_no_log_records(monkeypatch, app_logger):
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "none")
    client = oxapm.Client(traces_exporter="memory")
    assert not LoggerProvider(client).get_logger("x").enabled()
    app_logger.warning("dropped")
    assert exported(client).logs == []
    client.close()


def test_levels_between_and_beyond_the_named_ones_map_as_in_the_sdk(otlp_http, monkeypatch, app_logger):
    use_otlp(monkeypatch, otlp_http.url)
    client = oxapm.Client()
    app_logger.setLevel(1)
    for level in (5, 15, 25, 44, 60):
        app_logger.log(level, "at %d", level)
    client.close()
    records = [record for _, _, record in log_records(otlp_http.requests)]
    assert [(r.severity_number, r.severity_text) for r in records] == [(0, "Level 5"), (8, "Level 15"), (12, "Level 25"), (20, "Level 44"), (24, "Level 60")]


def test_install_sets_the_global_logger_provider(client):
    import oxapm.otel

    oxapm.otel.install(client)
    assert isinstance(_logs.get_logger_provider(), LoggerProvider)
    assert isinstance(trace.get_tracer_provider(), TracerProvider)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_real_receiver_gets_the_log_records(rotel, protocol, monkeypatch, app_logger):  # noqa: F811
    use_otlp(monkeypatch, rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint, protocol, OTEL_SERVICE_NAME="rotel-logs")
    client = oxapm.Client()
    transaction = client.begin_transaction("request")
    app_logger.warning("hello %s", protocol, extra={"attempt": 2})
    client.end_transaction("t")
    client.close()

    assert rotel.wait_for("Body: Str(hello %s)" % protocol), rotel.output()
    out = rotel.output()
    assert "InstrumentationScope shop.orders" in out
    assert "SeverityNumber: SEVERITY_NUMBER_WARN(13)" in out
    assert "-> attempt: Int(2)" in out
    assert "Trace ID       : %s" % transaction.trace_id in out


@pytest.mark.parametrize("enabled", ["true", None])
def test_zero_code_start_attaches_the_handler_only_when_asked(enabled):
    code = """
import json, logging, sys
from oxapm.zerocode import startup
startup.start()
import oxapm
logging.getLogger("app").warning("from the application")
client = oxapm.get_client()
client.flush()
print(json.dumps([json.loads(line) for line in client._engine.take_memory()]))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELASTIC_APM_", "OTEL_"))}
    env.update(ELASTIC_APM_TRACES_EXPORTER="memory", ELASTIC_APM_METRICS_INTERVAL="0", ELASTIC_APM_CENTRAL_CONFIG="false", ELASTIC_APM_INSTRUMENT="true")
    if enabled:
        env["OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED"] = enabled
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    logs = [event["log"] for event in json.loads(done.stdout.splitlines()[-1]) if "log" in event]
    assert [log["message"] for log in logs] == (["from the application"] if enabled else [])
