"""Shared by oxapm and elastic-apm: same public API, so literally the same code.

Only the module differs (``import oxapm as elasticapm`` is the promise).
"""

import importlib

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


def make_setup(module_name):
    def setup(sink_url):
        apm = importlib.import_module(module_name)
        client = apm.Client(server_url=sink_url, **CONFIG)
        capture_span = apm.capture_span

        def transaction(txn_name, span_names):
            client.begin_transaction("bench")
            for name in span_names:
                with capture_span(name, span_type="custom"):
                    pass
            client.end_transaction(txn_name, "success")

        return transaction, client.close  # close() flushes the queue and joins the sender

    return setup
