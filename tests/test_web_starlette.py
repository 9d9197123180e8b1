"""The starlette and fastapi instrumentations: a Starlette and a FastAPI application with the same
endpoints, on uvicorn, with real HTTP requests."""

import asyncio
import time

import pytest
import requests
import web_checks as checks
from web_checks import ENDLESS_CLOSED
from web_suite import Site
from web_suite import *  # noqa: F401,F403 (the tests every framework's application must pass)

import oxapm
from oxapm.contrib.asgi import OxapmMiddleware

starlette = pytest.importorskip("starlette")
fastapi = pytest.importorskip("fastapi")
from starlette.applications import Starlette  # noqa: E402
from starlette.middleware import Middleware  # noqa: E402
from starlette.middleware.base import BaseHTTPMiddleware  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import PlainTextResponse, Response, StreamingResponse  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402

ROUTE_NAME = "GET /users/{user_id}"
FRAMEWORKS = ["starlette", "fastapi"]


async def user(request: Request):
    with oxapm.capture_span("load-user"):
        trace_parent = oxapm.get_trace_parent_header() or ""
    with checks.otel_tracer().start_as_current_span("otel-op"):
        pass
    return PlainTextResponse("user %s" % request.path_params["user_id"], headers={"x-trace-parent": trace_parent})


async def echo(request: Request):
    return Response(await request.body())


async def form(request: Request):
    fields = await request.form()
    return PlainTextResponse(";".join("%s=%s" % (k, v) for k, v in sorted(fields.items()) if isinstance(v, str)))


async def echo_then_boom(request: Request):
    await request.body()
    raise ValueError("after body")


async def boom(request: Request):
    raise ValueError("boom")


async def stream(request: Request):
    async def chunks():
        for i in range(3):
            if i == 2:
                await checks.wait_for_gate()
            with oxapm.capture_span("chunk"):
                chunk = "chunk %d\n" % i
            yield chunk

    return StreamingResponse(chunks())


async def endless(request: Request):
    async def chunks():
        try:
            while True:
                yield b"x" * 4096
                await asyncio.sleep(0.005)
        finally:
            ENDLESS_CLOSED.set()

    return StreamingResponse(chunks())


async def renamed(request: Request):
    oxapm.set_transaction_name("custom name")
    return PlainTextResponse("renamed")


async def slow(request: Request):
    n = int(request.path_params["n"])
    oxapm.label(n=n)
    async with oxapm.async_capture_span("slow", labels={"n": n}):
        await asyncio.sleep(0.1)
    return PlainTextResponse("slow %d" % n)


async def item(request: Request):
    return PlainTextResponse("item")


async def raw_asgi(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"raw"})


ENDPOINTS = [
    ("/users/{user_id:int}", user, ["GET"]),
    ("/echo", echo, ["POST"]),
    ("/form", form, ["POST"]),
    ("/echo-then-boom", echo_then_boom, ["POST"]),
    ("/boom", boom, ["GET"]),
    ("/stream", stream, ["GET"]),
    ("/endless", endless, ["GET"]),
    ("/renamed", renamed, ["GET"]),
    ("/slow/{n}", slow, ["GET"]),
]


async def served_by(request: Request, call_next):
    """A BaseHTTPMiddleware: Starlette runs what is below it in a task of its own."""
    response = await call_next(request)
    response.headers["x-served-by"] = "test-app"
    return response


def starlette_app():
    """The endpoints behind a BaseHTTPMiddleware, a mounted group of routes and a mounted
    application without routes."""
    routes = [Route(path, endpoint, methods=methods) for path, endpoint, methods in ENDPOINTS]
    routes.append(Mount("/api", routes=[Route("/items/{item_id}", item)]))
    routes.append(Mount("/raw", app=raw_asgi))
    return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=served_by)])


