"""oxapm through the OpenTelemetry API (oxapm.otel.TracerProvider), exporting OTLP/HTTP protobuf:
the same workload and export as the opentelemetry-sdk contender, on the oxapm engine."""

import os

from _elastic_style import CONFIG
from _workload import main


def setup(sink_url):
    import oxapm
    from oxapm.otel import TracerProvider

    # From the environment, as a user would; run.py scrubs OTEL_* from ours.
    os.environ["OTEL_TRACES_EXPORTER"] = "otlp"
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
    client = oxapm.Client(**CONFIG)
    # A local tracer from our provider rather than the global one, as the SDK contender does.
    start = TracerProvider(client).get_tracer("bench").start_as_current_span

    def transaction(txn_name, span_names):
        with start(txn_name):
            for name in span_names:
                with start(name):
                    pass

    return transaction, client.close, client.stats


if __name__ == "__main__":
    main("oxapm-otel-api", setup, dist="oxapm")
