"""OTLP over TLS with mutual authentication, for both protocols: a TLS terminator that demands a
client certificate signed by the test CA sits in front of a real receiver (rotel-agent, which
has no TLS of its own), and passes the decrypted bytes through."""

import logging
import shutil
import socket
import ssl
import threading

import pytest
from conftest import RawServer, pipe, record, use_otlp
from otlp_receiver import rotel  # noqa: F401  (a fixture)

import oxapm

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


class MutualTlsTerminator(RawServer):
    def __init__(self, certificates, upstream_port):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
        self.context.load_verify_locations(certificates / "ca.pem")
        self.context.verify_mode = ssl.CERT_REQUIRED
        self.context.set_alpn_protocols(["h2", "http/1.1"])
        self.upstream_port = upstream_port
        self.handshakes_refused = 0
        super().__init__()
        self.url = self.url.replace("http://", "https://")

    def handle(self, conn):
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            self.handshakes_refused += 1
            conn.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        threading.Thread(target=pipe, args=(upstream, tls), daemon=True).start()
        pipe(tls, upstream)


def _port(endpoint):
    return int(endpoint.rsplit(":", 1)[1])


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_mutual_tls_with_a_client_certificate(rotel, certificates, protocol, monkeypatch):  # noqa: F811
    terminator = MutualTlsTerminator(certificates, _port(rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint))
    use_otlp(
        monkeypatch,
        terminator.url,
        protocol,
        OTEL_EXPORTER_OTLP_CERTIFICATE=str(certificates / "ca.pem"),
        OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE=str(certificates / "client.pem"),
        OTEL_EXPORTER_OTLP_CLIENT_KEY=str(certificates / "client.key"),
    )
    try:
        client = oxapm.Client(service_name="mtls")
        record(client, "over mutual tls via %s" % protocol)
        client.close()
        assert rotel.wait_for("Name           : over mutual tls via %s" % protocol), rotel.output()
        assert client.stats()["sent"] == 1
    finally:
        terminator.close()


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_without_a_client_certificate_the_server_refuses(rotel, certificates, protocol, monkeypatch, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="oxapm")
    terminator = MutualTlsTerminator(certificates, _port(rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint))
    use_otlp(monkeypatch, terminator.url, protocol, OTEL_EXPORTER_OTLP_CERTIFICATE=str(certificates / "ca.pem"))
    try:
        client = oxapm.Client(service_name="mtls")
        record(client, "refused")
        client.close(timeout=1.0)
        assert client.stats()["sent"] == 0 and client.stats()["retries"] >= 1
        assert terminator.handshakes_refused >= 1
        assert "refused" not in rotel.output()
    finally:
        terminator.close()


def test_an_unknown_server_ca_is_refused(rotel, certificates, monkeypatch, caplog):  # noqa: F811
    # The system's CAs do not include the test CA, so the server's certificate is not trusted.
    caplog.set_level(logging.INFO, logger="oxapm")
    terminator = MutualTlsTerminator(certificates, _port(rotel.http_endpoint))
    use_otlp(monkeypatch, terminator.url)
    try:
        client = oxapm.Client(service_name="mtls")
        record(client, "untrusted")
        client.close(timeout=1.0)
        assert client.stats()["sent"] == 0
        assert any("could not reach the OTLP endpoint" in r.getMessage() for r in caplog.records)
    finally:
        terminator.close()
