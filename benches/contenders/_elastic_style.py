"""Shared by oxapm and elastic-apm: same public API, so literally the same code.

Only the module differs (``import oxapm as elasticapm`` is the promise).
"""

import importlib
import os

# Identical configuration for both agents:
# - metrics_interval="0ms": no metrics thread/events; we count traces only.
# - breakdown_metrics=False: with metrics off, elastic-apm would still compute
#   breakdown timers on every span end and never ship them; turning them off
#   removes work that produces nothing (makes elastic-apm faster, not slower).
# - central_config=False / cloud_provider="none": no config polling and no
#   cloud metadata probes (which would time out against 169.254.169.254).
# Everything else is left at the agent's defaults (queue sizes, api_request_time, ...).
CONFIG = dict(
    service_name="bench",
    metrics_interval="0ms",
    breakdown_metrics=False,
    central_config=False,
    cloud_provider="none",
)


def make_setup(module_name, otlp=False, exit_spans=False):
    """``otlp=True``: export over OTLP/HTTP protobuf instead of intake (oxapm only).
    ``exit_spans=True``: every span is the same database call (a leaf span named after the first
    name), so span compression turns each transaction's spans into one composite."""

    def setup(sink_url):
        apm = importlib.import_module(module_name)
        if otlp:
            # From the environment, as a user would; run.py scrubs OTEL_* from ours.
            # oxapm appends /v1/traces, and without server_url the intake exporter is off.
            os.environ["OTEL_TRACES_EXPORTER"] = "otlp"
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink_url
            client = apm.Client(**CONFIG)
        else:
            client = apm.Client(server_url=sink_url, **CONFIG)
        capture_span = apm.capture_span

        def transaction(txn_name, span_names):
            client.begin_transaction("bench")
            for name in span_names:
                with capture_span(name, span_type="custom"):
                    pass
            client.end_transaction(txn_name, "success")

        def calls(txn_name, span_names):
            client.begin_transaction("bench")
            for _ in span_names:
                with capture_span(span_names[0], span_type="db", span_subtype="sqlite", span_action="query", leaf=True):
                    pass
            client.end_transaction(txn_name, "success")

        # close() flushes the queue and joins the sender; elastic-apm has no stats().
        return calls if exit_spans else transaction, client.close, getattr(client, "stats", None)

    return setup
