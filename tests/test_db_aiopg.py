"""oxapm's aiopg instrumentation against a real PostgreSQL (tests/servers.py): connect and
statement spans from connections and pools, awaited or entered, concurrency, failures, one span
with psycopg2's instrumentation applied too, disabling, uninstrumenting and contained failures."""

import asyncio

import pytest
from dbtesting import (
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
from oxapm.instrumentation import control, dbapi
from oxapm.instrumentation.aiopg import AiopgInstrumentation
from oxapm.instrumentation.psycopg2 import Psycopg2Instrumentation

aiopg = pytest.importorskip("aiopg")
import psycopg2  # noqa: E402
import psycopg2.errors  # noqa: E402


@pytest.fixture
def endpoint(postgres):
    return server_endpoint("postgresql", postgres)


@pytest.fixture
def instrumentation():
    # With psycopg2's too, as an application using aiopg has it: aiopg's connections stay aiopg's.
    with instrumented(Psycopg2Instrumentation), instrumented(AiopgInstrumentation) as applied:
        yield applied


def test_connect_and_each_statement_are_exit_spans(client, postgres, endpoint, instrumentation):
    async def work():
        async with aiopg.connect(postgres.dsn) as connection:
            assert isinstance(connection, dbapi.AsyncConnectionProxy) and isinstance(connection, aiopg.Connection)
            async with connection.cursor() as cursor:
                assert cursor.connection is connection and isinstance(cursor, aiopg.Cursor)
                await cursor.execute("CREATE TEMPORARY TABLE orders (id SERIAL PRIMARY KEY, item TEXT)")
                await cursor.execute("INSERT INTO orders (item) VALUES (%s), (%s)", ("apple", "pear"))
                await cursor.callproc("upper", ("fig",))
                procedure = await cursor.fetchone()
            cursor = await connection.cursor()  # awaited instead of entered
            await cursor.execute("SELECT item FROM orders ORDER BY id")
            rows = [row async for row in cursor]
            cursor.close()
            return procedure, rows

    (procedure, rows), spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert procedure == ("FIG",) and rows == [("apple",), ("pear",)]
    assert [summary(span) for span in spans] == [
        expected("aiopg.connect", None, endpoint, action="connect"),
        expected("CREATE", "CREATE TEMPORARY TABLE orders (id SERIAL PRIMARY KEY, item TEXT)", endpoint),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES (%s), (%s)", endpoint, rows_affected=2),
        expected("upper()", "upper", endpoint, action="exec"),
        expected("SELECT FROM orders", "SELECT item FROM orders ORDER BY id", endpoint),
    ]
    assert all(inferred_targets(span) == expected_targets(endpoint) for span in spans)


def test_pools_under_concurrency(client, postgres, endpoint, instrumentation):
    async def work():
        async with aiopg.create_pool(postgres.dsn, minsize=0, maxsize=4) as pool:
            async def job(number):
                async with pool.acquire() as connection, connection.cursor() as cursor:
                    await cursor.execute("SELECT %s, pg_sleep(0.05)", (number,))
                    return (await cursor.fetchone())[0]

            return await asyncio.gather(*(job(n) for n in range(4)))

    numbers, spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert numbers == [0, 1, 2, 3]
    assert all(span["parent_id"] == span["transaction_id"] for span in spans)
    queries = [summary(span) for span in spans if span["action"] == "query"]
    assert queries == [expected("SELECT", "SELECT %s, pg_sleep(0.05)", endpoint)] * 4
    assert {span["name"] for span in spans if span["action"] == "connect"} == {"aiopg.connect"}


def test_a_failing_statement_fails_its_span_and_the_error_is_the_librarys(client, postgres, endpoint, instrumentation):
    async def work():
        async with aiopg.connect(postgres.dsn) as connection, connection.cursor() as cursor:
            with pytest.raises(psycopg2.errors.SyntaxError) as raised:
                await cursor.execute("SELEC 1")
            return raised

    raised, spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert type(raised.value) is psycopg2.errors.SyntaxError
    assert [summary(span) for span in spans][1:] == [expected("SELEC", "SELEC 1", endpoint, outcome="failure")]


def test_disabled_by_name(monkeypatch, only_registered, postgres):
    monkeypatch.setenv("ELASTIC_APM_DISABLED_INSTRUMENTATIONS", "aiopg")
    only_registered("aiopg")
    client = oxapm.Client(service_name="test-service", traces_exporter="memory")
    try:
        oxapm.instrument()
        assert control.applied() == {}

        async def connect():
            async with aiopg.connect(postgres.dsn) as connection:
                return type(connection)

        assert asyncio.run(connect()) is aiopg.Connection
    finally:
        client.close()


def test_instrument_applies_it_and_uninstrument_restores_connect(client, only_registered):
    import aiopg.connection
    import aiopg.pool

    only_registered("aiopg")
    originals = (aiopg.connect, aiopg.connection.connect, aiopg.pool.connect)
    oxapm.instrument()
    assert isinstance(control.applied()["aiopg"], AiopgInstrumentation)
    assert aiopg.pool.connect is not originals[2]
    oxapm.uninstrument()
    assert (aiopg.connect, aiopg.connection.connect, aiopg.pool.connect) == originals


def test_an_agent_failure_leaves_the_statement_working_with_one_warning(client, postgres, caplog, monkeypatch, instrumentation):
    break_statement_spans(monkeypatch)

    async def work():
        async with aiopg.connect(postgres.dsn) as connection, connection.cursor() as cursor:
            await cursor.execute("SELECT 1")
            return await cursor.fetchone()

    with one_warning_per_failure(caplog, monkeypatch, "aiopg"):
        row, spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert row == (1,) and [span["action"] for span in spans] == ["connect"]
