"""Export through an HTTP proxy from HTTPS_PROXY, and around it for hosts in NO_PROXY."""

import socket
import threading

from conftest import RawServer

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
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source, sink):
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



def _send_one(url):
    client = oxapm.Client(service_name="proxied", server_url=url)
    client.begin_transaction("job")
    client.end_transaction("via proxy")
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
