"""The Elastic-compatible API end to end through the intake encoder."""

import decimal

import pytest
from conftest import exported

import oxapm
import oxapm as elasticapm
from oxapm.conf.constants import OUTCOME


def test_the_package_stands_in_for_elasticapm():
    for name in (
        "Client", "get_client", "capture_span", "async_capture_span", "label", "set_context",
        "set_custom_context", "set_user_context", "set_transaction_name", "set_transaction_result",
        "set_transaction_outcome", "get_transaction_id", "get_trace_id", "get_span_id",
        "get_trace_parent_header", "trace_parent_from_string", "trace_parent_from_headers",
        "instrument", "uninstrument", "setup_logging", "VERSION", "TraceParent",
    ):
        assert hasattr(elasticapm, name), name
    assert isinstance(elasticapm.VERSION, str) and elasticapm.VERSION


def test_get_client_returns_the_latest_client(client):
    assert oxapm.get_client() is client


def test_transaction_with_nested_spans(client):
    transaction = client.begin_transaction("request")
    with oxapm.capture_span("outer", span_type="db.mysql.query", labels={"n": 1}) as outer:
        assert oxapm.get_span_id() == outer.id
        with oxapm.capture_span("inner", span_type="cache", span_subtype="redis", span_action="get") as inner:
            assert inner.parent_id == outer.id
    assert oxapm.get_span_id() is None
    assert oxapm.get_transaction_id() == transaction.id
    client.end_transaction("GET /users", "HTTP 2xx")
    events = exported(client)
    (txn,) = events.transactions
    assert txn["name"] == "GET /users" and txn["type"] == "request" and txn["result"] == "HTTP 2xx"
    assert txn["span_count"] == {"started": 2, "dropped": 0}
    spans = {s["name"]: s for s in events.spans}
    assert (spans["outer"]["type"], spans["outer"]["subtype"], spans["outer"]["action"]) == ("db", "mysql", "query")
    assert (spans["inner"]["type"], spans["inner"]["subtype"], spans["inner"]["action"]) == ("cache", "redis", "get")
    assert spans["outer"]["parent_id"] == txn["id"]
    assert spans["inner"]["parent_id"] == spans["outer"]["id"]
    assert all(s["transaction_id"] == txn["id"] and s["trace_id"] == txn["trace_id"] for s in spans.values())
    assert spans["outer"]["context"]["tags"] == {"n": 1}
    assert spans["inner"]["timestamp"] >= spans["outer"]["timestamp"] >= txn["timestamp"]
    assert all(s["outcome"] == "success" for s in spans.values())


def test_default_span_type_is_code_custom(client):
    client.begin_transaction("job")
    with oxapm.capture_span("block"):
        pass
    client.end_transaction("job")
    (span,) = exported(client).spans
    assert (span["type"], span["subtype"]) == ("code", "custom")


@oxapm.capture_span()
def decorated(x):
    return x * 2


@oxapm.capture_span("named", span_type="template.jinja2.render", extra={"db": {"type": "sql"}})
def decorated_named():
    return "ok"


def test_capture_span_as_decorator(client):
    client.begin_transaction("job")
    assert decorated(21) == 42
    assert decorated(1) == 2
    assert decorated_named() == "ok"
    client.end_transaction("job")
    spans = exported(client).spans
    assert [s["name"] for s in spans] == ["test_api.decorated", "test_api.decorated", "named"]
    assert spans[0]["id"] != spans[1]["id"]
    assert spans[2]["subtype"] == "jinja2" and spans[2]["context"]["db"] == {"type": "sql"}


def test_exception_in_span_propagates_and_marks_failure(client):
    client.begin_transaction("job")
    with pytest.raises(KeyError):
        with oxapm.capture_span("boom"):
            raise KeyError("k")
    client.end_transaction("job")
    (span,) = exported(client).spans
    assert span["outcome"] == "failure"


def test_leaf_spans_hide_their_children(client):
    client.begin_transaction("job")
    with oxapm.capture_span("leaf", leaf=True) as leaf:
        with oxapm.capture_span("hidden") as hidden:
            assert hidden is None
            assert oxapm.get_span_id() == leaf.id
            with oxapm.capture_span("deeper") as deeper:
                assert deeper is None
    client.end_transaction("job")
    events = exported(client)
    assert [s["name"] for s in events.spans] == ["leaf"]
    assert events.transactions[0]["span_count"]["started"] == 1


def test_transaction_name_and_result_override(client):
    client.begin_transaction("request")
    oxapm.set_transaction_name("first")
    oxapm.set_transaction_name("ignored", override=False)
    oxapm.set_transaction_result("SUCCESS")
    oxapm.set_transaction_result("ignored", override=False)
    client.end_transaction("from-end", "from-end")
    (txn,) = exported(client).transactions
    assert (txn["name"], txn["result"]) == ("first", "SUCCESS")


def test_set_transaction_name_wins_over_later_overrides(client):
    client.begin_transaction("request")
    oxapm.set_transaction_name("a")
    oxapm.set_transaction_name("b")
    client.end_transaction()
    assert exported(client).transactions[0]["name"] == "b"


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"outcome": OUTCOME.SUCCESS}, "success"),
        ({"outcome": OUTCOME.FAILURE}, "failure"),
        ({"outcome": OUTCOME.UNKNOWN}, "unknown"),
        ({"http_status_code": 200}, "success"),
        ({"http_status_code": "404"}, "success"),
        ({"http_status_code": 503}, "failure"),
    ],
)
def test_set_transaction_outcome(client, kwargs, expected):
    client.begin_transaction("request")
    oxapm.set_transaction_outcome(**kwargs)
    client.end_transaction("t")
    assert exported(client).transactions[0]["outcome"] == expected


