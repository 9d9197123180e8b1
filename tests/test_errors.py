"""Errors: ``capture_exception`` and ``capture_message`` end to end, as exported intake ``error``
events -- ids, exception details and chains, frames, culprit, context, trace ids and timestamps."""

import datetime
import inspect
import json
import sys

import pytest
from conftest import exported

import oxapm


class AppError(Exception):
    pass


def _raise_app_error():
    raise AppError("app went wrong")


def _nested(depth):
    if depth == 0:
        raise ValueError("deep")
    _nested(depth - 1)


def _line_of(func, text):
    """Line number of the first line of ``func`` containing ``text``."""
    lines, start = inspect.getsourcelines(func)
    for offset, line in enumerate(lines):
        if text in line:
            return start + offset
    raise AssertionError(text)


def test_capture_exception_returns_the_exported_error_id(client):
    try:
        int("five")
    except ValueError:
        error_id = client.capture_exception()
    assert isinstance(error_id, str) and len(error_id) == 32
    int(error_id, 16)
    (error,) = exported(client).errors
    assert error["id"] == error_id


def test_each_error_gets_its_own_id(client):
    ids = []
    for _ in range(3):
        try:
            raise KeyError("k")
        except KeyError:
            ids.append(client.capture_exception())
    assert len(set(ids)) == 3
    assert [e["id"] for e in exported(client).errors] == ids


def test_handled_defaults_to_true(client):
    try:
        raise KeyError("k")
    except KeyError:
        client.capture_exception()
    (error,) = exported(client).errors
    assert error["exception"]["handled"] is True


def test_handled_false(client):
    try:
        raise KeyError("k")
    except KeyError:
        client.capture_exception(handled=False)
    (error,) = exported(client).errors
    assert error["exception"]["handled"] is False


def test_exception_type_module_and_message(client):
    try:
        _raise_app_error()
    except AppError:
        client.capture_exception()
    try:
        int("five")
    except ValueError:
        client.capture_exception()
    app, builtin = exported(client).errors
    assert app["exception"]["type"] == "AppError"
    assert app["exception"]["module"] == "test_errors"
    assert app["exception"]["message"] == "AppError: app went wrong"
    assert builtin["exception"]["type"] == "ValueError"
    assert builtin["exception"]["module"] == "builtins"
    assert builtin["exception"]["message"] == "ValueError: invalid literal for int() with base 10: 'five'"


def test_explicit_exc_info_outside_an_except_block(client):
    try:
        _raise_app_error()
    except AppError:
        exc_info = sys.exc_info()
    error_id = client.capture_exception(exc_info=exc_info)
    (error,) = exported(client).errors
    assert error["id"] == error_id
    assert error["exception"]["type"] == "AppError"
    assert error["exception"]["stacktrace"][-1]["function"] == "_raise_app_error"


def test_explicit_cause_is_exported(client):
    try:
        try:
            {}["missing"]
        except KeyError as inner:
            raise AppError("outer") from inner
    except AppError:
        client.capture_exception()
    (error,) = exported(client).errors
    exception = error["exception"]
    assert exception["type"] == "AppError"
    (cause,) = exception["cause"]
    assert cause["type"] == "KeyError" and cause["message"] == "KeyError: 'missing'"
    assert cause["stacktrace"] and cause["stacktrace"][-1]["function"] == "test_explicit_cause_is_exported"
    assert "cause" not in cause


def test_implicit_context_is_exported_as_cause(client):
    try:
        try:
            raise ValueError("first")
        except ValueError:
            raise TypeError("second")
    except TypeError:
        client.capture_exception()
    (error,) = exported(client).errors
    assert error["exception"]["type"] == "TypeError"
    assert [c["type"] for c in error["exception"]["cause"]] == ["ValueError"]


def test_suppressed_context_has_no_cause(client):
    try:
        try:
            raise ValueError("first")
        except ValueError:
            raise TypeError("second") from None
    except TypeError:
        client.capture_exception()
    (error,) = exported(client).errors
    assert "cause" not in error["exception"]


def test_a_chain_of_three(client):
    try:
        try:
            try:
                raise ValueError("a")
            except ValueError as a:
                raise KeyError("b") from a
        except KeyError as b:
            raise AppError("c") from b
    except AppError:
        client.capture_exception()
    (error,) = exported(client).errors
    exception = error["exception"]
    assert exception["type"] == "AppError"
    assert exception["cause"][0]["type"] == "KeyError"
    assert exception["cause"][0]["cause"][0]["type"] == "ValueError"


