"""Bad input never breaks the application: malformed trace context starts a new trace, label values
and keys are normalized, over-long strings are truncated, the module-level API is a no-op without a
transaction or client, and exceptions raised in spans reach the caller unchanged."""

import asyncio
import decimal
import logging

import pytest
from conftest import exported

import oxapm
from oxapm import base, traces
from oxapm.utils.disttracing import TraceParent, TracingOptions

LONG = "".join(chr(ord("a") + i % 26) for i in range(2000))


def _assert_truncated(value):
    assert len(value) == 1024
    assert value.startswith(LONG[:1023])


# --- trace context ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    ["", "garbage", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "00-" + "0" * 32 + "-b7ad6b7169203331-01"],
)
def test_malformed_traceparent_starts_a_new_trace(client, header):
    parent = oxapm.trace_parent_from_string(header)
    assert parent is None
    transaction = client.begin_transaction("request", trace_parent=parent)
    assert transaction is not None and transaction.parent_id is None
    assert transaction.tracestate == "es=s:1"
    client.end_transaction("t")
    (txn,) = exported(client).transactions
    assert "parent_id" not in txn
    assert txn["trace_id"] == transaction.trace_id and txn["trace_id"] != "0" * 32
    assert txn["sampled"] is True and txn["sample_rate"] == 1.0


def test_malformed_headers_start_a_new_trace(client):
    parent = oxapm.trace_parent_from_headers({"traceparent": "00-xyz", "tracestate": "es=s:0"})
    client.begin_transaction("request", trace_parent=parent)
    client.end_transaction("t")
    (txn,) = exported(client).transactions
    assert "parent_id" not in txn and txn["sampled"] is True


def test_hand_made_trace_parent_with_invalid_ids_starts_a_new_trace(client):
    bad = TraceParent(0, "not-a-trace-id", "ZZZZZZZZZZZZZZZZ", TracingOptions(recorded=False), "es=s:0.5")
    transaction = client.begin_transaction("request", trace_parent=bad)
    assert transaction.is_sampled is True
    client.end_transaction("t")
    (txn,) = exported(client).transactions
    assert "parent_id" not in txn and txn["trace_id"] != "not-a-trace-id"


def test_broken_header_container_gives_none():
    class Broken:
        def items(self):
            raise RuntimeError("broken")

    assert oxapm.trace_parent_from_headers(Broken()) is None


# --- labels -------------------------------------------------------------------------------------


class _Unprintable:
    def __str__(self):
        raise RuntimeError("no str")

    __repr__ = __str__


def test_unsupported_label_values_are_stringified(client):
    marker = object()
    client.begin_transaction("request")
    oxapm.label(obj=marker, items=[1, "a"], nothing=None, mapping={"a": 1}, nested=(1, 2))
    client.end_transaction("t")
    tags = exported(client).transactions[0]["context"]["tags"]
    assert tags["obj"] == str(marker)
    assert tags["items"] == "[1, 'a']"
    assert tags["nothing"] == "None"
    assert tags["mapping"] == "{'a': 1}"
    assert tags["nested"] == "(1, 2)"


def test_supported_label_values_keep_their_type(client):
    client.begin_transaction("request")
    oxapm.label(
        text="x", yes=True, no=False, count=3, neg=-7, ratio=0.25, price=decimal.Decimal("47.12"), zero=decimal.Decimal(0)
    )
    client.end_transaction("t")
    tags = exported(client).transactions[0]["context"]["tags"]
    assert tags == {"text": "x", "yes": True, "no": False, "count": 3, "neg": -7, "ratio": 0.25, "price": 47.12, "zero": 0}
    assert tags["yes"] is True and isinstance(tags["price"], float)


def test_non_finite_float_labels_are_strings(client):
    client.begin_transaction("request")
    oxapm.label(nan=float("nan"), inf=float("inf"))
    client.end_transaction("t")
    tags = exported(client).transactions[0]["context"]["tags"]
    assert isinstance(tags["nan"], str) and tags["nan"].lower() == "nan"
    assert isinstance(tags["inf"], str) and "inf" in tags["inf"].lower()


