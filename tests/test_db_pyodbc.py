"""oxapm's pyodbc instrumentation against a real PostgreSQL through unixODBC's PostgreSQL driver
(tests/servers.py): the subtype from the driver, connect and statement spans, connection strings,
failures, both export formats, disabling, uninstrumenting and contained agent failures."""

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
from oxapm.instrumentation import control, dbapi
from oxapm.instrumentation import pyodbc as odbc
from oxapm.instrumentation.pyodbc import PyODBCInstrumentation

pyodbc = pytest.importorskip("pyodbc")


@pytest.fixture
def endpoint(odbc_postgres):
    return server_endpoint("postgresql", odbc_postgres)


@pytest.fixture
def instrumentation():
    with instrumented(PyODBCInstrumentation) as applied:
        yield applied


def test_connect_and_each_statement_are_exit_spans(client, odbc_postgres, endpoint, instrumentation):
    def work():
        with pyodbc.connect(odbc_postgres.dsn) as connection:
            cursor = connection.cursor()
            assert cursor.execute("CREATE TEMPORARY TABLE orders (id SERIAL PRIMARY KEY, item TEXT)") is cursor
            cursor.execute("INSERT INTO orders (item) VALUES (?)", "apple")
            cursor.executemany("INSERT INTO orders (item) VALUES (?)", [("pear",), ("plum",)])
            connection.commit()
            rows = connection.execute("SELECT item FROM orders ORDER BY id").fetchall()
            connection.execute("DELETE FROM orders")
            connection.rollback()
            return [tuple(row) for row in rows]

    rows, spans = spans_of_work(client, work)
    assert rows == [("apple",), ("pear",), ("plum",)]
    assert [summary(span) for span in spans] == [
        expected("pyodbc.connect", None, endpoint, action="connect"),
        expected("CREATE", "CREATE TEMPORARY TABLE orders (id SERIAL PRIMARY KEY, item TEXT)", endpoint),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES (?)", endpoint, rows_affected=1),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES (?)", endpoint),  # rowcount -1: unknown
        expected("COMMIT", "COMMIT", endpoint),
        expected("SELECT FROM orders", "SELECT item FROM orders ORDER BY id", endpoint),
        expected("DELETE FROM orders", "DELETE FROM orders", endpoint, rows_affected=3),
        expected("ROLLBACK", "ROLLBACK", endpoint),
    ]
    assert all(inferred_targets(span) == expected_targets(endpoint) for span in spans)


def test_keyword_arguments_make_the_connection_string(client, odbc_postgres, endpoint, instrumentation):
    keywords = dict(driver="{PostgreSQL Unicode}", server=odbc_postgres.host, port=odbc_postgres.port,
                    database=odbc_postgres.database, user=odbc_postgres.user, password=odbc_postgres.password)

    def work():
        with pyodbc.connect(autocommit=True, **keywords) as connection:
            assert isinstance(connection, dbapi.ConnectionProxy) and isinstance(connection, pyodbc.Connection)
            cursor = connection.cursor()
            assert cursor.connection is connection and isinstance(cursor, pyodbc.Cursor)
            return tuple(cursor.execute("SELECT 1").fetchone())

    row, spans = spans_of_work(client, work)
    assert row == (1,)
    assert [summary(span) for span in spans] == [
        expected("pyodbc.connect", None, endpoint, action="connect"),
        expected("SELECT", "SELECT 1", endpoint),
    ]


@pytest.mark.parametrize("connection_string, keywords, attributes", [
    ("DRIVER={PostgreSQL Unicode};SERVER=db;PORT=5432;DATABASE=shop;UID=me;PWD=secret", {},
     {"driver": "PostgreSQL Unicode", "server": "db", "port": "5432", "database": "shop", "uid": "me", "pwd": "secret"}),
    ("Driver={ODBC Driver 18 for SQL Server};Server=tcp:db.example,1433;Pwd={a;b}}c};", {"autocommit": True, "user": "me"},
     {"driver": "ODBC Driver 18 for SQL Server", "server": "tcp:db.example,1433", "pwd": "a;b}c", "uid": "me"}),
    ("DSN=shop", {"timeout": 3}, {"dsn": "shop"}),
])
def test_connection_strings(connection_string, keywords, attributes):
    assert odbc.attributes((connection_string,), keywords) == attributes


