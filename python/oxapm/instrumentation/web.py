"""Incoming HTTP requests as transactions: what every web framework instrumentation shares.

A framework instrumentation describes a request (``Incoming``) and calls ``serve``; the ``Served``
it gets back is the request's transaction, and learns the rest as the framework goes: the route
template (``route``, ``mount``), the body the application reads (``keep``, ``body_source``), the
response (``respond``), exceptions (``raised``, ``failed``), and the end of the response body
(``end``). None of its methods raises: a failure is reported once (``base.report_failure``) and the
request goes on, served as if untraced.

The Elastic agent's conventions: a transaction of type ``request`` named ``METHOD route-template``
(``METHOD unknown route`` when no route matched), result ``HTTP 2xx`` by status class, outcome
failure for a 5xx response or an unhandled exception; ``context.request``/``response``/``user``;
``capture_headers`` (cookies included), ``capture_body`` (``errors``/``transactions``/``all``: the
body goes to those events only; a body not captured reads ``[REDACTED]``); no transaction for a
path ``transaction_ignore_urls`` matches. ``sanitize_field_names`` is applied by the engine on
export, to everything recorded here.
"""

from __future__ import annotations

import contextvars

from oxapm import traces
from oxapm.base import get_client
from oxapm.conf.constants import OUTCOME
from oxapm.instrumentation import propagation
from oxapm.instrumentation.base import report_failure

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable, Dict, Iterable, Optional, Tuple, Union

    from oxapm.base import Client

#: Characters of a captured body, as the Elastic agent's long fields.
MAX_BODY_CHARS = 10000
#: Bytes of a request body kept while the application reads it (a form is parsed from them).
MAX_BODY_BYTES = 64 * 1024
#: The methods whose requests carry a body (the others get no ``body`` field).
METHODS_WITH_BODY = frozenset(("POST", "PUT", "PATCH", "DELETE"))
REDACTED = "[REDACTED]"

# The request being served in this context, by the outermost instrumented layer: inner layers (a
# framework inside a hand-placed middleware, a mounted application) only add to it.
_serving: contextvars.ContextVar[Optional[Served]] = contextvars.ContextVar("oxapm_serving", default=None)


