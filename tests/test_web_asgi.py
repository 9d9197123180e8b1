"""The generic ASGI middleware (``oxapm.contrib.asgi.OxapmMiddleware``) around a framework-less
application, on uvicorn, with real HTTP requests."""

import asyncio
from urllib.parse import parse_qsl

import pytest
import requests
import web_checks as checks
from web_checks import ENDLESS_CLOSED
from web_suite import Site
from web_suite import *  # noqa: F401,F403 (the tests every framework's application must pass)

import oxapm
from oxapm.contrib.asgi import OxapmMiddleware

UNKNOWN = "GET unknown route"


async def application(scope, receive, send):
    """The test routes, by hand."""
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    headers = [(b"content-type", b"text/plain"), (b"x-served-by", b"test-app")]

    async def answer(body, status=200, extra=()):
        await send({"type": "http.response.start", "status": status, "headers": headers + list(extra)})
        await send({"type": "http.response.body", "body": body})

    if path.startswith("/users/"):
        with oxapm.capture_span("load-user"):
            trace_parent = oxapm.get_trace_parent_header() or ""
        with checks.otel_tracer().start_as_current_span("otel-op"):
            pass
        await answer(b"user " + path[len("/users/"):].encode(), extra=[(b"x-trace-parent", trace_parent.encode())])
    elif method == "POST" and path in ("/echo", "/form", "/echo-then-boom"):
        data = await _read_body(receive)
        if path == "/echo-then-boom":
            raise ValueError("after body")
        if path == "/form":
            data = ";".join("%s=%s" % item for item in sorted(parse_qsl(data.decode()))).encode()
        await answer(data)
    elif path == "/boom":
        raise ValueError("boom")
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(3):
            if i == 2:
                await checks.wait_for_gate()
            with oxapm.capture_span("chunk"):
                chunk = ("chunk %d\n" % i).encode()
            await send({"type": "http.response.body", "body": chunk, "more_body": i < 2})
    elif path == "/endless":
        await _endless(receive, send, headers)
    elif path == "/renamed":
        oxapm.set_transaction_name("custom name")
        await answer(b"renamed")
    elif path.startswith("/slow/"):
        n = int(path[len("/slow/"):])
        oxapm.label(n=n)
        async with oxapm.async_capture_span("slow", labels={"n": n}):
            await asyncio.sleep(0.1)
        await answer(b"slow %d" % n)
    else:
        await answer(b"not found", status=404)


async def _read_body(receive):
    data = b""
    while True:
        message = await receive()
        data += message.get("body", b"")
        if not message.get("more_body"):
            return data


async def _endless(receive, send, headers):
    gone = asyncio.Event()

    async def listen():
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    listener = asyncio.ensure_future(listen())
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    while not gone.is_set():
        await send({"type": "http.response.body", "body": b"x" * 4096, "more_body": True})
        await asyncio.sleep(0.005)
    listener.cancel()
    ENDLESS_CLOSED.set()


@pytest.fixture(scope="module")
def site():
    with checks.asgi_server(OxapmMiddleware(application)) as url:
        yield Site(url, UNKNOWN, boom_name=UNKNOWN, multipart=False)


def test_an_exception_leaves_the_middleware_unchanged(recorded):
    raised = []

    async def failing(scope, receive, send):
        raised.append(KeyError("kept"))
        raise raised[0]

    traced = OxapmMiddleware(failing)
    caught = []

    async def catching(scope, receive, send):
        try:
            await traced(scope, receive, send)
        except KeyError as exc:
            caught.append(exc)
            await send({"type": "http.response.start", "status": 500, "headers": []})
            await send({"type": "http.response.body", "body": b"caught"})

    with checks.asgi_server(catching) as url:
        assert requests.get(url + "/x").text == "caught"
    assert caught[0] is raised[0]
    transaction = recorded.transaction()
    assert transaction["result"] == "HTTP 5xx" and transaction["outcome"] == "failure"
    (error,) = recorded.poll().errors
    assert error["exception"]["type"] == "KeyError" and error["transaction_id"] == transaction["id"]


def test_lifespan_and_websocket_scopes_pass_through(recorded):
    seen = []

    async def app(scope, receive, send):
        seen.append((scope["type"], oxapm.get_trace_parent_header()))

    traced = OxapmMiddleware(app)

    async def run():
        await traced({"type": "lifespan"}, None, None)
        await traced({"type": "websocket", "path": "/ws", "headers": []}, None, None)

    asyncio.run(run())
    assert seen == [("lifespan", None), ("websocket", None)]
    assert recorded.poll().transactions == []
