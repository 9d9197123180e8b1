"""The test servers of tests/servers.py answer each client library the instrumentation tests use:
one round trip per library, logged in as the test user (these test the fixtures, not oxapm)."""

import asyncio
from contextlib import closing

from servers import DATABASE, USER

POSTGRES_WHO = "SELECT current_user, current_database()"
MARIADB_WHO = "SELECT SUBSTRING_INDEX(USER(), '@', 1), DATABASE()"


def test_psycopg2(postgres):
    import psycopg2

    with closing(psycopg2.connect(postgres.dsn)) as conn, conn.cursor() as cursor:
        cursor.execute(POSTGRES_WHO)
        assert cursor.fetchone() == (USER, DATABASE)


def test_psycopg(postgres):
    import psycopg

    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute(POSTGRES_WHO).fetchone() == (USER, DATABASE)


def test_psycopg_async(postgres):
    import psycopg

    async def who():
        async with await psycopg.AsyncConnection.connect(postgres.dsn) as conn:
            cursor = await conn.execute(POSTGRES_WHO)
            return await cursor.fetchone()

    assert asyncio.run(who()) == (USER, DATABASE)


def test_asyncpg(postgres):
    import asyncpg

    async def who():
        conn = await asyncpg.connect(postgres.url)
        try:
            return tuple(await conn.fetchrow(POSTGRES_WHO))
        finally:
            await conn.close()

    assert asyncio.run(who()) == (USER, DATABASE)


def test_aiopg(postgres):
    import aiopg

    async def who():
        async with aiopg.connect(postgres.dsn) as conn, conn.cursor() as cursor:
            await cursor.execute(POSTGRES_WHO)
            return await cursor.fetchone()

    assert asyncio.run(who()) == (USER, DATABASE)


def test_pyodbc(odbc_postgres):
    import pyodbc

    with pyodbc.connect(odbc_postgres.dsn) as conn:
        assert tuple(conn.cursor().execute(POSTGRES_WHO).fetchone()) == (USER, DATABASE)


def test_pymysql(mariadb):
    import pymysql

    conn = pymysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user, password=mariadb.password, database=mariadb.database)
    with conn, conn.cursor() as cursor:
        cursor.execute(MARIADB_WHO)
        assert cursor.fetchone() == (USER, DATABASE)


def test_mysqlclient(mariadb):
    import MySQLdb

    conn = MySQLdb.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user, password=mariadb.password, database=mariadb.database)
    with conn, conn.cursor() as cursor:
        cursor.execute(MARIADB_WHO)
        assert cursor.fetchone() == (USER, DATABASE)


def test_aiomysql(mariadb):
    import aiomysql

    async def who():
        conn = await aiomysql.connect(host=mariadb.host, port=mariadb.port, user=mariadb.user, password=mariadb.password, db=mariadb.database)
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(MARIADB_WHO)
                return await cursor.fetchone()
        finally:
            conn.close()

    assert asyncio.run(who()) == (USER, DATABASE)


def test_redis(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    with client:
        client.set("greeting", "hello")
        assert client.get("greeting") == b"hello"
        assert client.acl_whoami() == USER


def test_redis_asyncio(redis_server):
    import redis.asyncio

    async def greeting():
        client = redis.asyncio.Redis(host=redis_server.host, port=redis_server.port, username=redis_server.user, password=redis_server.password, db=redis_server.database)
        try:
            await client.set("async-greeting", "hello")
            return await client.get("async-greeting")
        finally:
            await client.aclose()

    assert asyncio.run(greeting()) == b"hello"


def test_pymemcache(memcached):
    from pymemcache.client.base import Client

    client = Client((memcached.host, memcached.port))
    try:
        client.set("pymemcache", b"hello")
        assert client.get("pymemcache") == b"hello"
    finally:
        client.close()


def test_python_memcached(memcached):
    import memcache

    client = memcache.Client([memcached.address])
    try:
        assert client.set("python-memcached", "hello")
        assert client.get("python-memcached") == "hello"
    finally:
        client.disconnect_all()


def test_pylibmc(memcached):
    import pylibmc

    # behaviors={}: without it pylibmc 1.6.3 looks keys up in None (an unraisable TypeError on 3.13).
    client = pylibmc.Client([memcached.address], behaviors={})
    try:
        client.set("pylibmc", "hello")
        assert client.get("pylibmc") == "hello"
    finally:
        client.disconnect_all()
