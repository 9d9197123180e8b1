"""The exit spans of SQL databases, as Elastic's agents make them: a statement's span is named by its
signature (``SELECT FROM users``), of type ``db`` with the database system as subtype and action
``query`` (``exec`` for a stored procedure call), the statement and the database in ``context.db``,
the server in ``context.destination``; connecting is a span of action ``connect``. The engine
infers the service target (``postgresql/shop``) from them when it exports.

Shared by the DB-API 2 layer (``dbapi``) and asyncpg. Nothing here raises: a failure is reported
once (``base.report_failure``) and the statement runs untraced.
"""

from __future__ import annotations

from oxapm import _core, traces
from oxapm.instrumentation import spans

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Optional

    from oxapm.instrumentation.spans import Started

#: The database one connection talks to, read once when it connects: ``Endpoint(subtype,
#: instance, user, address, port)``, with the ``db`` and ``destination`` context sections every
#: span on that connection carries.
Endpoint = _core.SqlEndpoint


def recording() -> bool:
    """Whether a span could be recorded now: spares the statement's text and signature when not."""
    return traces._get_current() is not None


def text(statement: Any, context: Any = None) -> str:
    """A statement as the text of its span: bytes decoded, psycopg's ``sql.Composable`` rendered
    for ``context`` (the connection or cursor that runs it)."""
    if isinstance(statement, str):
        return statement
    if isinstance(statement, (bytes, bytearray, memoryview)):
        return bytes(statement).decode("utf-8", "replace")
    as_string = getattr(statement, "as_string", None)
    if as_string is not None:
        return as_string(context)
    return str(statement)


def start_statement(instrumentation: str, endpoint: Endpoint, statement: str, action: str = "query") -> Optional[Started]:
    """The span of one statement (``action`` exec: ``statement`` is a procedure's name)."""
    return spans.start_exit(instrumentation, _core.begin_sql_span, endpoint, statement, action)


def changes_rows(started: Optional[Started]) -> bool:
    """Whether the statement's span reports the rows it changed (then ask the cursor)."""
    return started is not None and _core.changes_rows(started[0].name)


def end_statement(instrumentation: str, started: Optional[Started], failed: bool = False, rows_affected: Any = None) -> None:
    """Ends a statement's span; ``rows_affected`` when the library knows it (an int, -1 or None
    when it does not)."""
    if isinstance(rows_affected, int) and rows_affected >= 0:
        spans.end_span(instrumentation, started, failed, context={"db": {"rows_affected": rows_affected}})
    else:
        spans.end_span(instrumentation, started, failed)


def start_connect(instrumentation: str, library: str, subtype: str) -> Optional[Started]:
    """The span of opening a connection (``psycopg2.connect``); its endpoint is known once connected."""
    return spans.start_span(instrumentation, library + ".connect", "db", subtype, "connect")


def end_connect(instrumentation: str, started: Optional[Started], endpoint: Optional[Endpoint] = None, failed: bool = False) -> None:
    spans.end_span(instrumentation, started, failed, context=endpoint.context() if endpoint is not None else None)


def postgresql_endpoint(info: Any) -> Endpoint:
    """From libpq's view of a connection (``connection.info`` of psycopg2 and psycopg): a host that
    is a directory is a Unix socket's, and no network address."""
    host = info.host
    return Endpoint("postgresql", info.dbname, info.user, None if not host or host.startswith("/") else host, info.port)


def mysql_endpoint(host: Any, port: Any, user: Any, database: Any, unix_socket: Any = None) -> Endpoint:
    """From the attributes MySQL clients keep (bytes in some, once connected)."""
    decode = lambda value: value.decode("utf-8", "replace") if isinstance(value, bytes) else value  # noqa: E731
    if unix_socket:
        host = port = None
    return Endpoint("mysql", decode(database), decode(user), host, port)
