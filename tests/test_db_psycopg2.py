"""oxapm's psycopg2 instrumentation against a real PostgreSQL (tests/servers.py): connect and
statement spans, the library features that check the type of a connection or cursor, failures, both
export formats, transactions, disabling, uninstrumenting and contained agent failures."""

import io
import threading
from contextlib import closing

import pytest
from conftest import exported
from dbtesting import (
    both_formats,
    break_statement_spans,
    expected,
    inferred_targets,
    instrumented,
    one_warning_per_failure,
    only_registered,  # noqa: F401 (a fixture)
    server_endpoint,
    spans_of_work,
    summary,
)

import oxapm
from oxapm.instrumentation import control, sql_spans
from oxapm.instrumentation.psycopg2 import Psycopg2Instrumentation

psycopg2 = pytest.importorskip("psycopg2")
import psycopg2.errors  # noqa: E402
import psycopg2.extensions  # noqa: E402
import psycopg2.extras  # noqa: E402
import psycopg2.pool  # noqa: E402
from psycopg2 import sql  # noqa: E402


@pytest.fixture
def endpoint(postgres):
    return server_endpoint("postgresql", postgres)


@pytest.fixture
def connection(postgres):
    with instrumented(Psycopg2Instrumentation):
        with closing(psycopg2.connect(postgres.dsn)) as connection:
            with connection.cursor() as cursor:
                cursor.execute("CREATE TEMPORARY TABLE orders (id SERIAL PRIMARY KEY, item TEXT, details JSONB)")
            connection.commit()
            yield connection


def test_connect_and_each_statement_are_exit_spans(client, postgres, endpoint):
    def work():
        with closing(psycopg2.connect(postgres.dsn)) as connection, connection.cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE orders (id SERIAL PRIMARY KEY, item TEXT)")
            cursor.execute("INSERT INTO orders (item) VALUES (%s)", ("apple",))
            cursor.executemany("INSERT INTO orders (item) VALUES (%(item)s)", [{"item": "pear"}, {"item": "plum"}])
            cursor.execute(query="UPDATE orders SET item = upper(item) WHERE item <> %s", vars=("apple",))
            cursor.callproc("upper", ("fig",))
            procedure = cursor.fetchone()
            out = io.StringIO()
            cursor.copy_expert("COPY orders (item) TO STDOUT", out)
            connection.commit()
            cursor.execute("SELECT item FROM orders ORDER BY id")
            rows = cursor.fetchall()
            connection.rollback()
            return procedure, out.getvalue(), rows

    with instrumented(Psycopg2Instrumentation):
        (procedure, copied, rows), spans = spans_of_work(client, work)
    assert procedure == ("FIG",) and copied == "apple\nPEAR\nPLUM\n" and rows == [("apple",), ("PEAR",), ("PLUM",)]
    insert = "INSERT INTO orders (item) VALUES (%s)"
    assert [summary(span) for span in spans] == [
        expected("psycopg2.connect", None, endpoint, action="connect"),
        expected("CREATE", "CREATE TEMPORARY TABLE orders (id SERIAL PRIMARY KEY, item TEXT)", endpoint),
        expected("INSERT INTO orders", insert, endpoint, rows_affected=1),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES (%(item)s)", endpoint, rows_affected=2),
        expected("UPDATE orders", "UPDATE orders SET item = upper(item) WHERE item <> %s", endpoint, rows_affected=2),
        expected("upper()", "upper", endpoint, action="exec"),
        expected("COPY", "COPY orders (item) TO STDOUT", endpoint),
        expected("COMMIT", "COMMIT", endpoint),
        expected("SELECT FROM orders", "SELECT item FROM orders ORDER BY id", endpoint),
        expected("ROLLBACK", "ROLLBACK", endpoint),
    ]
    assert endpoint.destination == {"address": "127.0.0.1", "port": postgres.port}
    assert all(inferred_targets(span) == ({"type": "postgresql", "name": postgres.database}, "postgresql/" + postgres.database) for span in spans)


def test_composed_and_bytes_statements_are_reported_as_text(client, connection, endpoint):
    def work():
        with connection.cursor() as cursor:
            cursor.execute(sql.SQL("INSERT INTO {} (item) VALUES ({})").format(sql.Identifier("orders"), sql.Literal("it's")))
            cursor.execute(b"SELECT item FROM orders")
            psycopg2.extras.execute_values(cursor, "INSERT INTO orders (item) VALUES %s", [("a",), ("b",)])
            cursor.execute("SELECT count(*) FROM orders")
            return cursor.fetchone()

    count, spans = spans_of_work(client, work)
    assert count == (3,)
    assert [span["context"]["db"]["statement"] for span in spans] == [
        "INSERT INTO \"orders\" (item) VALUES ('it''s')",
        "SELECT item FROM orders",
        "INSERT INTO orders (item) VALUES ('a'),('b')",
        "SELECT count(*) FROM orders",
    ]


