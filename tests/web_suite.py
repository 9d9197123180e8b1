"""The tests every web framework's application must pass, written once: each ``test_web_*`` module
defines a module-scoped ``site`` fixture (a ``Site``: its served application and what differs) and
takes these with ``from web_suite import *``, so they run, and are named, in that module."""

from dataclasses import dataclass
from typing import Optional

import pytest
import web_checks as checks
from web_checks import ENDLESS_CLOSED


@dataclass
class Site:
    """One framework's test application (the routes of ``web_checks``), served at ``url``."""

    url: str
    #: The name of the transaction of ``GET /users/<id>``.
    route_name: str
    #: The name of an unhandled exception's transaction (``GET /boom``).
    boom_name: str = "GET /boom"
    #: The name that disables its instrumentation; None for a middleware placed by hand.
    instrumentation: Optional[str] = None
    #: WSGI: the environment's variables are in the request context.
    wsgi: bool = False
    #: The framework parses multipart forms (middlewares alone do not).
    multipart: bool = True
    #: Requests are served concurrently on one event loop.
    concurrent: bool = True
    #: Why the framework cannot end a stream when its client goes away, if it cannot.
    keeps_streaming: Optional[str] = None


@pytest.fixture(scope="module")
def url(site):
    return site.url


def test_a_request_is_a_transaction_named_after_its_route(site, recorded):
    checks.check_request(site.url, recorded, site.route_name, env=site.wsgi)


def test_no_route_is_unknown_route(site, recorded):
    checks.check_unknown_route(site.url, recorded)


def test_an_unhandled_exception_is_captured(site, recorded):
    checks.check_unhandled_exception(site.url, recorded, site.boom_name)


def test_the_application_names_its_transaction(site, recorded):
    checks.check_app_renames(site.url, recorded)


def test_trace_context_from_the_legacy_header_and_configured_propagators(site, recorded, monkeypatch):
    checks.check_legacy_and_configured_propagators(site.url, recorded, monkeypatch)


def test_headers_not_captured_when_capture_headers_is_off(site, client_with):
    checks.check_headers_not_captured(site.url, client_with(capture_headers=False))


@pytest.mark.parametrize("capture_body", ["off", "errors", "transactions", "all"])
def test_body_capture(site, client_with, capture_body):
    checks.check_body_capture(site.url, client_with(capture_body=capture_body), capture_body)


def test_secrets_are_redacted_on_export(site, client_with):
    checks.check_sanitized(site.url, client_with(capture_body="all"))


def test_a_multipart_form_is_captured_as_fields_and_file_names(site, client_with):
    if not site.multipart:
        pytest.skip("no form parsing without a framework")
    checks.check_multipart_form(site.url, client_with(capture_body="all"))


def test_ignored_urls_have_no_transaction(site, client_with):
    checks.check_ignored_urls(site.url, client_with(transaction_ignore_urls="/users/*"))


def test_a_streamed_response_ends_the_transaction_when_it_ends(site, recorded):
    checks.check_streaming(site.url, recorded)


def test_the_transaction_ends_when_the_client_goes_away(site, recorded):
    if site.keeps_streaming:
        pytest.skip(site.keeps_streaming)
    checks.check_client_goes_away(site.url, recorded)
    assert ENDLESS_CLOSED.wait(10)


def test_concurrent_requests_keep_their_own_transaction(site, recorded):
    if not site.concurrent:
        pytest.skip("concurrency on one event loop: ASGI")
    checks.check_concurrent_requests(site.url, recorded)


def test_otlp_export(site, recorded, otlp_http, monkeypatch):
    checks.check_otlp(site.url, otlp_http, monkeypatch, site.route_name)


@pytest.mark.parametrize("variable", ["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "ELASTIC_APM_DISABLED_INSTRUMENTATIONS"])
def test_disabled_by_name(site, monkeypatch, variable):
    if site.instrumentation is None:
        pytest.skip("a middleware placed by hand")
    checks.check_disabled(site.url, site.instrumentation, monkeypatch, variable)


def test_an_agent_failure_leaves_requests_served(site, recorded, monkeypatch, caplog):
    checks.check_internal_failure(site.url, recorded, monkeypatch, caplog)
