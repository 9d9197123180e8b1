"""PyMySQL: a span per connect, per statement run by a cursor (``execute``, ``executemany``,
``callproc``), and per ``commit()``/``rollback()``; subtype ``mysql`` (MariaDB servers included,
as Elastic's agents report them)."""

from __future__ import annotations

from oxapm.instrumentation import dbapi, sql_spans
from oxapm.instrumentation.base import Instrumentation

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any


class PyMySQL(dbapi.Database):
    library = "pymysql"
    subtype = "mysql"
    cursor_methods = {"execute": dbapi.QUERY, "executemany": dbapi.QUERY, "callproc": dbapi.PROCEDURE}
    connection_methods = {"commit": dbapi.COMMIT, "rollback": dbapi.ROLLBACK}

    def endpoint(self, connection: Any, args: tuple, kwargs: dict) -> sql_spans.Endpoint:
        return sql_spans.mysql_endpoint(connection.host, connection.port, connection.user, connection.db, connection.unix_socket)


class PyMySQLInstrumentation(Instrumentation):
    name = "pymysql"

    def apply(self) -> None:
        import pymysql

        database = PyMySQL(self.name)
        # Both are the Connection class; pymysql.Connection stays the class, for isinstance and subclasses.
        for name in ("connect", "Connect"):
            self.wrap(pymysql, name, database.traced_connect)
