"""One context for both APIs: an OpenTelemetry runtime context over oxapm's current span.

The current span lives in ``oxapm.traces._current``, the variable ``capture_span`` sets; the rest
of an OpenTelemetry ``Context`` (baggage, suppression flags, anything instrumentations store)
lives in a second variable. ``attach`` sets both, ``get_current`` joins them, so a span started by
either API is the current span of the other.

Selected by ``OTEL_PYTHON_CONTEXT=oxapm`` (an ``opentelemetry_context`` entry point), or put in
place by ``oxapm.otel.install()``.
"""

from __future__ import annotations

import contextvars
from typing import Any, NamedTuple

from opentelemetry.context.context import Context, _RuntimeContext

from oxapm import traces

_EMPTY = Context()
_values: "contextvars.ContextVar[Context]" = contextvars.ContextVar("oxapm_otel_context", default=_EMPTY)


def register_span_types() -> None:
    """The engine's transactions and spans are OpenTelemetry spans: ``get_current_span()`` and
    ``use_span()`` accept them."""
    from opentelemetry.trace import Span

    Span.register(traces.Span)
    Span.register(traces.Transaction)


class _Tokens(NamedTuple):
    values: contextvars.Token
    span: contextvars.Token


def _reset(variable: contextvars.ContextVar, token: contextvars.Token, default: Any) -> None:
    try:
        variable.reset(token)
    except (ValueError, RuntimeError):
        traces._restore(token, variable, default)


class OxapmRuntimeContext(_RuntimeContext):
    # The API's key of the current span. Read when first needed: this class can be loaded while
    # opentelemetry.context itself is being imported (OTEL_PYTHON_CONTEXT), before that key exists.
    _span_key = ""

    @classmethod
    def _key(cls) -> str:
        if not cls._span_key:
            from opentelemetry.trace.propagation import _SPAN_KEY

            register_span_types()
            cls._span_key = _SPAN_KEY
        return cls._span_key

    def attach(self, context: Context) -> Any:
        span_token = traces._current.set(context.get(self._key()))
        return _Tokens(_values.set(context), span_token)

    def get_current(self) -> Context:
        context = _values.get()
        current = traces._current.get()
        span_key = self._key()
        if context.get(span_key) is current:
            return context
        # The span changed since the last attach (capture_span, start_as_current_span).
        values = dict(context)
        if current is None:
            values.pop(span_key, None)
        else:
            values[span_key] = current
        return Context(values)

    def detach(self, token: Any) -> None:
        if isinstance(token, _Tokens):
            _reset(traces._current, token.span, None)
            _reset(_values, token.values, _EMPTY)
