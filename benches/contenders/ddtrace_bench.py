"""ddtrace: Datadog's tracer, pointed at the sink as if it were the Datadog agent."""

import os

from _workload import main


def setup(sink_url):
    # ddtrace reads its configuration from the environment at import time.
    os.environ["DD_TRACE_AGENT_URL"] = sink_url
    os.environ.setdefault("DD_SERVICE", "bench")
    # Side channels that are not tracing and that the sink does not implement:
    # telemetry heartbeats and remote-config polling would only add 404 noise.
    os.environ.setdefault("DD_INSTRUMENTATION_TELEMETRY_ENABLED", "false")
    os.environ.setdefault("DD_REMOTE_CONFIGURATION_ENABLED", "false")
    # DD_TRACE_API_VERSION is left at ddtrace's default (v0.5); the sink decodes v0.4 and v0.5.
    from ddtrace.trace import tracer

    trace = tracer.trace

    def transaction(txn_name, span_names):
        with trace(txn_name):
            for name in span_names:
                with trace(name):
                    pass

    def close():
        tracer.flush()
        tracer.shutdown()

    return transaction, close


if __name__ == "__main__":
    main("ddtrace", setup, dist="ddtrace")
