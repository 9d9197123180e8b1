"""A small shop service instrumented with the oxapm (Elastic-compatible) API.

It serves HTTP on loopback, queries sqlite, calls itself over HTTP with the trace context in the
headers, and fails on one route. `make demo` runs it with OTEL_TRACES_EXPORTER=console, so each
finished transaction prints as a waterfall; set ELASTIC_APM_SERVER_URL to send to APM Server.
"""

import http.server
import json
import sqlite3
import threading
import urllib.error
import urllib.request

import oxapm as elasticapm

client = elasticapm.Client(service_name="shop", service_version="1.0", environment="demo")

db = sqlite3.connect(":memory:", check_same_thread=False)
db_lock = threading.Lock()
with db:
    db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT, quantity INTEGER)")
    db.executemany("INSERT INTO orders (item, quantity) VALUES (?, ?)", [("tea", 2), ("cake", 1), ("scone", 4)])


def query(sql, *params):
    with elasticapm.capture_span(sql.split(" FROM ")[0] + " FROM orders", span_type="db.sqlite.query", extra={"db": {"type": "sql", "statement": sql}}):
        with db_lock:
            return db.execute(sql, params).fetchall()


def call(url):
    """An outgoing HTTP call carrying the trace context, as the HTTP client instrumentations will."""
    with elasticapm.capture_span("GET /" + url.split("/", 3)[-1], span_type="external.http", leaf=True):
        request = urllib.request.Request(url, headers={"traceparent": elasticapm.get_trace_parent_header()})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.load(response)


class Shop(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        trace_parent = elasticapm.trace_parent_from_headers(self.headers)
        client.begin_transaction("request", trace_parent=trace_parent)
        status, body = 500, {"error": "internal"}
        try:
            status, body = self.route()
        except Exception:
            client.capture_exception(handled=False)
        elasticapm.set_transaction_outcome(http_status_code=status)
        client.end_transaction("GET " + self.path, "HTTP %dxx" % (status // 100))
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def route(self):
        if self.path == "/orders":
            orders = query("SELECT id, item, quantity FROM orders")
            stock = call("http://127.0.0.1:%d/stock" % self.server.server_port)
            elasticapm.label(orders=len(orders))
            return 200, {"orders": orders, "stock": stock}
        if self.path == "/stock":
            return 200, {"tea": 10, "cake": 3}
        if self.path == "/checkout":
            with elasticapm.capture_span("compute total"):
                total = sum(q for _, q in query("SELECT item, quantity FROM orders")) / 0
            return 200, {"total": total}
        return 404, {"error": "not found"}

    def log_message(self, *args):
        pass


def main():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Shop)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % server.server_port
    for path in ("/orders", "/checkout"):
        try:
            urllib.request.urlopen(base + path, timeout=5).read()
        except urllib.error.HTTPError as e:
            print("GET %s -> %d" % (path, e.code))
        else:
            print("GET %s -> 200" % path)
    server.shutdown()
    client.close()


if __name__ == "__main__":
    main()
