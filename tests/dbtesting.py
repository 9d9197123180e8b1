"""What the tests of the database instrumentations (tests/test_db_*.py) share: applying one
instrumentation, running work inside a transaction, the span fields they compare, the failure
switches, and a client exporting to both an APM Server and an OTLP receiver."""

import logging
from contextlib import contextmanager

import pytest
from conftest import attributes, exported, spans_of, use_otlp

import oxapm
from oxapm import _core
from oxapm.instrumentation import base, control, dbapi, registry, sql_spans


@contextmanager
def instrumented(instrumentation_class):
    """The instrumentation applied for the block, removed after it."""
    instrumentation = instrumentation_class()
    instrumentation.instrument()
    try:
        yield instrumentation
    finally:
        instrumentation.uninstrument()


def spans_of_work(client, work):
    """Runs ``work()`` inside a transaction; returns its result and the exported spans (validated
    against the intake schema), in the order they started."""
    client.begin_transaction("job")
    try:
        result = work()
    finally:
        client.end_transaction("database work", "success")
    spans = sorted(exported(client).spans, key=lambda span: span["timestamp"])
    return result, spans


def summary(span):
    """The fields an instrumentation sets, for comparison: the destination without what the engine
    infers at export (its service resource), which ``targets`` returns."""
    context = span.get("context") or {}
    destination = {key: value for key, value in (context.get("destination") or {}).items() if key != "service"}
    return {
        "name": span["name"],
        "type": span["type"],
        "subtype": span["subtype"],
        "action": span["action"],
        "outcome": span["outcome"],
        "db": context.get("db"),
        "destination": destination or None,
    }


def inferred_targets(span):
    """What the engine inferred from the span's context when it exported it: the service target,
    and the destination's service resource (Elastic's service_resource_inference)."""
    context = span["context"]
    return context["service"]["target"], context["destination"]["service"]["resource"]


def expected_targets(endpoint):
    """The inferred targets of spans on ``endpoint``: its subtype, and its database when known."""
    instance = endpoint.db.get("instance")
    if instance is None:
        return {"type": endpoint.subtype}, endpoint.subtype
    return {"type": endpoint.subtype, "name": instance}, "%s/%s" % (endpoint.subtype, instance)


def expected(name, statement, endpoint, action="query", outcome="success", rows_affected=None):
    """The summary of a span on ``endpoint`` (a sql_spans.Endpoint standing for what the test
    server is)."""
    db = dict(endpoint.db)
    if statement is not None:
        db["statement"] = statement
    if rows_affected is not None:
        db["rows_affected"] = rows_affected
    return {
        "name": name,
        "type": "db",
        "subtype": endpoint.subtype,
        "action": action,
        "outcome": outcome,
        "db": db,
        "destination": endpoint.destination or None,
    }


def server_endpoint(subtype, service):
    """What a tests/servers.py service is, as spans on it should describe it."""
    return sql_spans.Endpoint(subtype, service.database, service.user, service.host, service.port)


@contextmanager
def one_warning_per_failure(caplog, monkeypatch, instrumentation):
    """Forgets earlier reports, and checks that the block logged exactly one warning about
    ``instrumentation`` failing."""
    monkeypatch.setattr(base, "_reported", set())
    caplog.set_level(logging.WARNING, logger="oxapm")
    yield
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "the %s instrumentation failed" % instrumentation in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in caplog.records]


def break_statement_spans(monkeypatch):
    """Starting a statement's span fails from now on, as an internal failure of the agent would:
    the engine's ``begin_sql_span`` raises (what asyncpg calls), and what a DB-API proxy's traced
    methods read as their connection's endpoint is none."""
    def broken(*args):
        raise RuntimeError("begin_sql_span is broken")

    monkeypatch.setattr(_core, "begin_sql_span", broken)
    monkeypatch.setattr(dbapi._Proxy, "_self_endpoint", _NoEndpoint(), raising=False)


class _NoEndpoint:
    """In a proxy class, in place of its proxies' endpoints: read, it is itself (no endpoint);
    written (a new proxy), the endpoint is kept aside."""

    def __get__(self, proxy, owner):
        return self

    def __set__(self, proxy, endpoint):
        vars(proxy)["_self_endpoint"] = endpoint


@pytest.fixture
def only_registered(monkeypatch):
    """``oxapm.instrument()`` sees only the registry entries named in the returned function's
    arguments (not the other libraries' instrumentations)."""
    entries = registry.entries()
    monkeypatch.setattr(control, "_active", {})
    monkeypatch.setattr(control, "_waiting", {})
    monkeypatch.setattr(control, "_unsupported", set())

    def keep(*names):
        monkeypatch.setattr(registry, "_entries", {name: entries[name] for name in names})

    yield keep
    control.uninstrument()


@contextmanager
def both_formats(monkeypatch, intake, otlp_http):
    """A client exporting to the intake recorder and to the OTLP one; after the block, the
    intake spans (validated) and the OTLP spans, once both arrived."""
    use_otlp(monkeypatch, otlp_http.url, ELASTIC_APM_SERVER_URL=intake.url, OTEL_SERVICE_NAME="db-service")
    client = oxapm.Client()
    found = {}
    try:
        yield client, found
    finally:
        client.close()
    found["intake"] = [body for kind, body in intake.events() if kind == "span"]
    found["otlp"] = {span.name: attributes(span.attributes) for span in spans_of(otlp_http.requests)}
