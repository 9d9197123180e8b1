"""The sanic instrumentation: a Sanic application on Sanic's own server (started as ``app.run``
starts it, touch-up included), with real HTTP requests."""

import asyncio
import itertools

import pytest
import requests
import web_checks as checks
from web_checks import ENDLESS_CLOSED

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
def url():
    with checks.sanic_server(make_app()) as url:
        yield url


def test_a_request_is_a_transaction_named_after_its_route(url, recorded):
    checks.check_request(url, recorded, ROUTE_NAME)


def test_a_blueprint_route_includes_its_prefix(url, recorded):
    assert requests.get(url + "/api/items/3").text == "item"
    assert recorded.transaction()["name"] == "GET /api/items/<item_id:int>"


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


def test_a_streamed_response_ends_the_transaction_when_it_ends(url, recorded):
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
    checks.check_disabled(url, "sanic", monkeypatch, variable)


def test_an_agent_failure_leaves_requests_served(url, recorded, monkeypatch, caplog):
    checks.check_internal_failure(url, recorded, monkeypatch, caplog)


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
