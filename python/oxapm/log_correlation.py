"""Trace ids on every ``logging.LogRecord``, for the application's own log format.

A record factory wrapping whatever factory is current adds, to each record as it is made:
``otelTraceID``, ``otelSpanID``, ``otelServiceName``, ``otelTraceSampled`` (as OpenTelemetry's
logging instrumentation names them; ``"0"``, ``"0"`` and ``False`` outside a span) and
``elasticapm_trace_id``, ``elasticapm_transaction_id``, ``elasticapm_span_id``,
``elasticapm_service_name``, ``elasticapm_event_dataset`` and ``elasticapm_labels`` (as the Elastic
agent names them; ``None`` outside a transaction). Formatters and handlers made before oxapm see
them too: the fields are set when the record is made, not where it is formatted.

A ``Client`` installs it (the Elastic agent does, unless ``disable_log_record_factory``); when
``logging`` is not imported yet, at its import. ``OTEL_PYTHON_LOG_CORRELATION=true`` also
configures the root logger as OpenTelemetry's logging instrumentation does (``logging.basicConfig``
with ``OTEL_PYTHON_LOG_FORMAT`` and ``OTEL_PYTHON_LOG_LEVEL``); ``false`` keeps the factory out.
"""

from __future__ import annotations

import os
import sys

from oxapm import _core, traces

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable, Optional

# OpenTelemetry's logging instrumentation's default format and level names.
DEFAULT_OTEL_FORMAT = (
    "%(asctime)s %(levelname)s [%(name)s] [%(filename)s:%(lineno)d] [trace_id=%(otelTraceID)s span_id=%(otelSpanID)s "
    "resource.service.name=%(otelServiceName)s trace_sampled=%(otelTraceSampled)s] - %(message)s"
)
_OTEL_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40}

# What the factory adds to each record.
CORRELATION_FIELDS = frozenset(
    (
        "otelTraceID",
        "otelSpanID",
        "otelServiceName",
        "otelTraceSampled",
        "elasticapm_trace_id",
        "elasticapm_transaction_id",
        "elasticapm_span_id",
        "elasticapm_service_name",
        "elasticapm_event_dataset",
        "elasticapm_labels",
    )
)

_correlation = _core.correlation
_get_current = traces._current.get


class CorrelatingRecordFactory:
    """``logging.setLogRecordFactory(CorrelatingRecordFactory(logging.getLogRecordFactory(), name))``.
    ``enabled`` turns it into a pass-through when another factory wrapped it since (it cannot
    be taken out of their chain then)."""

    __slots__ = ("wrapped", "service_name", "enabled")

    def __init__(self, wrapped: Optional[Callable[..., Any]], service_name: Optional[str]):
        self.wrapped = wrapped
        self.service_name = service_name
        self.enabled = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        record = self.wrapped(*args, **kwargs)  # type: ignore[misc]
        if self.enabled:
            try:
                annotate(record, self.service_name)
            except Exception:  # a record must be made whatever happens here
                pass
        return record


def annotate(record: Any, service_name: Optional[str] = None) -> None:
    """Sets the correlation fields of ``record`` from the current span; the service name, when not
    given, is the current client's."""
    current = _get_current()
    ids = _correlation(current) if current is not None else None
    if service_name is None:
        from oxapm.base import get_client

        client = get_client()
        service_name = client.config.service_name if client is not None else None
    if ids is None:
        record.otelTraceID = record.otelSpanID = "0"
        record.otelTraceSampled = False
        trace_id = transaction_id = span_id = None
    else:
        trace_id, transaction_id, span_id, sampled = ids
        record.otelTraceID = trace_id
        record.otelSpanID = span_id or transaction_id
        record.otelTraceSampled = sampled
    record.otelServiceName = service_name
    record.elasticapm_trace_id = trace_id
    record.elasticapm_transaction_id = transaction_id
    record.elasticapm_span_id = span_id
    record.elasticapm_service_name = service_name
    record.elasticapm_event_dataset = service_name
    record.elasticapm_labels = {
        "transaction.id": transaction_id,
        "trace.id": trace_id,
        "span.id": span_id,
        "service.name": service_name,
        "event.dataset": service_name,
    }


_installed: Optional[CorrelatingRecordFactory] = None


def install(service_name: Optional[str]) -> None:
    """Wraps the current record factory, once (again: the service name is updated); ``logging``
    is imported only if it already was, else the factory goes in when it is."""
    global _installed
    if _installed is not None:
        _installed.service_name = service_name
        _installed.enabled = True
        return
    _installed = CorrelatingRecordFactory(None, service_name)
    if "logging" in sys.modules:
        _wrap_current_factory()
    else:
        from oxapm.instrumentation.import_hooks import when_imported

        when_imported("logging", _wrap_current_factory)


def _wrap_current_factory() -> None:
    import logging

    factory = _installed
    if factory is None or factory.wrapped is not None:
        return
    factory.wrapped = logging.getLogRecordFactory()
    logging.setLogRecordFactory(factory)


def uninstall() -> None:
    """Restores the factory that was current before, or, if another was set on top of ours since,
    leaves ours in their chain as a pass-through."""
    global _installed
    factory, _installed = _installed, None
    if factory is None:
        return
    if factory.wrapped is None:  # logging was never imported: nothing was wrapped
        from oxapm.instrumentation.import_hooks import forget

        forget(_wrap_current_factory)
        return
    import logging

    if logging.getLogRecordFactory() is factory:
        logging.setLogRecordFactory(factory.wrapped)
    else:
        factory.enabled = False


def configure(client: Any) -> None:
    """What a new ``Client`` does: the factory unless turned off, and the root logger's
    configuration that ``OTEL_PYTHON_LOG_CORRELATION=true`` asks for."""
    wanted = os.environ.get("OTEL_PYTHON_LOG_CORRELATION", "").strip().lower()
    if client.config.disable_log_record_factory or wanted == "false":
        uninstall()
        return
    install(client.config.service_name)
    if wanted == "true":
        import logging

        level = _OTEL_LEVELS.get(os.environ.get("OTEL_PYTHON_LOG_LEVEL", "info").strip().lower(), logging.INFO)
        logging.basicConfig(format=os.environ.get("OTEL_PYTHON_LOG_FORMAT") or DEFAULT_OTEL_FORMAT, level=level)
