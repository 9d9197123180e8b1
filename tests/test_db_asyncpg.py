"""oxapm's asyncpg instrumentation against a real PostgreSQL (tests/servers.py): connect and
statement spans from connections, prepared statements, transactions and pools, rows affected from
the command status, concurrency, failures, both export formats, disabling, uninstrumenting and
contained agent failures."""

import asyncio

import pytest
from dbtesting import (
    both_formats,
    break_statement_spans,
    expected,
    expected_targets,
    inferred_targets,
    instrumented,
    one_warning_per_failure,
    only_registered,  # noqa: F401 (a fixture)
    server_endpoint,
    spans_of_work,
    summary,
)

import oxapm
from oxapm.instrumentation import control
from oxapm.instrumentation.asyncpg import AsyncpgInstrumentation

asyncpg = pytest.importorskip("asyncpg")
import asyncpg.connection  # noqa: E402
import asyncpg.prepared_stmt  # noqa: E402

CREATE = "CREATE TEMPORARY TABLE orders (id SERIAL PRIMARY KEY, item TEXT)"


@pytest.fixture
def endpoint(postgres):
    return server_endpoint("postgresql", postgres)


@pytest.fixture
def instrumentation():
    with instrumented(AsyncpgInstrumentation) as applied:
        yield applied


def test_connect_and_each_statement_are_exit_spans(client, postgres, endpoint, instrumentation):
    async def work():
        connection = await asyncpg.connect(postgres.url)
        try:
            await connection.execute(CREATE)
            await connection.execute("INSERT INTO orders (item) VALUES ($1)", "apple")
            await connection.executemany("INSERT INTO orders (item) VALUES ($1)", [("pear",), ("plum",)])
            async with connection.transaction():
                updated = await connection.execute("UPDATE orders SET item = upper(item) WHERE item <> 'apple'")
            rows = await connection.fetch("SELECT item FROM orders ORDER BY id")
            count = await connection.fetchval("SELECT count(*) FROM orders")
            first = await connection.fetchrow(query="SELECT item FROM orders WHERE id = 1")
            statement = await connection.prepare("SELECT item FROM orders WHERE id > $1 ORDER BY id")
            prepared = await statement.fetch(1)
            return updated, [r["item"] for r in rows], count, first["item"], [r["item"] for r in prepared]
        finally:
            await connection.close()

    results, spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert results == ("UPDATE 2", ["apple", "PEAR", "PLUM"], 3, "apple", ["PEAR", "PLUM"])
    assert [summary(span) for span in spans] == [
        expected("asyncpg.connect", None, endpoint, action="connect"),
        expected("CREATE", CREATE, endpoint),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES ($1)", endpoint, rows_affected=1),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES ($1)", endpoint),  # executemany returns no status
        expected("BEGIN", "BEGIN;", endpoint),
        expected("UPDATE orders", "UPDATE orders SET item = upper(item) WHERE item <> 'apple'", endpoint, rows_affected=2),
        expected("COMMIT", "COMMIT;", endpoint),
        expected("SELECT FROM orders", "SELECT item FROM orders ORDER BY id", endpoint),
        expected("SELECT FROM orders", "SELECT count(*) FROM orders", endpoint),
        expected("SELECT FROM orders", "SELECT item FROM orders WHERE id = 1", endpoint),
        expected("SELECT FROM orders", "SELECT item FROM orders WHERE id > $1 ORDER BY id", endpoint),
    ]
    assert all(inferred_targets(span) == expected_targets(endpoint) for span in spans)


def test_pools_under_concurrency(client, postgres, endpoint, instrumentation):
    async def work():
        async with asyncpg.create_pool(postgres.url, min_size=0, max_size=4) as pool:
            return await asyncio.gather(*(pool.fetchval("SELECT $1::int FROM pg_sleep(0.05)", n) for n in range(4)))

    numbers, spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert numbers == [0, 1, 2, 3]
    assert all(span["parent_id"] == span["transaction_id"] for span in spans)  # concurrent spans are siblings
    queries = [summary(span) for span in spans if span["name"] == "SELECT FROM pg_sleep"]
    assert queries == [expected("SELECT FROM pg_sleep", "SELECT $1::int FROM pg_sleep(0.05)", endpoint)] * 4
    # The pool resets each connection it gets back with a statement of its own, traced like the others.
    resets = [span["context"]["db"]["statement"] for span in spans if span["name"] == "SELECT"]
    assert len(resets) == 4 and all("RESET ALL" in reset for reset in resets)
    assert [summary(span) for span in spans if span["action"] == "connect"] == [expected("asyncpg.connect", None, endpoint, action="connect")] * 4


