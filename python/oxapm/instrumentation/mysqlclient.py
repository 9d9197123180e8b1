"""mysqlclient (``MySQLdb``): a span per connect, per statement run by a cursor (``execute``,
``executemany``, ``callproc``), and per ``commit()``/``rollback()``; subtype ``mysql``. The
endpoint is read from the attributes mysqlclient keeps since 2.2."""

from __future__ import annotations

from oxapm.instrumentation import dbapi, sql_spans
from oxapm.instrumentation.base import Instrumentation

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any


class MySQLClient(dbapi.Database):
    library = "MySQLdb"
    subtype = "mysql"
    cursor_methods = {"execute": dbapi.QUERY, "executemany": dbapi.QUERY, "callproc": dbapi.PROCEDURE}
    connection_methods = {"commit": dbapi.COMMIT, "rollback": dbapi.ROLLBACK}

    def endpoint(self, connection: Any, args: tuple, kwargs: dict) -> sql_spans.Endpoint:
        socket = kwargs.get("unix_socket") and not kwargs.get("host")
        return sql_spans.mysql_endpoint(connection.host, connection.port, connection.user, connection.database, socket)


class MySQLClientInstrumentation(Instrumentation):
    name = "mysqlclient"

    def apply(self) -> None:
        import MySQLdb

        database = MySQLClient(self.name)
        for name in ("connect", "Connect", "Connection"):  # three names of one function
            self.wrap(MySQLdb, name, database.traced_connect)