def test_library_features_that_check_for_a_real_connection_or_cursor(client, connection):
    cursor = connection.cursor()
    assert isinstance(connection, psycopg2.extensions.connection) and isinstance(cursor, psycopg2.extensions.cursor)
    assert cursor.connection is connection
    psycopg2.extras.register_default_jsonb(connection, loads=lambda text: "decoded " + text)
    psycopg2.extras.register_uuid(conn_or_curs=connection)
    psycopg2.extras.register_json(cursor, loads=lambda text: "cursor's " + text)  # for this cursor only
    cursor.execute("SELECT '[]'::json")
    assert cursor.fetchone() == ("cursor's []",)
    psycopg2.extensions.register_type(psycopg2.extensions.new_type((25,), "UPPER", lambda value, cur: value and value.upper()), connection)
    assert psycopg2.extensions.quote_ident("my table", connection) == '"my table"'
    assert psycopg2.extensions.quote_ident("x", cursor) == '"x"'
    assert sql.Literal("it's").as_string(connection) == "'it''s'" and sql.Literal(1).as_string(cursor) == "1"
    assert sql.SQL("{}.{}").format(sql.Identifier("a"), sql.Literal("b")).as_string(cursor) == "\"a\".'b'"
    assert psycopg2.extensions.encrypt_password("secret", "someone", connection, "md5").startswith("md5")
    with connection:  # commits
        with connection.cursor() as entered:
            assert entered.connection is connection
            entered.execute("INSERT INTO orders (item, details) VALUES ('fig', '{\"a\": 1}')")
            entered.execute("SELECT details, 'abc'::text, gen_random_uuid() FROM orders")
            details, text, uuid = entered.fetchone()
    assert details == 'decoded {"a": 1}' and text == "ABC" and uuid.version == 4
    with connection.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as dict_cursor:
        dict_cursor.execute("SELECT item FROM orders")
        assert dict_cursor.fetchall() == [{"item": "FIG"}]
    with connection.cursor("server_side") as named:  # server-side, fetched by itersize
        named.itersize = 2
        named.execute("SELECT generate_series(1, 5)")
        assert [row for row in named] == [(1,), (2,), (3,), (4,), (5,)]
    assert connection.info.dbname and connection.closed == 0


def test_a_failing_statement_fails_its_span_and_the_error_is_the_librarys(client, connection, endpoint):
    def work():
        with connection.cursor() as cursor, pytest.raises(psycopg2.errors.SyntaxError) as raised:
            cursor.execute("SELEC item FROM orders")
        connection.rollback()
        return raised

    raised, spans = spans_of_work(client, work)
    assert type(raised.value) is psycopg2.errors.SyntaxError
    assert [summary(span) for span in spans] == [
        expected("SELEC", "SELEC item FROM orders", endpoint, outcome="failure"),
        expected("ROLLBACK", "ROLLBACK", endpoint),
    ]


def test_a_failing_connect_fails_its_span(client, postgres):
    def work():
        with instrumented(Psycopg2Instrumentation), pytest.raises(psycopg2.OperationalError) as raised:
            psycopg2.connect(postgres.dsn.replace(postgres.password, "wrong"))
        return raised

    raised, spans = spans_of_work(client, work)
    assert "password authentication failed" in str(raised.value)
    (span,) = spans
    assert (span["name"], span["action"], span["outcome"]) == ("psycopg2.connect", "connect", "failure")
    assert postgres.password not in str(span)


def test_transactions_an_explicit_commit_is_a_span_the_implicit_begin_is_not(client, connection, endpoint):
    def work():
        with connection:  # psycopg2 sends BEGIN before the first statement, and COMMIT on leaving, by itself
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO orders (item) VALUES ('a')")
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")  # statements sent as such are spans like any other
            cursor.execute("INSERT INTO orders (item) VALUES ('b')")
        connection.commit()

    _, spans = spans_of_work(client, work)
    assert [span["name"] for span in spans] == ["INSERT INTO orders", "BEGIN", "INSERT INTO orders", "COMMIT"]


