"""sqlite3 (the standard library): a span per statement run by a cursor or by the connection's
shortcuts (``execute``, ``executemany``, ``executescript``), and per ``commit()``/``rollback()``.

Opening a database makes no span: it opens a file, it does not reach a server. No destination nor
instance either: the service target is ``sqlite``, as Elastic's agents report it.
"""

from __future__ import annotations

from oxapm.instrumentation import dbapi
from oxapm.instrumentation.base import Instrumentation


class SQLite(dbapi.Database):
    subtype = "sqlite"
    cursor_methods = {"execute": dbapi.QUERY, "executemany": dbapi.QUERY, "executescript": dbapi.SCRIPT}
    connection_methods = {
        "execute": dbapi.QUERY_RETURNING_CURSOR,
        "executemany": dbapi.QUERY_RETURNING_CURSOR,
        "executescript": dbapi.SCRIPT_RETURNING_CURSOR,
        "commit": dbapi.COMMIT,
        "rollback": dbapi.ROLLBACK,
    }
    unwrapping_connection_methods = ("backup",)  # its target must be a real sqlite3.Connection


class SQLite3Instrumentation(Instrumentation):
    name = "sqlite3"

    def apply(self) -> None:
        import sqlite3
        import sqlite3.dbapi2

        database = SQLite(self.name)
        for module in (sqlite3, sqlite3.dbapi2):
            self.wrap(module, "connect", database.traced_connect)
