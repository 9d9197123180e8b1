"""oxapm's memcached instrumentations against a real memcached: pymemcache (Client, PooledClient,
HashClient), python-memcached and pylibmc. Each command an exit span, failures, several servers and
unix sockets, both export formats, disabling, removal, contained failures of the agent and no double
reporting with OpenTelemetry's contrib pymemcache instrumentation."""

import importlib
import json
import logging
import uuid

import pytest
import servers
from cache_support import closed_port, exported_context, instrument, memcached_unix_socket  # noqa: F401 (fixtures)
from conftest import attributes, exported, spans_of, use_otlp

import oxapm
from oxapm.instrumentation import pylibmc as pylibmc_instrumentation
from oxapm.instrumentation import pymemcache as pymemcache_instrumentation
from oxapm.instrumentation import python_memcached as python_memcached_instrumentation

SECRET_VALUE = "card-4111-1111-1111-1111"
COMMANDS = {
    "pymemcache": pymemcache_instrumentation.COMMANDS,
    "python-memcached": python_memcached_instrumentation.COMMANDS,
    "pylibmc": pylibmc_instrumentation.COMMANDS,
}


class Flavour:
    """One client class: its library (the instrumentation's name), how to make it over servers given
    as "host:port" or a unix socket's path, and how it behaves."""

    def __init__(self, library, module, class_name, get_many, refused, server_error, one_server=False, unix_prefix="", mixes_transports=True):
        self.library = library
        self.module = module  # where class_name is
        self.class_name = class_name
        self.get_many = get_many  # the name of its multi-get
        self.refused = refused  # what a refused connection raises (a dotted name), or None: it answers None
        self.server_error = server_error  # what incrementing a text value raises (a dotted name)
        self.one_server = one_server  # it takes one server, not a list
        self.unix_prefix = unix_prefix
        self.mixes_transports = mixes_transports  # it takes TCP and unix socket servers together

    def __repr__(self):
        return "%s-%s" % (self.library, self.class_name)

    def owner(self):
        return getattr(pytest.importorskip(self.module), self.class_name)

    def connect(self, *servers_):
        specs = [self.unix_prefix + s if s.startswith("/") else s for s in servers_]
        return self.owner()(specs[0] if self.one_server else specs)

    def error(self, dotted):
        module, _, name = dotted.rpartition(".")
        return getattr(importlib.import_module(module), name)

    def span_name(self, method):
        return "%s.%s" % (self.class_name, method)


def close(cache):
    (getattr(cache, "close", None) or cache.disconnect_all)()


PYMEMCACHE = Flavour("pymemcache", "pymemcache.client.base", "Client", "get_many", "builtins.ConnectionRefusedError",
                     "pymemcache.exceptions.MemcacheClientError", one_server=True)
POOLED = Flavour("pymemcache", "pymemcache.client.base", "PooledClient", "get_many", "builtins.ConnectionRefusedError",
                 "pymemcache.exceptions.MemcacheClientError", one_server=True)
HASHING = Flavour("pymemcache", "pymemcache.client.hash", "HashClient", "get_many", "builtins.ConnectionRefusedError",
                  "pymemcache.exceptions.MemcacheClientError")
PYTHON_MEMCACHED = Flavour("python-memcached", "memcache", "Client", "get_multi", None, "builtins.ValueError", unix_prefix="unix:")
PYLIBMC = Flavour("pylibmc", "pylibmc", "Client", "get_multi", "pylibmc.ConnectionError", "pylibmc.ClientError", mixes_transports=False)

FLAVOURS = [PYMEMCACHE, POOLED, HASHING, PYTHON_MEMCACHED, PYLIBMC]
LIBRARIES = [PYMEMCACHE, PYTHON_MEMCACHED, PYLIBMC]  # one flavour each
SEVERAL_SERVERS = [HASHING, PYTHON_MEMCACHED, PYLIBMC]


@pytest.fixture
def key():
    """A key of this test alone, shaped like the keys that must never be exported."""
    return "session:alice@example.com:%s" % uuid.uuid4().hex


def wrapped_attributes(flavour):
    """Identities of what the instrumented classes of the library hold for each command, None where
    a class has none of its own (a wrapper compares equal to what it wraps)."""
    owners = [POOLED.owner(), HASHING.owner()] if flavour.library == "pymemcache" else []
    return {(owner, name): id(vars(owner).get(name)) for owner in [flavour.owner(), *owners] for name in COMMANDS[flavour.library]}


