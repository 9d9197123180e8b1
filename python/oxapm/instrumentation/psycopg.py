"""psycopg 3, ``Connection`` and ``AsyncConnection``: a span per connect, per statement run by a
cursor (``execute``, ``executemany``; server-side cursors too) or by the connection's ``execute``,
and per ``commit()``/``rollback()``. The endpoint is libpq's (``connection.info``).

Not traced: ``cursor.stream()`` and ``cursor.copy()`` (they span the caller's own loop or block),
and what psycopg sends by itself (``with conn.transaction()``, the commit of ``with conn``).
"""

from __future__ import annotations

from oxapm.instrumentation import dbapi, sql_spans
from oxapm.instrumentation.base import Instrumentation

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any


class Psycopg(dbapi.Database):
    library = "psycopg"
    subtype = "postgresql"
    cursor_methods = {"execute": dbapi.QUERY, "executemany": dbapi.QUERY}
    connection_methods = {"execute": dbapi.QUERY_RETURNING_CURSOR, "commit": dbapi.COMMIT, "rollback": dbapi.ROLLBACK}

    def endpoint(self, connection: Any, args: tuple, kwargs: dict) -> sql_spans.Endpoint:
        return sql_spans.postgresql_endpoint(connection.info)


class AsyncPsycopg(Psycopg):
    asynchronous = True


class PsycopgInstrumentation(Instrumentation):
    name = "psycopg"

    def apply(self) -> None:
        import psycopg

        synchronous = Psycopg(self.name)
        # psycopg.connect is Connection.connect, bound when psycopg was imported; pools call the class's.
        self.wrap(psycopg, "connect", synchronous.traced_connect)
        self.wrap(psycopg.Connection, "connect", synchronous.traced_connect)
        self.wrap(psycopg.AsyncConnection, "connect", AsyncPsycopg(self.name).traced_connect)