@pytest.mark.parametrize("attributes, server", [
    ({"server": "tcp:db.example,1433"}, ("db.example", "1433")),
    ({"server": "db\\SQLEXPRESS"}, ("db", None)),
    ({"server": "db", "port": "3306"}, ("db", "3306")),
    ({"dsn": "shop"}, (None, None)),
])
def test_servers(attributes, server):
    assert odbc.server_of(attributes) == server


@pytest.mark.parametrize("name, subtype", [
    ("PostgreSQL", "postgresql"), ("Microsoft SQL Server", "mssql"), ("ODBC Driver 18 for SQL Server", "mssql"),
    ("FreeTDS", "mssql"), ("MySQL ODBC 8.0 Unicode Driver", "mysql"), ("MariaDB", "mysql"), ("SQLite3", "sqlite"),
    ("Oracle", "oracle"), ("IBM DB2 ODBC DRIVER", "db2"), ("Some Warehouse", None),
])
def test_subtypes(name, subtype):
    assert odbc.subtype_of(name) == subtype


def test_a_failing_statement_fails_its_span_and_the_error_is_the_librarys(client, odbc_postgres, endpoint, instrumentation):
    with pyodbc.connect(odbc_postgres.dsn, autocommit=True) as connection:
        def work():
            with pytest.raises(pyodbc.ProgrammingError) as raised:
                connection.cursor().execute("SELEC 1")
            return raised

        raised, spans = spans_of_work(client, work)
    assert type(raised.value) is pyodbc.ProgrammingError and "syntax error" in str(raised.value)
    assert [summary(span) for span in spans] == [expected("SELEC", "SELEC 1", endpoint, outcome="failure")]


def test_both_export_formats(monkeypatch, intake, otlp_http, odbc_postgres, endpoint, instrumentation):
    with both_formats(monkeypatch, intake, otlp_http) as (client, found):
        client.begin_transaction("job")
        with pyodbc.connect(odbc_postgres.dsn) as connection:
            connection.execute("SELECT 1 FROM pg_class LIMIT 1")
        client.end_transaction("job", "success")
    assert [summary(span) for span in found["intake"]] == [
        expected("pyodbc.connect", None, endpoint, action="connect"),
        expected("SELECT FROM pg_class", "SELECT 1 FROM pg_class LIMIT 1", endpoint),
    ]
    otlp = found["otlp"]["SELECT FROM pg_class"]
    assert (otlp["elastic.span.type"], otlp["elastic.span.subtype"], otlp["elastic.span.action"]) == ("db", "postgresql", "query")
    assert otlp["db.system.name"] == "postgresql" and otlp["db.query.text"] == "SELECT 1 FROM pg_class LIMIT 1"
    assert (otlp["db.namespace"], otlp["server.address"], otlp["server.port"]) == (odbc_postgres.database, "127.0.0.1", odbc_postgres.port)
    assert odbc_postgres.password not in str(found)


def test_disabled_by_name_or_applied_and_removed(monkeypatch, only_registered, odbc_postgres):
    original = pyodbc.connect
    only_registered("pyodbc")
    monkeypatch.setenv("ELASTIC_APM_DISABLED_INSTRUMENTATIONS", "pyodbc")
    client = oxapm.Client(service_name="test-service", traces_exporter="memory")
    try:
        oxapm.instrument()
        assert control.applied() == {} and pyodbc.connect is original
    finally:
        client.close()
    monkeypatch.delenv("ELASTIC_APM_DISABLED_INSTRUMENTATIONS")
    client = oxapm.Client(service_name="test-service", traces_exporter="memory")
    try:
        oxapm.instrument()
        assert set(control.applied()) == {"pyodbc"} and pyodbc.connect is not original
        oxapm.uninstrument()
        assert pyodbc.connect is original
        with pyodbc.connect(odbc_postgres.dsn) as connection:
            assert type(connection) is pyodbc.Connection
    finally:
        client.close()


def test_an_agent_failure_leaves_the_statement_working_with_one_warning(client, odbc_postgres, caplog, monkeypatch, instrumentation):
    break_statement_spans(monkeypatch)
    with pyodbc.connect(odbc_postgres.dsn) as connection, one_warning_per_failure(caplog, monkeypatch, "pyodbc"):
        row, spans = spans_of_work(client, lambda: [tuple(connection.execute("SELECT %d" % n).fetchone()) for n in range(2)])
    assert row == [(0,), (1,)] and spans == []
