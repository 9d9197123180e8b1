"""oxapm's psycopg (3) instrumentation against a real PostgreSQL (tests/servers.py): Connection and
AsyncConnection, connect and statement spans, the connection's ``execute``, the library features
that take a connection or cursor, failures, concurrency, disabling, uninstrumenting and contained
agent failures."""

import asyncio
import json

import pytest
from conftest import exported
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
from oxapm.instrumentation.psycopg import PsycopgInstrumentation

psycopg = pytest.importorskip("psycopg")
from psycopg import sql  # noqa: E402
from psycopg.types import TypeInfo  # noqa: E402
from psycopg.types.json import set_json_loads  # noqa: E402

CREATE = "CREATE TEMPORARY TABLE orders (id SERIAL PRIMARY KEY, item TEXT)"


@pytest.fixture
def endpoint(postgres):
    return server_endpoint("postgresql", postgres)


@pytest.fixture
def instrumentation():
    with instrumented(PsycopgInstrumentation) as applied:
        yield applied


def test_connect_and_each_statement_are_exit_spans(client, postgres, endpoint, instrumentation):
    def work():
        with psycopg.connect(postgres.dsn) as connection:
            with connection.cursor() as cursor:
                cursor.execute(CREATE)
                cursor.execute("INSERT INTO orders (item) VALUES (%s)", ("apple",))
                cursor.executemany("INSERT INTO orders (item) VALUES (%(item)s)", [{"item": "pear"}, {"item": "plum"}])
            connection.commit()
            rows = connection.execute(sql.SQL("SELECT {} FROM {} ORDER BY id").format(sql.Identifier("item"), sql.Identifier("orders"))).fetchall()
            connection.execute("DELETE FROM orders")
            connection.rollback()
            return rows

    rows, spans = spans_of_work(client, work)
    assert rows == [("apple",), ("pear",), ("plum",)]
    assert [summary(span) for span in spans] == [
        expected("psycopg.connect", None, endpoint, action="connect"),
        expected("CREATE", CREATE, endpoint),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES (%s)", endpoint, rows_affected=1),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES (%(item)s)", endpoint, rows_affected=2),
        expected("COMMIT", "COMMIT", endpoint),
        expected("SELECT FROM orders", 'SELECT "item" FROM "orders" ORDER BY id', endpoint),
        expected("DELETE FROM orders", "DELETE FROM orders", endpoint, rows_affected=3),
        expected("ROLLBACK", "ROLLBACK", endpoint),
    ]
    assert all(inferred_targets(span) == expected_targets(endpoint) for span in spans)


def test_the_class_connect_that_pools_call_is_traced_too(client, postgres, instrumentation):
    def work():
        with psycopg.Connection.connect(postgres.dsn, autocommit=True) as connection:
            return connection.execute("SELECT 1").fetchone()

    row, spans = spans_of_work(client, work)
    assert row == (1,) and [span["name"] for span in spans] == ["psycopg.connect", "SELECT"]


def test_library_features_that_take_a_connection_or_cursor(client, postgres, instrumentation):
    with psycopg.connect(postgres.dsn) as connection:
        cursor = connection.cursor()
        assert isinstance(connection, psycopg.Connection) and isinstance(cursor, psycopg.Cursor)
        assert cursor.connection is connection and isinstance(cursor, dbapi.CursorProxy)
        assert connection.execute("SELECT 1").connection is connection
        set_json_loads(lambda data: ("decoded", json.loads(data)), connection)
        assert connection.execute("SELECT '{\"a\": 1}'::jsonb").fetchone() == (("decoded", {"a": 1}),)
        info = TypeInfo.fetch(connection, "int4")
        assert info.oid == 23
        assert sql.Literal("it's").as_string(connection) == "'it''s'" and sql.Identifier("t").as_string(cursor) == '"t"'
        with connection.transaction():  # psycopg's own BEGIN and COMMIT
            connection.execute(CREATE)
        with cursor.copy("COPY orders (item) FROM STDIN") as copy:
            copy.write_row(("fig",))
        assert list(cursor.stream("SELECT item FROM orders")) == [("fig",)]
        with connection.cursor(name="server_side") as named:
            named.itersize = 2
            named.execute("SELECT generate_series(1, 5)")
            assert [row for row in named] == [(1,), (2,), (3,), (4,), (5,)]


