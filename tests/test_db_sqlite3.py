"""oxapm's sqlite3 instrumentation, and through it the DB-API layer every SQL library shares: exit
spans per statement, proxies that pass for the real connection and cursor, failures, both export
formats, disabling, uninstrumenting, contained agent failures, and one span per statement with
OpenTelemetry's contrib instrumentation of sqlite3 applied too."""

import sqlite3
import threading

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
    spans_of_work,
    summary,
)
import oxapm
from oxapm import _core
from oxapm.instrumentation import control, dbapi, sql_spans
from oxapm.instrumentation.sqlite3 import SQLite3Instrumentation

SQLITE = sql_spans.Endpoint("sqlite")


@pytest.fixture
def connection():
    with instrumented(SQLite3Instrumentation):
        connection = sqlite3.connect(":memory:")
        connection.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT)")
        yield connection
        connection.close()


def test_each_statement_is_an_exit_span(client, connection):
    def work():
        cursor = connection.cursor()
        cursor.execute("INSERT INTO orders (item) VALUES (?)", ("apple",))
        cursor.executemany("INSERT INTO orders (item) VALUES (?)", [("pear",), ("plum",)])
        cursor.executescript("UPDATE orders SET item = upper(item); SELECT 1;")
        connection.commit()
        rows = connection.execute("SELECT item FROM orders ORDER BY id").fetchall()
        connection.executemany("DELETE FROM orders WHERE item = ?", [("PEAR",), ("PLUM",)])
        connection.rollback()
        return rows

    rows, spans = spans_of_work(client, work)
    assert rows == [("APPLE",), ("PEAR",), ("PLUM",)]
    assert [summary(span) for span in spans] == [
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES (?)", SQLITE, rows_affected=1),
        expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES (?)", SQLITE, rows_affected=2),
        expected("UPDATE orders", "UPDATE orders SET item = upper(item); SELECT 1;", SQLITE),  # a script has no row count
        expected("COMMIT", "COMMIT", SQLITE),
        expected("SELECT FROM orders", "SELECT item FROM orders ORDER BY id", SQLITE),
        expected("DELETE FROM orders", "DELETE FROM orders WHERE item = ?", SQLITE, rows_affected=2),
        expected("ROLLBACK", "ROLLBACK", SQLITE),
    ]
    assert all(inferred_targets(span) == ({"type": "sqlite"}, "sqlite") for span in spans)


def test_long_statements_are_cut(client, connection):
    long_statement = "SELECT id FROM orders WHERE item IN (%s)" % ",".join(["'x'"] * 4000)
    _, spans = spans_of_work(client, lambda: connection.execute(long_statement))
    assert [span["name"] for span in spans] == ["SELECT FROM orders"]
    statement = spans[0]["context"]["db"]["statement"]
    assert len(long_statement) > 10000 and statement == long_statement[:10000]  # as Elastic's agents cut it


def test_no_span_outside_a_transaction(client, connection):
    assert connection.execute("SELECT count(*) FROM orders").fetchone() == (0,)
    assert exported(client).spans == []


def test_the_proxies_pass_for_the_real_objects(client, connection):
    cursor = connection.cursor()
    assert isinstance(connection, sqlite3.Connection) and isinstance(cursor, sqlite3.Cursor)
    assert cursor.connection is connection
    assert cursor.execute("INSERT INTO orders (item) VALUES ('fig')") is cursor  # chaining keeps the proxy
    chained = connection.execute("SELECT item FROM orders")
    assert isinstance(chained, dbapi.CursorProxy) and chained.connection is connection
    assert [row for row in chained] == [("fig",)]
    assert next(connection.execute("SELECT 1")) == (1,)
    connection.row_factory = sqlite3.Row  # attributes are the real object's
    assert connection.execute("SELECT item FROM orders").fetchone()["item"] == "fig"
    with connection as entered:  # commits on success, as sqlite3 does
        assert entered is connection
        entered.execute("INSERT INTO orders (item) VALUES ('kiwi')")
    copy = sqlite3.connect(":memory:")
    connection.backup(copy)  # its C code wants a real sqlite3.Connection
    copy.row_factory = None
    assert copy.execute("SELECT count(*) FROM orders").fetchone() == (2,)


