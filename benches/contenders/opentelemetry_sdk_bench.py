"""OpenTelemetry SDK: BatchSpanProcessor + OTLP/HTTP protobuf exporter, defaults otherwise."""

from _workload import main


def setup(sink_url):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    # Default BatchSpanProcessor settings (queue 2048, batch 512, 5 s delay):
    # what a user gets; if it drops spans under load, the delivered column shows it.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=sink_url.rstrip("/") + "/v1/traces")))
    # A local tracer from our provider rather than the global one: no global state needed.
    start = provider.get_tracer("bench").start_as_current_span

    def transaction(txn_name, span_names):
        with start(txn_name):
            for name in span_names:
                with start(name):
                    pass

    return transaction, provider.shutdown  # shutdown() force-flushes the processor

if __name__ == "__main__":
    main("opentelemetry-sdk", setup, dist="opentelemetry-sdk")
