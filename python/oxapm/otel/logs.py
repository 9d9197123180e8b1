"""The OpenTelemetry Logs API on the oxapm engine: ``LoggerProvider`` and its ``Logger``s, whose
records go where the engine sends log records (OTLP logs, APM Server's intake ``log`` events), with
the ids of the current span of either API. ``LoggingHandler`` sends ``logging`` records the same
way (see ``oxapm.logs``).

``oxapm.otel.install()`` makes the provider the global one; ``OTEL_PYTHON_LOGGER_PROVIDER=oxapm``
selects it too.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional

from opentelemetry import _logs
from opentelemetry.trace.propagation import _SPAN_KEY

from oxapm import traces
from oxapm.logs import Emitters, LoggingHandler, exception_attributes

logger = logging.getLogger("oxapm")

__all__ = ["Logger", "LoggerProvider", "LoggingHandler"]


class LoggerProvider(_logs.LoggerProvider):
    """Loggers whose records go to an oxapm ``Client``'s engine: the given one, else the current
    one, else a new one configured from the environment."""

    def __init__(self, client: Optional[Any] = None, config: Optional[Dict[str, Any]] = None):
        import oxapm

        self._client = client or oxapm.get_client() or oxapm.Client(config)
        self._emitters = Emitters(self._client)

    @property
    def client(self) -> Any:
        return self._client

    def get_logger(
        self,
        name: str,
        version: Optional[str] = None,
        schema_url: Optional[str] = None,
        attributes: Optional[Any] = None,
    ) -> _logs.Logger:
        if self._client._engine is None:  # disabled (ELASTIC_APM_ENABLED=false, OTEL_SDK_DISABLED=true)
            return _logs.NoOpLogger(name)
        return Logger(self._emitters, str(name or ""), version, schema_url, attributes)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._client.flush(timeout_millis / 1000.0)

    def shutdown(self) -> None:
        """The client's engine serves the other signals too: it is flushed, not stopped."""
        self._client.flush()


class Logger(_logs.Logger):
    def __init__(self, emitters: Emitters, name: str, version: Optional[str], schema_url: Optional[str], attributes: Optional[Any]):
        super().__init__(name, version, schema_url, attributes)
        self._emitters = emitters
        self._scope = (name, version, schema_url, dict(attributes) if attributes else None)

    def enabled(self, *, context: Any = None, severity_number: Any = None, event_name: Optional[str] = None) -> bool:
        emitter = self._emitters.get(*self._scope)
        return emitter is not None and emitter.enabled

    def emit(  # type: ignore[override]
        self,
        record: Optional[_logs.LogRecord] = None,
        *,
        timestamp: Optional[int] = None,
        observed_timestamp: Optional[int] = None,
        context: Any = None,
        severity_number: Any = None,
        severity_text: Optional[str] = None,
        body: Any = None,
        attributes: Any = None,
        event_name: Optional[str] = None,
        exception: Optional[BaseException] = None,
    ) -> None:
        """A ``LogRecord``, or its fields as keywords. The span of its context (else the current
        one) gives the record its trace and span ids."""
        if record is not None:
            timestamp, observed_timestamp, context = record.timestamp, record.observed_timestamp, record.context
            severity_number, severity_text, body = record.severity_number, record.severity_text, record.body
            attributes, event_name = record.attributes, record.event_name
            exception = getattr(record, "exception", None)
        try:
            emitter = self._emitters.get(*self._scope)
            if emitter is None:
                return
            # Without oxapm's runtime context in place (no TracerProvider made), a context does not
            # hold the Elastic API's spans: the current one is read directly then.
            span = (context.get(_SPAN_KEY) if context is not None else None) or traces._current.get()
            if exception is not None:
                attributes = {**(exception_attributes((type(exception), exception, exception.__traceback__)) or {}), **dict(attributes or {})}
            number = getattr(severity_number, "value", severity_number)
            emitter.emit(timestamp, observed_timestamp, number, severity_text, body, attributes, span, event_name)
        except Exception:  # the Logs API never raises into the application
            logger.warning("could not emit a log record", exc_info=True)