@pytest.mark.parametrize("flavour", FLAVOURS, ids=repr)
def test_each_command_is_an_exit_span(client, instrument, memcached, flavour, key):
    cache = flavour.connect(memcached.address)
    instrument(flavour.library)
    transaction = client.begin_transaction("request")
    cache.set(key, SECRET_VALUE)
    assert cache.get(key) in (SECRET_VALUE, SECRET_VALUE.encode())
    assert list(getattr(cache, flavour.get_many)([key])) == [key]
    cache.delete(key)
    client.end_transaction("job")
    close(cache)
    events = exported(client)
    # One span per call: a pooled or hashing client's own calls of a plain client are below its exit span.
    assert [span["name"] for span in events.spans] == [flavour.span_name(m) for m in ("set", "get", flavour.get_many, "delete")]
    for span in events.spans:
        assert (span["type"], span["subtype"], span["action"], span["outcome"]) == ("db", "memcached", "query", "success")
        assert span["parent_id"] == transaction.id
        assert span["context"] == exported_context("memcached", servers.HOST, memcached.port)
    assert [s for s in (key, SECRET_VALUE) if s in json.dumps(events.all)] == []


@pytest.mark.parametrize("flavour", LIBRARIES, ids=repr)
def test_the_otlp_export(otlp_http, monkeypatch, instrument, memcached, flavour, key):
    use_otlp(monkeypatch, otlp_http.url)
    client = oxapm.Client(service_name="shop")
    cache = flavour.connect(memcached.address)
    instrument(flavour.library)
    client.begin_transaction("request")
    cache.set(key, "text")
    with pytest.raises(flavour.error(flavour.server_error)):
        cache.incr(key, 1)
    client.end_transaction("job")
    client.close()
    close(cache)
    spans = {span.name: span for span in spans_of(otlp_http.requests)}
    assert set(spans) == {flavour.span_name("set"), flavour.span_name("incr"), "job"}
    for name in (flavour.span_name("set"), flavour.span_name("incr")):
        span = spans[name]
        assert span.kind == span.SPAN_KIND_CLIENT
        found = attributes(span.attributes)
        assert (found["elastic.span.type"], found["elastic.span.subtype"], found["elastic.span.action"]) == ("db", "memcached", "query")
        assert (found["db.system.name"], found["server.address"], found["server.port"]) == ("memcached", servers.HOST, memcached.port)
        assert "db.query.text" not in found
    assert spans[flavour.span_name("set")].status.code == spans[flavour.span_name("set")].status.STATUS_CODE_OK
    assert spans[flavour.span_name("incr")].status.code == spans[flavour.span_name("incr")].status.STATUS_CODE_ERROR
    assert all(key.encode() not in request["body"] for request in otlp_http.requests)


@pytest.mark.parametrize("flavour", FLAVOURS, ids=repr)
def test_a_server_error_fails_and_propagates_unchanged(client, instrument, memcached, flavour, key):
    cache = flavour.connect(memcached.address)
    cache.set(key, "text")
    with pytest.raises(flavour.error(flavour.server_error)) as uninstrumented:
        cache.incr(key, 1)
    instrument(flavour.library)
    client.begin_transaction("request")
    with pytest.raises(flavour.error(flavour.server_error)) as instrumented:
        cache.incr(key, 1)
    client.end_transaction("job")
    close(cache)
    assert str(instrumented.value) == str(uninstrumented.value)
    (span,) = exported(client).spans
    assert (span["name"], span["outcome"]) == (flavour.span_name("incr"), "failure")


@pytest.mark.parametrize("flavour", FLAVOURS, ids=repr)
def test_a_closed_server(client, instrument, flavour):
    port = closed_port()
    cache = flavour.connect("%s:%d" % (servers.HOST, port))
    instrument(flavour.library)
    client.begin_transaction("request")
    if flavour.refused:
        with pytest.raises(flavour.error(flavour.refused)):
            cache.get("anything")
    else:  # python-memcached marks the server dead and answers as for a miss: nothing failed that it tells
        assert cache.get("anything") is None
    client.end_transaction("job")
    (span,) = exported(client).spans
    assert (span["name"], span["outcome"]) == (flavour.span_name("get"), "failure" if flavour.refused else "success")
    assert span["context"] == exported_context("memcached", servers.HOST, port)


@pytest.mark.parametrize("flavour", FLAVOURS, ids=repr)
def test_a_unix_socket_is_the_address_without_a_port(client, instrument, memcached_unix_socket, flavour, key):
    cache = flavour.connect(memcached_unix_socket)
    instrument(flavour.library)
    client.begin_transaction("request")
    cache.set(key, "text")
    client.end_transaction("job")
    close(cache)
    (span,) = exported(client).spans
    assert span["context"] == exported_context("memcached", memcached_unix_socket)


