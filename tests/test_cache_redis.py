"""oxapm's redis instrumentation against a real Redis: each command an exit span, pipelines one span,
the asyncio client under concurrency, failures, both export formats, disabling, removal, contained
failures of the agent and no double reporting with OpenTelemetry's contrib instrumentation."""

import asyncio
import json
import logging
import uuid

import pytest
import servers
from cache_support import closed_port, exported_context, instrument, redis_unix_socket  # noqa: F401 (fixtures)
from conftest import attributes, exported, spans_of, use_otlp

import oxapm
import oxapm.instrumentation.redis as redis_instrumentation
from oxapm import _core

redis = pytest.importorskip("redis")
import redis.asyncio  # noqa: E402

SECRET_VALUE = "card-4111-1111-1111-1111"

PATCHED = [
    (redis.client.Redis, "execute_command"),
    (redis.client.Pipeline, "immediate_execute_command"),
    (redis.client.Pipeline, "execute"),
    (redis.asyncio.client.Redis, "execute_command"),
    (redis.asyncio.client.Pipeline, "immediate_execute_command"),
    (redis.asyncio.client.Pipeline, "execute"),
]


def patched():
    """Identities of what the patched attributes hold (a wrapper compares equal to what it wraps)."""
    return [id(vars(owner)[name]) for owner, name in PATCHED]


@pytest.fixture
def key():
    """A key of this test alone, shaped like the keys that must never be exported."""
    return "session:alice@example.com:%s" % uuid.uuid4().hex


@pytest.fixture
def cache(redis_server):
    connection = redis.Redis.from_url(redis_server.url)
    yield connection
    connection.close()


def leaked(events, *secrets):
    text = json.dumps(events.all)
    return [secret for secret in secrets if secret in text]


def test_each_command_is_an_exit_span(client, instrument, cache, redis_server, key):
    instrument("redis")
    transaction = client.begin_transaction("request")
    cache.set(key, SECRET_VALUE)
    assert cache.get(key) == SECRET_VALUE.encode()
    cache.lpush(key + ":list", 1, 2)
    assert cache.execute_command(b"LLEN", key + ":list") == 2  # a command name given as bytes
    client.end_transaction("job", "success")
    events = exported(client)
    assert [span["name"] for span in events.spans] == ["SET", "GET", "LPUSH", "LLEN"]
    for span in events.spans:
        assert (span["type"], span["subtype"], span["action"], span["outcome"]) == ("db", "redis", "query", "success")
        assert span["parent_id"] == transaction.id
        assert span["context"] == exported_context("redis", servers.HOST, redis_server.port)  # no statement, no instance
    assert leaked(events, key, SECRET_VALUE, servers.PASSWORD) == []


def test_the_otlp_export(otlp_http, monkeypatch, instrument, redis_server, key):
    use_otlp(monkeypatch, otlp_http.url)
    client = oxapm.Client(service_name="shop")
    instrument("redis")
    cache = redis.Redis.from_url(redis_server.url)
    client.begin_transaction("request")
    cache.set(key, SECRET_VALUE)
    with pytest.raises(redis.ResponseError):
        cache.lpush(key, 1)
    client.end_transaction("job")
    client.close()
    cache.close()
    spans = {span.name: span for span in spans_of(otlp_http.requests)}
    assert set(spans) == {"SET", "LPUSH", "job"}
    for name in ("SET", "LPUSH"):
        span = spans[name]
        assert span.kind == span.SPAN_KIND_CLIENT
        found = attributes(span.attributes)
        assert (found["elastic.span.type"], found["elastic.span.subtype"], found["elastic.span.action"]) == ("db", "redis", "query")
        assert (found["db.system.name"], found["server.address"], found["server.port"]) == ("redis", servers.HOST, redis_server.port)
        assert "db.query.text" not in found and "db.namespace" not in found
    assert spans["SET"].status.code == spans["SET"].status.STATUS_CODE_OK
    assert spans["LPUSH"].status.code == spans["LPUSH"].status.STATUS_CODE_ERROR
    assert all(SECRET_VALUE.encode() not in request["body"] and key.encode() not in request["body"] for request in otlp_http.requests)


