"""psycopg2 (distributions psycopg2 and psycopg2-binary): a span per ``connect()``, per statement
run by a cursor (``execute``, ``executemany``, ``callproc``, ``copy_expert``; server-side cursors
too), and per ``commit()``/``rollback()``. The endpoint is libpq's (``connection.info``).

psycopg2's C functions that take a connection or cursor check its type: ``register_type`` (and so
``extras.register_default_jsonb``, ``register_hstore``, ``register_uuid``...), ``quote_ident``,
``encrypt_password``, ``sql.Literal.as_string``. They are wrapped to receive the real objects.

Asynchronous connections (``async_=True``, what aiopg opens) are left alone: their ``execute``
returns before the statement runs, and aiopg's instrumentation traces them.
"""

from __future__ import annotations

from oxapm.instrumentation import dbapi, sql_spans
from oxapm.instrumentation.base import Instrumentation

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable


class Psycopg2(dbapi.Database):
    library = "psycopg2"
    subtype = "postgresql"
    cursor_methods = {"execute": dbapi.QUERY, "executemany": dbapi.QUERY, "callproc": dbapi.PROCEDURE, "copy_expert": dbapi.QUERY}
    connection_methods = {"commit": dbapi.COMMIT, "rollback": dbapi.ROLLBACK}

    def endpoint(self, connection: Any, args: tuple, kwargs: dict) -> sql_spans.Endpoint:
        return sql_spans.postgresql_endpoint(connection.info)

    def traced_connect(self, wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        if kwargs.get("async_") or kwargs.get("async"):
            return wrapped(*args, **kwargs)
        return super().traced_connect(wrapped, instance, args, kwargs)


class Psycopg2Instrumentation(Instrumentation):
    name = "psycopg2"

    def apply(self) -> None:
        import psycopg2
        import psycopg2._ipaddress
        import psycopg2._json
        import psycopg2._range
        import psycopg2.extensions
        import psycopg2.sql

        self.wrap(psycopg2, "connect", Psycopg2(self.name).traced_connect)
        # The functions whose C code checks that an argument is a real connection or cursor; each
        # module that imported register_type holds its own reference.
        for module in (psycopg2.extensions, psycopg2._json, psycopg2._range, psycopg2._ipaddress):
            self.wrap(module, "register_type", dbapi.unwrapping)
        for function in ("quote_ident", "encrypt_password"):
            self.wrap(psycopg2.extensions, function, dbapi.unwrapping)
        self.wrap(psycopg2.sql.Literal, "as_string", dbapi.unwrapping)  # prepares an adapter for the real connection