def fastapi_app():
    """The endpoints as API routes behind a BaseHTTPMiddleware, routers included in routers, a
    mounted FastAPI application and a mounted application without routes."""
    app = fastapi.FastAPI()
    app.add_middleware(BaseHTTPMiddleware, dispatch=served_by)
    for path, endpoint, methods in ENDPOINTS:
        app.add_api_route(path, endpoint, methods=methods)
    outer = fastapi.APIRouter(prefix="/api/{org}")
    inner = fastapi.APIRouter(prefix="/v1")
    inner.add_api_route("/items/{item_id}", item, methods=["GET"])
    outer.include_router(inner)
    app.include_router(outer)
    sub = fastapi.FastAPI()
    sub.add_api_route("/items/{item_id}", item, methods=["GET"])
    app.mount("/sub", sub)
    app.mount("/raw", raw_asgi)
    return app


TEMPLATES = {
    "starlette": {"/api/items/3": "GET /api/items/{item_id}", "/raw/anything/here": "GET /raw/{path}"},
    "fastapi": {
        "/api/acme/v1/items/3": "GET /api/{org}/v1/items/{item_id}",
        "/sub/items/3": "GET /sub/items/{item_id}",
        "/raw/anything/here": "GET /raw/{path}",
    },
}


@pytest.fixture(scope="module", params=FRAMEWORKS)
def framework(request):
    return request.param


@pytest.fixture(scope="module")
def site(framework):
    with checks.asgi_server(starlette_app() if framework == "starlette" else fastapi_app()) as url:
        yield Site(url, ROUTE_NAME, instrumentation=framework)


def test_route_templates_through_mounts_and_routers(url, framework, recorded):
    for path in TEMPLATES[framework]:
        assert requests.get(url + path).status_code == 200
    names = {t["context"]["request"]["url"]["pathname"]: t["name"] for t in recorded.wait_for_transactions(len(TEMPLATES[framework]))}
    assert names == TEMPLATES[framework]


def test_uninstrument_restores_starlette_and_fastapi(url):
    from fastapi import routing as fastapi_routing
    from starlette import routing

    patched = [(Starlette, "__call__"), (fastapi.FastAPI, "__call__"), (routing.Route, "handle"), (routing.Mount, "handle")]
    if "_route_selected" in vars(fastapi_routing):
        patched.append((fastapi_routing, "_route_selected"))
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


def test_one_instrumentation_disabled_keeps_the_routing_of_the_other(monkeypatch):
    """starlette and fastapi share the routing patches: disabling one leaves the other whole."""
    monkeypatch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "starlette")
    client = checks.make_client()
    try:
        oxapm.instrument()
        recorded = checks.Recorded(client)
        with checks.asgi_server(starlette_app()) as url:
            assert requests.get(url + "/users/1").text == "user 1"
        with checks.asgi_server(fastapi_app()) as url:
            assert requests.get(url + "/api/acme/v1/items/3").text == "item"
        assert [t["name"] for t in recorded.wait_for_transactions(1)] == ["GET /api/{org}/v1/items/{item_id}"]
    finally:
        oxapm.uninstrument()
        client.close()


def test_inside_a_hand_placed_middleware_one_transaction_named_by_the_framework(framework, recorded):
    app = starlette_app() if framework == "starlette" else fastapi_app()
    with checks.asgi_server(OxapmMiddleware(app)) as url:
        assert requests.get(url + "/users/8").text == "user 8"
    assert recorded.transaction()["name"] == ROUTE_NAME
    time.sleep(0.1)
    assert len(recorded.poll().transactions) == 1


def test_fastapi_telemetry_stands_aside_for_oxapm(recorded, monkeypatch):
    """With oxapm as OpenTelemetry's tracer provider, FastAPI's own telemetry would start a
    second transaction for each request: it does not."""
    from opentelemetry import trace

    from oxapm.otel.trace import TracerProvider

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", TracerProvider(recorded.client))
    with checks.asgi_server(fastapi_app()) as url:
        assert requests.get(url + "/users/4").text == "user 4"
    recorded.wait_for_transactions(1)
    time.sleep(0.1)
    transactions = recorded.poll().of("transaction")
    assert [t["name"] for t in transactions] == [ROUTE_NAME]
    assert {s["name"] for s in recorded.spans} == {"load-user", "otel-op"}
