"""The OpenTelemetry metrics SDK on the engine, through the real opentelemetry-api: every
instrument kind, temporality, exponential histograms, the cardinality limit, views, OTLP export
(decoded with opentelemetry-proto), intake metricsets (schema-validated), fork safety and the
warnings for callbacks that raise and for invalid names. Collections are made by force_flush."""

import logging
import os
import random
import subprocess
import sys

import pytest
from conftest import Exported, decoded, use_otlp
from opentelemetry import metrics as metrics_api
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

import oxapm
from oxapm.otel.metrics import (
    DropAggregation,
    ExplicitBucketHistogramAggregation,
    ExponentialBucketHistogramAggregation,
    MeterProvider,
    View,
)

# Metrics stay on (conftest turns them off elsewhere); the Elastic metricsets are left out and the
# interval is long: collections happen at force_flush.
pytestmark = pytest.mark.metrics
QUIET = {"metrics_interval": "10m", "disable_metrics": "system.*,python.*"}


@pytest.fixture
def memory_client():
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", **QUIET)
    yield client
    client.close()


def intake_samples(client):
    """Per sample name, the (tags, sample) of every metricset exported so far (each
    schema-validated), without collecting again."""
    out = {}
    for metricset in Exported(client._engine.take_memory()).of("metricset"):
        for name, sample in metricset["samples"].items():
            out.setdefault(name, []).append((metricset.get("tags", {}), sample))
    return out


def otlp_metrics(recorder):
    """Per (scope name, metric name), the metrics of every OTLP metrics request."""
    requests = [r for r in recorder.requests if r["path"] == "/v1/metrics"]
    out = {}
    for message in decoded(requests, ExportMetricsServiceRequest):
        for resource_metrics in message.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    out.setdefault((scope_metrics.scope.name, metric.name), []).append((scope_metrics, metric))
    return out


def point_attributes(point):
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in point.attributes}


def test_every_instrument_kind_as_intake_metricsets(memory_client):
    provider = MeterProvider(memory_client)
    meter = provider.get_meter("shop", "1.0")
    counter = meter.create_counter("orders", unit="1", description="orders placed")
    assert isinstance(counter, metrics_api.Counter) and counter.name == "orders"
    counter.add(1, {"route": "/x", "code": 200})
    counter.add(2, {"code": 200, "route": "/x"})
    meter.create_up_down_counter("queue.depth").add(-3)
    meter.create_histogram("latency", unit="ms").record(7.0, {"route": "/x", "code": 200})
    meter.create_gauge("temperature").set(21.5)

    def cpu_time():  # a generator as the callback: sent the options, it yields the observations
        options = yield
        while True:
            options = yield [metrics_api.Observation(12.5 if isinstance(options, metrics_api.CallbackOptions) else -1)]

    meter.create_observable_counter("cpu.time", callbacks=[cpu_time()])
    meter.create_observable_up_down_counter("connections", callbacks=[lambda options: [metrics_api.Observation(4)]])

    def by_core(options):
        yield metrics_api.Observation(0.25, {"core": "0"})
        yield metrics_api.Observation(0.75, {"core": "1"})

    meter.create_observable_gauge("load", callbacks=[by_core])
    assert provider.force_flush()
    samples = intake_samples(memory_client)
    assert samples["orders"] == [({"route": "/x", "code": 200}, {"value": 3, "type": "counter"})]
    # Points of one attribute set share a metricset.
    assert samples["latency"] == [({"route": "/x", "code": 200}, {"type": "histogram", "values": [7.5], "counts": [1]})]
    # Sums that may go down are gauges in Elastic.
    assert samples["queue.depth"] == [({}, {"value": -3, "type": "gauge"})]
    assert samples["temperature"] == [({}, {"value": 21.5, "type": "gauge"})]
    assert samples["cpu.time"] == [({}, {"value": 12.5, "type": "counter"})]
    assert samples["connections"] == [({}, {"value": 4, "type": "gauge"})]
    assert sorted(samples["load"], key=lambda s: s[0]["core"]) == [({"core": "0"}, {"value": 0.25, "type": "gauge"}), ({"core": "1"}, {"value": 0.75, "type": "gauge"})]


def test_the_same_instrument_twice_is_the_same_one(memory_client):
    meter = MeterProvider(memory_client).get_meter("shop")
    assert meter.create_counter("orders") is meter.create_counter("orders")
    assert MeterProvider(memory_client).get_meter("shop") is not meter  # another provider


