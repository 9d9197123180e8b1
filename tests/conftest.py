"""Shared fixtures: an in-memory client whose every exported event is validated against the intake v2
schemas, OTLP request decoding, recording servers on loopback and a test CA."""

import gzip
import http.server
import json
import os
import socket
import subprocess
import threading
import time
import zlib
from pathlib import Path
from typing import Any, Dict, List, Tuple

import jsonschema
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import oxapm
from oxapm import traces

# servers: postgres, mariadb, redis_server, memcached, odbc_postgres (real servers on loopback);
# web_checks: recorded, client_with (memory clients for the web framework tests)
pytest_plugins = ["servers", "web_checks"]

SCHEMA_DIR = Path(__file__).parent / "specs" / "intake-v2"
# apm-data has no schema for `log` events: this one is written from its decoder (see its $comment).
SCHEMA_FILES = {"log": Path(__file__).parent / "specs" / "intake-log.json"}
_validators: Dict[str, jsonschema.Draft4Validator] = {}


def validate_event(event: Dict[str, Any]) -> Tuple[str, Dict[str, Any]]:
    """Checks one intake line (``{"span": {...}}``) against its schema; returns (kind, body)."""
    assert len(event) == 1, event
    kind, body = next(iter(event.items()))
    if kind not in _validators:
        schema = json.loads(SCHEMA_FILES.get(kind, SCHEMA_DIR / ("%s.json" % kind)).read_text())
        _validators[kind] = jsonschema.Draft4Validator(schema)
    errors = sorted(_validators[kind].iter_errors(body), key=str)
    assert not errors, "%s event invalid: %s\n%s" % (kind, [e.message for e in errors], body)
    return kind, body


# --- OTLP, decoded with the official opentelemetry-proto package ---------------------------------


def decoded(requests, message_type=ExportTraceServiceRequest):
    """Every OTLP request body, parsed (as trace export requests unless told otherwise)."""
    out = []
    for request in requests:
        message = message_type()
        message.ParseFromString(request["body"])
        out.append(message)
    return out


def spans_of(requests):
    return [span for message in decoded(requests) for rs in message.resource_spans for ss in rs.scope_spans for span in ss.spans]


def attributes(kvs):
    """OTLP key-values as a plain dict of Python values."""
    out = {}
    for kv in kvs:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind)
    return out


