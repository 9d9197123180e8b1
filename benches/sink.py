"""Loopback sink for the side-by-side benchmark.

One HTTP server that speaks just enough of each contender's wire protocol:

* Elastic APM intake v2   POST /intake/v2/events        (NDJSON, gzip/deflate)
* OTLP/HTTP protobuf      POST /v1/traces               (gzip optional)
* Datadog trace agent     PUT|POST /v0.4/traces, /v0.5/traces  (msgpack)
* control plane           GET /_counts, POST /_reset

Handlers only read the body, stash it and answer.  Decoding is deferred to
``GET /_counts`` (which the harness calls after a contender has exited), so the
sink's CPU use while a contender is being timed is one recv + one list append
per request -- on a 2-core box a sink that parses 55 000 events concurrently
would steal CPU from the process being measured.

An event is counted as *warm-up* when its name starts with ``warmup`` (the
contenders name their warm-up transactions/spans that way); everything else
is *measured*.  That keeps the delivered figure exact even when warm-up events
arrive late, interleaved with the measured ones.

Run standalone: ``python benches/sink.py [--port N]``; prints
``LISTENING <port>`` on stdout once ready.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import threading
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WARMUP_PREFIX = "warmup"

# Event kinds that represent "a transaction or a span" for the delivered figure.
TRACE_KINDS = ("transaction", "span", "otlp_span", "dd_span")


class Store:
    """Raw bodies waiting to be decoded + counters of what was decoded."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.pending: list[tuple[str, str, bytes]] = []
            self.measured: Counter[str] = Counter()
            self.warmup: Counter[str] = Counter()
            self.requests: Counter[str] = Counter()
            self.bytes_in = 0
            self.errors: list[str] = []

    def add(self, proto: str, encoding: str, body: bytes) -> None:
        with self.lock:
            self.pending.append((proto, encoding, body))
            self.bytes_in += len(body)

    def hit(self, key: str) -> None:
        with self.lock:
            self.requests[key] += 1

    def snapshot(self) -> dict:
        with self.lock:
            pending, self.pending = self.pending, []
        measured: Counter[str] = Counter()
        warmup: Counter[str] = Counter()
        errors = []
        for proto, encoding, body in pending:
            try:
                DECODERS[proto](decompress(body, encoding), measured, warmup)
            except Exception as exc:  # a broken payload must not kill the sink
                errors.append("%s: %s: %s" % (proto, type(exc).__name__, exc))
        with self.lock:
            self.measured.update(measured)
            self.warmup.update(warmup)
            self.errors.extend(errors)
            return {
                "measured": dict(self.measured),
                "warmup": dict(self.warmup),
                "measured_total": sum(self.measured[k] for k in TRACE_KINDS),
                "warmup_total": sum(self.warmup[k] for k in TRACE_KINDS),
                "requests": dict(self.requests),
                "bytes_in": self.bytes_in,
                "errors": self.errors[-20:],
            }


def decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding == "gzip" or body[:2] == b"\x1f\x8b":
        return gzip.decompress(body)  # handles multi-member streams too
    if encoding == "deflate":
        try:
            return zlib.decompress(body)  # zlib-wrapped (what the RFC says)
        except zlib.error:
            return zlib.decompress(body, -zlib.MAX_WBITS)  # raw deflate (what some send)
    return body


def _tally(name, kind: str, measured: Counter, warmup: Counter, count: int = 1) -> None:
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    (warmup if isinstance(name, str) and name.startswith(WARMUP_PREFIX) else measured)[kind] += count


def decode_elastic(data: bytes, measured: Counter, warmup: Counter) -> None:
    for line in data.splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        for kind, event in obj.items():  # one key per line: {"span": {...}}
            if kind == "metadata":
                continue
            name = event.get("name") if isinstance(event, dict) else None
            # A composite span (span compression) stands for `count` spans of the workload.
            composite = event.get("composite") if isinstance(event, dict) else None
            _tally(name, kind, measured, warmup, composite["count"] if isinstance(composite, dict) else 1)


def decode_otlp(data: bytes, measured: Counter, warmup: Counter) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    req = ExportTraceServiceRequest.FromString(data)
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                _tally(span.name, "otlp_span", measured, warmup)


def decode_dd_v04(data: bytes, measured: Counter, warmup: Counter) -> None:
    import msgpack

    for trace in msgpack.unpackb(data, raw=False, strict_map_key=False):
        for span in trace:
            _tally(span.get("name"), "dd_span", measured, warmup)


def decode_dd_v05(data: bytes, measured: Counter, warmup: Counter) -> None:
    # v0.5 = [string_table, traces]; a span is a 12-item array whose string
    # fields are indices into the table; index 1 is the operation name.
    import msgpack

    strings, traces = msgpack.unpackb(data, raw=False, strict_map_key=False)
    for trace in traces:
        for span in trace:
            _tally(strings[span[1]], "dd_span", measured, warmup)


DECODERS = {
    "elastic": decode_elastic,
    "otlp": decode_otlp,
    "dd_v0.4": decode_dd_v04,
    "dd_v0.5": decode_dd_v05,
}

STORE = Store()


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so agents keep their connection alive, as they would with a real server.
    protocol_version = "HTTP/1.1"
    server_version = "oxapm-bench-sink"
    sys_version = ""

    def log_message(self, format, *args):  # no per-request logging: it would be the bottleneck
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reply(self, code: int, body: bytes = b"", ctype: str = "application/json") -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        STORE.hit("GET " + path)
        if path == "/":
            # elastic-apm fetches the server version at startup to pick features.
            self._reply(200, b'{"version": "8.15.0", "build_flavor": "default"}')
        elif path == "/config/v1/agents":
            self._reply(200, b"{}")
        elif path == "/_counts":
            self._reply(200, json.dumps(STORE.snapshot()).encode())
        else:
            self._reply(404, b'{"error": "not found"}')  # e.g. ddtrace's /info: optional

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        body = self._body()  # always drain, or the keep-alive connection desyncs
        STORE.hit(self.command + " " + path)
        encoding = self.headers.get("Content-Encoding", "")
        if path == "/intake/v2/events":
            STORE.add("elastic", encoding, body)
            self._reply(202)
        elif path == "/v1/traces":
            STORE.add("otlp", encoding, body)
            # An empty ExportTraceServiceResponse serialises to zero bytes.
            self._reply(200, b"", "application/x-protobuf")
        elif path in ("/v0.4/traces", "/v0.5/traces"):
            STORE.add("dd_" + path.split("/")[1], encoding, body)
            self._reply(200, b"{}")
        elif path == "/_reset":
            STORE.reset()
            self._reply(200, b"{}")
        else:
            self._reply(404, b'{"error": "not found"}')

    do_PUT = do_POST


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


def serve(port: int = 0) -> Server:
    """Start the sink in a background thread (for in-process use/tests)."""
    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    args = parser.parse_args()
    server = Server(("127.0.0.1", args.port), Handler)
    print("LISTENING %d" % server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
