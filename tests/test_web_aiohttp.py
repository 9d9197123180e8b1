"""The aiohttp-server instrumentation: an aiohttp application on aiohttp's own runner, with real
HTTP requests."""

import asyncio

import pytest
import requests
import web_checks as checks
from web_checks import ENDLESS_CLOSED

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
def url():
    with checks.aiohttp_server(make_app()) as url:
        yield url


def test_a_request_is_a_transaction_named_after_its_route(url, recorded):
    checks.check_request(url, recorded, ROUTE_NAME)


def test_a_sub_application_route_includes_its_prefix(url, recorded):
    assert requests.get(url + "/api/items/3").text == "item"
    assert recorded.transaction()["name"] == "GET /api/items/{item_id}"


def test_no_route_is_unknown_route(url, recorded):
    checks.check_unknown_route(url, recorded)


def test_an_unhandled_exception_is_captured(url, recorded):
    checks.check_unhandled_exception(url, recorded, "GET /boom")


def test_the_application_names_its_transaction(url, recorded):
    checks.check_app_renames(url, recorded)


def test_trace_context_from_the_legacy_header_and_configured_propagators(url, recorded, monkeypatch):
    checks.check_legacy_and_configured_propagators(url, recorded, monkeypatch)


def test_headers_not_captured_when_capture_headers_is_off(url, client_with):
    checks.check_headers_not_captured(url, client_with(capture_headers=False))


@pytest.mark.parametrize("capture_body", ["off", "errors", "transactions", "all"])
def test_body_capture(url, client_with, capture_body):
    checks.check_body_capture(url, client_with(capture_body=capture_body), capture_body)


def test_secrets_are_redacted_on_export(url, client_with):
    checks.check_sanitized(url, client_with(capture_body="all"))


def test_a_multipart_form_is_captured_as_fields_and_file_names(url, client_with):
    checks.check_multipart_form(url, client_with(capture_body="all"))


def test_ignored_urls_have_no_transaction(url, client_with):
    checks.check_ignored_urls(url, client_with(transaction_ignore_urls="/users/*"))


def test_a_stream_response_ends_the_transaction_when_it_ends(url, recorded):
    checks.check_streaming(url, recorded)


def test_the_transaction_ends_when_the_client_goes_away(url, recorded):
    checks.check_client_goes_away(url, recorded)
    assert ENDLESS_CLOSED.wait(10)


def test_concurrent_requests_keep_their_own_transaction(url, recorded):
    checks.check_concurrent_requests(url, recorded)


def test_otlp_export(url, recorded, otlp_http, monkeypatch):
    checks.check_otlp(url, otlp_http, monkeypatch, ROUTE_NAME)


@pytest.mark.parametrize("variable", ["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "ELASTIC_APM_DISABLED_INSTRUMENTATIONS"])
def test_disabled_by_name(url, monkeypatch, variable):
    checks.check_disabled(url, "aiohttp-server", monkeypatch, variable)


def test_an_agent_failure_leaves_requests_served(url, recorded, monkeypatch, caplog):
    checks.check_internal_failure(url, recorded, monkeypatch, caplog)


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