def use_otlp(monkeypatch, endpoint, protocol="http/protobuf", **variables):
    """Selects OTLP export to ``endpoint`` through the environment, as a user would (intake stays
    off unless a server URL is given too); more ``OTEL_*`` variables as keyword arguments."""
    variables.update(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_PROTOCOL=protocol, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def record(client, *names):
    """One transaction, without spans, per name."""
    for name in names:
        client.begin_transaction("job")
        client.end_transaction(name)


class Exported:
    """The validated events a memory client exported, by kind."""

    def __init__(self, lines: List[str]):
        self.all = [validate_event(json.loads(line)) for line in lines]

    def of(self, kind: str) -> List[Dict[str, Any]]:
        return [body for k, body in self.all if k == kind]

    @property
    def transactions(self):
        return self.of("transaction")

    @property
    def spans(self):
        return self.of("span")

    @property
    def errors(self):
        return self.of("error")

    @property
    def logs(self):
        return self.of("log")


def exported(client: oxapm.Client) -> Exported:
    assert client.flush(5.0)
    return Exported(client._engine.take_memory())


@pytest.fixture(autouse=True)
def _clean_context(monkeypatch):
    """No test sees another's transaction, client, agent environment variables or proxy settings
    (the loopback servers are reached directly unless a test sets a proxy).

    Span compression is off unless a test removes the variable (test_shaping.py): the other tests
    check the span each call makes, and consecutive identical calls would be one composite. Central
    configuration is off: the loopback servers are intake recorders, not APM Servers
    (test_central_config.py turns it on)."""
    proxies = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
    for name in list(os.environ):
        if name.startswith(("ELASTIC_APM_", "OTEL_")) or name.lower() in proxies:
            monkeypatch.delenv(name)
    monkeypatch.setenv("ELASTIC_APM_SPAN_COMPRESSION_ENABLED", "false")
    monkeypatch.setenv("ELASTIC_APM_CENTRAL_CONFIG", "false")
    traces.set_transaction(None)
    yield
    traces.set_transaction(None)


def pytest_configure(config):
    config.addinivalue_line("markers", "metrics: the agent's default metrics_interval applies (others run with metrics off)")


@pytest.fixture(autouse=True)
def _metrics_off_unless_tested(request, monkeypatch):
    """Metrics are on by default and collected at every flush and close: tests that count what was
    delivered would see metricsets too. Off, then, except where a module is marked ``metrics``
    (as the Elastic agent's own test client does with metrics_interval)."""
    if request.node.get_closest_marker("metrics") is None:
        monkeypatch.setenv("ELASTIC_APM_METRICS_INTERVAL", "0")


@pytest.fixture
def client():
    c = oxapm.Client(service_name="test-service", traces_exporter="memory")
    yield c
    c.close()


class RawServer:
    """A loopback TCP server handing each connection to ``handle`` on its own thread: for
    protocols and faults that http.server cannot produce."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.handle, args=(conn,), daemon=True).start()

    def handle(self, conn):
        raise NotImplementedError

    def close(self):
        self.sock.close()


def pipe(source, sink):
    """Copies bytes from one socket to the other until either side closes, then closes both
    directions (for the proxies and TLS terminators of the tests)."""
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class IntakeRecorder(http.server.ThreadingHTTPServer):
    """A loopback APM Server (or OTLP/HTTP) stand-in that records each request: path, headers, the
    decompressed body and, for NDJSON, its parsed lines. ``status``, ``retry_after`` and ``delay``
    set how it answers."""

    daemon_threads = True

    def __init__(self, status: int = 202):
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.requests: List[Dict[str, Any]] = []
        self.status = status
        self.answer = b""  # the response body
        self.retry_after = None
        self.delay = 0.0
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self.server_address[1]

    def events(self) -> List[Tuple[str, Dict[str, Any]]]:
        """Every validated line of every request, metadata included."""
        with self.lock:
            return [validate_event(line) for request in self.requests for line in request["lines"]]

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        with self.lock:
            return self.arrived.wait_for(lambda: predicate(self.requests), timeout)


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as APM Server and OTLP receivers offer

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = self.headers.get("Content-Encoding")
        if encoding == "gzip":
            body = gzip.decompress(body)
        elif encoding == "deflate":
            body = zlib.decompress(body)
        server: IntakeRecorder = self.server  # type: ignore[assignment]
        if server.delay:
            threading.Event().wait(server.delay)
        with server.lock:
            ndjson = "ndjson" in (self.headers.get("Content-Type") or "")
            server.requests.append(
                {
                    "time": time.monotonic(),
                    "status": server.status,
                    "path": self.path,
                    "client_port": self.client_address[1],  # one per connection
                    "headers": {name.lower(): value for name, value in self.headers.items()},  # names are case-insensitive
                    "body": body,
                    "lines": [json.loads(line) for line in body.splitlines() if line.strip()] if ndjson else [],
                }
            )
            server.arrived.notify_all()
        self.send_response(server.status)
        if server.retry_after is not None:
            self.send_header("Retry-After", server.retry_after)
        self.send_header("Content-Length", str(len(server.answer)))
        self.end_headers()
        self.wfile.write(server.answer)


def serving(server):
    """Yields ``server`` (an http.server) serving on its own thread, stopped afterwards."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _recording(status: int):
    yield from serving(IntakeRecorder(status))


@pytest.fixture
def intake():
    yield from _recording(202)


@pytest.fixture
def otlp_http():
    """Records OTLP/HTTP requests (an OTLP receiver answers 200)."""
    yield from _recording(200)


def _openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory):
    """A CA made for the run; a server certificate for 127.0.0.1 and a client certificate, both
    signed by it (server.pem/key, client.pem/key, ca.pem)."""
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=oxapm test CA", "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=oxapm test client")):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", name + ".key", "-out", name + ".csr", cwd=d)
        _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", name + ".ext", "-out", name + ".pem", cwd=d)
    return d