@pytest.mark.parametrize("flavour", SEVERAL_SERVERS, ids=repr)
def test_a_client_of_several_servers_has_no_destination(client, instrument, memcached, memcached_unix_socket, flavour, key):
    # libmemcached cannot mix transports; to it the same server listed twice is two servers.
    cache = flavour.connect(memcached.address, memcached_unix_socket if flavour.mixes_transports else memcached.address)
    instrument(flavour.library)
    client.begin_transaction("request")
    cache.set(key, "text")
    assert list(getattr(cache, flavour.get_many)([key, key + "-other"])) == [key]
    client.end_transaction("job")
    close(cache)
    spans = exported(client).spans
    assert [span["name"] for span in spans] == [flavour.span_name("set"), flavour.span_name(flavour.get_many)]
    assert [span["context"] for span in spans] == [exported_context("memcached")] * 2


@pytest.mark.parametrize("flavour", FLAVOURS, ids=repr)
def test_no_span_outside_a_transaction(client, instrument, memcached, flavour, key):
    cache = flavour.connect(memcached.address)
    instrument(flavour.library)
    cache.set(key, "1")
    assert cache.incr(key, 1) == 2
    close(cache)
    assert exported(client).spans == []


@pytest.mark.parametrize("flavour", LIBRARIES, ids=repr)
def test_disabled_by_name(instrument, memcached, flavour):
    before = wrapped_attributes(flavour)
    client = oxapm.Client(service_name="shop", traces_exporter="memory", disabled_instrumentations=flavour.library)
    try:
        assert instrument(flavour.library) == {}
        assert wrapped_attributes(flavour) == before
        cache = flavour.connect(memcached.address)
        client.begin_transaction("request")
        cache.get("anything")
        client.end_transaction("job")
        close(cache)
        assert exported(client).spans == []
    finally:
        client.close()


@pytest.mark.parametrize("flavour", LIBRARIES, ids=repr)
def test_uninstrument_restores_the_library(client, instrument, memcached, flavour):
    before = wrapped_attributes(flavour)
    instrument(flavour.library)
    assert wrapped_attributes(flavour) != before
    oxapm.uninstrument()
    assert wrapped_attributes(flavour) == before
    cache = flavour.connect(memcached.address)
    client.begin_transaction("request")
    cache.get("anything")
    client.end_transaction("job")
    close(cache)
    assert exported(client).spans == []


@pytest.mark.parametrize("flavour", FLAVOURS, ids=repr)
def test_a_failing_agent_leaves_the_commands_working_with_one_warning(client, instrument, memcached, flavour, key, monkeypatch, caplog):
    def broken(*args):
        raise RuntimeError("agent bug")

    instrumentation = {"pymemcache": pymemcache_instrumentation, "python-memcached": python_memcached_instrumentation, "pylibmc": pylibmc_instrumentation}
    monkeypatch.setattr(instrumentation[flavour.library], "destination", broken)
    caplog.set_level(logging.WARNING, logger="oxapm")
    cache = flavour.connect(memcached.address)
    instrument(flavour.library)
    client.begin_transaction("request")
    cache.set(key, "text")
    assert cache.get(key) in ("text", b"text")
    with pytest.raises(flavour.error(flavour.server_error)):
        cache.incr(key, 1)
    client.end_transaction("job")
    close(cache)
    assert exported(client).spans == []
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "%s instrumentation failed" % flavour.library in warning.getMessage() and warning.exc_info[0] is RuntimeError


@pytest.mark.parametrize("contrib_first", [False, True], ids=["contrib-over-ours", "ours-over-contrib"])
def test_no_double_reporting_with_the_opentelemetry_contrib_instrumentation(client, instrument, monkeypatch, memcached, key, contrib_first):
    PymemcacheInstrumentor = pytest.importorskip("opentelemetry.instrumentation.pymemcache").PymemcacheInstrumentor
    from opentelemetry import trace

    from oxapm.otel.trace import TracerProvider

    provider = TracerProvider(client)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    contrib = PymemcacheInstrumentor()
    # Applied in either order, removed in the reverse one (each restores what it found).
    if contrib_first:
        contrib.instrument(tracer_provider=provider)
        instrument("pymemcache")
    else:
        instrument("pymemcache")
        contrib.instrument(tracer_provider=provider)
    plain, pooled = PYMEMCACHE.connect(memcached.address), POOLED.connect(memcached.address)
    try:
        client.begin_transaction("request")
        plain.set(key, "text")
        plain.get(key)
        pooled.get(key)
        client.end_transaction("job")
    finally:
        if contrib_first:
            oxapm.uninstrument()
        contrib.uninstrument()
        close(plain)
        close(pooled)
    spans = exported(client).spans
    assert [(span["name"], span["subtype"]) for span in spans] == [("Client.set", "memcached"), ("Client.get", "memcached"), ("PooledClient.get", "memcached")]
