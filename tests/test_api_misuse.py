"""Arguments of the wrong type are coerced or ignored with a warning: the application goes on."""

import logging

from conftest import exported

import oxapm


def test_capture_span_with_wrong_types_still_records(client, caplog):
    client.begin_transaction("job")
    with caplog.at_level(logging.WARNING, logger="oxapm"):
        with oxapm.capture_span(123, span_type=None, labels="not a dict", extra=["nope"], span_subtype=5) as span:
            assert span is not None
    client.end_transaction("t")
    (recorded,) = exported(client).spans
    assert (recorded["name"], recorded["type"], recorded["subtype"]) == ("123", "code.custom", "5")
    assert "context" not in recorded
    assert any("unexpected types" in r.getMessage() for r in caplog.records)


def test_transaction_begin_span_with_wrong_types(client):
    transaction = client.begin_transaction("job")
    span = transaction.begin_span(["name"], 42, context="x", labels=7)
    assert span is not None
    transaction.end_span()
    client.end_transaction("t")
    assert exported(client).spans[0]["name"] == "['name']"


def test_client_calls_with_wrong_types(client, caplog):
    with caplog.at_level(logging.WARNING, logger="oxapm"):
        client.begin_transaction("job", trace_parent="00-not-a-traceparent", start="soon", links="x")
        client.end_transaction("t", duration="long")
    (txn,) = exported(client).transactions
    assert "parent_id" not in txn and txn["duration"] >= 0
    try:
        raise ValueError("x")
    except ValueError:
        error_id = client.capture_exception(context="not a dict", custom=["no"])
    message_id = client.capture_message(param_message="not a dict")
    assert error_id is not None and message_id is None
    assert len(exported(client).errors) == 1