def test_unprintable_label_value_does_not_raise(client):
    client.begin_transaction("request")
    oxapm.label(bad=_Unprintable(), good=1)
    client.end_transaction("t")
    tags = exported(client).transactions[0]["context"]["tags"]
    assert tags["good"] == 1 and isinstance(tags["bad"], str)


@pytest.mark.parametrize("key, expected", [("a.b", "a_b"), ("c*d", "c_d"), ('e"f', "e_f"), ('.*"', "___"), ("ok-key_1", "ok-key_1")])
def test_label_key_characters_are_replaced(client, key, expected):
    client.begin_transaction("request")
    oxapm.label(**{key: 1})
    with oxapm.capture_span("s", labels={key: 2}):
        pass
    client.end_transaction("t")
    events = exported(client)
    assert events.transactions[0]["context"]["tags"] == {expected: 1}
    assert events.spans[0]["context"]["tags"] == {expected: 2}


def test_label_value_longer_than_1024_is_truncated(client):
    client.begin_transaction("request")
    oxapm.label(long=LONG, obj=_Long())
    with oxapm.capture_span("s", labels={"long": LONG}):
        pass
    client.end_transaction("t")
    events = exported(client)
    tags = events.transactions[0]["context"]["tags"]
    _assert_truncated(tags["long"])
    _assert_truncated(tags["obj"])
    _assert_truncated(events.spans[0]["context"]["tags"]["long"])


class _Long:
    def __str__(self):
        return LONG


# --- long names ---------------------------------------------------------------------------------


def test_long_names_and_types_are_truncated(client):
    client.begin_transaction(LONG)
    with oxapm.capture_span(LONG, span_type=LONG):
        pass
    with oxapm.capture_span("typed", span_type="db", span_subtype=LONG, span_action=LONG):
        pass
    oxapm.set_transaction_result(LONG)
    client.end_transaction(LONG)
    events = exported(client)
    (txn,) = events.transactions
    _assert_truncated(txn["name"])
    _assert_truncated(txn["type"])
    _assert_truncated(txn["result"])
    long_span, typed = events.spans
    _assert_truncated(long_span["name"])
    _assert_truncated(long_span["type"])
    _assert_truncated(typed["subtype"])
    _assert_truncated(typed["action"])


def test_long_name_set_during_the_transaction(client):
    client.begin_transaction("request")
    oxapm.set_transaction_name(LONG)
    client.end_transaction()
    _assert_truncated(exported(client).transactions[0]["name"])


def test_multibyte_names_are_cut_at_characters(client):
    name = "\u00e9" * 1500
    client.begin_transaction("request")
    client.end_transaction(name)
    (txn,) = exported(client).transactions
    assert txn["name"] == "\u00e9" * 1023 + "\u2026"


def test_long_error_fields_are_truncated(client):
    client.capture_message(LONG, stack=False, level=LONG, logger_name=LONG)
    (error,) = exported(client).errors
    assert error["log"]["message"].startswith(LONG[:1024])
    _assert_truncated(error["log"]["level"])
    _assert_truncated(error["log"]["logger_name"])


# --- the module-level API without a transaction or a client -------------------------------------


@pytest.fixture
def no_client(monkeypatch):
    monkeypatch.setattr(base, "_client", None)
    assert oxapm.get_client() is None


def _call_every_function():
    assert oxapm.label(a=1, b=object()) is None
    assert oxapm.set_context({"a": 1}) is None
    assert oxapm.set_context({"a": 1}, "service") is None
    assert oxapm.set_context(lambda: {"a": 1}) is None
    assert oxapm.set_custom_context({"a": 1}) is None
    assert oxapm.set_user_context(username="u", email="e", user_id=1) is None
    assert oxapm.set_transaction_name("n") is None
    assert oxapm.set_transaction_name("n", override=False) is None
    assert oxapm.set_transaction_result("r") is None
    assert oxapm.set_transaction_outcome("success") is None
    assert oxapm.set_transaction_outcome("bogus") is None
    assert oxapm.set_transaction_outcome(http_status_code=500) is None
    assert oxapm.get_transaction_id() is None
    assert oxapm.get_trace_id() is None
    assert oxapm.get_span_id() is None
    assert oxapm.get_trace_parent_header() is None
    with oxapm.capture_span("nothing") as span:
        assert span is None
        with oxapm.capture_span("nested", labels={"a": 1}, leaf=True) as inner:
            assert inner is None
    assert decorated_sync(2) == 4

    async def run():
        async with oxapm.async_capture_span("nothing") as span:
            assert span is None
        return await decorated_async(3)

    assert asyncio.run(run()) == 6


