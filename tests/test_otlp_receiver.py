"""End to end against a real OTLP receiver (rotel-agent on loopback): spans sent over http/protobuf
and gRPC, with and without gzip, arrive with their ids, names, kinds and attributes."""

import pytest
from conftest import use_otlp
from otlp_receiver import rotel  # noqa: F401  (a fixture)

import oxapm


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_a_real_receiver_gets_every_span(rotel, protocol, compression, monkeypatch):  # noqa: F811
    endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
    use_otlp(monkeypatch, endpoint, protocol, OTEL_EXPORTER_OTLP_COMPRESSION=compression)
    client = oxapm.Client(service_name="rotel-check")
    transaction = client.begin_transaction("request")
    with oxapm.capture_span("GET /inventory", span_type="external", span_subtype="http", labels={"attempt": 2}):
        pass
    client.end_transaction("checkout-%s-%s" % (protocol, compression))
    client.close()

    assert rotel.wait_for("Name           : checkout-%s-%s" % (protocol, compression)), rotel.output()
    out = rotel.output()
    assert "Trace ID       : %s" % transaction.trace_id in out
    assert "ID             : %s" % transaction.id in out
    assert "-> service.name: Str(rotel-check)" in out
    assert "-> telemetry.sdk.name: Str(oxapm)" in out
    assert "InstrumentationScope oxapm %s" % oxapm.VERSION in out
    assert "Kind           : SPAN_KIND_SERVER" in out
    assert "Name           : GET /inventory" in out
    assert "Kind           : SPAN_KIND_CLIENT" in out
    assert "-> attempt: Int(2)" in out
    assert "-> elastic.transaction.type: Str(request)" in out
    assert client.stats()["sent"] == 2 and client.stats()["failed"] == 0
