"""asyncpg (not DB-API): a span per connect (pools' too), and per statement run by a connection
(``execute``, ``executemany``, ``fetch``, ``fetchval``, ``fetchrow``, ``fetchmany``) or by a
prepared statement. Pools and their connection proxies call these methods of the connection, so
they are traced as well; and so are the ``BEGIN``/``COMMIT`` of ``async with conn.transaction()``,
which asyncpg sends with ``execute``.

asyncpg's classes are patched in place: its connections are not proxied. What a connection talks
to is read from its private ``_addr`` and ``_params`` (asyncpg has no public accessor), once per
connection.

Not traced: cursors, ``copy_*``, and the statements asyncpg runs by itself for a call (type
introspection): they happen below the call's exit span. The statement a pool resets each released
connection with runs on its own: it is a span (``SELECT`` of ``pg_advisory_unlock_all(); ...``), as
Elastic's and OpenTelemetry's asyncpg instrumentations report it too.
"""

from __future__ import annotations

import weakref

from oxapm.instrumentation import sql_spans
from oxapm.instrumentation.base import Instrumentation, report_failure

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Awaitable, Callable, Optional

_CONNECTION_METHODS = ("execute", "executemany", "fetch", "fetchval", "fetchrow", "fetchmany")
_PREPARED_STATEMENT_METHODS = ("fetch", "fetchval", "fetchrow", "fetchmany", "executemany")
# The names of the statement argument of the connection methods, when passed by keyword.
_STATEMENT_KEYWORDS = ("query", "command")


class AsyncpgInstrumentation(Instrumentation):
    name = "asyncpg"

    def apply(self) -> None:
        import asyncpg
        import asyncpg.connection
        import asyncpg.prepared_stmt

        self._endpoints: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        # The package's connect is connection.connect, bound at import; pools call the module's.
        for module in (asyncpg, asyncpg.connection):
            self.wrap(module, "connect", self._traced_connect)
        for owner, methods in ((asyncpg.connection.Connection, _CONNECTION_METHODS), (asyncpg.prepared_stmt.PreparedStatement, _PREPARED_STATEMENT_METHODS)):
            for method in methods:
                if hasattr(owner, method):  # fetchmany came with asyncpg 0.30
                    self.wrap(owner, method, self._traced_statement)

    async def _traced_connect(self, wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        started = sql_spans.start_connect(self.name, "asyncpg", "postgresql") if sql_spans.recording() else None
        try:
            connection = await wrapped(*args, **kwargs)
        except BaseException:
            sql_spans.end_connect(self.name, started, failed=True)
            raise
        endpoint = None
        if started is not None:
            try:
                endpoint = self._endpoint(connection)
            except Exception:
                report_failure(self.name)
        sql_spans.end_connect(self.name, started, endpoint)
        return connection

    def _traced_statement(self, wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Awaitable:
        if not sql_spans.recording():
            return wrapped(*args, **kwargs)
        return self._statement(wrapped, instance, args, kwargs)

    async def _statement(self, wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        started = self._start(wrapped, instance, args, kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException:
            sql_spans.end_statement(self.name, started, failed=True)
            raise
        rows = None
        try:
            # execute() returns the command's status: "INSERT 0 3", "UPDATE 2".
            if isinstance(result, str) and sql_spans.changes_rows(started):
                count = result.rpartition(" ")[2]
                rows = int(count) if count.isdigit() else None
        except Exception:
            report_failure(self.name)
        sql_spans.end_statement(self.name, started, rows_affected=rows)
        return result

    def _start(self, wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Optional[Any]:
        try:
            if hasattr(instance, "get_query"):  # a prepared statement
                statement, connection = instance.get_query(), instance._connection
            else:
                statement = args[0] if args else next((kwargs[key] for key in _STATEMENT_KEYWORDS if key in kwargs), None)
                connection = instance
            if not isinstance(statement, str):
                return None  # the library will say what is wrong
            endpoint = self._endpoint(connection)
        except Exception:
            report_failure(self.name)
            return None
        return sql_spans.start_statement(self.name, endpoint, statement)

    def _endpoint(self, connection: Any) -> sql_spans.Endpoint:
        endpoint = self._endpoints.get(connection)
        if endpoint is None:
            address = connection._addr  # (host, port), or a Unix socket's path
            host, port = address[:2] if isinstance(address, tuple) else (None, None)
            parameters = connection._params
            endpoint = self._endpoints[connection] = sql_spans.Endpoint("postgresql", parameters.database, parameters.user, host, port)
        return endpoint
