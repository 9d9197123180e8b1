"""Secrets never reach exported data: the engine redacts the HTTP context of transactions and errors
(headers, cookies, env, form bodies, query strings) by ``sanitize_field_names`` before any exporter
sees it. Sent to a recording APM Server here, every event validated against the intake schemas."""

import oxapm
from conftest import exported

SECRETS = ("Bearer-s3cr3t", "s3ss10n", "k3y-value", "pa55word")


def _request_with_secrets():
    oxapm.set_context(
        {
            "method": "POST",
            "url": {"full": "http://shop.local/cart?page=2&api_key=k3y-value", "pathname": "/cart", "search": "?page=2&api_key=k3y-value"},
            "headers": {"Authorization": "Bearer-s3cr3t", "Cookie": "theme=dark; sessionid=s3ss10n", "Accept": "text/html"},
            "cookies": {"sessionid": "s3ss10n", "theme": "dark"},
            "env": {"SERVER_NAME": "shop.local", "HTTP_AUTHORIZATION": "Bearer-s3cr3t"},
            "body": {"user": "ann", "password": "pa55word"},
        },
        "request",
    )
    oxapm.set_context({"status_code": 200, "headers": {"Set-Cookie": "sessionid=s3ss10n; HttpOnly", "Content-Type": "text/html"}}, "response")


def test_transactions_and_errors_arrive_redacted(intake):
    client = oxapm.Client(service_name="shop", server_url=intake.url)
    client.begin_transaction("request")
    _request_with_secrets()
    try:
        raise ValueError("checkout failed")
    except ValueError:
        client.capture_exception()
    client.end_transaction("POST /cart", "HTTP 2xx")
    client.close()

    events = intake.events()
    (transaction,) = [body for kind, body in events if kind == "transaction"]
    (error,) = [body for kind, body in events if kind == "error"]
    for context in (transaction["context"], error["context"]):
        request = context["request"]
        assert request["headers"] == {"Authorization": "[REDACTED]", "Cookie": "theme=dark; sessionid=[REDACTED]", "Accept": "text/html"}
        assert request["cookies"] == {"sessionid": "[REDACTED]", "theme": "dark"}
        assert request["env"] == {"SERVER_NAME": "shop.local", "HTTP_AUTHORIZATION": "[REDACTED]"}
        assert request["body"] == {"user": "ann", "password": "[REDACTED]"}
        assert request["url"]["search"] == "?page=2&api_key=[REDACTED]"
        assert request["url"]["full"] == "http://shop.local/cart?page=2&api_key=[REDACTED]"
        assert context["response"]["headers"] == {"Set-Cookie": "[REDACTED]", "Content-Type": "text/html"}
    sent = b"".join(request["body"] for request in intake.requests).decode()
    assert not [secret for secret in SECRETS if secret in sent]


def test_the_field_names_are_configurable():
    client = oxapm.Client(service_name="shop", traces_exporter="memory", sanitize_field_names="x-*,(?-i)Accept")
    try:
        client.begin_transaction("request")
        oxapm.set_context({"method": "GET", "headers": {"X-Internal": "v", "accept": "text/html", "Accept": "*/*", "Authorization": "kept"}}, "request")
        client.end_transaction("GET /", "HTTP 2xx")
        (transaction,) = exported(client).transactions
    finally:
        client.close()
    headers = transaction["context"]["request"]["headers"]
    assert headers == {"X-Internal": "[REDACTED]", "accept": "text/html", "Accept": "[REDACTED]", "Authorization": "kept"}