def test_a_cursor_proxy_forwards_the_cursor_attributes_it_declares(client, connection):
    """The PEP 249 attributes read on every query are properties of the cursor proxy (cheaper than
    wrapt's fallback): read and set on the real cursor; a name the cursor lacks is still missing."""
    cursor = connection.cursor()
    assert "fetchone" in vars(type(cursor)) and "fetchone" not in vars(dbapi.CursorProxy)
    cursor.arraysize = 7
    assert cursor.__wrapped__.arraysize == 7 == cursor.arraysize
    cursor.execute("INSERT INTO orders (item) VALUES ('fig')")
    assert (cursor.rowcount, cursor.lastrowid) == (1, cursor.__wrapped__.lastrowid)
    cursor.execute("SELECT item FROM orders")
    assert cursor.description[0][0] == "item" and cursor.fetchmany(5) == [("fig",)] and cursor.fetchall() == []
    assert not hasattr(cursor, "nextset") and not hasattr(cursor.__wrapped__, "nextset")
    cursor.close()
    with pytest.raises(sqlite3.ProgrammingError):
        cursor.fetchone()


def test_a_failing_statement_fails_its_span_and_the_error_is_the_librarys(client, connection):
    def work():
        with pytest.raises(sqlite3.OperationalError, match="syntax error") as raised:
            connection.execute("SELEC item FROM orders")
        return raised

    raised, spans = spans_of_work(client, work)
    assert type(raised.value) is sqlite3.OperationalError
    assert [summary(span) for span in spans] == [expected("SELEC", "SELEC item FROM orders", SQLITE, outcome="failure")]


