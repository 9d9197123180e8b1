"""``LoggingHandler`` and ``setup_logging``: Python log records become APM errors with a ``log``."""

import logging

import pytest
from conftest import exported

import oxapm
from oxapm.handlers.logging import EXCLUDE_LOGGER_DEFAULTS, LoggingHandler


@pytest.fixture
def restore_logging():
    """setup_logging changes the root logger and the excluded loggers: undo all of it."""
    root = logging.getLogger()
    saved_root = list(root.handlers)
    saved_level = root.level
    names = set(EXCLUDE_LOGGER_DEFAULTS) | {"app", "excluded.custom"}
    saved = {name: (logging.getLogger(name).propagate, list(logging.getLogger(name).handlers)) for name in names}
    yield
    root.handlers[:] = saved_root
    root.setLevel(saved_level)
    for name, (propagate, handlers) in saved.items():
        logger = logging.getLogger(name)
        logger.propagate = propagate
        logger.handlers[:] = handlers


@pytest.fixture
def handler(client, restore_logging):
    handler = LoggingHandler(client=client)
    assert oxapm.setup_logging(handler) is True
    return handler


def test_setup_logging_adds_the_handler_to_the_root_logger(handler):
    assert handler in logging.getLogger().handlers


def test_setup_logging_returns_false_the_second_time(client, handler):
    assert oxapm.setup_logging(LoggingHandler(client=client)) is False
    assert sum(isinstance(h, LoggingHandler) for h in logging.getLogger().handlers) == 1


def test_an_error_record_becomes_an_error_event(client, handler):
    logging.getLogger("app").error("failed %s", "x")
    (error,) = exported(client).errors
    log = error["log"]
    assert log["message"] == "failed x"
    assert log["param_message"] == "failed %s"
    assert log["level"] == "error"
    assert log["logger_name"] == "app"
    assert "exception" not in error


@pytest.mark.parametrize(
    "method, level", [("warning", "warning"), ("error", "error"), ("critical", "critical")]
)
def test_levels(client, handler, method, level):
    getattr(logging.getLogger("app"), method)("at %s", level)
    (error,) = exported(client).errors
    assert error["log"]["level"] == level
    assert error["log"]["message"] == "at %s" % level


def test_records_below_the_handler_level_are_not_captured(client, handler):
    handler.setLevel(logging.ERROR)
    logger = logging.getLogger("app")
    logger.setLevel(logging.DEBUG)
    try:
        logger.info("info is not captured")
        logger.warning("nor warnings")
        logger.error("errors are")
    finally:
        logger.setLevel(logging.NOTSET)
    assert [e["log"]["message"] for e in exported(client).errors] == ["errors are"]


def test_logger_exception_includes_the_exception(client, handler):
    try:
        {}["missing"]
    except KeyError:
        logging.getLogger("app").exception("lookup %s failed", "missing")
    (error,) = exported(client).errors
    assert error["log"]["message"] == "lookup missing failed"
    assert error["log"]["param_message"] == "lookup %s failed"
    assert error["log"]["level"] == "error"
    exception = error["exception"]
    assert exception["type"] == "KeyError"
    assert exception["message"] == "KeyError: 'missing'"
    assert exception["stacktrace"][-1]["function"] == "test_logger_exception_includes_the_exception"


def test_a_record_logged_in_an_except_block_without_exc_info_has_no_exception(client, handler):
    try:
        raise ValueError("x")
    except ValueError:
        logging.getLogger("app").error("plain error")
    (error,) = exported(client).errors
    assert "exception" not in error


def test_records_without_args_and_with_dict_args(client, handler):
    logger = logging.getLogger("app")
    logger.error("100% literal")
    logger.error("user %(name)s", {"name": "ann"})
    plain, mapping = exported(client).errors
    assert plain["log"]["message"] == "100% literal"
    assert mapping["log"]["message"] == "user ann"
    assert mapping["log"]["param_message"] == "user %(name)s"


def test_records_in_a_transaction_carry_its_ids(client, handler):
    transaction = client.begin_transaction("request")
    with oxapm.capture_span("work") as span:
        logging.getLogger("app").error("inside")
    client.end_transaction("t")
    (error,) = exported(client).errors
    assert error["trace_id"] == transaction.trace_id
    assert error["transaction_id"] == transaction.id
    assert error["parent_id"] == span.id


def test_record_data_goes_to_custom_context(client, handler):
    logging.getLogger("app").error("with data", extra={"data": {"order": 7}})
    (error,) = exported(client).errors
    assert error["context"]["custom"] == {"order": 7}


def test_the_agents_own_records_are_not_captured(client, handler):
    logging.getLogger("oxapm.config").error("agent trouble")
    logging.getLogger("oxapm").warning("agent trouble")
    logging.getLogger("app").error("application trouble")
    assert [e["log"]["message"] for e in exported(client).errors] == ["application trouble"]


def test_a_handler_without_a_client_uses_the_current_client(client, restore_logging):
    assert oxapm.setup_logging(LoggingHandler()) is True
    logging.getLogger("app").error("found the client")
    (error,) = exported(client).errors
    assert error["log"]["message"] == "found the client"


def test_emit_never_raises(client, handler, capsys):
    class Unprintable:
        def __str__(self):
            raise RuntimeError("no str")

    def record(msg, args):
        return logging.LogRecord("app", logging.ERROR, __file__, 1, msg, args, None)

    # Called directly: other handlers (pytest's) would raise on these records themselves.
    handler.emit(record(Unprintable(), None))
    handler.emit(record("bad args %d", ("not a number",)))
    handler.emit(record("fine %s", ("args",)))
    errors = exported(client).errors
    assert errors[-1]["log"]["message"] == "fine args"
    bad_args = [e for e in errors if e["log"].get("param_message") == "bad args %d"]
    assert all(e["log"]["message"] == "bad args %d" for e in bad_args)


def test_custom_exclude_list(client, restore_logging):
    handler = LoggingHandler(client=client)
    assert oxapm.setup_logging(handler, exclude=("excluded.custom",)) is True
    assert logging.getLogger("excluded.custom").propagate is False
    logging.getLogger("excluded.custom").error("not sent to APM")
    logging.getLogger("app").error("sent")
    assert [e["log"]["message"] for e in exported(client).errors] == ["sent"]


def test_the_error_carries_the_time_of_the_log_record(client):
    handler = LoggingHandler(client=client)
    record = logging.LogRecord("app", logging.ERROR, __file__, 1, "at %s", ("noon",), None)
    record.created = 1_700_000_000.25
    handler.emit(record)
    (error,) = exported(client).errors
    assert error["timestamp"] == 1_700_000_000_250_000
