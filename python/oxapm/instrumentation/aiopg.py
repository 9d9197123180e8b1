"""aiopg: a span per connect, per statement run by a cursor (``execute``, ``callproc``). The
endpoint is libpq's, from the psycopg2 connection aiopg drives (which psycopg2's instrumentation
leaves alone: it is asynchronous). aiopg connections are in autocommit mode: no commit to trace.
"""

from __future__ import annotations

from oxapm.instrumentation import dbapi, sql_spans
from oxapm.instrumentation.base import Instrumentation

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any


class Aiopg(dbapi.Database):
    library = "aiopg"
    subtype = "postgresql"
    asynchronous = True
    cursor_methods = {"execute": dbapi.QUERY, "callproc": dbapi.PROCEDURE}

    def endpoint(self, connection: Any, args: tuple, kwargs: dict) -> sql_spans.Endpoint:
        return sql_spans.postgresql_endpoint(connection.raw.info)


class AiopgInstrumentation(Instrumentation):
    name = "aiopg"

    def apply(self) -> None:
        import aiopg
        import aiopg.connection
        import aiopg.pool

        database = Aiopg(self.name)
        # The package and the pool hold their own references to connection.connect.
        for module in (aiopg, aiopg.connection, aiopg.pool):
            self.wrap(module, "connect", database.traced_connect)
