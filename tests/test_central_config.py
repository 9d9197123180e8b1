"""Central configuration: a running client polls APM Server's config endpoint (a loopback stand-in:
there is no APM Server here) and the dynamic options take effect without a restart; an option the
server drops reverts to its local value. Also trace_continuation_strategy, over real requests."""

import hashlib
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import requests
import web_checks as checks
from conftest import IntakeRecorder, _RecordingHandler, serving

import oxapm
from oxapm.contrib.wsgi import OxapmMiddleware
from oxapm.utils.disttracing import TraceParent

INCOMING_TRACE, INCOMING_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
INCOMING = "00-%s-%s-01" % (INCOMING_TRACE, INCOMING_SPAN)


class ApmServer(IntakeRecorder):
    """An intake recorder that also answers ``GET /config/v1/agents`` as APM Server does: ``config``
    with an ETag of its content (304 when the agent has it), ``config_status`` otherwise,
    ``Cache-Control: max-age`` when ``max_age`` is not None. Each config request is recorded."""

    def __init__(self):
        super().__init__(202)
        self.RequestHandlerClass = _ApmServerHandler
        self.config = {}
        self.config_status = 200
        self.max_age = 0  # below the agent's 5 s minimum: polls every 5 s
        self.config_delay = 0.0
        self.config_requests = []

    def wait_for_polls(self, count: int, timeout: float = 20.0) -> None:
        with self.lock:
            assert self.arrived.wait_for(lambda: len(self.config_requests) >= count, timeout), self.config_requests


class _ApmServerHandler(_RecordingHandler):
    def do_GET(self):
        server: ApmServer = self.server  # type: ignore[assignment]
        if server.config_delay:
            threading.Event().wait(server.config_delay)
        with server.lock:
            body = json.dumps(server.config, sort_keys=True).encode()
            etag = '"%s"' % hashlib.sha1(body).hexdigest()
            status = server.config_status
            if status == 200 and self.headers.get("If-None-Match") == etag:
                status = 304
            headers = {name.lower(): value for name, value in self.headers.items()}
            server.config_requests.append({"path": self.path, "headers": headers, "status": status, "etag": etag})
            server.arrived.notify_all()
        self.send_response(status)
        if server.max_age is not None:
            self.send_header("Cache-Control", "max-age=%d" % server.max_age)
        if status == 200:
            self.send_header("ETag", etag)
        else:
            body = b""
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def apm_server(monkeypatch):
    monkeypatch.setenv("ELASTIC_APM_CENTRAL_CONFIG", "true")
    yield from serving(ApmServer())


@pytest.fixture
def oxapm_log_level():
    """Puts the ``oxapm`` logger's level back (``log_level`` sets it)."""
    logger = logging.getLogger("oxapm")
    level = logger.level
    yield
    logger.setLevel(level)


def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not within %.0f s" % timeout
        time.sleep(0.02)


def _record(client, traceparent=None):
    transaction = client.begin_transaction("job", trace_parent=TraceParent.from_string(traceparent) if traceparent else None)
    client.end_transaction("work", "ok")
    return transaction


def _warnings(caplog):
    return [r.getMessage() for r in caplog.records if r.name.startswith("oxapm") and r.levelno >= logging.WARNING]


def test_a_running_client_follows_apm_server(apm_server, caplog):
    caplog.set_level(logging.INFO, logger="oxapm")
    apm_server.config = {"transaction_sample_rate": "0", "service_name": "other", "transaction_max_spans": "many"}
    client = oxapm.Client(service_name="shop", environment="prod", server_url=apm_server.url, secret_token="t0ken")
    try:
        _wait(lambda: client.config.transaction_sample_rate == 0.0)
        first = apm_server.config_requests[0]
        assert first["path"] == "/config/v1/agents?service.name=shop&service.environment=prod"
        assert first["headers"]["authorization"] == "Bearer t0ken" and "if-none-match" not in first["headers"]
        assert not _record(client).is_sampled
        messages = [r.getMessage() for r in caplog.records]
        assert "updated config: transaction_sample_rate from 1 to 0" in messages
        # One warning for each value not taken; the others apply.
        warnings = _warnings(caplog)
        assert len(warnings) == 2, warnings
        assert '"service_name" is not a dynamic option' in warnings[0]
        assert "transaction_max_spans" in warnings[1] and "many" in warnings[1]
        assert client._engine.shaping()["max_spans"] == 500

        # Unchanged: the next poll sends the ETag and gets a 304.
        apm_server.wait_for_polls(2)
        second = apm_server.config_requests[1]
        assert second["headers"]["if-none-match"] == first["etag"] and second["status"] == 304

        # The server drops the option: the local value is back, for the next transactions.
        apm_server.config = {}
        _wait(lambda: client.config.transaction_sample_rate == 1.0)
        assert _record(client).is_sampled
        assert client.flush(5.0)
        assert [body["sampled"] for kind, body in apm_server.events() if kind == "transaction"] == [False, True]
    finally:
        client.close()