class Incoming:
    """A request as the framework received it, in plain values: ``headers`` maps lower-case names
    to values (repeated headers joined by commas), ``host`` is the Host header (or the server's
    name and port), ``query`` has no ``?``, ``env`` the WSGI environ (or None)."""

    __slots__ = ("method", "scheme", "host", "path", "query", "http_version", "remote_address", "headers", "env")

    def __init__(
        self,
        method: str,
        scheme: str,
        host: str,
        path: str,
        query: str,
        http_version: Optional[str],
        remote_address: Optional[str],
        headers: Dict[str, str],
        env: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.method = method
        self.scheme = scheme
        self.host = host
        self.path = path
        self.query = query
        self.http_version = http_version
        self.remote_address = remote_address
        self.headers = headers
        self.env = env


def serve(instrumentation: str, describe: Callable[..., Incoming], *args: Any) -> Optional[Served]:
    """Starts the transaction of a request, ``describe(*args)``; None when nothing is recorded:
    no recording client, an outer layer serving this request already, an ignored URL, or a failure
    of the agent."""
    transaction = None
    try:
        client = get_client()
        if client is None or not client.is_recording or _serving.get() is not None:
            return None
        incoming = describe(*args)
        if client._engine.ignores_url(incoming.path):  # transaction_ignore_urls
            return None
        parent = propagation.incoming_parent(incoming.headers)
        transaction = client._begin_transaction("request", *parent) if parent else client._begin_transaction("request")
        return Served(instrumentation, client, transaction, incoming) if transaction is not None else None
    except Exception:
        report_failure(instrumentation)
        if transaction is not None:
            transaction._end()  # what was recorded before the failure; the request goes on untraced
        return None


def current() -> Optional[Served]:
    """The request served in this context, for the hooks of a framework's inner layers."""
    return _serving.get()


class Served:
    """One request's transaction, from the request to the end of the response body."""

    __slots__ = (
        "instrumentation", "client", "transaction", "incoming", "status", "body_source", "user_source",
        "_prefix", "_name", "_response_headers", "_kept", "_body_in_transactions",
        "_body_in_errors", "_raised", "_captured", "_failed", "_ended",
    )

    def __init__(self, instrumentation: str, client: Client, transaction: traces.Transaction, incoming: Incoming) -> None:
        self.instrumentation = instrumentation
        self.client = client
        self.transaction = transaction
        self.incoming = incoming
        self.status: Optional[int] = None
        # For frameworks that buffer the body themselves: returns its bytes, or the parsed form.
        self.body_source: Optional[Callable[[], Union[bytes, Dict[str, Any], None]]] = None
        # For frameworks that know the user: returns context.user, or None.
        self.user_source: Optional[Callable[[], Optional[Dict[str, Any]]]] = None
        self._prefix = ""
        self._name = transaction.name = "%s unknown route" % incoming.method
        self._response_headers: Optional[Iterable[Tuple[Any, Any]]] = None
        self._raised: Optional[BaseException] = None
        self._captured: Optional[BaseException] = None
        self._failed = False
        self._ended = False
        capture_body = str(client.config.capture_body or "off").lower()
        self._body_in_transactions = capture_body in ("transactions", "all")
        self._body_in_errors = capture_body in ("errors", "all")
        has_body = incoming.method in METHODS_WITH_BODY
        self._kept: Optional[bytearray] = bytearray() if has_body and capture_body != "off" else None
        if transaction.is_sampled:
            transaction._set_request(incoming, bool(client.config.capture_headers))

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def keeps_body(self) -> bool:
        """Whether the body the application reads is to be kept (``keep``)."""
        return self._kept is not None

    def activate(self) -> Tuple[contextvars.Token, contextvars.Token]:
        """Makes the transaction current (spans started now are its children); ``deactivate``
        undoes it."""
        return traces._set_current(self.transaction), _serving.set(self)

    def deactivate(self, tokens: Tuple[contextvars.Token, contextvars.Token]) -> None:
        current_token, serving_token = tokens
        for variable, token in ((traces._current, current_token), (_serving, serving_token)):
            try:
                variable.reset(token)
            except (ValueError, RuntimeError):  # set in another context: a copied one, a thread
                traces._restore(token, variable)

    def mount(self, prefix: str) -> None:
        """The request went to an application mounted at ``prefix`` (a route template): named
        ``prefix/{path}`` until a route of that application matches."""
        self._prefix += prefix
        self.route("/{path}")

    def route(self, template: str) -> None:
        """Names the transaction after the route that matched (below the mounts), unless the
        application named it itself."""
        try:
            if self.transaction.name == self._name:
                self._name = self.transaction.name = "%s %s" % (self.incoming.method, self._prefix + template)
        except Exception:
            report_failure(self.instrumentation)

    def keep(self, data: bytes) -> None:
        """Keeps (the start of) a piece of the body the application has read."""
        kept = self._kept
        if kept is None or not data or len(kept) >= MAX_BODY_BYTES:
            return
        try:
            kept += data[: MAX_BODY_BYTES - len(kept)]
        except Exception:
            report_failure(self.instrumentation)

    def respond(self, status: Any, headers: Optional[Iterable[Tuple[Any, Any]]]) -> None:
        """The response's status and headers (name, value pairs; bytes or text), as sent."""
        try:
            self.status = int(status)
            self._response_headers = headers
        except Exception:
            report_failure(self.instrumentation)

    def raised(self, exc: BaseException) -> None:
        """The framework turned ``exc`` into a response: it is an error if that response is a
        server error (captured at the end, when the status is known)."""
        if self._raised is None:
            self._raised = exc

    def failed(self, exc: BaseException) -> None:
        """``exc`` escaped the framework: captured now. A cancellation (the client went away)
        or an exit is no failure of the request."""
        if isinstance(exc, Exception):
            self._capture(exc)

    def end(self) -> None:
        """The response body ended (or the client went away): the transaction ends, once."""
        if self._ended:
            return
        self._ended = True
        try:
            transaction = self.transaction
            status = self.status
            if self._raised is not None and (status is None or status >= 500):
                self._capture(self._raised)
            failed = self._failed or (status is not None and status >= 500)
            if status is not None or failed:  # else the client went away before any response
                if transaction.result is None:
                    transaction.result = "HTTP %dxx" % (status // 100) if status is not None else "HTTP 5xx"
                if transaction.outcome is None:
                    transaction.outcome = OUTCOME.FAILURE if failed else OUTCOME.SUCCESS
            if transaction.is_sampled:
                self._add_context(transaction, status)
        except Exception:
            report_failure(self.instrumentation)
        finally:
            self.transaction._end()

    def _add_context(self, transaction: traces.Transaction, status: Optional[int]) -> None:
        if status is not None:
            capture_headers = self.client.config.capture_headers and self._response_headers is not None
            transaction._set_response(status, self._response_headers if capture_headers else None)
        if self.incoming.method in METHODS_WITH_BODY:
            body = self._body() if self._body_in_transactions else REDACTED
            if body is not None:
                transaction._set_context("request", {"body": body})
        self._add_user(transaction)

    def _add_user(self, transaction: traces.Transaction) -> None:
        if self.user_source is None:
            return
        try:
            user = self.user_source()
            if user:
                transaction._set_context("user", user)
        except Exception:
            report_failure(self.instrumentation)

    def _capture(self, exc: BaseException) -> None:
        """Captures ``exc`` as an unhandled error of this transaction (once)."""
        if exc is self._captured:
            return
        self._captured = exc
        self._failed = True
        try:
            tokens = self.activate()  # the error's parent is the transaction, whatever the caller's context
            try:
                self._add_user(self.transaction)
                context = None
                if self.incoming.method in METHODS_WITH_BODY:
                    body = self._body() if self._body_in_errors else REDACTED
                    request = self._request()
                    if body is not None:
                        request["body"] = body
                    context = {"request": request}
                self.client.capture_exception((type(exc), exc, exc.__traceback__), handled=False, context=context)
            finally:
                self.deactivate(tokens)
        except Exception:
            report_failure(self.instrumentation)

    def _request(self) -> Dict[str, Any]:
        """A copy of ``context.request``, for an error (made now when the transaction, not
        sampled, has none)."""
        request = self.transaction._context("request")
        if request is None:
            self.transaction._set_request(self.incoming, bool(self.client.config.capture_headers))
            request = self.transaction._context("request")
        return request

    def _body(self) -> Union[str, Dict[str, Any], None]:
        """The body as captured: a form as a map, anything else as text; None when the
        application read none (or it cannot be told)."""
        try:
            return self._decoded_body()
        except Exception:
            report_failure(self.instrumentation)
            return None

    def _decoded_body(self) -> Union[str, Dict[str, Any], None]:
        if self.body_source is not None:
            data = self.body_source()
        else:
            data = bytes(self._kept) if self._kept else None
        if isinstance(data, dict):
            return {name: _cut(value) for name, value in data.items()}
        if not data:
            return None
        content_type = self.incoming.headers.get("content-type", "")
        form = form_fields(content_type, data)
        if form is not None:
            return {name: _cut(value) for name, value in form.items()}
        return _cut(data.decode(_charset(content_type), "replace"))


def form_fields(content_type: str, data: bytes) -> Optional[Dict[str, Any]]:
    """The fields of a form body (URL-encoded or multipart; files by file name under ``_files``,
    as the Elastic agent reports them), or None for another body. A field repeated becomes a
    list. A multipart body cut short loses its last part."""
    media_type = content_type.partition(";")[0].strip().lower()
    fields: Dict[str, Any] = {}
    if media_type == "application/x-www-form-urlencoded":
        from urllib.parse import parse_qsl

        for name, value in parse_qsl(data.decode(_charset(content_type), "replace"), keep_blank_values=True):
            add_field(fields, name, value)
        return fields
    if media_type != "multipart/form-data":
        return None
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode("latin-1", "replace") + b"\r\n\r\n" + data)
    files: Dict[str, Any] = {}
    for part in message.iter_parts() if message.is_multipart() else ():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        filename = part.get_filename()
        if filename is not None:
            add_field(files, name, filename)
        else:
            payload = part.get_payload(decode=True) or b""
            add_field(fields, name, payload.decode(part.get_content_charset() or "utf-8", "replace"))
    if files:
        fields["_files"] = files
    return fields


def add_field(fields: Dict[str, Any], name: str, value: Any) -> None:
    """``fields[name] = value``; a name given again holds a list of the values."""
    if name not in fields:
        fields[name] = value
    elif isinstance(fields[name], list):
        fields[name].append(value)
    else:
        fields[name] = [fields[name], value]


def _cut(value: Any) -> Any:
    """A body's text (or a form value) cut to ``MAX_BODY_CHARS``."""
    if isinstance(value, str):
        return value[:MAX_BODY_CHARS]
    if isinstance(value, list):
        return [_cut(v) for v in value]
    if isinstance(value, dict):
        return {k: _cut(v) for k, v in value.items()}
    return _cut(str(value))


def _charset(content_type: str) -> str:
    """The charset a Content-Type names, if Python knows it; else UTF-8."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name.lower() == "charset" and value:
            charset = value.strip('"')
            try:
                "".encode(charset)
                return charset
            except LookupError:
                break
    return "utf-8"


def header_dict(pairs: Iterable[Tuple[Any, Any]]) -> Dict[str, str]:
    """Request headers by lower-case name, repeated ones joined with commas (as HTTP allows)."""
    headers: Dict[str, str] = {}
    for name, value in _text_pairs(pairs):
        headers[name] = headers[name] + "," + value if name in headers else value
    return headers


def _text_pairs(pairs: Iterable[Tuple[Any, Any]]) -> Iterable[Tuple[str, str]]:
    """Header pairs as text (ASGI gives bytes, as they came: latin-1), names in lower case."""
    for name, value in pairs:
        name = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        yield name.lower(), value.decode("latin-1") if isinstance(value, bytes) else str(value)