@pytest.mark.parametrize("preference", ["cumulative", "delta"])
def test_temporality_over_two_collections(monkeypatch, otlp_http, preference):
    use_otlp(monkeypatch, otlp_http.url, OTEL_METRICS_EXPORTER="otlp", OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=preference)
    client = oxapm.Client(service_name="test-service", **QUIET)
    provider = MeterProvider(client)
    meter = provider.get_meter("shop")
    counter, up_down = meter.create_counter("orders"), meter.create_up_down_counter("stock")
    counter.add(2)
    up_down.add(5)
    assert provider.force_flush()
    counter.add(3)
    up_down.add(-1)
    assert provider.force_flush()
    metrics = otlp_metrics(otlp_http)  # before close() collects once more
    client.close()
    orders = [m.sum for _, m in metrics[("shop", "orders")]]
    stock = [m.sum for _, m in metrics[("shop", "stock")]]
    assert [o.is_monotonic for o in orders] == [True, True] and [s.is_monotonic for s in stock] == [False, False]
    # Up-down counters stay cumulative when delta is preferred (the spec's table).
    assert [s.data_points[0].as_int for s in stock] == [5, 4]
    assert all(s.aggregation_temporality == 2 for s in stock)
    first, second = (o.data_points[0] for o in orders)
    if preference == "delta":
        assert [o.aggregation_temporality for o in orders] == [1, 1]
        assert (first.as_int, second.as_int) == (2, 3)
        assert second.start_time_unix_nano == first.time_unix_nano
    else:
        assert [o.aggregation_temporality for o in orders] == [2, 2]
        assert (first.as_int, second.as_int) == (2, 5)
        assert second.start_time_unix_nano == first.start_time_unix_nano < first.time_unix_nano


def test_each_meter_is_its_own_scope_and_histograms_over_otlp(monkeypatch, otlp_http):
    use_otlp(monkeypatch, otlp_http.url, OTEL_METRICS_EXPORTER="otlp")
    client = oxapm.Client(service_name="test-service", **QUIET)
    provider = MeterProvider(client)
    shop = provider.get_meter("shop", "1.2", schema_url="https://opentelemetry.io/schemas/1.21.0")
    histogram = shop.create_histogram("latency", unit="ms", explicit_bucket_boundaries_advisory=[10, 100])
    for value in (5, 50, 500, 50):
        histogram.record(value, {"route": "/x"})
    provider.get_meter("billing").create_counter("invoices").add(1.5)
    assert provider.force_flush()
    metrics = otlp_metrics(otlp_http)  # before close() collects once more
    client.close()
    [(scope_metrics, latency)] = metrics[("shop", "latency")]
    assert (scope_metrics.scope.version, scope_metrics.schema_url) == ("1.2", "https://opentelemetry.io/schemas/1.21.0")
    assert latency.unit == "ms"
    point = latency.histogram.data_points[0]
    assert list(point.explicit_bounds) == [10, 100] and list(point.bucket_counts) == [1, 2, 1]
    assert (point.count, point.sum, point.min, point.max) == (4, 605, 5, 500)
    assert point_attributes(point) == {"route": "/x"}
    [(_, invoices)] = metrics[("billing", "invoices")]
    assert invoices.sum.data_points[0].as_double == 1.5


def test_exponential_histograms_by_default_when_configured(monkeypatch, otlp_http):
    use_otlp(
        monkeypatch,
        otlp_http.url,
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_EXPORTER_OTLP_METRICS_DEFAULT_HISTOGRAM_AGGREGATION="base2_exponential_bucket_histogram",
    )
    client = oxapm.Client(service_name="test-service", **QUIET)
    provider = MeterProvider(client)
    histogram = provider.get_meter("shop").create_histogram("size")
    for value in (1, 2, 4, 0):
        histogram.record(value)
    assert provider.force_flush()
    [(_, size)] = otlp_metrics(otlp_http)[("shop", "size")]
    client.close()
    point = size.exponential_histogram.data_points[0]
    assert (point.count, point.sum, point.zero_count, point.min, point.max) == (4, 7, 1, 0, 4)
    # 1, 2 and 4 are exact powers of two: 2^k closes bucket (k << scale) - 1. Spanning them takes
    # 2^(scale+1) + 1 buckets, and 6 is the highest scale where that fits in 160.
    assert point.scale == 6
    indexes = [point.positive.offset + i for i, count in enumerate(point.positive.bucket_counts) if count]
    assert indexes == [(k << 6) - 1 for k in (0, 1, 2)]


