"""A WSGI app for tests/test_fork.py: its client, and an OpenTelemetry counter of the requests, are
created at import, so with gunicorn --preload they exist in the master before the workers are
forked."""

import gc
import os

import oxapm
from oxapm.otel.metrics import MeterProvider

client = oxapm.Client(service_name="gunicorn-app", server_url=os.environ["OXAPM_TEST_INTAKE_URL"], api_request_time="100ms")
# Only the counter is kept, as programs do: its provider must outlive a garbage collection.
served = MeterProvider(client).get_meter("gunicorn-app").create_counter("served")
gc.collect()


def app(environ, start_response):
    client.begin_transaction("request")
    with oxapm.capture_span("work"):
        pass
    client.end_transaction("GET /", "HTTP 2xx")
    served.add(1)
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