def test_a_wrong_type_command_fails_and_its_error_propagates(client, instrument, cache, key):
    cache.set(key, "text")
    with pytest.raises(redis.ResponseError) as uninstrumented:
        cache.lpush(key, 1)
    instrument("redis")
    client.begin_transaction("request")
    with pytest.raises(redis.ResponseError) as instrumented:
        cache.lpush(key, 1)
    client.end_transaction("job")
    assert str(instrumented.value) == str(uninstrumented.value) and "WRONGTYPE" in str(instrumented.value)
    (span,) = exported(client).spans
    assert (span["name"], span["outcome"]) == ("LPUSH", "failure")


def test_a_closed_server_fails_with_a_connection_error(client, instrument):
    instrument("redis")
    port = closed_port()
    cache = redis.Redis(host=servers.HOST, port=port, retry_on_error=[])
    client.begin_transaction("request")
    with pytest.raises(redis.ConnectionError):
        cache.get("anything")
    client.end_transaction("job")
    (span,) = exported(client).spans
    assert (span["name"], span["outcome"]) == ("GET", "failure")
    assert span["context"] == exported_context("redis", servers.HOST, port)


def test_a_pipeline_is_one_span_named_after_its_kind(client, instrument, cache, key):
    instrument("redis")
    client.begin_transaction("request")
    with cache.pipeline(transaction=True) as pipe:
        pipe.set(key, 1).incr(key).get(key)
        assert pipe.execute() == [True, 2, b"2"]
    with cache.pipeline(transaction=False) as pipe:
        pipe.incr(key).incr(key)
        assert pipe.execute() == [3, 4]
    with cache.pipeline() as pipe:  # WATCH sends at once, as does what follows it until MULTI
        pipe.watch(key)
        current = int(pipe.get(key))
        pipe.multi()
        pipe.set(key, current + 1)
        assert pipe.execute() == [True]
    client.end_transaction("job")
    assert [span["name"] for span in exported(client).spans] == ["MULTI", "PIPELINE", "WATCH", "GET", "MULTI"]


def test_a_failing_pipeline_fails(client, instrument, cache, key):
    cache.set(key, "text")
    instrument("redis")
    client.begin_transaction("request")
    with cache.pipeline(transaction=True) as pipe:
        pipe.get(key).lpush(key, 1)
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            pipe.execute()
    client.end_transaction("job")
    (span,) = exported(client).spans
    assert (span["name"], span["outcome"]) == ("MULTI", "failure")


def test_asyncio_commands_and_pipelines_under_concurrency(client, instrument, redis_server, key):
    instrument("redis")

    async def worker(cache, n):
        await cache.incr(key)
        async with cache.pipeline(transaction=n % 2 == 0) as pipe:
            pipe.incr(key).get(key)
            await pipe.execute()
        if n == 0:
            with pytest.raises(redis.ResponseError):
                await cache.lpush(key, 1)

    async def main():
        cache = redis.asyncio.Redis.from_url(redis_server.url)
        transaction = client.begin_transaction("request")
        await asyncio.gather(*(worker(cache, n) for n in range(20)))
        client.end_transaction("job")
        await getattr(cache, "aclose", cache.close)()  # aclose from redis 5
        return transaction

    transaction = asyncio.run(main())
    spans = exported(client).spans
    names = sorted(span["name"] for span in spans)
    assert names == sorted(["INCRBY"] * 20 + ["MULTI"] * 10 + ["PIPELINE"] * 10 + ["LPUSH"])
    assert {span["parent_id"] for span in spans} == {transaction.id}  # siblings, none inside another
    assert [span["name"] for span in spans if span["outcome"] == "failure"] == ["LPUSH"]
    assert {span["subtype"] for span in spans} == {"redis"}
    assert all(span["context"] == exported_context("redis", servers.HOST, redis_server.port) for span in spans)


def test_a_unix_socket_is_the_address_without_a_port(client, instrument, redis_unix_socket):
    instrument("redis")
    cache = redis.Redis(unix_socket_path=redis_unix_socket)
    client.begin_transaction("request")
    cache.ping()
    client.end_transaction("job")
    cache.close()
    (span,) = exported(client).spans
    assert span["context"] == exported_context("redis", redis_unix_socket)


def test_no_span_outside_a_transaction(client, instrument, cache, key):
    instrument("redis")
    cache.set(key, 1)
    assert cache.get(key) == b"1"
    assert exported(client).spans == []