def test_frames_describe_the_application_code(client):
    try:
        _raise_app_error()
    except AppError:
        client.capture_exception()
    (error,) = exported(client).errors
    frames = error["exception"]["stacktrace"]
    # Traceback order, as the Elastic agent sends it: the raising frame last.
    assert [f["function"] for f in frames] == ["test_frames_describe_the_application_code", "_raise_app_error"]
    inner = frames[-1]
    assert inner["module"] == "test_errors"
    assert inner["filename"].endswith("test_errors.py") and not inner["filename"].startswith("/")
    assert inner["abs_path"] == __file__
    assert inner["lineno"] == _line_of(_raise_app_error, "raise AppError")
    assert inner["library_frame"] is False
    assert frames[0]["lineno"] == _line_of(test_frames_describe_the_application_code, "_raise_app_error()")


def test_stdlib_frames_are_library_frames(client):
    try:
        json.loads("{not json")
    except ValueError:
        client.capture_exception()
    (error,) = exported(client).errors
    frames = error["exception"]["stacktrace"]
    assert frames[0]["module"] == "test_errors" and frames[0]["library_frame"] is False
    stdlib = [f for f in frames if f["module"] and f["module"].startswith("json")]
    assert stdlib and all(f["library_frame"] is True for f in stdlib)
    assert any(f["abs_path"] == json.decoder.__file__ for f in stdlib)


def test_context_lines_for_application_frames(client):
    try:
        _raise_app_error()
    except AppError:
        client.capture_exception()
    (error,) = exported(client).errors
    frame = error["exception"]["stacktrace"][-1]
    with open(__file__) as f:
        source = f.read().splitlines()
    index = frame["lineno"] - 1
    assert frame["context_line"] == source[index] == '    raise AppError("app went wrong")'
    # Five lines of context by default: two before and two after.
    assert frame["pre_context"] == source[index - 2 : index]
    assert frame["post_context"] == source[index + 1 : index + 3]


def test_local_variables_of_application_frames(client):
    def failing(amount):
        total = amount * 2
        raise AppError(total)

    try:
        failing(21)
    except AppError:
        client.capture_exception()
    (error,) = exported(client).errors
    assert error["exception"]["stacktrace"][-1]["vars"] == {"amount": 21, "total": 42}


def test_stack_trace_limit_limits_frames():
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", stack_trace_limit=2)
    try:
        assert client.config.stack_trace_limit == 2
        try:
            _nested(5)
        except ValueError:
            client.capture_exception()
        (error,) = exported(client).errors
        frames = error["exception"]["stacktrace"]
        assert len(frames) == 2
        # The innermost frames are kept: the one that raised is last.
        assert [f["function"] for f in frames] == ["_nested", "_nested"]
        assert frames[-1]["lineno"] == _line_of(_nested, "raise ValueError")
    finally:
        client.close()


def test_stack_trace_limit_zero_sends_no_frames():
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", stack_trace_limit=0)
    try:
        try:
            _nested(2)
        except ValueError:
            client.capture_exception()
        client.capture_message("no stack either")
        exception_error, message_error = exported(client).errors
        assert not exception_error["exception"].get("stacktrace")
        assert not message_error["log"].get("stacktrace")
    finally:
        client.close()


def test_culprit_is_the_innermost_application_frame(client):
    try:
        _raise_app_error()
    except AppError:
        client.capture_exception()
    try:
        json.loads("{not json")
    except ValueError:
        client.capture_exception()
    app, stdlib = exported(client).errors
    assert app["culprit"] == "test_errors._raise_app_error"
    # The json frames are library frames: the culprit is the application frame that called them.
    assert stdlib["culprit"] == "test_errors.test_culprit_is_the_innermost_application_frame"


def test_context_and_custom_arguments(client):
    try:
        raise KeyError("k")
    except KeyError:
        client.capture_exception(
            context={"request": {"method": "POST", "url": {"full": "http://x/y"}}, "service": {"framework": {"name": "f"}}},
            custom={"order": 42, "a.b": "dotted"},
        )
    client.capture_message("with custom", custom={"k": "v"}, context={"user": {"id": "7"}})
    exception_error, message_error = exported(client).errors
    context = exception_error["context"]
    assert context["request"]["method"] == "POST" and context["request"]["url"]["full"] == "http://x/y"
    assert context["service"] == {"framework": {"name": "f"}}
    assert context["custom"] == {"order": 42, "a_b": "dotted"}
    assert message_error["context"]["custom"] == {"k": "v"}
    assert message_error["context"]["user"] == {"id": "7"}


