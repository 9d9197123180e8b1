"""The django instrumentation: one Django project served over WSGI (Werkzeug's server) and over
ASGI (uvicorn), with real HTTP requests; django.contrib.auth with sessions in SQLite."""

import asyncio
import time

import pytest
import requests
import web_checks as checks
from web_checks import ENDLESS_CLOSED, GATE
from web_suite import Site
from web_suite import *  # noqa: F401,F403 (the tests every framework's application must pass)

import oxapm

django = pytest.importorskip("django")
from django.conf import settings  # noqa: E402
from django.http import HttpResponse, StreamingHttpResponse  # noqa: E402
from django.urls import include, path, re_path  # noqa: E402

ROUTE_NAME = "GET /users/<int:user_id>"
QUERIES = []  # every SQL statement run, by any thread


def user(request, user_id):
    with oxapm.capture_span("load-user"):
        trace_parent = oxapm.get_trace_parent_header() or ""
    with checks.otel_tracer().start_as_current_span("otel-op"):
        pass
    response = HttpResponse("user %d" % user_id)
    response["x-trace-parent"] = trace_parent
    response["x-served-by"] = "test-app"
    return response


def echo(request):
    return HttpResponse(request.body)


def form(request):
    return HttpResponse(";".join("%s=%s" % item for item in sorted(request.POST.items())))


def echo_then_boom(request):
    request.body
    raise ValueError("after body")


def boom(request):
    raise ValueError("boom")


def _served_asynchronously(request):
    from django.core.handlers.asgi import ASGIRequest

    return isinstance(request, ASGIRequest)


def stream(request):
    """A body of three chunks, produced as the server consumes it (an async iterator under ASGI,
    where Django would otherwise buffer a sync one)."""

    def chunks():
        for i in range(3):
            if i == 2:
                GATE.wait(10)
            with oxapm.capture_span("chunk"):
                chunk = "chunk %d\n" % i
            yield chunk

    async def async_chunks():
        for i in range(3):
            if i == 2:
                await checks.wait_for_gate()
            with oxapm.capture_span("chunk"):
                chunk = "chunk %d\n" % i
            yield chunk

    return StreamingHttpResponse(async_chunks() if _served_asynchronously(request) else chunks())


def endless(request):
    def chunks():
        try:
            while True:
                yield b"x" * 4096
                time.sleep(0.005)
        finally:
            ENDLESS_CLOSED.set()

    async def async_chunks():
        try:
            while True:
                yield b"x" * 4096
                await asyncio.sleep(0.005)
        finally:
            ENDLESS_CLOSED.set()

    return StreamingHttpResponse(async_chunks() if _served_asynchronously(request) else chunks())


def renamed(request):
    oxapm.set_transaction_name("custom name")
    return HttpResponse("renamed")


def whoami(request):
    return HttpResponse(request.user.get_username() if request.user.is_authenticated else "anonymous")


async def slow(request, n):
    oxapm.label(n=n)
    async with oxapm.async_capture_span("slow", labels={"n": n}):
        await asyncio.sleep(0.1)
    return HttpResponse("slow %d" % n)


def item(request, **kwargs):
    return HttpResponse("item")


urlpatterns = [
    path("users/<int:user_id>", user),
    path("echo", echo),
    path("form", form),
    path("echo-then-boom", echo_then_boom),
    path("boom", boom),
    path("stream", stream),
    path("endless", endless),
    path("renamed", renamed),
    path("whoami", whoami),
    path("slow/<int:n>", slow),
    re_path(r"^articles/(?P<year>[0-9]{4})/$", item),
    path("api/", include([path("items/<int:item_id>", item)])),
]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """Django configured (once per process), its tables created, a user with a session: the
    session cookie."""
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["*"],
            ROOT_URLCONF=__name__,
            SECRET_KEY="web-tests",
            INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions"],
            MIDDLEWARE=[
                "django.contrib.sessions.middleware.SessionMiddleware",
                "django.contrib.auth.middleware.AuthenticationMiddleware",
            ],
            DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(tmp_path_factory.mktemp("django") / "db.sqlite3")}},
            LOGGING_CONFIG=None,
            USE_TZ=True,
        )
        django.setup()
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.core.management import call_command
    from django.db.backends.signals import connection_created

    call_command("migrate", verbosity=0)
    alice = User.objects.create_user("alice", "alice@example.com", "pw")
    session = SessionStore()
    session.update({SESSION_KEY: str(alice.pk), BACKEND_SESSION_KEY: "django.contrib.auth.backends.ModelBackend", HASH_SESSION_KEY: alice.get_session_auth_hash()})
    session.save()

    def count(execute, sql, params, many, context):
        QUERIES.append(sql)
        return execute(sql, params, many, context)

    def counted(sender, connection, **kwargs):
        connection.execute_wrappers.append(count)

    connection_created.connect(counted, weak=False)
    yield {"sessionid": session.session_key, "user_id": alice.pk}
    connection_created.disconnect(counted)


@pytest.fixture(scope="module", params=["wsgi", "asgi"])
def served_by(request):
    return request.param


@pytest.fixture(scope="module")
def site(project, served_by):
    if served_by == "wsgi":
        from django.core.handlers.wsgi import WSGIHandler

        with checks.wsgi_server(WSGIHandler()) as url:
            yield Site(url, ROUTE_NAME, instrumentation="django", wsgi=True, concurrent=False)
    else:
        from django.core.handlers.asgi import ASGIHandler

        # Django's ASGI handler stops a streamed response when its client goes away from 5.0 on.
        keeps_streaming = "Django < 5.0 streams on after a disconnect" if django.VERSION < (5, 0) else None
        with checks.asgi_server(ASGIHandler()) as url:
            yield Site(url, ROUTE_NAME, instrumentation="django", keeps_streaming=keeps_streaming)


def test_route_templates_across_includes_and_regular_expressions(url, recorded):
    assert requests.get(url + "/api/items/3").text == "item"
    assert requests.get(url + "/articles/2024/").text == "item"
    names = sorted(t["name"] for t in recorded.wait_for_transactions(2))
    assert names == ["GET /api/items/<int:item_id>", "GET /articles/(?P<year>[0-9]{4})/"]


def test_the_user_loaded_by_the_request_is_the_context_user(url, project, recorded):
    cookies = {"sessionid": project["sessionid"]}
    assert requests.get(url + "/whoami", cookies=cookies).text == "alice"
    transaction = recorded.transaction()
    assert transaction["context"]["user"] == {"id": project["user_id"], "username": "alice", "email": "alice@example.com"}


def test_the_user_is_not_loaded_for_the_agent(url, project, recorded):
    """A request that never reads request.user: no user in its context, and no query run to
    find one (the session cookie would make Django look it up)."""
    before = len(QUERIES)
    assert requests.get(url + "/users/1", cookies={"sessionid": project["sessionid"]}).text == "user 1"
    transaction = recorded.transaction()
    assert "user" not in transaction["context"]
    assert QUERIES[before:] == []


def test_uninstrument_restores_django(url):
    from django.core.handlers import asgi, base, exception, wsgi

    patched = [(wsgi.WSGIHandler, "__call__"), (asgi.ASGIHandler, "__call__"), (base.BaseHandler, "resolve_request"), (exception, "handle_uncaught_exception")]
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