def test_an_apm_server_without_central_config_is_asked_again_quietly(apm_server, caplog):
    apm_server.config_status = 404
    client = oxapm.Client(service_name="shop", server_url=apm_server.url)
    try:
        apm_server.wait_for_polls(1)
        apm_server.config, apm_server.config_status = {"capture_body": "all"}, 200
        _wait(lambda: client.config.capture_body == "all")
        assert _warnings(caplog) == []
        assert "service.environment" not in apm_server.config_requests[0]["path"]
    finally:
        client.close()


def test_a_failing_config_endpoint_is_reported_once_and_polled_again(apm_server, caplog):
    caplog.set_level(logging.INFO, logger="oxapm")
    apm_server.config_status = 500
    client = oxapm.Client(service_name="shop", server_url=apm_server.url, api_key="k3y")
    try:
        apm_server.wait_for_polls(2)
        assert apm_server.config_requests[0]["headers"]["authorization"] == "ApiKey k3y"
        apm_server.config, apm_server.config_status = {"capture_headers": "false"}, 200
        _wait(lambda: client.config.capture_headers is False)
        warnings = _warnings(caplog)
        assert len(warnings) == 1 and "answered 500" in warnings[0], warnings
        assert any("answers central configuration requests again" in r.getMessage() for r in caplog.records)
        assert all("k3y" not in r.getMessage() for r in caplog.records)
    finally:
        client.close()


def test_central_config_false_never_asks(apm_server, monkeypatch):
    monkeypatch.setenv("ELASTIC_APM_CENTRAL_CONFIG", "false")
    client = oxapm.Client(service_name="shop", server_url=apm_server.url)
    _record(client)
    assert client.flush(5.0)
    client.close()
    assert apm_server.config_requests == []


def test_every_dynamic_option_takes_effect_and_reverts(client, oxapm_log_level):
    client._reconfigure(
        {
            "recording": "false",
            "log_level": "debug",
            "capture_body": "all",
            "capture_headers": "false",
            "stack_trace_limit": "5",
            "transaction_ignore_urls": "/health*",
            "transaction_max_spans": "7",
            "span_compression_enabled": "true",  # off locally (conftest)
            "span_compression_exact_match_max_duration": "10ms",
            "span_compression_same_kind_max_duration": "5ms",
            "exit_span_min_duration": "2ms",
            "span_stack_trace_min_duration": "-1ms",
        }
    )
    config = client.config
    assert (config.recording, config.capture_body, config.capture_headers, config.stack_trace_limit) == (False, "all", False, 5)
    assert config.log_level == "debug" and logging.getLogger("oxapm").level == logging.DEBUG
    assert client.begin_transaction("job") is None  # not recording
    assert client._engine.ignores_url("/healthz")
    shaping = {"max_spans": 7, "compression": (10_000, 5_000), "exit_span_min_us": 2_000, "stack_trace_min_us": None}
    assert client._engine.shaping() == shaping

    client._reconfigure({"span_compression_enabled": "false", "span_frames_min_duration": "-1"})
    assert config.recording is True and config.capture_body == "off" and config.log_level is None
    assert logging.getLogger("oxapm").level == logging.NOTSET
    assert not client._engine.ignores_url("/healthz")
    shaping = {"max_spans": 500, "compression": None, "exit_span_min_us": 0, "stack_trace_min_us": 0}
    assert client._engine.shaping() == shaping

    client._reconfigure({"transaction_sample_rate": "0", "trace_continuation_strategy": "restart"})
    assert config.transaction_sample_rate == 0.0
    assert not _record(client).is_sampled
    restarted = _record(client, INCOMING)
    assert restarted.trace_id != INCOMING_TRACE and not restarted.is_sampled

    client._reconfigure({})
    assert _record(client).is_sampled and _record(client, INCOMING).trace_id == INCOMING_TRACE


def test_a_bad_value_is_reported_once_and_the_previous_value_kept(client, caplog):
    client._reconfigure({"transaction_max_spans": "20", "transaction_sample_rate": "0.5"})
    caplog.clear()
    client._reconfigure({"transaction_max_spans": "lots", "transaction_sample_rate": "0.5", "server_url": "http://elsewhere"})
    warnings = _warnings(caplog)
    assert len(warnings) == 2, warnings
    assert '"server_url" is not a dynamic option' in warnings[0]
    assert 'invalid value "lots" for transaction_max_spans' in warnings[1]
    assert client._engine.shaping()["max_spans"] == 20 and client.config.transaction_max_spans == 20
    assert client.config.transaction_sample_rate == 0.5 and client.config.server_url is None


