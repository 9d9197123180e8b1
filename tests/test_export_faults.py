"""Faults a real network produces, from a raw-socket server that misbehaves on purpose for its
first connections: reset mid-request, garbage instead of HTTP, a slow answer. The agent retries,
and every event arrives once the server behaves; over intake v2 and over OTLP/HTTP alike."""

import gzip
import json
import socket
import struct
import time

import pytest
from conftest import RawServer, record, spans_of, use_otlp, validate_event

import oxapm


class FaultyServer(RawServer):
    def __init__(self, faults):
        self.faults = list(faults)  # one per connection, then "ok"
        self.requests = []
        super().__init__()

    def handle(self, conn):
        self._handle(conn, self.faults.pop(0) if self.faults else "ok")

    def _handle(self, conn, fault):
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = int([line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")][0])
            if fault == "reset":
                # Close with a reset before the whole body is read.
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            while len(body) < length:
                body += conn.recv(65536)
            if fault == "garbage":
                conn.sendall(b"\x00\xffNOT HTTP AT ALL\r\n\r\n")
                return
            if fault == "slow":
                time.sleep(1.5)
            self.requests.append({"head": head.lower(), "body": body})
            conn.sendall(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")

    def transactions(self):
        names = []
        for request in self.requests:
            if b"application/x-protobuf" in request["head"]:
                names.extend(span.name for span in spans_of([request]))
                continue
            for line in gzip.decompress(request["body"]).splitlines():
                kind, event = validate_event(json.loads(line))
                if kind == "transaction":
                    names.append(event["name"])
        return sorted(names)


@pytest.mark.parametrize("exporter", ["intake", "otlp"])
@pytest.mark.parametrize("faults", [["reset", "reset"], ["garbage", "garbage"], ["slow"], ["reset", "garbage", "slow"]])
def test_events_arrive_once_after_faults(faults, exporter, monkeypatch):
    server = FaultyServer(faults)
    if exporter == "otlp":
        use_otlp(monkeypatch, server.url)
    try:
        client = oxapm.Client(service_name="faults", server_url=server.url if exporter == "intake" else None, server_timeout="5s")
        record(client, "t0", "t1", "t2")
        client.flush(30.0)
        client.close(timeout=5.0)
        assert server.transactions() == ["t0", "t1", "t2"]
        assert client.stats()["sent"] == 3
        assert client.stats()["retries"] == sum(f != "slow" for f in faults)
    finally:
        server.close()