def test_threads_share_a_pool_each_in_its_own_transaction(client, postgres):
    with instrumented(Psycopg2Instrumentation):
        pool = psycopg2.pool.ThreadedConnectionPool(1, 4, postgres.dsn)
        barrier = threading.Barrier(4)

        def job(number):
            client.begin_transaction("job")
            connection = pool.getconn()
            barrier.wait()
            with connection.cursor() as cursor:
                cursor.execute("SELECT %s, pg_sleep(0.05)", (number,))
            pool.putconn(connection)
            client.end_transaction("job %d" % number, "success")

        threads = [threading.Thread(target=job, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        pool.closeall()
    events = exported(client)
    names = {t["id"]: t["name"] for t in events.transactions}
    queries = sorted(names[s["transaction_id"]] for s in events.spans if s["name"] == "SELECT")
    assert queries == ["job %d" % n for n in range(4)]


def test_both_export_formats(monkeypatch, intake, otlp_http, postgres, endpoint):
    with instrumented(Psycopg2Instrumentation), both_formats(monkeypatch, intake, otlp_http) as (client, found):
        client.begin_transaction("job")
        with closing(psycopg2.connect(postgres.dsn)) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_class LIMIT 1")
        client.end_transaction("job", "success")
    assert [summary(span) for span in found["intake"]] == [
        expected("psycopg2.connect", None, endpoint, action="connect"),
        expected("SELECT FROM pg_class", "SELECT 1 FROM pg_class LIMIT 1", endpoint),
    ]
    otlp = found["otlp"]["SELECT FROM pg_class"]
    assert {key: otlp[key] for key in ("elastic.span.type", "elastic.span.subtype", "elastic.span.action")} == {
        "elastic.span.type": "db", "elastic.span.subtype": "postgresql", "elastic.span.action": "query"}
    assert otlp["db.system.name"] == "postgresql" and otlp["db.query.text"] == "SELECT 1 FROM pg_class LIMIT 1"
    assert (otlp["db.namespace"], otlp["db.user"]) == (postgres.database, postgres.user)
    assert (otlp["server.address"], otlp["server.port"]) == ("127.0.0.1", postgres.port)


def test_aiopgs_asynchronous_connections_are_left_alone(postgres):
    with instrumented(Psycopg2Instrumentation):
        connection = psycopg2.connect(postgres.dsn, async_=True)
        try:
            assert type(connection) is psycopg2.extensions.connection
        finally:
            connection.close()


def test_disabled_by_name(monkeypatch, only_registered, postgres):
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "psycopg2")
    only_registered("psycopg2")
    client = oxapm.Client(service_name="test-service", traces_exporter="memory")
    try:
        oxapm.instrument()
        assert control.applied() == {}
        with closing(psycopg2.connect(postgres.dsn)) as connection:
            assert type(connection) is psycopg2.extensions.connection
    finally:
        client.close()


def test_instrument_applies_it_and_uninstrument_restores_everything_it_wrapped(client, only_registered, postgres):
    only_registered("psycopg2")
    originals = (psycopg2.connect, psycopg2.extensions.register_type, psycopg2._json.register_type,
                 psycopg2.extensions.quote_ident, sql.Literal.as_string)
    oxapm.instrument()
    assert isinstance(control.applied()["psycopg2"], Psycopg2Instrumentation)
    assert psycopg2.connect is not originals[0]
    oxapm.uninstrument()
    assert (psycopg2.connect, psycopg2.extensions.register_type, psycopg2._json.register_type,
            psycopg2.extensions.quote_ident, sql.Literal.as_string) == originals
    with closing(psycopg2.connect(postgres.dsn)) as connection:
        assert type(connection) is psycopg2.extensions.connection


def test_an_agent_failure_leaves_the_statement_working_with_one_warning(client, connection, caplog, monkeypatch):
    break_statement_spans(monkeypatch)
    with one_warning_per_failure(caplog, monkeypatch, "psycopg2"):
        def work():
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.execute("SELECT 2")
                return cursor.fetchone()

        row, spans = spans_of_work(client, work)
    assert row == (2,) and spans == []


def test_an_unreadable_endpoint_leaves_the_connection_traced_by_subtype(client, postgres, caplog, monkeypatch):
    def broken(info):
        raise RuntimeError("cannot read")

    monkeypatch.setattr(sql_spans, "postgresql_endpoint", broken)
    with one_warning_per_failure(caplog, monkeypatch, "psycopg2"), instrumented(Psycopg2Instrumentation):
        def work():
            with closing(psycopg2.connect(postgres.dsn)) as connection, connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                return cursor.fetchone()

        row, spans = spans_of_work(client, work)
    assert row == (1,)
    bare = sql_spans.Endpoint("postgresql")
    assert [summary(span) for span in spans] == [expected("psycopg2.connect", None, bare, action="connect"), expected("SELECT", "SELECT 1", bare)]