def test_nothing_below_an_unsampled_opentelemetry_span(monkeypatch, instrument, cache, key, caplog):
    trace = pytest.importorskip("opentelemetry.trace")

    from oxapm.otel.trace import TracerProvider

    client = oxapm.Client(service_name="shop", traces_exporter="memory", transaction_sample_rate=0.0)
    try:
        monkeypatch.setattr(trace, "_TRACER_PROVIDER", TracerProvider(client))
        caplog.set_level(logging.WARNING, logger="oxapm")
        instrument("redis")
        client.begin_transaction("request")
        with trace.get_tracer("app").start_as_current_span("work", kind=trace.SpanKind.CLIENT) as span:
            assert not span.is_recording()  # the current span is the API's NonRecordingSpan
            cache.set(key, 1)
        client.end_transaction("job")
        assert exported(client).spans == [] and caplog.records == []
    finally:
        client.close()


@pytest.mark.parametrize("how", ["option", "environment"])
def test_disabled_by_name(monkeypatch, instrument, redis_server, how):
    originals = patched()
    if how == "environment":
        monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "redis")
        client = oxapm.Client(service_name="shop", traces_exporter="memory")
    else:
        client = oxapm.Client(service_name="shop", traces_exporter="memory", disabled_instrumentations="redis")
    try:
        assert instrument("redis") == {}
        assert patched() == originals
        client.begin_transaction("request")
        redis.Redis.from_url(redis_server.url).ping()
        client.end_transaction("job")
        assert exported(client).spans == []
    finally:
        client.close()


def test_uninstrument_restores_redis(client, instrument, cache):
    originals = patched()
    instrument("redis")
    assert patched() != originals
    oxapm.uninstrument()
    assert patched() == originals
    client.begin_transaction("request")
    cache.ping()
    client.end_transaction("job")
    assert exported(client).spans == []


@pytest.mark.parametrize("owner, helper", [(redis_instrumentation, "destination"), (_core, "begin_exit_span")], ids=["ours", "engine"])
def test_a_failing_agent_leaves_the_commands_working_with_one_warning(client, instrument, cache, key, monkeypatch, caplog, owner, helper):
    def broken(*args):
        raise RuntimeError("agent bug")

    monkeypatch.setattr(owner, helper, broken)
    caplog.set_level(logging.WARNING, logger="oxapm")
    instrument("redis")
    client.begin_transaction("request")
    cache.set(key, "text")
    assert cache.get(key) == b"text"
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        cache.lpush(key, 1)
    client.end_transaction("job")
    assert exported(client).spans == []
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "redis instrumentation failed" in warning.getMessage() and warning.exc_info[0] is RuntimeError


@pytest.mark.parametrize("contrib_first", [False, True], ids=["contrib-over-ours", "ours-over-contrib"])
def test_no_double_reporting_with_the_opentelemetry_contrib_instrumentation(client, instrument, monkeypatch, redis_server, cache, key, contrib_first):
    RedisInstrumentor = pytest.importorskip("opentelemetry.instrumentation.redis").RedisInstrumentor
    from opentelemetry import trace

    from oxapm.otel.trace import TracerProvider

    provider = TracerProvider(client)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    contrib = RedisInstrumentor()
    # Applied in either order, removed in the reverse one (each restores what it found).
    if contrib_first:
        contrib.instrument(tracer_provider=provider)
        instrument("redis")
    else:
        instrument("redis")
        contrib.instrument(tracer_provider=provider)

    async def asynchronous():
        connection = redis.asyncio.Redis.from_url(redis_server.url)
        await connection.get(key)
        await getattr(connection, "aclose", connection.close)()

    try:
        client.begin_transaction("request")
        cache.set(key, 1)
        with cache.pipeline() as pipe:
            pipe.incr(key).incr(key)
            pipe.execute()
        asyncio.run(asynchronous())
        client.end_transaction("job")
    finally:
        if contrib_first:
            oxapm.uninstrument()
        contrib.uninstrument()
    spans = exported(client).spans
    assert len(spans) == 3
    assert {(span["type"], span["subtype"]) for span in spans} == {("db", "redis")}
    if contrib_first:  # ours is outside: its exit spans are the leaves
        assert [span["name"] for span in spans] == ["SET", "MULTI", "GET"]
