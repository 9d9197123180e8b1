"""Export to an APM Server behind TLS whose certificate is signed by a CA made in the test."""

import logging
import shutil
import ssl
import threading

import pytest
from conftest import IntakeRecorder

import oxapm

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture
def tls_intake(certificates):
    server = IntakeRecorder()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "server.pem", certificates / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, "https://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()


def _one_transaction(client):
    client.begin_transaction("job")
    client.end_transaction("over tls")


def test_server_ca_cert_file_is_trusted(tls_intake, certificates):
    server, url = tls_intake
    client = oxapm.Client(service_name="tls", server_url=url, server_ca_cert_file=str(certificates / "ca.pem"))
    _one_transaction(client)
    client.close()
    assert [body["name"] for kind, body in server.events() if kind == "transaction"] == ["over tls"]


def test_an_unknown_ca_is_refused(tls_intake, caplog):
    server, url = tls_intake
    caplog.set_level(logging.WARNING, logger="oxapm")
    client = oxapm.Client(service_name="tls", server_url=url)
    _one_transaction(client)
    client.flush(1.0)
    assert client.stats()["sent"] == 0 and server.requests == []
    assert any("could not reach APM Server" in r.getMessage() for r in caplog.records)
    client.close(timeout=0.5)


def test_verify_server_cert_false_skips_the_check(tls_intake):
    server, url = tls_intake
    client = oxapm.Client(service_name="tls", server_url=url, verify_server_cert=False)
    _one_transaction(client)
    client.close()
    assert client.stats()["sent"] == 1


def test_an_unusable_ca_file_is_named_once(tls_intake, tmp_path, caplog):
    server, url = tls_intake
    caplog.set_level(logging.WARNING, logger="oxapm")
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("hello")
    client = oxapm.Client(service_name="tls", server_url=url, server_ca_cert_file=str(bad))
    _one_transaction(client)
    client.close(timeout=0.5)
    named = [r.getMessage() for r in caplog.records if str(bad) in r.getMessage()]
    assert len(named) == 1 and "server_ca_cert_file" in named[0]
