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

from oxapm import _core
from oxapm.instrumentation.base import report_failure

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Union

#: Characters of a captured body, as the Elastic agent's long fields.
MAX_BODY_CHARS = 10000
#: Bytes of a request body kept while the application reads it (a form is parsed from them).
MAX_BODY_BYTES = 64 * 1024

#: A request as the framework received it, in plain values: ``Incoming(method, scheme, host, path,
#: query, http_version, remote_address, headers, env=None)``; ``headers`` a mapping or ``(name,
#: value)`` pairs, text or bytes (latin-1, as ASGI gives them), read as a dict by lower-case name
#: (repeated headers joined by commas); ``host`` is the Host header (or the server's name and
#: port), ``query`` has no ``?``, ``env`` the WSGI environ (or None).
Incoming = _core.Incoming


#: ``serve(instrumentation, describe, *args)`` starts the transaction of a request,
#: ``describe(*args)`` (an ``Incoming``): a ``Served``, or None when nothing is recorded: no
#: recording client, an outer layer serving this request already, an ignored URL, or a failure of
#: the agent (reported once; the request goes on untraced). The parent is read from the headers in
#: the client's propagation formats (``propagation._configured``).
serve = _core.serve


#: ``current()`` is the request served in this context, by the outermost instrumented layer, for
#: the hooks of a framework's inner layers (a framework inside a hand-placed middleware, a mounted
#: application only add to it): the ``Served`` of the current transaction, or None.
current = _core.serving


class Served(_core.Served):
    """One request's transaction, from the request to the end of the response body. What every
    request runs is the engine's (``activate``/``deactivate``, ``route``, ``mount``, ``respond``,
    ``raised``, ``failed``, ``end``); what runs only for request bodies and errors is here."""

    __slots__ = ()

    def keep(self, data: bytes) -> None:
        """Keeps (the start of) a piece of the body the application has read."""
        kept = self._kept
        if kept is None or not data or len(kept) >= MAX_BODY_BYTES:
            return
        try:
            kept += data[: MAX_BODY_BYTES - len(kept)]
        except Exception:
            self._failure()

    def _failure(self, error: Optional[BaseException] = None) -> None:
        report_failure(self.instrumentation, error)

    def _capture_error(self, exc: BaseException) -> None:
        """Captures ``exc`` as an unhandled error of this transaction (the engine calls this once
        per exception)."""
        try:
            token = self.activate()  # the error's parent is the transaction, whatever the caller's context
            try:
                self._add_user()
                context = None
                if self.has_body:
                    body = self._request_body(True)
                    request = self._request()
                    if body is not None:
                        request["body"] = body
                    context = {"request": request}
                self.client.capture_exception((type(exc), exc, exc.__traceback__), handled=False, context=context)
            finally:
                self.deactivate(token)
        except Exception:
            self._failure()

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
            self._failure()
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