def test_error_inside_a_transaction_carries_its_ids(client):
    transaction = client.begin_transaction("request")
    oxapm.set_transaction_name("GET /orders")
    try:
        raise KeyError("k")
    except KeyError:
        client.capture_exception()
    client.end_transaction()
    events = exported(client)
    (error,) = events.errors
    (txn,) = events.transactions
    assert error["trace_id"] == txn["trace_id"] == transaction.trace_id
    assert error["transaction_id"] == txn["id"]
    assert error["parent_id"] == txn["id"]
    assert error["transaction"] == {"sampled": True, "type": "request", "name": "GET /orders"}


def test_error_inside_a_span_has_the_span_as_parent(client):
    client.begin_transaction("request")
    with oxapm.capture_span("outer"):
        with oxapm.capture_span("work") as span:
            try:
                raise KeyError("k")
            except KeyError:
                client.capture_exception()
            client.capture_message("also here")
    client.end_transaction("t")
    events = exported(client)
    (txn,) = events.transactions
    spans = {s["name"]: s for s in events.spans}
    assert spans["work"]["id"] == span.id
    for error in events.errors:
        assert error["parent_id"] == span.id
        assert error["transaction_id"] == txn["id"] and error["trace_id"] == txn["trace_id"]
    assert len(events.errors) == 2


def test_error_in_a_continued_trace(client):
    parent = oxapm.trace_parent_from_string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    client.begin_transaction("request", trace_parent=parent)
    client.capture_message("continued")
    client.end_transaction("t")
    (error,) = exported(client).errors
    assert error["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert error["parent_id"] != "b7ad6b7169203331"


def test_error_in_an_unsampled_transaction(client):
    parent = oxapm.trace_parent_from_string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
    transaction = client.begin_transaction("request", trace_parent=parent)
    client.capture_message("unsampled")
    client.end_transaction("t")
    (error,) = exported(client).errors
    assert error["transaction"]["sampled"] is False
    assert error["transaction_id"] == transaction.id


def test_error_carries_the_transaction_labels_and_context(client):
    client.begin_transaction("request")
    oxapm.label(tenant="acme", shard=3, **{"a.b": True})
    oxapm.set_custom_context({"cart": 2})
    oxapm.set_user_context(username="ann", email="ann@example.com", user_id=7)
    try:
        raise KeyError("k")
    except KeyError:
        client.capture_exception(custom={"extra": 1})
    client.end_transaction("t")
    (error,) = exported(client).errors
    context = error["context"]
    assert context["tags"] == {"tenant": "acme", "shard": 3, "a_b": True}
    assert context["custom"] == {"cart": 2, "extra": 1}
    assert context["user"] == {"username": "ann", "email": "ann@example.com", "id": "7"}


def test_error_after_the_transaction_context_changes(client):
    # The error takes the context as it is when captured, not when the transaction ends.
    client.begin_transaction("request")
    oxapm.label(phase="one")
    client.capture_message("first")
    oxapm.label(phase="two")
    client.end_transaction("t")
    events = exported(client)
    (error,) = events.errors
    assert error["context"]["tags"] == {"phase": "one"}
    assert events.transactions[0]["context"]["tags"] == {"phase": "two"}


def test_error_outside_a_transaction_has_no_trace_ids(client):
    try:
        raise KeyError("k")
    except KeyError:
        client.capture_exception()
    (error,) = exported(client).errors
    for key in ("trace_id", "transaction_id", "parent_id", "transaction"):
        assert key not in error
    assert "tags" not in error.get("context", {})


def test_error_after_end_transaction_is_outside_it(client):
    client.begin_transaction("request")
    oxapm.label(x=1)
    client.end_transaction("t")
    client.capture_message("after")
    (error,) = exported(client).errors
    assert "trace_id" not in error and "transaction_id" not in error


def test_naive_date_is_utc(client):
    date = datetime.datetime(2020, 1, 2, 3, 4, 5, 678901)
    client.capture_message("dated", date=date)
    try:
        raise KeyError("k")
    except KeyError:
        client.capture_exception(date=date)
    errors = exported(client).errors
    expected = int(datetime.datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc).timestamp()) * 1000000 + 678901
    assert [e["timestamp"] for e in errors] == [expected, expected]


def test_aware_date(client):
    tz = datetime.timezone(datetime.timedelta(hours=2))
    client.capture_message("dated", date=datetime.datetime(2020, 1, 2, 5, 0, 0, tzinfo=tz))
    (error,) = exported(client).errors
    expected = datetime.datetime(2020, 1, 2, 3, 0, 0, tzinfo=datetime.timezone.utc).timestamp()
    assert error["timestamp"] == int(expected) * 1000000


