"""The web-overhead workload: one Flask endpoint that does what a typical service endpoint does, a
database query (sqlite) and a call to another service (requests, on a kept-alive session), served
by gunicorn. No agent is mentioned: each agent's launcher instruments it."""

import os
import sqlite3
import threading

import requests
from flask import Flask, jsonify

app = Flask(__name__)

_DOWNSTREAM = os.environ["BENCH_DOWNSTREAM_URL"]
_local = threading.local()


def _database() -> sqlite3.Connection:
    connection = getattr(_local, "connection", None)
    if connection is None:
        connection = _local.connection = sqlite3.connect(":memory:")
        connection.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        connection.executemany("INSERT INTO items VALUES (?, ?)", [(i, "item %d" % i) for i in range(100)])
    return connection


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = requests.Session()
    return session


@app.route("/orders/<int:order_id>")
def order(order_id: int):
    item_id, name = _database().execute("SELECT id, name FROM items WHERE id = ?", (order_id % 100,)).fetchone()
    stock = _session().get(_DOWNSTREAM + "/stock/%d" % item_id).text
    return jsonify(id=item_id, name=name, stock=stock)
