"""The metrics section's workload: `counter.add(1, {"route": "/x", "code": 200})` and
`histogram.record(...)` through the OpenTelemetry API, on one meter provider per process:

* noop: the API's NoOpMeterProvider (the floor: the API call itself);
* oxapm: oxapm.otel.MeterProvider on a Client that exports nothing (it aggregates);
* sdk: opentelemetry-sdk's MeterProvider with an InMemoryMetricReader (aggregation, no export).

Prints ``BENCH_RESULT {json}`` with the nanoseconds per call of each loop.

    python otel_metrics_bench.py --provider oxapm --calls 200000
"""

import argparse
import json
import sys
import time

RESULT_MARKER = "BENCH_RESULT "
ATTRIBUTES = {"route": "/x", "code": 200}


def provider_named(name):
    if name == "noop":
        from opentelemetry.metrics import NoOpMeterProvider

        return NoOpMeterProvider(), lambda: None
    if name == "oxapm":
        import oxapm
        from oxapm.otel.metrics import MeterProvider

        # Metrics on (an interval of 0 would make the meters no-ops), collected after the loops.
        client = oxapm.Client(service_name="bench", traces_exporter="none", metrics_interval="10m", central_config=False, cloud_provider="none")
        return MeterProvider(client), client.close
    if name == "sdk":
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
        return provider, provider.shutdown
    raise SystemExit("unknown provider %r" % name)


def per_call_ns(method, amount, calls):
    """Nanoseconds per call of ``method(amount, ATTRIBUTES)``, after a warm-up."""
    for _ in range(calls // 10):
        method(amount, ATTRIBUTES)
    started = time.perf_counter()
    for _ in range(calls):
        method(amount, ATTRIBUTES)
    return (time.perf_counter() - started) / calls * 1e9


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--provider", required=True, choices=("noop", "oxapm", "sdk"))
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    from opentelemetry import metrics

    provider, close = provider_named(args.provider)
    metrics.set_meter_provider(provider)
    meter = metrics.get_meter("bench")
    add_ns = per_call_ns(meter.create_counter("requests").add, 1, args.calls)
    record_ns = per_call_ns(meter.create_histogram("duration", unit="ms").record, 12.5, args.calls)
    close()
    print(RESULT_MARKER + json.dumps({"ok": True, "add_ns": add_ns, "record_ns": record_ns, "calls": args.calls}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
