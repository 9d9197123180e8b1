"""End to end, the cases of the W3C trace-context test suite: a Flask service under ``oxapm run``
whose handler calls another URL with requests. For every incoming ``traceparent``/``tracestate``
case, the outgoing call must continue the trace (valid) or start a new one (invalid), carry the
tracestate when it parses and nothing of it when it does not, and name as its parent the span that
recorded the call."""

import http.client
import os
import signal
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import IntakeRecorder

TRACE = "12345678901234567890123456789012"
PARENT = "1234567890123456"
VALID = "00-%s-%s-01" % (TRACE, PARENT)

APP = """
    import sys
    import requests
    from flask import Flask
    from werkzeug.serving import make_server

    app = Flask(__name__)

    @app.route("/call/<case>")
    def call(case):
        requests.get(sys.argv[1] + "/" + case)
        return "ok"

    server = make_server("127.0.0.1", 0, app, threaded=True)
    print(server.port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
"""


class Downstream(ThreadingHTTPServer):
    """Records the trace-context headers each call arrives with, by path."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Recording)
        self.received = {}


class _Recording(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.received[self.path.strip("/")] = {
            "traceparent": self.headers.get_all("traceparent") or [],
            "tracestate": self.headers.get_all("tracestate") or [],
        }
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("w3c")
    (tmp / "app.py").write_text(textwrap.dedent(APP))
    intake, downstream = IntakeRecorder(202), Downstream()
    for server in (intake, downstream):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELASTIC_APM_", "OTEL_"))}
    env.update(ELASTIC_APM_SERVER_URL=intake.url, ELASTIC_APM_API_REQUEST_TIME="100ms", ELASTIC_APM_METRICS_INTERVAL="0ms",
               ELASTIC_APM_CENTRAL_CONFIG="false", ELASTIC_APM_CLOUD_PROVIDER="none", XDG_CACHE_HOME=str(tmp / "cache"))
    process = subprocess.Popen([str(Path(sys.executable).parent / "oxapm"), "run", "--", sys.executable, str(tmp / "app.py"),
                                "http://127.0.0.1:%d" % downstream.server_address[1]],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=str(tmp))
    port = int(process.stdout.readline())

    def call(case, headers):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.putrequest("GET", "/call/" + case)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        assert connection.getresponse().status == 200
        connection.close()
        return downstream.received[case]

    call.intake = intake
    yield call
    process.send_signal(signal.SIGINT)  # serve_forever ends; the agent flushes at exit
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "oxapm" not in stderr, stderr
    for server in (intake, downstream):
        server.shutdown()


def outgoing(received):
    (traceparent,) = received["traceparent"]
    version, trace_id, parent_id, flags = traceparent.split("-")
    assert version == "00" and len(parent_id) == 16 and parent_id not in (PARENT, "0" * 16)
    return trace_id, ",".join(received["tracestate"])


CONTINUED = {
    "valid": [("traceparent", VALID)],
    "not-sampled": [("traceparent", "00-%s-%s-00" % (TRACE, PARENT))],
    "name-casing": [("TraceParent", VALID)],
    "name-upper": [("TRACEPARENT", VALID)],
    "future-version": [("traceparent", "cc-%s-%s-01" % (TRACE, PARENT))],
    "future-version-more-fields": [("traceparent", "cc-%s-%s-01-what-the-future-will-be-like" % (TRACE, PARENT))],
    "ows-before": [("traceparent", " \t" + VALID)],
    "ows-after": [("traceparent", VALID + " \t")],
}

RESTARTED = {
    "v00-trailing-dot": [("traceparent", VALID + ".")],
    "v00-more-fields": [("traceparent", VALID + "-what-the-future-will-be-like")],
    "version-ff": [("traceparent", "ff-%s-%s-01" % (TRACE, PARENT))],
    "version-illegal-1": [("traceparent", ".0-%s-%s-01" % (TRACE, PARENT))],
    "version-illegal-2": [("traceparent", "0.-%s-%s-01" % (TRACE, PARENT))],
    "version-too-long": [("traceparent", "000-%s-%s-01" % (TRACE, PARENT))],
    "version-too-short": [("traceparent", "0-%s-%s-01" % (TRACE, PARENT))],
    "trace-id-zero": [("traceparent", "00-%s-%s-01" % ("0" * 32, PARENT))],
    "trace-id-illegal": [("traceparent", "00-%s.-%s-01" % (TRACE[:31], PARENT))],
    "trace-id-upper": [("traceparent", "00-%s-%s-01" % ("ABCDEF" + TRACE[6:], PARENT))],
    "trace-id-too-long": [("traceparent", "00-%s0-%s-01" % (TRACE, PARENT))],
    "trace-id-too-short": [("traceparent", "00-%s-%s-01" % (TRACE[:31], PARENT))],
    "parent-id-zero": [("traceparent", "00-%s-%s-01" % (TRACE, "0" * 16))],
    "parent-id-illegal": [("traceparent", "00-%s-%s.-01" % (TRACE, PARENT[:15]))],
    "parent-id-too-long": [("traceparent", "00-%s-%s0-01" % (TRACE, PARENT))],
    "parent-id-too-short": [("traceparent", "00-%s-%s-01" % (TRACE, PARENT[:15]))],
    "flags-illegal": [("traceparent", "00-%s-%s-.0" % (TRACE, PARENT))],
    "flags-too-long": [("traceparent", "00-%s-%s-001" % (TRACE, PARENT))],
    "flags-too-short": [("traceparent", "00-%s-%s-0" % (TRACE, PARENT))],
    "duplicated": [("traceparent", VALID), ("traceparent", "00-%s-%s-01" % ("1" * 32, PARENT))],
    "tracestate-without-traceparent": [("tracestate", "foo=1")],
}

KEY_256 = "z" * 256
TRACESTATE_KEPT = {
    "one": (["foo=1"], ["foo=1"]),
    "two-headers": (["foo=1", "bar=2"], ["foo=1", "bar=2"]),
    "ows": (["foo=1 \t , \t bar=2, \t baz=3"], ["foo=1", "bar=2", "baz=3"]),
    "empty": ([""], []),
    "empty-members": (["foo=1,,,bar=2"], ["foo=1", "bar=2"]),
    "all-characters": (["abcdefghijklmnopqrstuvwxyz0123456789_-*/= !\"#$%&'()*+-./0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"],
                       ["abcdefghijklmnopqrstuvwxyz0123456789_-*/= !\"#$%&'()*+-./0123456789:;<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"]),
    "32-members": ([",".join("bar%02d=%02d" % (i, i) for i in range(1, 33))], ["bar01=01"]),
    "key-256": ([KEY_256 + "=1"], [KEY_256 + "=1"]),
    "vendor-key-241-14": (["t" * 241 + "@" + "s" * 14 + "=1"], ["t" * 241 + "@" + "s" * 14 + "=1"]),
}

TRACESTATE_DISCARDED = {
    "duplicated-key-same-value": ["foo=1,foo=1"],
    "duplicated-key-other-value": ["foo=1,foo=2"],
    "key-space": ["foo =1"],
    "key-upper": ["FOO=1"],
    "key-dot": ["foo.bar=1"],
    "vendor-empty-system": ["foo@=1,bar=2"],
    "vendor-empty-tenant": ["@foo=1,bar=2"],
    "vendor-double-at": ["foo@@bar=1,bar=2"],
    "vendor-two-ats": ["foo@bar@baz=1,bar=2"],
    "33-members": [",".join("bar%02d=%02d" % (i, i) for i in range(1, 34))],
    "key-257": ["z" * 257 + "=1"],
    "vendor-tenant-242": ["t" * 242 + "@" + "s" * 14 + "=1"],
    "vendor-system-15": ["t" * 241 + "@" + "s" * 15 + "=1"],
    "value-with-equals": ["foo=bar=baz"],
    "value-empty": ["foo=,bar=3"],
}


@pytest.mark.parametrize("case", CONTINUED)
def test_a_valid_traceparent_is_continued(service, case):
    trace_id, _ = outgoing(service(case, CONTINUED[case]))
    assert trace_id == TRACE


@pytest.mark.parametrize("case", RESTARTED)
def test_an_invalid_traceparent_starts_a_new_trace(service, case):
    trace_id, tracestate = outgoing(service(case, RESTARTED[case]))
    assert trace_id not in (TRACE, "1" * 32, "0" * 32)
    assert "foo=1" not in tracestate


@pytest.mark.parametrize("case", TRACESTATE_KEPT)
def test_a_valid_tracestate_is_carried(service, case):
    sent, kept = TRACESTATE_KEPT[case]
    trace_id, tracestate = outgoing(service("ts-" + case, [("traceparent", VALID)] + [("tracestate", v) for v in sent]))
    members = [m for m in tracestate.split(",") if m and not m.startswith("es=")]
    assert trace_id == TRACE
    assert members[:len(kept)] == kept and len(tracestate.split(",")) <= 32


@pytest.mark.parametrize("case", TRACESTATE_DISCARDED)
def test_a_tracestate_that_does_not_parse_is_not_carried(service, case):
    trace_id, tracestate = outgoing(service("ts-" + case, [("traceparent", VALID)] + [("tracestate", v) for v in TRACESTATE_DISCARDED[case]]))
    assert trace_id == TRACE
    assert [m for m in tracestate.split(",") if m and not m.startswith("es=")] == []


def test_the_outgoing_parent_is_the_recorded_span_of_the_call(service):
    received = service("recorded", [("traceparent", "00-%s-%s-01" % ("a" * 32, PARENT))])
    _, _, parent_id, _ = received["traceparent"][0].split("-")
    intake = service.intake
    assert intake.wait_for(lambda requests: any(line.get("span", {}).get("id") == parent_id
                                                for request in requests for line in request["lines"]), timeout=10)
    events = intake.events()
    (span,) = [body for kind, body in events if kind == "span" and body["id"] == parent_id]
    (transaction,) = [body for kind, body in events if kind == "transaction" and body["trace_id"] == "a" * 32]
    assert span["trace_id"] == "a" * 32 and transaction["parent_id"] == PARENT
    assert span["transaction_id"] == transaction["id"]
