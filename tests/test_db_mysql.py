"""oxapm's instrumentations of the MySQL clients (PyMySQL, mysqlclient, aiomysql) against a real
MariaDB (tests/servers.py): connect and statement spans, stored procedures, transactions, the
proxies passing for the real objects, failures, both export formats, concurrency, disabling,
uninstrumenting and contained agent failures."""

import asyncio
import threading

import pytest
from conftest import exported
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
from oxapm.instrumentation import control, dbapi
from oxapm.instrumentation.aiomysql import AiomysqlInstrumentation
from oxapm.instrumentation.mysqlclient import MySQLClientInstrumentation
from oxapm.instrumentation.pymysql import PyMySQLInstrumentation

pymysql = pytest.importorskip("pymysql")
MySQLdb = pytest.importorskip("MySQLdb")
aiomysql = pytest.importorskip("aiomysql")
import aiomysql.connection  # noqa: E402
import aiomysql.pool  # noqa: E402

CREATE = "CREATE TEMPORARY TABLE orders (id INT AUTO_INCREMENT PRIMARY KEY, item VARCHAR(20))"


class Library:
    """A synchronous MySQL client under test: its module, its instrumentation and how it connects."""

    def __init__(self, name, module, instrumentation, connect_span):
        self.name, self.module, self.instrumentation, self.connect_span = name, module, instrumentation, connect_span

    def connect(self, service, **options):
        return self.module.connect(host=service.host, port=service.port, user=service.user, password=service.password,
                                   database=service.database, **options)

    def __repr__(self):
        return self.name


LIBRARIES = [
    Library("pymysql", pymysql, PyMySQLInstrumentation, "pymysql.connect"),
    Library("mysqlclient", MySQLdb, MySQLClientInstrumentation, "MySQLdb.connect"),
]


@pytest.fixture(params=LIBRARIES, ids=repr)
def library(request):
    with instrumented(request.param.instrumentation):
        yield request.param


@pytest.fixture
def endpoint(mariadb):
    return server_endpoint("mysql", mariadb)


@pytest.fixture(scope="module")
def procedure(mariadb):
    """A stored procedure in the test database (created without instrumentation)."""
    connection = pymysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user, password=mariadb.password, database=mariadb.database)
    with connection, connection.cursor() as cursor:
        cursor.execute("CREATE OR REPLACE PROCEDURE double_it(IN x INT) SELECT x * 2")
    return "double_it"


def test_connect_and_each_statement_are_exit_spans(client, mariadb, endpoint, library, procedure):
    def work():
        connection = library.connect(mariadb)
        with connection.cursor() as cursor:
            cursor.execute(CREATE)
            cursor.execute("INSERT INTO orders (item) VALUES (%s)", ("apple",))
            cursor.executemany("INSERT INTO orders (item) VALUES (%s)", [("pear",), ("plum",)])
            connection.commit()
            cursor.execute("UPDATE orders SET item = upper(item) WHERE item <> %s", ("apple",))
            connection.rollback()
            cursor.execute("SELECT item FROM orders ORDER BY id")
            rows = cursor.fetchall()
            cursor.callproc(procedure, (21,))
            doubled = cursor.fetchone()
        connection.close()
        return rows, doubled

    (rows, doubled), spans = spans_of_work(client, work)
    assert list(rows) == [("apple",), ("pear",), ("plum",)] and doubled == (42,)
    assert [summary(span) for span in spans] == [
        expected(library.connect_span, None, endpoint, action="connect"),
        expected("CREATE", CREATE, endpoint),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES (%s)", endpoint, rows_affected=1),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES (%s)", endpoint, rows_affected=2),
        expected("COMMIT", "COMMIT", endpoint),
        expected("UPDATE orders", "UPDATE orders SET item = upper(item) WHERE item <> %s", endpoint, rows_affected=2),
        expected("ROLLBACK", "ROLLBACK", endpoint),
        expected("SELECT FROM orders", "SELECT item FROM orders ORDER BY id", endpoint),
        expected("double_it()", "double_it", endpoint, action="exec"),
    ]
    assert all(inferred_targets(span) == expected_targets(endpoint) for span in spans)


