"""``oxapm.handlers.structlog.structlog_processor`` in a real structlog pipeline."""

import io
import json
import subprocess
import sys

import structlog

import oxapm
from oxapm.handlers.structlog import structlog_processor


def pipeline():
    """A structlog logger rendering JSON lines into a buffer, with the processor first."""
    stream = io.StringIO()
    logger = structlog.wrap_logger(structlog.PrintLogger(stream), processors=[structlog_processor, structlog.processors.JSONRenderer(sort_keys=True)])
    return logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]


def test_events_get_the_ids_of_the_current_transaction_and_span_and_the_service_fields():
    client = oxapm.Client(service_name="shop", environment="prod", traces_exporter="memory")
    logger, events = pipeline()
    logger.info("outside")
    transaction = client.begin_transaction("request")
    logger.info("in the transaction", order=7)
    with oxapm.capture_span("query") as span:
        logger.warning("in a span")
    client.end_transaction("GET /")
    client.close()

    outside, in_transaction, in_span = events()
    service = {"service.name": "shop", "service.environment": "prod", "event.dataset": "shop"}
    assert outside == {"event": "outside", **service}
    assert in_transaction == {"event": "in the transaction", "order": 7, "trace.id": transaction.trace_id, "transaction.id": transaction.id, **service}
    assert in_span == {"event": "in a span", "trace.id": transaction.trace_id, "transaction.id": transaction.id, "span.id": span.id, **service}


def test_without_a_client_the_event_is_left_as_it_is(monkeypatch):
    monkeypatch.setattr("oxapm.base._client", None)
    logger, events = pipeline()
    logger.info("plain", k=1)
    assert events() == [{"event": "plain", "k": 1}]


def test_importable_without_structlog():
    code = "import sys; sys.modules['structlog'] = None; from oxapm.handlers.structlog import structlog_processor; print(structlog_processor(None, 'info', {}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "{}", done.stderr