def test_a_failing_statement_fails_its_span_and_the_error_is_the_librarys(client, postgres, endpoint, instrumentation):
    async def work():
        connection = await asyncpg.connect(postgres.url)
        try:
            with pytest.raises(asyncpg.PostgresSyntaxError) as raised:
                await connection.fetch("SELEC 1")
            return raised
        finally:
            await connection.close()

    raised, spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert type(raised.value) is asyncpg.PostgresSyntaxError
    assert [summary(span) for span in spans][1:] == [expected("SELEC", "SELEC 1", endpoint, outcome="failure")]


def test_a_failing_connect_fails_its_span(client, postgres, instrumentation):
    async def work():
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(postgres.url.replace(postgres.password, "wrong"))

    _, spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert [(span["name"], span["action"], span["outcome"]) for span in spans] == [("asyncpg.connect", "connect", "failure")]


def test_both_export_formats(monkeypatch, intake, otlp_http, postgres, endpoint, instrumentation):
    async def work():
        connection = await asyncpg.connect(postgres.url)
        await connection.fetchval("SELECT 1 FROM pg_class LIMIT 1")
        await connection.close()

    with both_formats(monkeypatch, intake, otlp_http) as (client, found):
        client.begin_transaction("job")
        asyncio.run(work())
        client.end_transaction("job", "success")
    assert [summary(span) for span in found["intake"]] == [
        expected("asyncpg.connect", None, endpoint, action="connect"),
        expected("SELECT FROM pg_class", "SELECT 1 FROM pg_class LIMIT 1", endpoint),
    ]
    otlp = found["otlp"]["SELECT FROM pg_class"]
    assert (otlp["elastic.span.type"], otlp["elastic.span.subtype"], otlp["elastic.span.action"]) == ("db", "postgresql", "query")
    assert otlp["db.system.name"] == "postgresql" and otlp["db.query.text"] == "SELECT 1 FROM pg_class LIMIT 1"
    assert (otlp["db.namespace"], otlp["db.user"], otlp["server.address"], otlp["server.port"]) == (
        postgres.database, postgres.user, "127.0.0.1", postgres.port)


def test_disabled_by_name_or_applied_and_removed(monkeypatch, only_registered):
    Connection = asyncpg.connection.Connection
    originals = (asyncpg.connect, asyncpg.connection.connect, vars(Connection)["fetch"], vars(asyncpg.prepared_stmt.PreparedStatement)["fetch"])
    only_registered("asyncpg")
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "asyncpg")
    client = oxapm.Client(service_name="test-service", traces_exporter="memory")
    try:
        oxapm.instrument()
        assert control.applied() == {}
    finally:
        client.close()
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS")
    client = oxapm.Client(service_name="test-service", traces_exporter="memory")
    try:
        oxapm.instrument()
        assert set(control.applied()) == {"asyncpg"} and vars(Connection)["fetch"] is not originals[2]
        oxapm.uninstrument()
        assert (asyncpg.connect, asyncpg.connection.connect, vars(Connection)["fetch"], vars(asyncpg.prepared_stmt.PreparedStatement)["fetch"]) == originals
    finally:
        client.close()


def test_an_agent_failure_leaves_the_statement_working_with_one_warning(client, postgres, caplog, monkeypatch, instrumentation):
    async def work():
        connection = await asyncpg.connect(postgres.url)
        try:
            break_statement_spans(monkeypatch)
            return [await connection.fetchval("SELECT $1::int", n) for n in range(3)]
        finally:
            await connection.close()

    with one_warning_per_failure(caplog, monkeypatch, "asyncpg"):
        numbers, spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert numbers == [0, 1, 2] and [span["action"] for span in spans] == ["connect"]