def test_the_proxies_pass_for_the_real_objects(client, mariadb, library):
    with library.connect(mariadb) as connection:
        assert isinstance(connection, dbapi.ConnectionProxy)
        cursor = connection.cursor()
        assert cursor.connection is connection and isinstance(cursor, library.module.cursors.Cursor)
        cursor.execute("SELECT 1 UNION SELECT 2")
        assert [row for row in cursor] == [(1,), (2,)]
        with connection.cursor(library.module.cursors.DictCursor) as dict_cursor:
            dict_cursor.execute("SELECT 3 AS three")
            assert dict_cursor.fetchone() == {"three": 3}
        assert "MariaDB" in connection.get_server_info()  # the real connection's methods


def test_a_failing_statement_fails_its_span_and_the_error_is_the_librarys(client, mariadb, endpoint, library):
    connection = library.connect(mariadb)

    def work():
        with connection.cursor() as cursor, pytest.raises(library.module.ProgrammingError) as raised:
            cursor.execute("SELEC 1")
        return raised

    raised, spans = spans_of_work(client, work)
    connection.close()
    assert raised.value.args[0] == 1064  # ER_PARSE_ERROR
    assert [summary(span) for span in spans] == [expected("SELEC", "SELEC 1", endpoint, outcome="failure")]


def test_a_failing_connect_fails_its_span(client, mariadb, library):
    def work():
        with pytest.raises(library.module.OperationalError) as raised:
            library.module.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user, password="wrong")
        return raised

    raised, spans = spans_of_work(client, work)
    assert raised.value.args[0] == 1045  # ER_ACCESS_DENIED_ERROR
    assert [(span["name"], span["outcome"]) for span in spans] == [(library.connect_span, "failure")]


