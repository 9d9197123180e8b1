"""OTLP backends that fail: an outage answered with 503, 429 with Retry-After, a final 400, a
partial success, a gRPC receiver that is down then comes up, and servers that hang, which must
not hang the application or its exit. (Resets, garbage and slow answers: test_export_faults.)"""

import logging
import os
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import RawServer, record, spans_of, use_otlp
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from otlp_receiver import RotelReceiver, free_port, rotel_agent_path

import oxapm


def _otlp_client(monkeypatch, endpoint, protocol="http/protobuf"):
    use_otlp(monkeypatch, endpoint, protocol)
    return oxapm.Client(service_name="faults")


def _delivered(server):
    return sorted(span.name for span in spans_of([r for r in server.requests if r["status"] == 200]))


def test_an_outage_is_retried_and_everything_arrives_once(otlp_http, monkeypatch):
    otlp_http.status = 503
    client = _otlp_client(monkeypatch, otlp_http.url)
    record(client, "during-1", "during-2")
    client.flush(1.0)
    assert client.stats()["retries"] >= 1 and client.stats()["sent"] == 0
    otlp_http.status = 200
    record(client, "after")
    client.flush(20.0)
    assert _delivered(otlp_http) == ["after", "during-1", "during-2"]
    assert client.stats()["sent"] == 3
    client.close()


def test_retry_after_is_honoured(otlp_http, monkeypatch):
    otlp_http.status = 429
    otlp_http.retry_after = "2"
    client = _otlp_client(monkeypatch, otlp_http.url)
    record(client, "throttled")
    client.flush(0.5)
    otlp_http.status = 200
    client.flush(20.0)
    first, second = otlp_http.requests[0]["time"], otlp_http.requests[1]["time"]
    # Slowness can only delay the retry; coming back before the server's 2 s is the bug.
    assert second - first >= 1.9
    assert _delivered(otlp_http) == ["throttled"]
    client.close()


def test_a_client_error_is_final_and_said_once(otlp_http, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="oxapm")
    otlp_http.status = 400
    client = _otlp_client(monkeypatch, otlp_http.url)
    for n in range(3):
        record(client, "bad-%d" % n)
        client.flush(5.0)
    stats = client.stats()
    assert stats["failed"] == 3 and stats["retries"] == 0 and len(otlp_http.requests) == 3
    assert len([r for r in caplog.records if "answered 400" in r.getMessage()]) == 1
    client.close()


def test_a_partial_success_is_reported_once(otlp_http, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="oxapm")
    answer = ExportTraceServiceResponse()
    answer.partial_success.rejected_spans = 1
    answer.partial_success.error_message = "span name too long"
    otlp_http.answer = answer.SerializeToString()
    client = _otlp_client(monkeypatch, otlp_http.url)
    for n in range(2):
        record(client, "partly-%d" % n)
        client.flush(5.0)
    complaints = [r.getMessage() for r in caplog.records if "span name too long" in r.getMessage()]
    assert len(complaints) == 1 and "1 spans rejected" in complaints[0]
    client.close()


def test_what_close_gives_up_on_is_counted_as_failed(monkeypatch):
    client = _otlp_client(monkeypatch, "http://127.0.0.1:9")  # nothing listens there
    record(client, "lost-1", "lost-2", "lost-3")
    client.close(timeout=0.5)
    stats = client.stats()
    assert (stats["queued"], stats["sent"], stats["failed"]) == (3, 0, 3)


def test_a_grpc_receiver_that_comes_up_late_gets_everything(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="oxapm")
    port = free_port()
    client = _otlp_client(monkeypatch, "http://127.0.0.1:%d" % port, protocol="grpc")
    record(client, "early-1", "early-2")
    client.flush(1.0)
    assert client.stats()["retries"] >= 1 and client.stats()["sent"] == 0
    receiver = RotelReceiver(rotel_agent_path()).start(grpc_port=port)
    try:
        record(client, "on-time")
        assert client.flush(30.0)
        for name in ("early-1", "early-2", "on-time"):
            assert receiver.wait_for("Name           : %s" % name), receiver.output()
        assert client.stats()["sent"] == 3
        messages = [r.getMessage() for r in caplog.records if r.name == "oxapm"]
        assert len([m for m in messages if "could not reach the OTLP gRPC endpoint" in m]) == 1, messages
        assert any("accepts events again" in m for m in messages)
    finally:
        client.close()
        receiver.stop()


class HangingServer(RawServer):
    """Accepts connections, reads what comes, never answers."""

    def handle(self, conn):
        with conn:
            while conn.recv(65536):
                pass


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_hanging_server_hangs_neither_the_application_nor_its_exit(protocol):
    server = HangingServer()
    script = textwrap.dedent(
        """
        import time
        import oxapm

        client = oxapm.Client(service_name="hang")
        started = time.monotonic()
        for n in range(5000):
            client.begin_transaction("job")
            client.end_transaction("t")
        print(time.monotonic() - started)
        # Interpreter exit flushes within shutdown_timeout, whatever the server does.
        """
    )
    env = dict(
        os.environ,
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_EXPORTER_OTLP_ENDPOINT=server.url,
        OTEL_EXPORTER_OTLP_TIMEOUT="60000",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="50",
        ELASTIC_APM_SHUTDOWN_TIMEOUT="1s",
    )
    try:
        started = time.monotonic()
        out = subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120, capture_output=True, text=True).stdout
        # A request times out after 60 s: waiting on even one would show; the bounds are generous.
        assert float(out) < 30
        assert time.monotonic() - started < 45
    finally:
        server.close()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_the_request_timeout_applies(protocol, monkeypatch):
    server = HangingServer()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "200")
    try:
        client = _otlp_client(monkeypatch, server.url, protocol=protocol)
        record(client, "timed-out")
        client.flush(2.0)
        # With the default 10 s timeout nothing would have failed yet.
        assert client.stats()["retries"] >= 1
        client.close(timeout=0.5)
    finally:
        server.close()


def test_close_waits_shutdown_timeout_at_most(monkeypatch):
    server = HangingServer()
    try:
        use_otlp(monkeypatch, server.url)
        client = oxapm.Client(service_name="faults", shutdown_timeout="300ms")
        record(client, "stuck")
        started = time.monotonic()
        client.close()
        # The default (5 s) would be well past this bound; 300 ms plus slack is well inside it.
        assert time.monotonic() - started < 3.0
    finally:
        server.close()