@oxapm.capture_span()
def decorated_sync(x):
    return x * 2


@oxapm.async_capture_span("named")
async def decorated_async(x):
    return x * 2


def test_module_api_without_a_client_is_a_no_op(no_client):
    _call_every_function()
    assert traces.get_transaction() is None


def test_module_api_outside_a_transaction_is_a_no_op(client):
    _call_every_function()
    assert traces.get_transaction() is None
    assert exported(client).all == []


def test_module_api_after_the_transaction_ended(client):
    client.begin_transaction("request")
    client.end_transaction("t")
    _call_every_function()
    events = exported(client)
    assert [k for k, _ in events.all] == ["transaction"]
    assert events.transactions[0]["name"] == "t"


def test_end_transaction_without_a_transaction(client):
    assert client.end_transaction() is None
    assert client.end_transaction("name", "result") is None
    assert exported(client).all == []


def test_end_transaction_twice(client):
    client.begin_transaction("request")
    assert client.end_transaction("t") is not None
    assert client.end_transaction("t") is None
    assert len(exported(client).transactions) == 1


# --- invalid values of the module-level API -----------------------------------------------------


def test_invalid_outcome_warns_and_is_ignored(client, caplog):
    caplog.set_level(logging.WARNING, logger="oxapm")
    client.begin_transaction("request")
    oxapm.set_transaction_outcome("failure")
    oxapm.set_transaction_outcome("bogus")
    client.end_transaction("t")
    assert exported(client).transactions[0]["outcome"] == "failure"
    (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "bogus" in record.getMessage()


def test_invalid_http_status_code_warns_and_is_ignored(client, caplog):
    caplog.set_level(logging.WARNING, logger="oxapm")
    client.begin_transaction("request")
    oxapm.set_transaction_outcome(http_status_code="teapot")
    client.end_transaction("t")
    assert exported(client).transactions[0]["outcome"] == "unknown"
    assert any("teapot" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_set_context_with_a_callable(client):
    calls = []

    def data():
        calls.append(1)
        return {"lazy": True, "a.b": 2}

    client.begin_transaction("request")
    oxapm.set_context(data)
    oxapm.set_context(lambda: {"k": "v"}, key="service_info")
    client.end_transaction("t")
    context = exported(client).transactions[0]["context"]
    assert calls == [1]
    assert context["custom"] == {"lazy": True, "a_b": 2}
    assert context["service_info"] == {"k": "v"}


def test_set_context_callable_is_not_called_when_unsampled(client):
    calls = []
    parent = oxapm.trace_parent_from_string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
    client.begin_transaction("request", trace_parent=parent)
    oxapm.set_context(lambda: calls.append(1) or {"a": 1})
    client.end_transaction("t")
    assert calls == []
    exported(client)


@pytest.mark.parametrize("data", [None, "text", 42, ["a", 1], lambda: "not a dict", lambda: None])
def test_set_context_with_non_dict_data_is_ignored(client, data):
    client.begin_transaction("request")
    oxapm.set_context(data)
    oxapm.set_custom_context(data)
    client.end_transaction("t")
    (txn,) = exported(client).transactions
    assert "custom" not in txn.get("context", {})


def test_context_keys_and_values_of_any_type(client):
    marker = object()
    client.begin_transaction("request")
    oxapm.set_custom_context({1: "one", "obj": marker, "nested": {"s": {1}}, "t": (1, 2)})
    oxapm.set_user_context(username=123, user_id=marker)
    client.end_transaction("t")
    context = exported(client).transactions[0]["context"]
    assert context["custom"]["1"] == "one"
    assert context["custom"]["obj"] == str(marker)
    assert context["custom"]["t"] == [1, 2]
    assert context["custom"]["nested"] == {"s": "{1}"}
    assert context["user"] == {"username": "123", "id": str(marker)}


def test_non_string_transaction_name(client):
    client.begin_transaction("request")
    oxapm.set_transaction_name(42)
    client.end_transaction()
    (txn,) = exported(client).transactions
    assert txn["name"] == "42"


# --- capture_exception with garbage ----------------------------------------------------------------


@pytest.mark.parametrize(
    "exc_info",
    [42, "boom", ("a", "b", "c"), (None, None, None), (ValueError, "not an exception", None), (1, 2), [ValueError, ValueError("x"), None], object()],
)
def test_capture_exception_with_garbage_exc_info(client, exc_info):
    assert client.capture_exception(exc_info=exc_info) is None
    assert exported(client).errors == []


def test_capture_exception_with_garbage_inside_an_except_block(client):
    try:
        raise KeyError("k")
    except KeyError:
        assert client.capture_exception(exc_info=("a", "b", "c")) is None
    assert exported(client).errors == []


def test_capture_exception_with_an_exception_instance(client):
    error = ValueError("not raised")
    error_id = client.capture_exception(exc_info=error)
    (exported_error,) = exported(client).errors
    assert exported_error["id"] == error_id
    assert exported_error["exception"]["type"] == "ValueError"


def test_capture_message_with_garbage(client):
    assert client.capture_message(None) is None
    assert client.capture_message(param_message={"params": (1,)}) is not None
    assert client.capture_message(12345, stack=False) is not None
    errors = exported(client).errors
    assert [e["log"]["message"] for e in errors] == ["", "12345"]


def test_capture_message_with_a_bad_date(client):
    error_id = client.capture_message("x", date="yesterday", stack=False)
    (error,) = exported(client).errors
    assert error["id"] == error_id and error["timestamp"] > 0


# --- exceptions in spans ------------------------------------------------------------------------


class _Boom(Exception):
    pass


def test_exception_in_capture_span_propagates_unchanged(client):
    transaction = client.begin_transaction("request")
    raised = _Boom("original")
    with pytest.raises(_Boom) as info:
        with oxapm.capture_span("failing"):
            with oxapm.capture_span("inner"):
                raise raised
    assert info.value is raised
    assert info.value.args == ("original",)
    assert info.value.__cause__ is None and info.value.__context__ is None
    # The context is restored: the transaction is current again.
    assert oxapm.get_span_id() is None
    assert traces.get_transaction() is transaction
    client.end_transaction("t")
    spans = {s["name"]: s for s in exported(client).spans}
    assert spans["failing"]["outcome"] == "failure"
    assert spans["inner"]["outcome"] == "failure"


@oxapm.capture_span("decorated-failing")
def _decorated_failing(error):
    raise error


@oxapm.async_capture_span("async-failing")
async def _async_failing(error):
    raise error


def test_exception_in_decorated_function_propagates_unchanged(client):
    client.begin_transaction("request")
    raised = _Boom("sync")
    with pytest.raises(_Boom) as info:
        _decorated_failing(raised)
    assert info.value is raised
    raised_async = _Boom("async")
    with pytest.raises(_Boom) as info:
        asyncio.run(_async_failing(raised_async))
    assert info.value is raised_async
    client.end_transaction("t")
    spans = {s["name"]: s for s in exported(client).spans}
    assert spans["decorated-failing"]["outcome"] == "failure"
    assert spans["async-failing"]["outcome"] == "failure"


def test_exception_caught_inside_the_span_is_a_success(client):
    client.begin_transaction("request")
    with oxapm.capture_span("recovered"):
        try:
            raise _Boom()
        except _Boom:
            pass
    client.end_transaction("t")
    assert exported(client).spans[0]["outcome"] == "success"


def test_base_exceptions_propagate_too(client):
    client.begin_transaction("request")
    with pytest.raises(KeyboardInterrupt):
        with oxapm.capture_span("interrupted"):
            raise KeyboardInterrupt()
    with pytest.raises(SystemExit):
        with oxapm.capture_span("exiting"):
            raise SystemExit(3)
    client.end_transaction("t")
    assert {s["name"]: s["outcome"] for s in exported(client).spans} == {"interrupted": "failure", "exiting": "failure"}


def test_exception_in_a_span_outside_a_transaction_propagates(no_client):
    raised = _Boom()
    with pytest.raises(_Boom) as info:
        with oxapm.capture_span("nothing"):
            raise raised
    assert info.value is raised