def test_a_view_chooses_the_exponential_histogram_over_intake(memory_client):
    provider = MeterProvider(memory_client, views=[View(instrument_name="size", aggregation=ExponentialBucketHistogramAggregation(max_size=4))])
    histogram = provider.get_meter("shop").create_histogram("size")
    for value in (1.5, 3, 3.5):
        histogram.record(value)
    assert provider.force_flush()
    [(_, sample)] = intake_samples(memory_client)["size"]
    assert sample["type"] == "histogram" and sum(sample["counts"]) == 3
    assert sample["values"] == sorted(sample["values"])


def test_series_past_the_cardinality_limit_go_to_the_overflow_series(memory_client):
    provider = MeterProvider(memory_client, cardinality_limit=3)
    counter = provider.get_meter("shop").create_counter("orders")
    for user in ("a", "b", "c", "d", "a"):
        counter.add(1, {"user": user})
    assert provider.force_flush()
    series = {tuple(sorted(tags.items())): sample["value"] for tags, sample in intake_samples(memory_client)["orders"]}
    # The overflow attribute's key loses its dots in intake tags.
    assert series == {(("user", "a"),): 2, (("user", "b"),): 1, (("otel_metric_overflow", True),): 2}


def test_views_rename_rebucket_keep_attribute_keys_and_drop(memory_client):
    views = [
        View(instrument_name="http.*", name="requests", attribute_keys=["route"]),
        View(instrument_type=metrics_api.Histogram, aggregation=ExplicitBucketHistogramAggregation([1, 10])),
        View(instrument_name="noisy", aggregation=DropAggregation()),
    ]
    provider = MeterProvider(memory_client, views=views)
    meter = provider.get_meter("shop")
    counter = meter.create_counter("http.calls")
    counter.add(1, {"route": "/x", "user": "u1"})
    counter.add(1, {"route": "/x", "user": "u2"})
    meter.create_histogram("latency").record(5)
    meter.create_counter("noisy").add(1)
    assert provider.force_flush()
    samples = intake_samples(memory_client)
    assert samples["requests"] == [({"route": "/x"}, {"value": 2, "type": "counter"})]
    assert samples["latency"] == [({}, {"type": "histogram", "values": [5.5], "counts": [1]})]
    assert "noisy" not in samples and "http.calls" not in samples
    with pytest.raises(ValueError):
        View(name="everything")


def test_a_raising_callback_is_logged_once_and_the_others_still_run(memory_client, caplog):
    provider = MeterProvider(memory_client)
    meter = provider.get_meter("shop")

    def broken(options):
        raise RuntimeError("sensor gone")

    meter.create_observable_gauge("temperature", callbacks=[broken, lambda options: [metrics_api.Observation(20)]])
    meter.create_observable_counter("ticks", callbacks=[lambda options: [metrics_api.Observation(1)]])
    with caplog.at_level(logging.WARNING, logger="oxapm"):
        assert provider.force_flush()
        assert provider.force_flush()
    samples = intake_samples(memory_client)
    assert [sample["value"] for _, sample in samples["temperature"]] == [20, 20]
    assert len(samples["ticks"]) == 2
    failures = [r for r in caplog.records if "failed" in r.getMessage() and "temperature" in r.getMessage()]
    assert len(failures) == 1, [r.getMessage() for r in caplog.records]


def test_bad_names_and_units_warn_and_record_nothing(memory_client, caplog):
    provider = MeterProvider(memory_client)
    meter = provider.get_meter("shop")
    with caplog.at_level(logging.WARNING, logger="oxapm"):
        bad_name = meter.create_counter("2fast")
        bad_unit = meter.create_histogram("latency", unit="µs")
        bad_name.add(1)
        bad_unit.record(1)
        meter.create_counter("orders").add("many")  # not a number: ignored, never raised
        meter.create_counter("refunds").add(-1)  # counters only go up
    assert provider.force_flush()
    assert not intake_samples(memory_client)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "invalid instrument name \"2fast\"" in messages and "invalid unit" in messages
    assert "not a number" in messages and "negative value" in messages


def test_measurements_after_shutdown_are_not_reported(memory_client):
    provider = MeterProvider(memory_client)
    counter = provider.get_meter("shop").create_counter("orders")
    counter.add(1)
    provider.shutdown()
    assert [s["value"] for _, s in intake_samples(memory_client)["orders"]] == [1]
    counter.add(1)
    assert memory_client.flush()
    assert "orders" not in intake_samples(memory_client)
    assert isinstance(provider.get_meter("late"), metrics_api.NoOpMeter)


