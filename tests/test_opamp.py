"""OpAMP (``ELASTIC_OTEL_OPAMP_ENDPOINT``, as EDOT Python): the client reports itself to a loopback
OpAMP server, applies the ``elastic`` remote configuration it is offered and reports whether it
did. The messages are read and written with a few lines of protobuf wire format below."""

import http.server
import json
import logging
import sqlite3
import threading

import pytest

import oxapm
from oxapm.instrumentation import control

# AgentCapabilities ReportsStatus | AcceptsRemoteConfig | ReportsRemoteConfig
CAPABILITIES = 0x1 | 0x2 | 0x1000
APPLIED, FAILED = 1, 3


def _varint(data, i):
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def _fields(data):
    """Field number -> values (ints for varints, bytes for length-delimited fields)."""
    fields, i = {}, 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, i = _varint(data, i)
        elif wire_type == 2:
            length, i = _varint(data, i)
            value, i = data[i : i + length], i + length
        else:
            raise AssertionError("unexpected wire type %d" % wire_type)
        fields.setdefault(number, []).append(value)
    return fields


def _encode_varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _message_field(number, payload):
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def server_to_agent(elastic_body, config_hash):
    """A ServerToAgent offering ``config_map["elastic"]``."""
    config_file = _message_field(1, elastic_body) + _message_field(2, b"application/json")
    config_map = _message_field(1, _message_field(1, b"elastic") + _message_field(2, config_file))
    return _message_field(3, _message_field(1, config_map) + _message_field(2, config_hash))


def agent_to_server(body):
    """The fields of an AgentToServer the tests look at."""
    fields = _fields(body)
    description = _fields(fields[3][0])
    attributes = {}
    for kv in description.get(1, []):
        kv = _fields(kv)
        attributes[kv[1][0].decode()] = _fields(kv[2][0])[1][0].decode()
    status = None
    if 7 in fields:
        status_fields = _fields(fields[7][0])
        status = {
            "hash": status_fields.get(1, [b""])[0],
            "status": status_fields.get(2, [0])[0],
            "error": status_fields.get(3, [b""])[0].decode(),
        }
    return {
        "instance_uid": fields[1][0],
        "sequence_num": fields.get(2, [0])[0],
        "identifying": attributes,
        "capabilities": fields[4][0],
        "status": status,
    }


class OpampServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _OpampHandler)
        self.messages = []
        self.answer = b""
        self.arrived = threading.Condition()

    @property
    def endpoint(self):
        return "http://127.0.0.1:%d/v1/opamp" % self.server_address[1]

    def wait_for_messages(self, count, timeout=10.0):
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.messages) >= count, timeout), self.messages
            return list(self.messages)


class _OpampHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        server: OpampServer = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with server.arrived:
            server.messages.append(dict(agent_to_server(body), path=self.path, content_type=self.headers.get("Content-Type")))
            server.arrived.notify_all()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(server.answer)))
        self.end_headers()
        self.wfile.write(server.answer)


@pytest.fixture
def opamp_server(monkeypatch):
    server = OpampServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("ELASTIC_OTEL_OPAMP_ENDPOINT", server.endpoint)
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def restored():
    """The oxapm log level and the instrumentations as they were."""
    level = logging.getLogger("oxapm").level
    yield
    control.set_deactivated([], False)
    oxapm.uninstrument()
    logging.getLogger("oxapm").setLevel(level)


def test_the_elastic_remote_config_is_applied_and_reported(opamp_server, restored):
    body = json.dumps({"logging_level": "debug", "sampling_rate": "0", "deactivate_instrumentations": "sqlite3"})
    opamp_server.answer = server_to_agent(body.encode(), b"hash-1")
    client = oxapm.Client(service_name="edot", environment="prod", traces_exporter="memory")
    try:
        oxapm.instrument()
        sqlite3.connect(":memory:").close()
        first, second = opamp_server.wait_for_messages(2)[:2]
        assert (first["path"], first["content_type"]) == ("/v1/opamp", "application/x-protobuf")
        assert first["identifying"] == {"service.name": "edot", "deployment.environment.name": "prod"}
        assert first["capabilities"] == CAPABILITIES and first["status"] is None
        uid = first["instance_uid"]
        assert len(uid) == 16 and uid[6] >> 4 == 7  # UUIDv7
        # The status goes out right after the configuration is applied.
        assert (second["instance_uid"], second["sequence_num"]) == (uid, first["sequence_num"] + 1)
        assert second["status"] == {"hash": b"hash-1", "status": APPLIED, "error": ""}
        assert client.config.transaction_sample_rate == 0.0 and client.config.log_level == "debug"
        assert logging.getLogger("oxapm").level == logging.DEBUG
        assert "sqlite3" not in control.instrumenting()
        transaction = client.begin_transaction("job")
        client.end_transaction("work")
        assert not transaction.is_sampled
    finally:
        client.close()


@pytest.mark.parametrize(
    "body, reason",
    [(b'{"sampling_rate": "2"}', "transaction_sample_rate"), (b"not json", "not a JSON object")],
)
def test_a_configuration_that_does_not_apply_is_reported_failed(opamp_server, body, reason):
    opamp_server.answer = server_to_agent(body, b"hash-2")
    client = oxapm.Client(service_name="edot", traces_exporter="memory")
    try:
        status = opamp_server.wait_for_messages(2)[1]["status"]
        assert status["hash"] == b"hash-2" and status["status"] == FAILED and reason in status["error"]
        assert client.config.transaction_sample_rate == 1.0
    finally:
        client.close()


def test_deactivations_the_server_drops_apply_again(restored):
    client = oxapm.Client(service_name="edot", traces_exporter="memory")
    try:
        oxapm.instrument()
        sqlite3.connect(":memory:").close()
        assert "sqlite3" in control.instrumenting()
        client._opamp_config_applied({}, True, [])
        assert control.instrumenting() == set()
        client._opamp_config_applied({}, False, [])
        assert "sqlite3" in control.instrumenting()
    finally:
        client.close()


def test_no_endpoint_no_opamp(opamp_server, monkeypatch):
    monkeypatch.delenv("ELASTIC_OTEL_OPAMP_ENDPOINT")
    oxapm.Client(service_name="edot", traces_exporter="memory").close()
    assert opamp_server.messages == []