def test_default_timestamp_is_now(client):
    import time

    before = int(time.time() * 1e6)
    client.capture_message("now")
    after = int(time.time() * 1e6)
    (error,) = exported(client).errors
    assert before <= error["timestamp"] <= after


def _log_here(client, **kwargs):
    return client.capture_message("from helper", **kwargs)


def test_capture_message_with_stacktrace_by_default(client):
    error_id = _log_here(client)
    (error,) = exported(client).errors
    assert error["id"] == error_id
    log = error["log"]
    assert log["message"] == "from helper"
    frames = log["stacktrace"]
    # A call stack, innermost first, starting at the caller of capture_message.
    assert frames[0]["function"] == "_log_here" and frames[0]["module"] == "test_errors"
    assert frames[0]["lineno"] == _line_of(_log_here, "capture_message")
    assert frames[1]["function"] == "test_capture_message_with_stacktrace_by_default"
    assert not any(f["module"] and f["module"].startswith("oxapm") for f in frames)
    assert error["culprit"] == "test_errors._log_here"
    assert "exception" not in error


def test_capture_message_without_stack(client):
    _log_here(client, stack=False)
    (error,) = exported(client).errors
    assert error["log"]["message"] == "from helper"
    assert "stacktrace" not in error["log"]


def test_plain_message_log_fields_default_as_in_elastic(client):
    # elasticapm.events.Message: param_message is the message, level "error", logger "__main__".
    client.capture_message("Billing process succeeded.", stack=False)
    client.capture_message("custom", stack=False, level="warning", logger_name="billing")
    plain, custom = exported(client).errors
    assert plain["log"] == {
        "message": "Billing process succeeded.",
        "param_message": "Billing process succeeded.",
        "level": "error",
        "logger_name": "__main__",
    }
    assert (custom["log"]["level"], custom["log"]["logger_name"]) == ("warning", "billing")


def test_param_message(client):
    client.capture_message(param_message={"message": "x %s", "params": ("y",)})
    client.capture_message(param_message={"message": "Billing for %s: %s", "params": (12, 3.5)})
    client.capture_message(param_message={"message": "no params"})
    first, second, third = exported(client).errors
    assert first["log"]["message"] == "x y" and first["log"]["param_message"] == "x %s"
    assert second["log"]["message"] == "Billing for 12: 3.5"
    assert second["log"]["param_message"] == "Billing for %s: %s"
    assert third["log"]["message"] == "no params"


def test_param_message_that_does_not_format(client):
    client.capture_message(param_message={"message": "x %s %s", "params": ("only one",)})
    (error,) = exported(client).errors
    assert error["log"]["param_message"] == "x %s %s"
    assert error["log"]["message"] == "x %s %s"


def test_capture_message_in_an_except_block_includes_the_exception(client):
    try:
        _raise_app_error()
    except AppError:
        error_id = client.capture_message("it failed")
    (error,) = exported(client).errors
    assert error["id"] == error_id
    assert error["log"]["message"] == "it failed"
    assert error["exception"]["type"] == "AppError"
    assert error["exception"]["message"] == "AppError: app went wrong"
    assert error["exception"]["stacktrace"][-1]["function"] == "_raise_app_error"


def test_capture_message_outside_an_except_block_has_no_exception(client):
    client.capture_message("calm")
    (error,) = exported(client).errors
    assert "exception" not in error


def test_capture_message_needs_a_message(client):
    assert client.capture_message() is None
    assert exported(client).errors == []


def test_no_active_exception(client):
    assert sys.exc_info() == (None, None, None)
    assert client.capture_exception() is None
    assert exported(client).errors == []


def test_handled_exception_is_gone_after_the_except_block(client):
    try:
        raise KeyError("k")
    except KeyError:
        pass
    assert client.capture_exception() is None
    assert exported(client).errors == []


def test_exception_with_unprintable_message(client):
    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("no")

    try:
        raise Unprintable()
    except Unprintable:
        error_id = client.capture_exception()
    (error,) = exported(client).errors
    assert error["id"] == error_id
    assert error["exception"]["type"] == "Unprintable"


@pytest.mark.parametrize("n", [1, 3])
def test_many_errors_inside_a_transaction_all_export(client, n):
    client.begin_transaction("job")
    for i in range(n):
        client.capture_message("m%d" % i, stack=False)
    client.end_transaction("t")
    events = exported(client)
    assert [e["log"]["message"] for e in events.errors] == ["m%d" % i for i in range(n)]
