"""aiomysql: a span per connect (pools' too), per statement run by a cursor (``execute``,
``executemany``, ``callproc``), and per ``commit()``/``rollback()``; subtype ``mysql``."""

from __future__ import annotations

from oxapm.instrumentation import dbapi, sql_spans
from oxapm.instrumentation.base import Instrumentation

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any


class Aiomysql(dbapi.Database):
    library = "aiomysql"
    subtype = "mysql"
    asynchronous = True
    cursor_methods = {"execute": dbapi.QUERY, "executemany": dbapi.QUERY, "callproc": dbapi.PROCEDURE}
    connection_methods = {"commit": dbapi.COMMIT, "rollback": dbapi.ROLLBACK}

    def endpoint(self, connection: Any, args: tuple, kwargs: dict) -> sql_spans.Endpoint:
        return sql_spans.mysql_endpoint(connection.host, connection.port, connection.user, connection.db, connection.unix_socket)


class AiomysqlInstrumentation(Instrumentation):
    name = "aiomysql"

    def apply(self) -> None:
        import aiomysql
        import aiomysql.connection
        import aiomysql.pool

        database = Aiomysql(self.name)
        # The package and the pool hold their own references to connection.connect.
        for module in (aiomysql, aiomysql.connection, aiomysql.pool):
            self.wrap(module, "connect", database.traced_connect)