def test_threads_each_trace_into_their_own_transaction(client, mariadb, library):
    barrier = threading.Barrier(3)

    def job(number):
        connection = library.connect(mariadb)
        client.begin_transaction("job")
        barrier.wait()
        with connection.cursor() as cursor:
            cursor.execute("SELECT %s, SLEEP(0.05)", (number,))
        client.end_transaction("job %d" % number, "success")
        connection.close()

    threads = [threading.Thread(target=job, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events = exported(client)
    names = {t["id"]: t["name"] for t in events.transactions}
    assert sorted((names[s["transaction_id"]], s["context"]["db"]["statement"]) for s in events.spans) == [
        ("job %d" % n, "SELECT %s, SLEEP(0.05)") for n in range(3)]


def test_both_export_formats(monkeypatch, intake, otlp_http, mariadb, endpoint):
    with instrumented(PyMySQLInstrumentation), both_formats(monkeypatch, intake, otlp_http) as (client, found):
        connection = LIBRARIES[0].connect(mariadb)
        client.begin_transaction("job")
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM DUAL")
        client.end_transaction("job", "success")
        connection.close()
    assert [summary(span) for span in found["intake"]] == [expected("SELECT FROM DUAL", "SELECT 1 FROM DUAL", endpoint)]
    otlp = found["otlp"]["SELECT FROM DUAL"]
    assert (otlp["elastic.span.type"], otlp["elastic.span.subtype"], otlp["elastic.span.action"]) == ("db", "mysql", "query")
    assert otlp["db.system.name"] == "mysql" and otlp["db.query.text"] == "SELECT 1 FROM DUAL"
    assert (otlp["db.namespace"], otlp["db.user"], otlp["server.address"], otlp["server.port"]) == (
        mariadb.database, mariadb.user, "127.0.0.1", mariadb.port)


@pytest.mark.parametrize("name, patched", [
    ("pymysql", [(pymysql, "connect"), (pymysql, "Connect")]),
    ("mysqlclient", [(MySQLdb, "connect"), (MySQLdb, "Connect"), (MySQLdb, "Connection")]),
    ("aiomysql", [(aiomysql, "connect"), (aiomysql.connection, "connect"), (aiomysql.pool, "connect")]),
])
def test_disabled_by_name_or_applied_and_removed(monkeypatch, only_registered, name, patched):
    originals = [getattr(owner, attribute) for owner, attribute in patched]
    only_registered(name)
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", name)
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
        assert set(control.applied()) == {name}
        assert all(getattr(owner, attribute) is not original for (owner, attribute), original in zip(patched, originals))
        oxapm.uninstrument()
        assert [getattr(owner, attribute) for owner, attribute in patched] == originals
    finally:
        client.close()


def test_an_agent_failure_leaves_the_statement_working_with_one_warning(client, mariadb, caplog, monkeypatch, library):
    break_statement_spans(monkeypatch)
    connection = library.connect(mariadb)

    def work():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.execute("SELECT 2")
            return cursor.fetchone()

    with one_warning_per_failure(caplog, monkeypatch, library.name):
        row, spans = spans_of_work(client, work)
    connection.close()
    assert row == (2,) and spans == []


# --- aiomysql ---------------------------------------------------------------------------------------


@pytest.fixture
def aiomysql_instrumentation():
    with instrumented(AiomysqlInstrumentation) as applied:
        yield applied


def aiomysql_connect(service):
    return aiomysql.connect(host=service.host, port=service.port, user=service.user, password=service.password, db=service.database)


def test_aiomysql_connect_and_each_statement_are_exit_spans(client, mariadb, endpoint, procedure, aiomysql_instrumentation):
    async def work():
        async with aiomysql_connect(mariadb) as connection:
            assert isinstance(connection, dbapi.AsyncConnectionProxy) and isinstance(connection, aiomysql.Connection)
            async with connection.cursor() as cursor:
                assert cursor.connection is connection
                await cursor.execute(CREATE)
                await cursor.executemany("INSERT INTO orders (item) VALUES (%s)", [("pear",), ("plum",)])
                await connection.commit()
                await cursor.callproc(procedure, (4,))
                doubled = await cursor.fetchone()
            cursor = await connection.cursor(aiomysql.DictCursor)  # awaited instead of entered
            await cursor.execute("SELECT item FROM orders ORDER BY id")
            rows = await cursor.fetchall()
            await cursor.close()
            await connection.rollback()
            return doubled, rows

    (doubled, rows), spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert doubled == (8,) and rows == [{"item": "pear"}, {"item": "plum"}]
    assert [summary(span) for span in spans] == [
        expected("aiomysql.connect", None, endpoint, action="connect"),
        expected("CREATE", CREATE, endpoint),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES (%s)", endpoint, rows_affected=2),
        expected("COMMIT", "COMMIT", endpoint),
        expected("double_it()", "double_it", endpoint, action="exec"),
        expected("SELECT FROM orders", "SELECT item FROM orders ORDER BY id", endpoint),
        expected("ROLLBACK", "ROLLBACK", endpoint),
    ]


def test_aiomysql_pools_under_concurrency(client, mariadb, endpoint, aiomysql_instrumentation):
    async def work():
        pool = await aiomysql.create_pool(minsize=0, maxsize=4, host=mariadb.host, port=mariadb.port, user=mariadb.user,
                                          password=mariadb.password, db=mariadb.database)

        async def job(number):
            async with pool.acquire() as connection, connection.cursor() as cursor:
                await cursor.execute("SELECT %s, SLEEP(0.05)", (number,))
                return (await cursor.fetchone())[0]

        try:
            return await asyncio.gather(*(job(n) for n in range(4)))
        finally:
            pool.close()
            await pool.wait_closed()

    numbers, spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert numbers == [0, 1, 2, 3]
    assert all(span["parent_id"] == span["transaction_id"] for span in spans)
    assert [summary(span) for span in spans if span["action"] == "query"] == [expected("SELECT", "SELECT %s, SLEEP(0.05)", endpoint)] * 4


def test_aiomysql_failures_and_contained_agent_failures(client, mariadb, endpoint, caplog, monkeypatch, aiomysql_instrumentation):
    async def work():
        connection = await aiomysql_connect(mariadb)
        try:
            async with connection.cursor() as cursor:
                with pytest.raises(pymysql.err.ProgrammingError) as raised:
                    await cursor.execute("SELEC 1")
                break_statement_spans(monkeypatch)
                await cursor.execute("SELECT 2")
                return raised, await cursor.fetchone()
        finally:
            connection.close()

    with one_warning_per_failure(caplog, monkeypatch, "aiomysql"):
        (raised, row), spans = spans_of_work(client, lambda: asyncio.run(work()))
    assert raised.value.args[0] == 1064 and row == (2,)
    assert [summary(span) for span in spans][1:] == [expected("SELEC", "SELEC 1", endpoint, outcome="failure")]
