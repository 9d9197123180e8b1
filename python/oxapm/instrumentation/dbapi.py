"""DB-API 2 (PEP 249) connections and cursors, traced through proxies.

A library's ``connect`` is wrapped (``Database.traced_connect``) to return a connection proxy, a
``wrapt.ObjectProxy`` that passes for the real connection (``isinstance`` included), whose
``cursor()`` returns a cursor proxy. The methods the library declares traced (a cursor's
``execute``, ``executemany``, ``callproc``; a connection's ``execute`` or ``commit``) make one exit
span each (``sql_spans``); everything else reaches the real object untouched. Each library's module
describes the library with a ``Database`` subclass: its methods, and how to read a connection's
endpoint (database system, database, user, server), once per connection.

Asynchronous libraries (aiopg, aiomysql, psycopg's AsyncConnection) get the same proxies with
coroutine methods. What their ``connect()`` and ``cursor()`` return may be an awaitable that is also
an async context manager (``Pending``): awaited or entered, it gives the proxy.

C code that checks the type of a connection or cursor argument (psycopg2's ``register_type``)
rejects proxies: such functions are wrapped with ``unwrapping``, which hands them the real objects.

Uninstrumenting restores ``connect``: connections opened before keep their proxies, and their spans.
"""

from __future__ import annotations

import functools

import wrapt

from oxapm import _core
from oxapm.instrumentation import sql_spans
from oxapm.instrumentation.base import report_failure
from oxapm.instrumentation.sql_spans import Endpoint

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Awaitable, Callable, Dict, Optional, Tuple

    from oxapm.instrumentation.spans import Started

class Traced:
    """How one method is traced: its span's action, its statement (a fixed one, else the call's
    first argument), whether it returns a new cursor (a connection's ``execute``), and whether the
    cursor's ``rowcount`` counts its rows afterwards."""

    __slots__ = ("action", "statement", "returns_cursor", "counts_rows")

    def __init__(self, action: str = "query", statement: Optional[str] = None, returns_cursor: bool = False, counts_rows: bool = True) -> None:
        self.action = action
        self.statement = statement
        self.returns_cursor = returns_cursor
        self.counts_rows = counts_rows


QUERY = Traced()
PROCEDURE = Traced("exec")  # the span is named after the procedure: ``my_proc()``
QUERY_RETURNING_CURSOR = Traced(returns_cursor=True)
SCRIPT = Traced(counts_rows=False)  # several statements: no row count of its own
SCRIPT_RETURNING_CURSOR = Traced(returns_cursor=True, counts_rows=False)
COMMIT = Traced(statement="COMMIT")
ROLLBACK = Traced(statement="ROLLBACK")


