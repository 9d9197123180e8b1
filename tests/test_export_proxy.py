"""Export through an HTTP proxy from HTTPS_PROXY, and around it for hosts in NO_PROXY (intake and
OTLP/HTTP)."""

import socket
import threading

from conftest import RawServer, pipe, record, spans_of, use_otlp

import oxapm


class ConnectProxy(RawServer):
    """A tunnelling proxy that records the CONNECT targets it was asked for."""

    def __init__(self):
        self.targets = []
        super().__init__()

    def handle(self, conn):
        self._tunnel(conn)

    def _tunnel(self, conn):
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk:
                return conn.close()
            head += chunk
        method, target = head.split(b" ")[:2]
        if method != b"CONNECT":
            conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            return conn.close()
        self.targets.append(target.decode())
        host, port = target.decode().rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=pipe, args=(a, b), daemon=True).start()


def _send_one(server_url=None):
    """One transaction, to APM Server at ``server_url``, else to what the environment selects."""
    client = oxapm.Client(service_name="proxied", server_url=server_url)
    record(client, "via proxy")
    client.close()
    return client


def test_https_proxy_is_used(intake, monkeypatch):
    proxy = ConnectProxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        client = _send_one(intake.url)
    finally:
        proxy.close()
    assert proxy.targets == [intake.url.split("//")[1]]
    assert client.stats()["sent"] == 1
    assert [body["name"] for kind, body in intake.events() if kind == "transaction"] == ["via proxy"]


def test_no_proxy_hosts_go_direct(intake, monkeypatch):
    proxy = ConnectProxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    try:
        client = _send_one(intake.url)
    finally:
        proxy.close()
    assert proxy.targets == []
    assert client.stats()["sent"] == 1


def test_otlp_http_uses_the_proxy_too(otlp_http, monkeypatch):
    proxy = ConnectProxy()
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    use_otlp(monkeypatch, otlp_http.url)
    try:
        _send_one()
    finally:
        proxy.close()
    assert proxy.targets == [otlp_http.url.split("//")[1]]
    assert [s.name for s in spans_of(otlp_http.requests)] == ["via proxy"]