def test_outcome_override_false_keeps_the_first(client):
    client.begin_transaction("request")
    oxapm.set_transaction_outcome(OUTCOME.FAILURE)
    oxapm.set_transaction_outcome(OUTCOME.SUCCESS, override=False)
    client.end_transaction("t")
    assert exported(client).transactions[0]["outcome"] == "failure"


def test_ids_inside_and_outside(client):
    assert oxapm.get_transaction_id() is None and oxapm.get_trace_id() is None and oxapm.get_span_id() is None
    transaction = client.begin_transaction("request")
    assert oxapm.get_trace_id() == transaction.trace_id and len(transaction.trace_id) == 32
    client.end_transaction("t")
    assert oxapm.get_transaction_id() is None
    exported(client)


def test_context_custom_merges_and_user_context(client):
    client.begin_transaction("request")
    oxapm.set_custom_context({"a": 1, "b.c": 2})
    oxapm.set_custom_context({"a": 3, "d": [1, 2]})
    oxapm.set_context({"k": "v"}, key="service_info")
    oxapm.set_context(lambda: {"lazy": True})
    oxapm.set_user_context(username="ann", email="ann@example.com", user_id=7)
    oxapm.set_user_context(email="ann@example.org")
    client.end_transaction("t")
    context = exported(client).transactions[0]["context"]
    assert context["custom"] == {"a": 3, "b_c": 2, "d": [1, 2], "lazy": True}
    assert context["service_info"] == {"k": "v"}
    assert context["user"] == {"username": "ann", "email": "ann@example.org", "id": "7"}


def test_labels_sanitized_and_typed(client):
    client.begin_transaction("request")
    oxapm.label(ecommerce=True, dollar_value=47.12, count=3, name="x", dec=decimal.Decimal("1.5"))
    oxapm.label(**{"a.b": 1, "c*d": 2, 'e"f': 3, "obj": object})
    oxapm.label(count=4)
    client.end_transaction("t")
    tags = exported(client).transactions[0]["context"]["tags"]
    assert tags["ecommerce"] is True and tags["dollar_value"] == 47.12 and tags["count"] == 4
    assert tags["dec"] == 1.5 and tags["name"] == "x"
    assert tags["a_b"] == 1 and tags["c_d"] == 2 and tags["e_f"] == 3
    assert tags["obj"] == str(object)


def test_explicit_start_and_duration(client):
    import time

    start = time.time() - 10
    client.begin_transaction("job", start=start)
    client.end_transaction("t", duration=2.5)
    (txn,) = exported(client).transactions
    assert txn["timestamp"] == int(start * 1e6)
    assert txn["duration"] == 2500.0


def test_transaction_object_methods(client):
    link = oxapm.trace_parent_from_string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    transaction = client.begin_transaction("request")
    span = transaction.begin_span("manual", "db.sqlite.query", leaf=False, labels={"x": "y"})
    assert oxapm.get_span_id() == span.id
    child = transaction.begin_span("child", "custom")
    assert child.parent_id == span.id
    child.set_failure()
    assert transaction.end_span() is child
    assert oxapm.get_span_id() == span.id
    span.label(extra=1)
    span.add_link(link)
    assert transaction.end_span(outcome="success") is span
    assert oxapm.get_span_id() is None
    transaction.label(t=1)
    transaction.set_success()
    transaction.add_link(link)
    client.end_transaction("t")
    events = exported(client)
    spans = {s["name"]: s for s in events.spans}
    assert spans["child"]["outcome"] == "failure" and spans["manual"]["outcome"] == "success"
    assert spans["manual"]["context"]["tags"] == {"x": "y", "extra": 1}
    assert spans["manual"]["links"] == [{"trace_id": link.trace_id, "span_id": link.span_id}]
    (txn,) = events.transactions
    assert txn["outcome"] == "success" and txn["context"]["tags"] == {"t": 1}
    assert txn["links"] == [{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"}]


def test_span_links(client):
    link = oxapm.trace_parent_from_string("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    client.begin_transaction("job", links=[link])
    with oxapm.capture_span("linked", links=[link]):
        pass
    client.end_transaction("t")
    events = exported(client)
    expected = [{"trace_id": link.trace_id, "span_id": link.span_id}]
    assert events.spans[0]["links"] == expected and events.transactions[0]["links"] == expected


async def _async_work():
    async with oxapm.async_capture_span("async-block", span_type="external.http"):
        pass
    return await _async_decorated()


@oxapm.async_capture_span()
async def _async_decorated():
    return "done"


def test_async_capture_span(client):
    import asyncio

    client.begin_transaction("job")
    assert asyncio.run(_async_work()) == "done"
    client.end_transaction("t")
    names = sorted(s["name"] for s in exported(client).spans)
    assert names == ["async-block", "test_api._async_decorated"]


def test_ending_twice_sends_once(client):
    transaction = client.begin_transaction("job")
    client.end_transaction("t")
    transaction.end()
    assert len(exported(client).transactions) == 1


def test_begin_transaction_without_activation(client):
    transaction = client.begin_transaction("job", auto_activate=False)
    assert oxapm.get_transaction_id() is None
    transaction.name = "manual"
    transaction.end()
    assert exported(client).transactions[0]["name"] == "manual"
