"""What the engine gives library instrumentations: SQL signatures for span names, ignored URLs for
web frameworks, and the service target of exit spans, inferred on export."""

import pytest

import oxapm
from conftest import exported
from oxapm import _core


@pytest.mark.parametrize(
    "sql, signature",
    [
        ("SELECT id, name FROM shop.users WHERE id = %s", "SELECT FROM shop.users"),
        ('insert into "orders" (id) values (?)', "INSERT INTO orders"),
        ("/* app */ UPDATE [carts] SET n = 1", "UPDATE carts"),
        ("BEGIN", "BEGIN"),
        ("", ""),
        ("'unterminated /* \x00", "'UNTERMINATED"),
    ],
)
def test_sql_signature(sql, signature):
    assert _core.sql_signature(sql) == signature


def test_ignored_urls():
    client = oxapm.Client(service_name="shop", traces_exporter="memory", transaction_ignore_urls="/health*, *.CSS")
    try:
        assert client._engine.ignores_url("/healthz")
        assert client._engine.ignores_url("/static/site.css")
        assert not client._engine.ignores_url("/api/orders")
    finally:
        client.close()
    default = oxapm.Client(service_name="shop", traces_exporter="memory")
    try:
        assert not default._engine.ignores_url("/healthz")
    finally:
        default.close()


def test_exit_spans_get_their_service_target(client):
    client.begin_transaction("request")
    with oxapm.capture_span("SELECT FROM users", span_type="db", span_subtype="postgresql", leaf=True, extra={"db": {"type": "sql", "instance": "shop"}}):
        pass
    with oxapm.capture_span("GET api.example.com", span_type="external", span_subtype="http", leaf=True, extra={"http": {"url": "https://api.example.com/v1"}}):
        pass
    with oxapm.capture_span("render", span_type="template"):
        pass
    client.end_transaction("GET /", "HTTP 2xx")
    spans = {span["name"]: span for span in exported(client).spans}
    db = spans["SELECT FROM users"]["context"]
    assert db["service"]["target"] == {"type": "postgresql", "name": "shop"}
    assert db["destination"]["service"]["resource"] == "postgresql/shop"
    http = spans["GET api.example.com"]["context"]
    assert http["service"]["target"] == {"type": "http", "name": "api.example.com:443"}
    assert http["destination"]["service"]["resource"] == "api.example.com:443"
    assert "service" not in spans["render"].get("context", {})