class Database:
    """One DB-API library, as its proxies see it. Subclasses set the class attributes and, when the
    library knows more than the subtype, ``endpoint``; the library's ``connect`` functions are then
    wrapped with ``traced_connect``."""

    # The name of the span of connecting, before ``.connect``; None: connecting makes no span.
    library: Optional[str] = None
    subtype = ""
    asynchronous = False  # traced methods are coroutines
    cursor_methods: Dict[str, Traced] = {}
    connection_methods: Dict[str, Traced] = {}
    # Connection methods whose C code checks that an argument is a real connection (sqlite3's backup).
    unwrapping_connection_methods: Tuple[str, ...] = ()

    def __init__(self, instrumentation: str) -> None:
        self.instrumentation = instrumentation
        connection_base, cursor_base = (AsyncConnectionProxy, AsyncCursorProxy) if self.asynchronous else (ConnectionProxy, CursorProxy)
        self.connection_proxy = _proxy_class(connection_base, self.connection_methods, self.asynchronous, self.unwrapping_connection_methods)
        # cursor_proxy(cursor, connection_proxy): a proxy of the cursor.
        self.cursor_proxy = functools.partial(_core.cursor_proxy, _proxy_class(cursor_base, self.cursor_methods, self.asynchronous, forwarded=_CURSOR_ATTRIBUTES))

    def endpoint(self, connection: Any, args: tuple, kwargs: dict) -> Endpoint:
        """What ``connection`` (made by ``connect(*args, **kwargs)``) talks to."""
        return Endpoint(self.subtype)

    def connect_subtype(self, args: tuple, kwargs: dict) -> str:
        """The subtype of the span of ``connect(*args, **kwargs)``, before it connects."""
        return self.subtype

    def traced_connect(self, wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        """A wrapt wrapper for the library's ``connect``: returns the connection proxy (or, for an
        asynchronous library, an awaitable of it)."""
        if self.asynchronous:
            connecting = wrapped(*args, **kwargs)
            settle = lambda awaitable: self._connected_later(awaitable, args, kwargs)  # noqa: E731
            return Pending(connecting, settle) if hasattr(connecting, "__aenter__") else settle(connecting)
        started = self._start_connect(args, kwargs)
        try:
            connection = wrapped(*args, **kwargs)
        except BaseException:
            sql_spans.end_connect(self.instrumentation, started, failed=True)
            raise
        return self._connected(connection, started, args, kwargs)

    async def _connected_later(self, connecting: Awaitable, args: tuple, kwargs: dict) -> Any:
        started = self._start_connect(args, kwargs)
        try:
            connection = await connecting
        except BaseException:
            sql_spans.end_connect(self.instrumentation, started, failed=True)
            raise
        return self._connected(connection, started, args, kwargs)

    def _start_connect(self, args: tuple, kwargs: dict) -> Optional[Started]:
        if self.library is None or not sql_spans.recording():
            return None
        try:
            return sql_spans.start_connect(self.instrumentation, self.library, self.connect_subtype(args, kwargs))
        except Exception:
            report_failure(self.instrumentation)
            return None

    def _connected(self, connection: Any, started: Optional[Started], args: tuple, kwargs: dict) -> Any:
        try:
            endpoint = self.endpoint(connection, args, kwargs)
        except Exception:
            report_failure(self.instrumentation)
            endpoint = Endpoint(self.subtype)
        sql_spans.end_connect(self.instrumentation, started, endpoint)
        return self.connection_proxy(connection, self, endpoint)


def unwrapping(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
    """A wrapt wrapper for library functions whose C code checks that an argument is a real
    connection or cursor: they get what the proxies wrap."""
    return wrapped(*map(_real, args), **{key: _real(value) for key, value in kwargs.items()})


def _real(value: Any) -> Any:
    return value.__wrapped__ if isinstance(value, _Proxy) else value


class Pending(wrapt.ObjectProxy):
    """An awaitable that is also an async context manager (what aiopg's and aiomysql's
    ``connect()`` and ``cursor()`` return): awaited or entered, it gives what ``settle`` (an async
    function of the awaitable) makes of its result. Leaving it is left to the library."""

    def __init__(self, wrapped: Any, settle: Callable[[Awaitable], Awaitable]) -> None:
        super().__init__(wrapped)
        self._self_settle = settle

    def __await__(self):
        return self._self_settle(self.__wrapped__).__await__()

    async def __aenter__(self) -> Any:
        return await self._self_settle(self.__wrapped__.__aenter__())

    def __aexit__(self, *exc_info: Any) -> Any:
        return self.__wrapped__.__aexit__(*exc_info)


class _Proxy(wrapt.ObjectProxy):
    """What connection and cursor proxies share: their library (``_self_database``) and their
    endpoint (``_self_endpoint``), which their traced methods (``_core.TracedMethod``) read."""


class _SyncEntering:
    """``with`` gives the proxy when the library's object gives itself."""

    def __enter__(self: Any) -> Any:
        entered = self.__wrapped__.__enter__()
        return self if entered is self.__wrapped__ else entered

    def __exit__(self: Any, *exc_info: Any) -> Any:
        return self.__wrapped__.__exit__(*exc_info)


class _AsyncEntering:
    """``async with`` gives the proxy when the library's object gives itself; ``async for``."""

    async def __aenter__(self: Any) -> Any:
        entered = await self.__wrapped__.__aenter__()
        return self if entered is self.__wrapped__ else entered

    def __aexit__(self: Any, *exc_info: Any) -> Any:
        return self.__wrapped__.__aexit__(*exc_info)

    def __aiter__(self: Any) -> Any:
        return self.__wrapped__.__aiter__()

    def __anext__(self: Any) -> Any:
        return self.__wrapped__.__anext__()


class _ConnectionProxy(_Proxy):
    def __init__(self, wrapped: Any, database: Database, endpoint: Endpoint) -> None:
        wrapt.ObjectProxy.__init__(self, wrapped)
        self._self_database = database
        self._self_endpoint = endpoint

    def cursor(self, *args: Any, **kwargs: Any) -> Any:
        cursor = self.__wrapped__.cursor(*args, **kwargs)
        if hasattr(cursor, "__await__"):  # aiopg's and aiomysql's
            return Pending(cursor, self._self_settle_cursor)
        return self._self_database.cursor_proxy(cursor, self)

    async def _self_settle_cursor(self, pending: Awaitable) -> Any:
        return self._self_database.cursor_proxy(await pending, self)


class _CursorProxy(_Proxy):
    """Made by ``_core.cursor_proxy``, which sets ``_self_connection`` too."""

    @property
    def connection(self) -> _ConnectionProxy:
        return self._self_connection


class ConnectionProxy(_SyncEntering, _ConnectionProxy):
    pass


class AsyncConnectionProxy(_AsyncEntering, _ConnectionProxy):
    pass


class CursorProxy(_SyncEntering, _CursorProxy):
    def __next__(self) -> Any:
        return next(self.__wrapped__)


class AsyncCursorProxy(_AsyncEntering, _CursorProxy):
    pass


# The PEP 249 cursor attributes applications use on every query, forwarded by a property each: a
# wrapt proxy finds any other name on the wrapped object only after failing to find it on itself,
# and that failure (an AttributeError made and dropped) costs more than the property.
_CURSOR_ATTRIBUTES = ("description", "rowcount", "lastrowid", "arraysize", "fetchone", "fetchmany", "fetchall", "close", "nextset")


def _proxy_class(base: type, methods: Dict[str, Traced], asynchronous: bool, unwrapping: Tuple[str, ...] = (), forwarded: Tuple[str, ...] = ()) -> type:
    """``base`` with a traced method for each of ``methods``, an unwrapping one for each of
    ``unwrapping``, and a property for each of ``forwarded`` (the wrapped object's attribute)."""
    # A connection's execute returns the cursor that counts its rows; a cursor counts its own.
    rows_from_result = issubclass(base, _ConnectionProxy)
    namespace: Dict[str, Any] = {name: _forwarded(name) for name in forwarded}
    namespace.update((name, _traced_method(_core.TracedMethod(name, traced, rows_from_result), asynchronous)) for name, traced in methods.items())
    namespace.update((name, _unwrapping_method(name)) for name in unwrapping)
    return type(base.__name__, (base,), namespace)


def _forwarded(name: str) -> property:
    def get(self: _Proxy) -> Any:
        return getattr(self.__wrapped__, name)

    def set(self: _Proxy, value: Any) -> None:
        setattr(self.__wrapped__, name, value)

    return property(get, set)


def _unwrapping_method(name: str) -> Callable:
    def method(self: _Proxy, *args: Any, **kwargs: Any) -> Any:
        return unwrapping(getattr(self.__wrapped__, name), None, args, kwargs)

    method.__name__ = method.__qualname__ = name
    return method


def _traced_method(traced: _core.TracedMethod, asynchronous: bool) -> Callable:
    """A synchronous method is the engine's ``traced`` itself; an asynchronous one awaits the
    library's call between its halves."""
    if not asynchronous:
        return traced
    name = traced.__name__

    async def method(self: _Proxy, *args: Any, **kwargs: Any) -> Any:
        call = getattr(self.__wrapped__, name)
        started = traced.start(self, args, kwargs)
        try:
            result = await call(*args, **kwargs)
        except BaseException:
            traced.fail(self, started)
            raise
        return traced.finish(self, started, result)

    method.__name__ = method.__qualname__ = name
    return method