@pytest.mark.parametrize("options", [{"enabled": False}, {"metrics_interval": "0ms"}])
def test_a_disabled_client_or_metrics_off_give_no_op_meters(options):
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", **options)
    meter = MeterProvider(client).get_meter("shop")
    assert isinstance(meter, metrics_api.NoOpMeter)
    meter.create_counter("orders").add(1)
    client.close()


def _counts_by_pid(intake):
    """Per reporting pid, the (tags, value) of each `orders` sample it sent."""
    out = {}
    for request in intake.requests:
        pid = request["lines"][0]["metadata"]["process"]["pid"]
        for line in request["lines"][1:]:
            sample = line.get("metricset", {}).get("samples", {}).get("orders")
            if sample:
                out.setdefault(pid, []).append((line["metricset"].get("tags", {}), sample["value"]))
    intake.events()  # validates every line
    return out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_reports_its_own_measurements_once(intake):
    client = oxapm.Client(service_name="forking", server_url=intake.url, api_request_time="60s", **QUIET)
    provider = MeterProvider(client)
    meter = provider.get_meter("shop")
    counter = meter.create_counter("orders")
    meter.create_observable_gauge("pid", callbacks=[lambda options: [metrics_api.Observation(os.getpid())]])
    counter.add(5)
    pid = os.fork()
    if pid == 0:
        try:
            counter.add(1, {"who": "child"})
            client.close()  # collects once more
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    counter.add(2)
    client.close()
    assert _counts_by_pid(intake) == {pid: [({"who": "child"}, 1)], os.getpid(): [({}, 7)]}
    observed = {request["lines"][0]["metadata"]["process"]["pid"]: line["metricset"]["samples"]["pid"]["value"]
                for request in intake.requests for line in request["lines"][1:] if "pid" in line.get("metricset", {}).get("samples", {})}
    assert observed == {pid: pid, os.getpid(): os.getpid()}


def test_install_sets_the_global_meter_provider():
    # The global provider can be set once per process: checked in a fresh interpreter.
    code = (
        "import oxapm, oxapm.otel\n"
        "from opentelemetry import metrics\n"
        "client = oxapm.Client(service_name='s', traces_exporter='memory', metrics_interval='10m', disable_metrics='system.*,python.*')\n"
        "oxapm.otel.install(client)\n"
        "assert type(metrics.get_meter_provider()).__module__ == 'oxapm.otel.metrics'\n"
        "metrics.get_meter('shop').create_counter('orders').add(1)\n"
        "assert client.flush()\n"
        "print(any('orders' in line for line in client._engine.take_memory()))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELASTIC_APM_", "OTEL_"))}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


@pytest.mark.parametrize("max_size", [4, 160])
def test_exponential_buckets_are_the_opentelemetry_sdks(monkeypatch, otlp_http, max_size):
    """The SDK's own histogram, fed the same values, is the reference for scale and buckets."""
    from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation as SdkExponential
    from opentelemetry.sdk.metrics.view import View as SdkView

    generator = random.Random(7)
    values = [generator.choice([generator.uniform(0, 1e-3), generator.uniform(1, 1000), generator.expovariate(0.01), 0.0]) for _ in range(300)]
    reader = InMemoryMetricReader()
    sdk = SdkMeterProvider(metric_readers=[reader], views=[SdkView(instrument_name="size", aggregation=SdkExponential(max_size=max_size))])
    use_otlp(monkeypatch, otlp_http.url, OTEL_METRICS_EXPORTER="otlp")
    client = oxapm.Client(service_name="test-service", **QUIET)
    provider = MeterProvider(client, views=[View(instrument_name="size", aggregation=ExponentialBucketHistogramAggregation(max_size=max_size))])
    for histogram in (sdk.get_meter("shop").create_histogram("size"), provider.get_meter("shop").create_histogram("size")):
        for value in values:
            histogram.record(value)
    expected = reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    assert provider.force_flush()
    [(_, size)] = otlp_metrics(otlp_http)[("shop", "size")]
    client.close()
    sdk.shutdown()
    point = size.exponential_histogram.data_points[0]
    assert (point.scale, point.zero_count, point.count) == (expected.scale, expected.zero_count, expected.count)
    assert point.positive.offset == expected.positive.offset
    # The SDK's array may end in empty buckets (its backing store); the counts are the same.
    expected_counts = list(expected.positive.bucket_counts)
    while expected_counts and expected_counts[-1] == 0:
        expected_counts.pop()
    assert list(point.positive.bucket_counts) == expected_counts
    assert point.sum == pytest.approx(expected.sum)
