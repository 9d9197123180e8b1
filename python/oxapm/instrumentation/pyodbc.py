"""pyodbc: a span per connect, per statement run by a cursor (``execute``, ``executemany``) or by
the connection's ``execute``, and per ``commit()``/``rollback()``.

ODBC reaches any database, so the subtype is the database's: the name the driver reports once
connected (``SQL_DBMS_NAME``: ``PostgreSQL``, ``Microsoft SQL Server``), else the connection
string's driver, mapped to Elastic's names (``postgresql``, ``mssql``, ``mysql``...); ``unknown``
when neither tells. The span of connecting only has the connection string's. The database and the
user are the driver's too; the server is the connection string's (``SERVER``/``HOST``, ``PORT``,
SQL Server's ``SERVER=host,port``): a named DSN has none.
"""

from __future__ import annotations

from oxapm.instrumentation import dbapi, sql_spans
from oxapm.instrumentation.base import Instrumentation

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

# Words of a database's or a driver's name, and the subtype they mean; the first found wins.
_SYSTEMS = (
    ("postgres", "postgresql"),
    ("sql server", "mssql"),
    ("freetds", "mssql"),
    ("mariadb", "mysql"),
    ("mysql", "mysql"),
    ("sqlite", "sqlite"),
    ("oracle", "oracle"),
    ("db2", "db2"),
)
# pyodbc.connect's own keywords, which are not connection string attributes.
_PYODBC_KEYWORDS = {"autocommit", "ansi", "timeout", "readonly", "attrs_before", "encoding"}
# Keywords pyodbc renames when it writes the connection string.
_RENAMED = {"user": "uid", "password": "pwd", "host": "server"}


def subtype_of(name: str) -> Optional[str]:
    lowered = name.lower()
    return next((subtype for word, subtype in _SYSTEMS if word in lowered), None)


def attributes(args: tuple, kwargs: dict) -> Dict[str, str]:
    """The attributes of a connection string (``DRIVER={x};SERVER=y``) and of pyodbc's keyword
    arguments, by lower-case name; braces removed from values."""
    found: Dict[str, str] = {}
    text = args[0] if args and isinstance(args[0], str) else ""
    position = 0
    while position < len(text):
        equals = text.find("=", position)
        if equals < 0:
            break
        name = text[position:equals].strip().lower()
        position = equals + 1
        if text[position:position + 1] == "{":  # a braced value may hold ';', and '}}' for '}'
            end = position + 1
            while True:
                end = text.find("}", end)
                if end < 0 or text[end + 1:end + 2] != "}":
                    break
                end += 2
            end = len(text) if end < 0 else end
            value = text[position + 1:end].replace("}}", "}")
            position = text.find(";", end)
        else:
            separator = text.find(";", position)
            value = text[position:] if separator < 0 else text[position:separator]
            position = separator
        found[name] = value.strip()
        if position < 0:
            break
        position += 1
    for name, value in kwargs.items():
        if name.lower() not in _PYODBC_KEYWORDS:
            found[_RENAMED.get(name.lower(), name.lower())] = str(value)
    return found


def server_of(attributes: Dict[str, str]) -> Tuple[Optional[str], Optional[str]]:
    """(address, port) from ``SERVER=tcp:host,port`` or ``SERVER=host\\instance`` and ``PORT=``."""
    server = attributes.get("server") or attributes.get("address") or attributes.get("host") or ""
    if server.lower().startswith("tcp:"):
        server = server[4:]
    host, _, port = server.partition(",")
    host = host.partition("\\")[0].strip()
    return host or None, (port.strip() or attributes.get("port") or None)


class PyODBC(dbapi.Database):
    library = "pyodbc"
    subtype = "unknown"
    cursor_methods = {"execute": dbapi.QUERY, "executemany": dbapi.QUERY}
    connection_methods = {"execute": dbapi.QUERY_RETURNING_CURSOR, "commit": dbapi.COMMIT, "rollback": dbapi.ROLLBACK}

    def connect_subtype(self, args: tuple, kwargs: dict) -> str:
        settings = attributes(args, kwargs)
        return subtype_of(settings.get("driver") or settings.get("dsn") or "") or self.subtype

    def endpoint(self, connection: Any, args: tuple, kwargs: dict) -> sql_spans.Endpoint:
        import pyodbc

        settings = attributes(args, kwargs)
        subtype = subtype_of(connection.getinfo(pyodbc.SQL_DBMS_NAME) or "") or self.connect_subtype(args, kwargs)
        database = connection.getinfo(pyodbc.SQL_DATABASE_NAME) or settings.get("database")
        user = connection.getinfo(pyodbc.SQL_USER_NAME) or settings.get("uid")
        address, port = server_of(settings)
        return sql_spans.Endpoint(subtype, database, user, address, int(port) if port and port.isdigit() else None)


class PyODBCInstrumentation(Instrumentation):
    name = "pyodbc"

    def apply(self) -> None:
        import pyodbc

        self.wrap(pyodbc, "connect", PyODBC(self.name).traced_connect)
