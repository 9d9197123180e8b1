"""Metricsets: system and process readings, Python GC counts, disable_metrics, and their export
over intake (schema-validated) and OTLP (decoded with opentelemetry-proto). Breakdown metrics are
tested in the engine (metrics::breakdown, engine tests) until transactions report their self times."""

import gc
import json
import os
import sys
import time

import pytest
from conftest import decoded, exported, use_otlp
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from otlp_receiver import rotel  # noqa: F401  (a fixture)

import oxapm

MEMORY_METRICS = {"system.memory.actual.free", "system.memory.total", "system.process.memory.size", "system.process.memory.rss.bytes"}
CPU_METRICS = {"system.cpu.total.norm.pct", "system.process.cpu.total.norm.pct"}
GC_METRICS = {"python.gc.collections.gen0", "python.gc.collections.gen1", "python.gc.collections.gen2"}
pytestmark = pytest.mark.metrics
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="system metrics are read from /proc")


def memory_client(**options):
    return oxapm.Client(service_name="test-service", traces_exporter="memory", **options)


def sample_names(metricsets):
    return {name for metricset in metricsets for name in metricset["samples"]}


def wait_for_samples(client, names, timeout=10.0):
    """The metricsets exported until every name in ``names`` was seen (collections come at each
    interval and each flush), or until the timeout."""
    seen = []
    give_up = time.monotonic() + timeout
    while not names <= sample_names(seen) and time.monotonic() < give_up:
        seen += exported(client).of("metricset")
        time.sleep(0.05)
    return seen


@linux_only
def test_system_and_process_metrics_under_their_elastic_names():
    client = memory_client(metrics_interval="50ms")
    try:
        metricsets = wait_for_samples(client, MEMORY_METRICS | CPU_METRICS | {"system.process.threads"})
    finally:
        client.close()
    samples = {name: sample for metricset in metricsets for name, sample in metricset["samples"].items()}
    assert MEMORY_METRICS | CPU_METRICS | {"system.process.threads"} <= set(samples), sorted(samples)
    assert samples["system.memory.total"]["type"] == "gauge"
    assert 0 < samples["system.process.memory.rss.bytes"]["value"] <= samples["system.process.memory.size"]["value"]
    assert 0.0 <= samples["system.cpu.total.norm.pct"]["value"] <= 1.0
    assert samples["system.process.threads"]["value"] >= 1
    system = [m for m in metricsets if "system.memory.total" in m["samples"]]
    assert all("transaction" not in m and "span" not in m for m in system)


@linux_only
def test_cpu_percentages_need_a_second_reading():
    client = memory_client(metrics_interval="1h")
    try:
        (first,) = exported(client).of("metricset")
    finally:
        client.close()
    assert MEMORY_METRICS <= set(first["samples"])
    assert not CPU_METRICS & set(first["samples"])


