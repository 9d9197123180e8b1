"""The library instrumentations, as data: what each one is, which imports apply it, and which
versions of its library it supports. Nothing here imports a library or an instrumentation.

Names are those of the OpenTelemetry contrib instrumentations of the same libraries, so that one
name disables both (``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, ``ELASTIC_APM_DISABLED_INSTRUMENTATIONS``)
and ``oxapm run`` applies ours in place of a contrib one.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Dict, Optional, Tuple


class Entry:
    __slots__ = ("target", "modules", "distributions", "versions")

    def __init__(self, target: str, modules: Tuple[str, ...], distributions: Tuple[str, ...] = (), versions: str = "") -> None:
        self.target = target  # "package.module:Class", the Instrumentation
        self.modules = modules  # the import of any of them applies it
        # The distributions that provide the library (the first installed counts); none for the
        # standard library.
        self.distributions = distributions
        self.versions = versions  # supported versions: "" (any) or clauses like ">=2.0,<3"

    def __repr__(self) -> str:
        return "Entry(%r, %r, %r, %r)" % (self.target, self.modules, self.distributions, self.versions)


_entries: Dict[str, Entry] = {}


def register(name: str, entry: Entry) -> None:
    _entries[name] = entry


def entries() -> Dict[str, Entry]:
    return dict(_entries)


def supports(versions: str, version: str) -> Optional[bool]:
    """Whether ``version`` satisfies ``versions`` (clauses joined by commas, each an operator among
    ``>= > <= < == !=`` and a release such as ``2.31``); None when ``version`` has no release
    number to compare. Pre-releases and local parts count as their release."""
    release = _release(version)
    if not release:
        return None
    for clause in filter(None, (c.strip() for c in versions.split(","))):
        operator = clause[:2] if clause[:2] in (">=", "<=", "==", "!=") else clause[:1]
        bound = _release(clause[len(operator):].strip())
        width = max(len(release), len(bound))
        left, right = release + (0,) * (width - len(release)), bound + (0,) * (width - len(bound))
        satisfied = {
            ">=": left >= right, ">": left > right, "<=": left <= right, "<": left < right,
            "==": left == right, "!=": left != right,
        }.get(operator)
        if not satisfied:
            return False
    return True


def _release(version: str) -> Tuple[int, ...]:
    """The leading numbers of a version: ``2.31.0rc1`` -> (2, 31, 0)."""
    numbers = []
    for piece in version.split("."):
        digits = len(piece) - len(piece.lstrip("0123456789"))
        if not digits:
            break
        numbers.append(int(piece[:digits]))
        if digits < len(piece):
            break
    return tuple(numbers)


# Caches
register("redis", Entry("oxapm.instrumentation.redis:RedisInstrumentation", ("redis",), ("redis",), ">=4.2,<9"))
register("pymemcache", Entry("oxapm.instrumentation.pymemcache:PymemcacheInstrumentation", ("pymemcache",), ("pymemcache",), ">=4.0,<5"))
register("python-memcached", Entry("oxapm.instrumentation.python_memcached:PythonMemcachedInstrumentation", ("memcache",), ("python-memcached",), ">=1.59,<2"))
register("pylibmc", Entry("oxapm.instrumentation.pylibmc:PylibmcInstrumentation", ("pylibmc",), ("pylibmc",), ">=1.6,<2"))

# HTTP clients (exit spans made by outgoing_http.py). http.client covers urllib.request, which has no
# other way out (see http_client.py).
register("http-client", Entry("oxapm.instrumentation.http_client:HttpClientInstrumentation", ("http.client",)))
register("urllib3", Entry("oxapm.instrumentation.urllib3:Urllib3Instrumentation", ("urllib3",), ("urllib3",), ">=1.26,<3"))
register("requests", Entry("oxapm.instrumentation.requests:RequestsInstrumentation", ("requests",), ("requests",), ">=2.0,<3"))
register("httpx", Entry("oxapm.instrumentation.httpx:HttpxInstrumentation", ("httpx",), ("httpx",), ">=0.18,<1"))
register("aiohttp-client", Entry("oxapm.instrumentation.aiohttp_client:AiohttpClientInstrumentation", ("aiohttp",), ("aiohttp",), ">=3.8,<4"))
register("httplib2", Entry("oxapm.instrumentation.httplib2:Httplib2Instrumentation", ("httplib2",), ("httplib2",), ">=0.9,<1"))

# SQL databases (DB-API 2 proxies of dbapi.py, and asyncpg; span fields from sql_spans.py)
register("sqlite3", Entry("oxapm.instrumentation.sqlite3:SQLite3Instrumentation", ("sqlite3",)))
register("psycopg2", Entry("oxapm.instrumentation.psycopg2:Psycopg2Instrumentation", ("psycopg2",), ("psycopg2", "psycopg2-binary"), ">=2.8,<3"))
register("psycopg", Entry("oxapm.instrumentation.psycopg:PsycopgInstrumentation", ("psycopg",), ("psycopg",), ">=3.0,<4"))
register("asyncpg", Entry("oxapm.instrumentation.asyncpg:AsyncpgInstrumentation", ("asyncpg",), ("asyncpg",), ">=0.23,<1"))
register("pymysql", Entry("oxapm.instrumentation.pymysql:PyMySQLInstrumentation", ("pymysql",), ("PyMySQL",), ">=1.0,<2"))
register("mysqlclient", Entry("oxapm.instrumentation.mysqlclient:MySQLClientInstrumentation", ("MySQLdb",), ("mysqlclient",), ">=2.2,<3"))
register("aiomysql", Entry("oxapm.instrumentation.aiomysql:AiomysqlInstrumentation", ("aiomysql",), ("aiomysql",), ">=0.1,<1"))
register("aiopg", Entry("oxapm.instrumentation.aiopg:AiopgInstrumentation", ("aiopg",), ("aiopg",), ">=1.3,<2"))
register("pyodbc", Entry("oxapm.instrumentation.pyodbc:PyODBCInstrumentation", ("pyodbc",), ("pyodbc",), ">=4.0,<6"))

# Web frameworks (incoming requests as transactions; what they share is web.py, the WSGI and ASGI
# halves are oxapm.contrib.wsgi and oxapm.contrib.asgi)
register("flask", Entry("oxapm.instrumentation.flask:FlaskInstrumentation", ("flask",), ("flask",), ">=2.2,<4"))
register("django", Entry("oxapm.instrumentation.django:DjangoInstrumentation", ("django.core.handlers.base",), ("django",), ">=4.2,<7"))
register("starlette", Entry("oxapm.instrumentation.starlette:StarletteInstrumentation", ("starlette.applications",), ("starlette",), ">=0.37,<2"))
register("fastapi", Entry("oxapm.instrumentation.starlette:FastAPIInstrumentation", ("fastapi",), ("fastapi",), ">=0.110,<1"))
register("aiohttp-server", Entry("oxapm.instrumentation.aiohttp_server:AioHttpServerInstrumentation", ("aiohttp.web",), ("aiohttp",), ">=3.8,<4"))
register("sanic", Entry("oxapm.instrumentation.sanic:SanicInstrumentation", ("sanic",), ("sanic",), ">=23.3,<26"))
