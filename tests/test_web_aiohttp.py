"""The aiohttp-server instrumentation: an aiohttp application on aiohttp's own runner, with real
HTTP requests."""

import asyncio

import pytest
import requests
import web_checks as checks
from web_checks import ENDLESS_CLOSED
from web_suite import Site
from web_suite import *  # noqa: F401,F403 (the tests every framework's application must pass)

import oxapm

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

ROUTE_NAME = "GET /users/{user_id}"


async def user(request):
    with oxapm.capture_span("load-user"):
        trace_parent = oxapm.get_trace_parent_header() or ""
    with checks.otel_tracer().start_as_current_span("otel-op"):
        pass
    headers = {"x-trace-parent": trace_parent, "x-served-by": "test-app"}
    return web.Response(text="user %s" % request.match_info["user_id"], headers=headers)


async def echo(request):
    return web.Response(body=await request.read())


async def form(request):
    fields = await request.post()
    return web.Response(text=";".join("%s=%s" % (k, v) for k, v in sorted(fields.items()) if isinstance(v, str)))


async def echo_then_boom(request):
    await request.read()
    raise ValueError("after body")


async def boom(request):
    raise ValueError("boom")


async def stream(request):
    response = web.StreamResponse()
    await response.prepare(request)
    for i in range(3):
        if i == 2:
            await checks.wait_for_gate()
        with oxapm.capture_span("chunk"):
            chunk = ("chunk %d\n" % i).encode()
        await response.write(chunk)
    return response  # aiohttp ends the body (write_eof) after the handler returns


async def endless(request):
    response = web.StreamResponse()
    await response.prepare(request)
    try:
        while True:
            await response.write(b"x" * 4096)
            await asyncio.sleep(0.005)
    finally:
        ENDLESS_CLOSED.set()


async def renamed(request):
    oxapm.set_transaction_name("custom name")
    return web.Response(text="renamed")


async def slow(request):
    n = int(request.match_info["n"])
    oxapm.label(n=n)
    async with oxapm.async_capture_span("slow", labels={"n": n}):
        await asyncio.sleep(0.1)
    return web.Response(text="slow %d" % n)


async def item(request):
    return web.Response(text="item")


def make_app():
    app = web.Application()
    app.router.add_get("/users/{user_id}", user)
    app.router.add_post("/echo", echo)
    app.router.add_post("/form", form)
    app.router.add_post("/echo-then-boom", echo_then_boom)
    app.router.add_get("/boom", boom)
    app.router.add_get("/stream", stream)
    app.router.add_get("/endless", endless)
    app.router.add_get("/renamed", renamed)
    app.router.add_get("/slow/{n}", slow)
    api = web.Application()
    api.router.add_get("/items/{item_id}", item)
    app.add_subapp("/api", api)
    return app


@pytest.fixture(scope="module")
def site():
    with checks.aiohttp_server(make_app()) as url:
        yield Site(url, ROUTE_NAME, instrumentation="aiohttp-server")


def test_a_sub_application_route_includes_its_prefix(url, recorded):
    assert requests.get(url + "/api/items/3").text == "item"
    assert recorded.transaction()["name"] == "GET /api/items/{item_id}"


def test_uninstrument_restores_aiohttp(url):
    from aiohttp import web_protocol, web_response

    patched = [(web_protocol.RequestHandler, "_handle_request"), (web_response.StreamResponse, "prepare")]
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