def test_threads_each_trace_into_their_own_transaction(client, tmp_path):
    with instrumented(SQLite3Instrumentation):
        setup = sqlite3.connect(str(tmp_path / "shop.db"))
        setup.execute("CREATE TABLE orders (id INTEGER)")
        setup.close()
        barrier = threading.Barrier(4)

        def job(number):
            connection = sqlite3.connect(str(tmp_path / "shop.db"), timeout=30)
            client.begin_transaction("job")
            barrier.wait()
            connection.execute("SELECT %d FROM orders" % number)
            client.end_transaction("job %d" % number, "success")
            connection.close()

        threads = [threading.Thread(target=job, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    events = exported(client)
    transactions = {t["id"]: t["name"] for t in events.transactions}
    assert sorted((transactions[s["transaction_id"]], s["context"]["db"]["statement"]) for s in events.spans) == [
        ("job %d" % n, "SELECT %d FROM orders" % n) for n in range(4)
    ]


def test_both_export_formats(monkeypatch, intake, otlp_http):
    with instrumented(SQLite3Instrumentation), both_formats(monkeypatch, intake, otlp_http) as (client, found):
        connection = sqlite3.connect(":memory:")
        client.begin_transaction("job")
        connection.execute("CREATE TABLE orders (id INTEGER)")
        connection.execute("INSERT INTO orders VALUES (1)")
        client.end_transaction("job", "success")
    assert [summary(span) for span in found["intake"]] == [
        expected("CREATE", "CREATE TABLE orders (id INTEGER)", SQLITE),
        expected("INSERT INTO orders", "INSERT INTO orders VALUES (1)", SQLITE, rows_affected=1),
    ]
    otlp = found["otlp"]["INSERT INTO orders"]
    assert otlp["elastic.span.type"] == "db" and otlp["elastic.span.subtype"] == "sqlite" and otlp["elastic.span.action"] == "query"
    assert otlp["db.system.name"] == "sqlite" and otlp["db.query.text"] == "INSERT INTO orders VALUES (1)"


def test_disabled_by_name(monkeypatch, only_registered):
    monkeypatch.setenv("ELASTIC_APM_DISABLED_INSTRUMENTATIONS", "sqlite3")
    only_registered("sqlite3")
    client = oxapm.Client(service_name="test-service", traces_exporter="memory")
    try:
        original = sqlite3.connect
        oxapm.instrument()
        assert control.applied() == {} and sqlite3.connect is original
        assert type(sqlite3.connect(":memory:")) is sqlite3.Connection
    finally:
        client.close()


def test_instrument_applies_it_and_uninstrument_restores_connect(client, only_registered):
    only_registered("sqlite3")
    originals = (sqlite3.connect, sqlite3.dbapi2.connect)
    oxapm.instrument()
    assert isinstance(control.applied()["sqlite3"], SQLite3Instrumentation)
    assert type(sqlite3.connect(":memory:")) is not sqlite3.Connection
    oxapm.uninstrument()
    assert (sqlite3.connect, sqlite3.dbapi2.connect) == originals
    assert type(sqlite3.connect(":memory:")) is sqlite3.Connection


def test_an_agent_failure_leaves_the_statement_working_with_one_warning(client, connection, caplog, monkeypatch):
    break_statement_spans(monkeypatch)
    with one_warning_per_failure(caplog, monkeypatch, "sqlite3"):
        rows, spans = spans_of_work(client, lambda: [connection.execute("SELECT 1").fetchall(), connection.execute("SELECT 2").fetchall()])
    assert rows == [[(1,)], [(2,)]] and spans == []


def test_synchronous_traced_methods_are_the_engine_s_and_bind_as_methods(client, connection):
    cursor = connection.cursor()
    for proxy, name in [(connection, "execute"), (connection, "commit"), (cursor, "execute"), (cursor, "executemany")]:
        method = vars(type(proxy))[name]
        assert type(method) is _core.TracedMethod and method.__name__ == name
        bound = getattr(proxy, name)
        assert (bound.__self__, bound.__func__) == (proxy, method)
    assert type(connection).execute is vars(type(connection))["execute"]  # through the class: unbound


def test_a_failure_after_the_statement_loses_only_the_cursor_s_proxy(client, connection, caplog, monkeypatch):
    def broken(cursor, connection):
        raise RuntimeError("cannot wrap")

    monkeypatch.setattr(connection._self_database, "cursor_proxy", broken)
    with one_warning_per_failure(caplog, monkeypatch, "sqlite3"):
        cursor, spans = spans_of_work(client, lambda: connection.execute("INSERT INTO orders (item) VALUES ('fig')"))
    assert type(cursor) is sqlite3.Cursor and cursor.rowcount == 1
    assert [summary(span) for span in spans] == [expected("INSERT INTO orders", "INSERT INTO orders (item) VALUES ('fig')", SQLITE, rows_affected=1)]


def contrib_instrumentor(client, monkeypatch):
    """OpenTelemetry's contrib instrumentor of sqlite3, its spans going to ``client``."""
    SQLite3Instrumentor = pytest.importorskip("opentelemetry.instrumentation.sqlite3").SQLite3Instrumentor
    from opentelemetry import trace

    from oxapm.otel.trace import TracerProvider

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", TracerProvider(client))
    return SQLite3Instrumentor


def test_one_span_per_statement_with_the_contrib_instrumentation_applied_first(client, monkeypatch):
    """How opentelemetry-instrument then oxapm.instrument() apply them: ours is outermost, and the
    contrib span below an exit span is not recorded."""
    SQLite3Instrumentor = contrib_instrumentor(client, monkeypatch)
    contrib = SQLite3Instrumentor()
    contrib.instrument()
    try:
        with instrumented(SQLite3Instrumentation):
            connection = sqlite3.connect(":memory:")
            _, spans = spans_of_work(client, lambda: connection.cursor().execute("SELECT 1 FROM sqlite_master"))
    finally:
        contrib.uninstrument()
    assert [summary(span) for span in spans] == [expected("SELECT FROM sqlite_master", "SELECT 1 FROM sqlite_master", SQLITE)]


def test_one_span_per_statement_with_the_contrib_instrumentation_applied_last(client, monkeypatch):
    """The contrib's CLIENT span is outermost: nothing is recorded below it, ours included."""
    SQLite3Instrumentor = contrib_instrumentor(client, monkeypatch)
    with instrumented(SQLite3Instrumentation):
        contrib = SQLite3Instrumentor()
        contrib.instrument()
        try:
            connection = sqlite3.connect(":memory:")
            _, spans = spans_of_work(client, lambda: connection.cursor().execute("SELECT 1 FROM sqlite_master"))
        finally:
            contrib.uninstrument()
    (span,) = spans
    assert (span["type"], span["subtype"], span["otel"]["span_kind"]) == ("db", "sqlite", "CLIENT")