def test_a_failing_statement_fails_its_span_and_the_error_is_the_librarys(client, postgres, endpoint, instrumentation):
    with psycopg.connect(postgres.dsn, autocommit=True) as connection:
        def work():
            with pytest.raises(psycopg.errors.SyntaxError) as raised:
                connection.execute("SELEC 1")
            return raised

        raised, spans = spans_of_work(client, work)
    assert type(raised.value) is psycopg.errors.SyntaxError
    assert [summary(span) for span in spans] == [expected("SELEC", "SELEC 1", endpoint, outcome="failure")]


def test_async_connections_under_concurrency(client, postgres, endpoint, instrumentation):
    async def job(number):
        async with await psycopg.AsyncConnection.connect(postgres.dsn) as connection:
            async with connection.cursor() as cursor:
                await cursor.execute("SELECT %s::int, pg_sleep(0.05)", (number,))
                row = await cursor.fetchone()
            cursor = await connection.execute("SELECT %s::int + 1", (number,))
            async for incremented in cursor:
                row += incremented
            await connection.commit()
            return row

    async def jobs():
        return await asyncio.gather(*(job(n) for n in range(4)))

    rows, spans = spans_of_work(client, lambda: asyncio.run(jobs()))
    assert rows == [(n, "", n + 1) for n in range(4)]
    transaction_id = spans[0]["transaction_id"]
    assert all(span["parent_id"] == transaction_id for span in spans)  # concurrent spans are siblings
    assert sorted(span["context"]["db"].get("statement", span["name"]) for span in spans) == sorted(
        ["psycopg.connect", "SELECT %s::int, pg_sleep(0.05)", "SELECT %s::int + 1", "COMMIT"] * 4)
    connect = next(span for span in spans if span["action"] == "connect")
    assert summary(connect) == expected("psycopg.connect", None, endpoint, action="connect")


def test_a_failing_async_statement(client, postgres, endpoint, instrumentation):
    async def work():
        async with await psycopg.AsyncConnection.connect(postgres.dsn, autocommit=True) as connection:
            with pytest.raises(psycopg.errors.UndefinedTable):
                await connection.execute("SELECT * FROM missing")

    _, spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert [summary(span) for span in spans][1:] == [expected("SELECT FROM missing", "SELECT * FROM missing", endpoint, outcome="failure")]


def test_disabled_by_name(monkeypatch, only_registered, postgres):
    monkeypatch.setenv("ELASTIC_APM_DISABLED_INSTRUMENTATIONS", "psycopg")
    only_registered("psycopg")
    client = oxapm.Client(service_name="test-service", traces_exporter="memory")
    try:
        oxapm.instrument()
        assert control.applied() == {}
        with psycopg.connect(postgres.dsn) as connection:
            assert type(connection) is psycopg.Connection
    finally:
        client.close()


def test_instrument_applies_it_and_uninstrument_restores_connect(client, only_registered, postgres):
    only_registered("psycopg")
    originals = (psycopg.connect, vars(psycopg.Connection)["connect"], vars(psycopg.AsyncConnection)["connect"])
    oxapm.instrument()
    assert isinstance(control.applied()["psycopg"], PsycopgInstrumentation)
    oxapm.uninstrument()
    assert (psycopg.connect, vars(psycopg.Connection)["connect"], vars(psycopg.AsyncConnection)["connect"]) == originals
    with psycopg.connect(postgres.dsn) as connection:
        assert type(connection) is psycopg.Connection


def test_an_agent_failure_leaves_the_statement_working_with_one_warning(client, postgres, caplog, monkeypatch, instrumentation):
    break_statement_spans(monkeypatch)
    with psycopg.connect(postgres.dsn) as connection, one_warning_per_failure(caplog, monkeypatch, "psycopg"):
        rows, spans = spans_of_work(client, lambda: [connection.execute("SELECT %s::int", (n,)).fetchone() for n in range(3)])
    assert rows == [(0,), (1,), (2,)] and spans == []
    assert exported(client).spans == []