@linux_only
def test_a_forked_child_starts_its_own_cpu_baseline_and_gc_counting():
    client = memory_client(metrics_interval="1h")
    try:
        exported(client)  # the parent's first collection: its CPU baseline
        parent_engine = client._engine
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                names = sorted(sample_names(exported(client).of("metricset")))
                counting_into = [getattr(cb, "__self__", None) for cb in gc.callbacks]
                counts = {"own": counting_into.count(client._engine), "parent's": counting_into.count(parent_engine)}
                os.write(write_end, json.dumps({"names": names, "counts": counts}).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            child = json.loads(pipe.read())
        os.waitpid(pid, 0)
    finally:
        client.close()
    assert MEMORY_METRICS <= set(child["names"])
    assert not CPU_METRICS & set(child["names"]), "the child's first collection has no baseline yet"
    assert child["counts"] == {"own": 1, "parent's": 0}, "the child counts into its own engine only"


def test_garbage_collections_are_counted_per_generation():
    client = memory_client(metrics_interval="1h")
    try:
        assert client._gc_callback in gc.callbacks
        gc.collect()
        gc.collect(0)
        (metricset,) = [m for m in exported(client).of("metricset") if GC_METRICS & set(m["samples"])]
    finally:
        client.close()
    samples = metricset["samples"]
    assert samples["python.gc.collections.gen2"]["value"] >= 1
    assert samples["python.gc.collections.gen0"]["value"] >= 1
    assert samples["python.gc.collections.gen2"]["type"] == "counter"
    assert client._gc_callback is None, "close stops counting"


def test_disable_metrics_leaves_out_what_the_patterns_match():
    client = memory_client(metrics_interval="1h", disable_metrics="system.*, *.GEN1")
    try:
        gc.collect()
        names = sample_names(exported(client).of("metricset"))
    finally:
        client.close()
    assert names == GC_METRICS - {"python.gc.collections.gen1"}


def test_an_interval_of_zero_turns_metrics_off():
    client = memory_client(metrics_interval="0")
    try:
        assert client._gc_callback is None
        gc.collect()
        oxapm_events = exported(client)
    finally:
        client.close()
    assert oxapm_events.of("metricset") == []


def metrics_requests(server):
    return [r for r in server.requests if r["path"].endswith("/v1/metrics") or r["path"].endswith("/metrics")]


def decoded_metrics(requests):
    return decoded(requests, ExportMetricsServiceRequest)


def otlp_metrics(requests):
    """Every OTLP metric of the requests, by name."""
    metrics = {}
    for message in decoded_metrics(requests):
        for rm in message.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    metrics.setdefault(metric.name, []).append(metric)
    return metrics


def test_metrics_reach_the_otlp_metrics_endpoint(otlp_http, monkeypatch):
    use_otlp(monkeypatch, otlp_http.url, OTEL_EXPORTER_OTLP_COMPRESSION="gzip")
    client = oxapm.Client(service_name="otlp-metrics", metrics_interval="1h")
    gc.collect()
    client.close()
    requests = metrics_requests(otlp_http)
    assert [r["path"] for r in requests] == ["/v1/metrics"]
    assert requests[0]["headers"]["content-type"] == "application/x-protobuf"
    (message,) = decoded_metrics(requests)
    resource = {kv.key: kv.value.string_value for kv in message.resource_metrics[0].resource.attributes}
    assert resource["service.name"] == "otlp-metrics"
    assert message.resource_metrics[0].scope_metrics[0].scope.name
    metrics = otlp_metrics(requests)
    gen2 = metrics["python.gc.collections.gen2"][0]
    assert gen2.WhichOneof("data") == "sum"
    assert gen2.sum.is_monotonic and gen2.sum.aggregation_temporality == 2  # cumulative
    point = gen2.sum.data_points[0]
    assert point.as_double >= 1 and 0 < point.start_time_unix_nano <= point.time_unix_nano
    if sys.platform.startswith("linux"):
        total = metrics["system.memory.total"][0]
        assert total.WhichOneof("data") == "gauge" and total.unit == "By"
        assert total.gauge.data_points[0].as_double > 0


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_real_receiver_accepts_the_metrics(rotel, protocol, monkeypatch):  # noqa: F811
    endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
    use_otlp(monkeypatch, endpoint, protocol)
    client = oxapm.Client(service_name="rotel-metrics", metrics_interval="1h")
    gc.collect()
    client.close()
    # One metricset (system and GC samples), delivered: a refused path or message would count as failed.
    assert (client.stats()["sent"], client.stats()["failed"]) == (1, 0), client.stats()


def test_a_per_signal_metrics_endpoint_is_used_as_is(otlp_http, monkeypatch):
    use_otlp(monkeypatch, "http://127.0.0.1:9", OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=otlp_http.url + "/custom/metrics")
    client = oxapm.Client(service_name="otlp-metrics", metrics_interval="1h", server_timeout="1s")
    gc.collect()
    client.close(timeout=1.0)
    assert [r["path"] for r in otlp_http.requests] == ["/custom/metrics"]
    assert "python.gc.collections.gen0" in otlp_metrics(otlp_http.requests)


def test_otel_metrics_exporter_none_keeps_metrics_off_otlp(otlp_http, monkeypatch):
    use_otlp(monkeypatch, otlp_http.url, OTEL_METRICS_EXPORTER="none")
    client = oxapm.Client(service_name="otlp-metrics", metrics_interval="1h")
    client.begin_transaction("job")
    client.end_transaction("traced")
    client.close()
    assert [r["path"] for r in otlp_http.requests] == ["/v1/traces"]


def test_intake_gets_metricsets_without_otlp(intake, otlp_http, monkeypatch):
    """Elastic setups send no OTLP unless asked: OTEL_METRICS_EXPORTER defaults to otlp only when
    traces go to OTLP."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_http.url)
    client = oxapm.Client(service_name="intake-metrics", server_url=intake.url, metrics_interval="1h")
    gc.collect()
    client.close()
    assert otlp_http.requests == []
    names = {name for kind, body in intake.events() if kind == "metricset" for name in body["samples"]}
    assert "python.gc.collections.gen2" in names


def _breakdown_transaction(client):
    client.begin_transaction("request")
    for _ in range(2):
        with oxapm.capture_span("SELECT", span_type="db", span_subtype="sqlite", leaf=True):
            pass
    with oxapm.capture_span("render", span_type="template"):
        with oxapm.capture_span("SELECT", span_type="db", span_subtype="sqlite", leaf=True):
            pass
    client.end_transaction("GET /items", "HTTP 2xx")


def test_breakdown_self_times_by_span_type_at_each_collection():
    client = memory_client(metrics_interval="1h")
    _breakdown_transaction(client)
    _breakdown_transaction(client)
    breakdown = {}
    for metricset in exported(client).of("metricset"):
        if "span" in metricset:
            assert metricset["transaction"] == {"name": "GET /items", "type": "request"}
            key = (metricset["span"]["type"], metricset["span"].get("subtype") or None)
            breakdown[key] = {name: sample["value"] for name, sample in metricset["samples"].items()}
    assert sorted(breakdown) == [("app", None), ("db", "sqlite"), ("template", None)]
    assert [breakdown[key]["span.self_time.count"] for key in sorted(breakdown)] == [2, 6, 2]
    assert all(values["span.self_time.sum.us"] >= 0 for values in breakdown.values())
    # Counts are per interval: the next collection starts from nothing.
    _breakdown_transaction(client)
    again = [m for m in exported(client).of("metricset") if m.get("span", {}).get("type") == "db"]
    assert [m["samples"]["span.self_time.count"]["value"] for m in again] == [3]
    client.close()


def test_no_breakdown_when_breakdown_metrics_is_off():
    client = memory_client(metrics_interval="1h", breakdown_metrics=False)
    _breakdown_transaction(client)
    assert not [m for m in exported(client).of("metricset") if "span" in m]
    client.close()


def test_breakdown_over_otlp(otlp_http, monkeypatch):
    use_otlp(monkeypatch, otlp_http.url)
    client = oxapm.Client(service_name="otlp-breakdown", metrics_interval="1h")
    _breakdown_transaction(client)
    client.close()
    counts = otlp_metrics(metrics_requests(otlp_http))["span.self_time.count"]
    points = {}
    for metric in counts:
        for point in metric.sum.data_points:
            attributes = {kv.key: kv.value.string_value for kv in point.attributes}
            points[(attributes["span.type"], attributes.get("span.subtype", ""))] = point.as_int or point.as_double
            assert attributes["transaction.name"] == "GET /items"
    assert points == {("app", ""): 1, ("db", "sqlite"): 3, ("template", ""): 1}
