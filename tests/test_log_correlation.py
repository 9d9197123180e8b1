"""Trace ids on every ``logging`` record (the record factory), the Elastic ``Formatter`` and the
ECS JSON formatter, with the real stdlib ``logging``; logging configured before oxapm and after."""

import io
import json
import logging
import subprocess
import sys
import textwrap

import pytest

import oxapm
from oxapm import log_correlation
from oxapm.handlers.ecs import EcsFormatter
from oxapm.handlers.logging import Formatter
from oxapm.otel.trace import TracerProvider

FIELDS = "%(otelTraceID)s %(otelSpanID)s %(otelServiceName)s %(otelTraceSampled)s %(elasticapm_transaction_id)s %(elasticapm_span_id)s"


@pytest.fixture
def factory_restored():
    """Each test starts without oxapm's factory and leaves the one it found."""
    log_correlation.uninstall()
    original = logging.getLogRecordFactory()
    yield original
    log_correlation.uninstall()
    logging.setLogRecordFactory(original)


@pytest.fixture
def captured(factory_restored):
    """A logger whose lines (formatted with the correlation fields) land in a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(FIELDS + " %(message)s"))
    logger = logging.getLogger("shop.correlated")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger, stream
    logger.removeHandler(handler)
    logger.propagate = True


def lines(stream):
    return stream.getvalue().splitlines()


def test_a_formatter_made_before_the_client_gets_the_ids_of_either_apis_spans(captured):
    logger, stream = captured  # the formatter exists before the client
    client = oxapm.Client(service_name="shop", traces_exporter="memory")
    logger.info("outside")
    transaction = client.begin_transaction("request")
    logger.info("in the transaction")
    with oxapm.capture_span("elastic") as span:
        logger.info("in an elastic span")
    with TracerProvider(client).get_tracer("t").start_as_current_span("otel") as otel_span:
        logger.info("in an otel span")
    client.end_transaction("GET /")
    client.close()

    outside, in_transaction, in_span, in_otel = lines(stream)
    assert outside == "0 0 shop False None None outside"
    t = transaction
    assert in_transaction == "%s %s shop True %s None in the transaction" % (t.trace_id, t.id, t.id)
    assert in_span == "%s %s shop True %s %s in an elastic span" % (t.trace_id, span.id, t.id, span.id)
    otel_id = "%016x" % otel_span.get_span_context().span_id
    assert in_otel == "%s %s shop True %s %s in an otel span" % (t.trace_id, otel_id, t.id, otel_id)


def test_records_carry_the_elastic_fields_and_labels(factory_restored):
    client = oxapm.Client(service_name="shop", traces_exporter="memory")
    transaction = client.begin_transaction("request")
    record = logging.getLogger("x").makeRecord("x", logging.INFO, __file__, 1, "m", (), None)
    client.end_transaction("t")
    client.close()
    assert (record.elasticapm_trace_id, record.elasticapm_transaction_id, record.elasticapm_span_id) == (transaction.trace_id, transaction.id, None)
    assert record.elasticapm_service_name == record.elasticapm_event_dataset == "shop"
    assert record.elasticapm_labels == {
        "transaction.id": transaction.id,
        "trace.id": transaction.trace_id,
        "span.id": None,
        "service.name": "shop",
        "event.dataset": "shop",
    }


def test_installed_once_and_uninstalled_back_to_the_previous_factory(factory_restored):
    original = factory_restored
    oxapm.Client(traces_exporter="memory").close()
    oxapm.Client(traces_exporter="memory").close()
    installed = logging.getLogRecordFactory()
    assert isinstance(installed, log_correlation.CorrelatingRecordFactory) and installed.wrapped is original
    log_correlation.uninstall()
    assert logging.getLogRecordFactory() is original


def test_wrapped_by_another_factory_it_becomes_a_pass_through(factory_restored):
    oxapm.Client(traces_exporter="memory").close()
    ours = logging.getLogRecordFactory()
    logging.setLogRecordFactory(lambda *args, **kwargs: ours(*args, **kwargs))
    log_correlation.uninstall()
    record = logging.getLogger("x").makeRecord("x", logging.INFO, __file__, 1, "m", (), None)
    assert not hasattr(record, "otelTraceID")


def test_off_switches(factory_restored, monkeypatch):
    original = factory_restored
    oxapm.Client(traces_exporter="memory", disable_log_record_factory=True).close()
    assert logging.getLogRecordFactory() is original
    monkeypatch.setenv("OTEL_PYTHON_LOG_CORRELATION", "false")
    oxapm.Client(traces_exporter="memory").close()
    assert logging.getLogRecordFactory() is original


def test_the_elastic_formatter_appends_the_ids_even_without_the_factory(factory_restored):
    client = oxapm.Client(traces_exporter="memory", disable_log_record_factory=True)
    transaction = client.begin_transaction("request")
    with oxapm.capture_span("s") as span:
        # Formatted where it is made, as a StreamHandler does: the ids are the current ones.
        line = Formatter().format(logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None))
    client.end_transaction("t")
    outside = Formatter("{levelname} {message}", style="{").format(logging.LogRecord("x", logging.INFO, __file__, 1, "hello", (), None))
    client.close()
    assert line == "hello | elasticapm transaction.id=%s trace.id=%s span.id=%s" % (transaction.id, transaction.trace_id, span.id)
    assert outside == "INFO hello | elasticapm transaction.id=None trace.id=None span.id=None"


def test_the_ecs_formatter_writes_one_json_document_per_record(factory_restored):
    client = oxapm.Client(service_name="shop", environment="prod", traces_exporter="memory")
    transaction = client.begin_transaction("request")
    try:
        raise KeyError("sku")
    except KeyError:
        record = logging.getLogger("shop.ecs").makeRecord(
            "shop.ecs", logging.ERROR, __file__, 42, "no %s", ("stock",), sys.exc_info(), func="reserve", extra={"order.id": 7, "tenant": "acme"}
        )
    client.end_transaction("t")
    client.close()
    document = json.loads(EcsFormatter().format(record))
    assert document["@timestamp"].endswith("Z") and document["log.level"] == "error" and document["message"] == "no stock"
    assert document["ecs.version"] == "1.6.0"
    assert document["log"] == {"logger": "shop.ecs", "origin": {"file": {"name": "test_log_correlation.py", "line": 42}, "function": "reserve"}}
    assert document["process"]["pid"] == record.process and document["process"]["thread"]["name"] == record.threadName
    assert document["trace"] == {"id": transaction.trace_id} and document["transaction"] == {"id": transaction.id} and "span" not in document
    assert document["service"] == {"name": "shop"} and document["event"] == {"dataset": "shop"}
    assert document["error"]["type"] == "KeyError" and "raise KeyError" in document["error"]["stack_trace"]
    assert document["order"] == {"id": 7} and document["tenant"] == "acme"
    assert not any(key.startswith(("otel", "elasticapm")) for key in document)


def test_log_ecs_reformatting_override_puts_the_ecs_formatter_on_the_root_handlers(factory_restored):
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        oxapm.Client(traces_exporter="memory", log_ecs_reformatting="override").close()
        assert isinstance(handler.formatter, EcsFormatter)
    finally:
        root.removeHandler(handler)


def run(code, **env):
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("ELASTIC_APM_", "OTEL_"))}
    environment.update(ELASTIC_APM_TRACES_EXPORTER="memory", ELASTIC_APM_METRICS_INTERVAL="0", ELASTIC_APM_CENTRAL_CONFIG="false", **env)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines(), done.stderr.splitlines()


def test_a_fresh_process_where_logging_is_imported_after_the_client():
    out, _ = run(
        """
        import sys
        import oxapm
        client = oxapm.Client(service_name="late")
        assert "logging" not in sys.modules, "the client does not import logging"
        import logging
        logging.basicConfig(format="%(otelServiceName)s %(elasticapm_trace_id)s %(message)s", stream=sys.stdout, level=logging.INFO)
        transaction = client.begin_transaction("job")
        logging.getLogger("app").info("hi")
        print(transaction.trace_id)
        """
    )
    line, trace_id = out
    assert line == "late %s hi" % trace_id


def test_otel_python_log_correlation_configures_the_root_logger_as_upstream_does():
    _, err = run(
        """
        import logging
        import oxapm
        client = oxapm.Client()
        transaction = client.begin_transaction("job")
        logging.getLogger("app").warning("configured")
        logging.getLogger("app").info("below the level")
        """,
        OTEL_PYTHON_LOG_CORRELATION="true",
        OTEL_PYTHON_LOG_LEVEL="warning",
        OTEL_SERVICE_NAME="upstream",
    )
    (line,) = err
    assert "WARNING [app] [<string>:6] [trace_id=" in line
    assert "resource.service.name=upstream trace_sampled=True] - configured" in line
