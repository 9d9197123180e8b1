"""The sanic instrumentation: a Sanic application on Sanic's own server (started as ``app.run``
starts it, touch-up included), with real HTTP requests."""

import asyncio
import itertools

import pytest
import requests
import web_checks as checks
from web_checks import ENDLESS_CLOSED
from web_suite import Site
from web_suite import *  # noqa: F401,F403 (the tests every framework's application must pass)

import oxapm

sanic = pytest.importorskip("sanic")
from sanic import Blueprint, Sanic, response  # noqa: E402

ROUTE_NAME = "GET /users/<user_id:int>"
_names = itertools.count()


def make_app():
    app = Sanic("web_tests_%d" % next(_names))
    app.config.ACCESS_LOG = False

    @app.get("/users/<user_id:int>")
    async def user(request, user_id):
        with oxapm.capture_span("load-user"):
            trace_parent = oxapm.get_trace_parent_header() or ""
        with checks.otel_tracer().start_as_current_span("otel-op"):
            pass
        return response.text("user %d" % user_id, headers={"x-trace-parent": trace_parent, "x-served-by": "test-app"})

    @app.post("/echo")
    async def echo(request):
        return response.raw(request.body)

    @app.post("/form")
    async def form(request):
        return response.text(";".join("%s=%s" % (name, request.form.get(name)) for name in sorted(request.form)))

    @app.post("/echo-then-boom")
    async def echo_then_boom(request):
        request.body
        raise ValueError("after body")

    @app.get("/boom")
    async def boom(request):
        raise ValueError("boom")

    @app.get("/stream")
    async def stream(request):
        streamed = await request.respond(content_type="text/plain")
        for i in range(3):
            if i == 2:
                await checks.wait_for_gate()
            with oxapm.capture_span("chunk"):
                chunk = "chunk %d\n" % i
            await streamed.send(chunk)
        await streamed.eof()

    @app.get("/endless")
    async def endless(request):
        streamed = await request.respond(content_type="text/plain")
        try:
            while True:
                await streamed.send(b"x" * 4096)
                await asyncio.sleep(0.005)
        finally:
            ENDLESS_CLOSED.set()

    @app.get("/renamed")
    async def renamed(request):
        oxapm.set_transaction_name("custom name")
        return response.text("renamed")

    @app.get("/slow/<n:int>")
    async def slow(request, n):
        oxapm.label(n=n)
        async with oxapm.async_capture_span("slow", labels={"n": n}):
            await asyncio.sleep(0.1)
        return response.text("slow %d" % n)

    api = Blueprint("api_%d" % next(_names), url_prefix="/api")

    @api.get("/items/<item_id:int>")
    async def item(request, item_id):
        return response.text("item")

    app.blueprint(api)
    return app


@pytest.fixture(scope="module")
def site():
    with checks.sanic_server(make_app()) as url:
        yield Site(url, ROUTE_NAME, instrumentation="sanic")


def test_a_blueprint_route_includes_its_prefix(url, recorded):
    assert requests.get(url + "/api/items/3").text == "item"
    assert recorded.transaction()["name"] == "GET /api/items/<item_id:int>"


def test_an_application_started_after_instrument_is_traced_despite_touch_up(recorded):
    """Sanic recompiles handle_request when an application starts: the patch is put back."""
    with checks.sanic_server(make_app()) as url:
        assert requests.get(url + "/users/9").text == "user 9"
    assert recorded.transaction()["name"] == ROUTE_NAME


def test_uninstrument_restores_sanic(url):
    from sanic.handlers import ErrorHandler

    patched = [(Sanic, "handle_request"), (Sanic, "_startup"), (ErrorHandler, "response")]
    originals = [vars(owner)[name] for owner, name in patched]
    client = checks.make_client()
    try:
        oxapm.instrument()
        assert all(vars(owner)[name] is not original for (owner, name), original in zip(patched, originals))
        oxapm.uninstrument()
        assert all(vars(owner)[name] is original for (owner, name), original in zip(patched, originals))
        assert requests.get(url + "/users/3").text == "user 3"
        assert checks.Recorded(client).poll().transactions == []
    finally:
        client.close()
