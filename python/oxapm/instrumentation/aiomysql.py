"""aiomysql: a span per connect (pools' too), per statement run by a cursor (``execute``,
``executemany``, ``callproc``), and per ``commit()``/``rollback()``; subtype ``mysql``."""

from __future__ import annotations

from oxapm.instrumentation.base import Instrumentation
from oxapm.instrumentation.pymysql import PyMySQL


class Aiomysql(PyMySQL):
    """PyMySQL's, asynchronous: aiomysql's connections are PyMySQL's, on asyncio."""

    library = "aiomysql"
    asynchronous = True


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