def test_sanitize_field_names_capture_headers_and_capture_body_follow(client_with):
    recorded = client_with()
    client = recorded.client

    def app(environ, start_response):
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    headers = {"X-Internal-Token": "hidden", "Authorization": "Basic c2VjcmV0"}
    with checks.wsgi_server(OxapmMiddleware(app)) as url:
        client._reconfigure({"sanitize_field_names": "x-internal*", "capture_body": "transactions"})
        requests.post(url + "/a", data=b"payload", headers=headers)
        (first,) = recorded.wait_for_transactions(1)
        client._reconfigure({"capture_headers": "false"})
        requests.post(url + "/b", data=b"payload", headers=headers)
        second = recorded.wait_for_transactions(2)[1]
    request_headers = {name.lower(): value for name, value in first["context"]["request"]["headers"].items()}
    assert request_headers["x-internal-token"] == "[REDACTED]"
    # The remote list replaces the local one (which redacts authorization).
    assert request_headers["authorization"] == "Basic c2VjcmV0"
    assert first["context"]["request"]["body"] == "payload"
    assert "headers" not in second["context"]["request"]


def test_api_request_time_and_size_follow(intake):
    client = oxapm.Client(service_name="shop", server_url=intake.url, api_request_time="3600s")
    try:
        client._reconfigure({"api_request_time": "50ms"})
        _record(client)
        # Without a flush, only the batch age can send it.
        assert intake.wait_for(lambda received: len(received) == 1, timeout=10.0)
        client._reconfigure({"api_request_size": "1b"})  # api_request_time back to an hour
        _record(client)
        _record(client)
        # Every event fills a batch.
        assert intake.wait_for(lambda received: len(received) == 3, timeout=10.0)
        assert [kind for kind, _ in intake.events()] == ["metadata", "transaction"] * 3
    finally:
        client.close()


@pytest.mark.parametrize(
    "strategy, tracestate, continued",
    [
        ("continue", "other=1", True),
        ("restart", "es=s:1", False),
        ("restart_external", "es=s:1", True),
        ("restart_external", "other=1", False),
    ],
)
def test_trace_continuation_strategy_on_requests(client_with, strategy, tracestate, continued):
    recorded = client_with(trace_continuation_strategy=strategy)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with checks.wsgi_server(OxapmMiddleware(app)) as url:
        # The caller did not sample: a restarted trace is sampled afresh (rate 1).
        requests.get(url + "/", headers={"traceparent": INCOMING[:-2] + "00", "tracestate": tracestate})
        transaction = recorded.transaction()
    if continued:
        assert (transaction["trace_id"], transaction["parent_id"]) == (INCOMING_TRACE, INCOMING_SPAN)
        assert transaction["sampled"] is False and "links" not in transaction
    else:
        assert transaction["trace_id"] != INCOMING_TRACE and "parent_id" not in transaction
        assert transaction["links"] == [{"trace_id": INCOMING_TRACE, "span_id": INCOMING_SPAN}]
        assert transaction["sampled"] is True


def test_interpreter_exit_while_a_config_request_is_out(apm_server):
    apm_server.config_delay = 3.0
    script = textwrap.dedent(
        """
        import oxapm
        client = oxapm.Client(service_name="exiting", server_url=%r)
        client.begin_transaction("job")
        client.end_transaction("last words", "ok")
        """
        % apm_server.url
    )
    result = subprocess.run([sys.executable, "-c", script], timeout=30, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert [body["name"] for kind, body in apm_server.events() if kind == "transaction"] == ["last words"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_keeps_the_remote_values_and_polls_again(apm_server):
    apm_server.config, apm_server.max_age = {"capture_body": "all", "transaction_max_spans": "9"}, 60
    client = oxapm.Client(service_name="forking", server_url=apm_server.url)
    try:
        _wait(lambda: client.config.capture_body == "all")
        polls = len(apm_server.config_requests)
        result_read, result_write = os.pipe()
        go_read, go_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                kept = client.config.capture_body == "all" and client._engine.shaping()["max_spans"] == 9
                os.write(result_write, b"1" if kept else b"0")
                os.read(go_read, 1)
                client.close()
            finally:
                os._exit(0)
        try:
            assert os.read(result_read, 1) == b"1"
            # The parent asks again in a minute: a request now is the child's.
            apm_server.wait_for_polls(polls + 1, timeout=10.0)
        finally:
            os.write(go_write, b"!")
            _, status = os.waitpid(pid, 0)
        assert status == 0
    finally:
        client.close()
