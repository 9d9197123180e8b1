"""Log records to the engine: one ``_core.LogEmitter`` per instrumentation scope of the Logs API,
and ``LoggingHandler``, which sends the application's ``logging`` records (OTLP log records, or
intake ``log`` events when exporting to APM Server).

Nothing here imports ``opentelemetry``; ``oxapm.otel.logs`` puts the Logs API on top of it.
"""

from __future__ import annotations

import logging
import traceback

from oxapm import _core, traces
from oxapm.base import get_client
from oxapm.log_correlation import CORRELATION_FIELDS

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, Optional, Tuple

# The agent's own loggers: exporting their records would feed the export back into itself.
OWN_LOGGERS = ("oxapm",)

#: ``LogRecord`` attributes that are not ``extra`` fields: a record's own, those formatting adds,
#: and those the record factory adds (``oxapm.log_correlation``).
RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"} | CORRELATION_FIELDS

_get_current = traces._current.get


class Emitters:
    """The emitter of each scope on a client's current engine (a forked child gets a new engine,
    and new emitters with it)."""

    __slots__ = ("_client", "_engine", "_by_scope")

    def __init__(self, client: Any = None):
        self._client = client
        self._engine: Any = None
        self._by_scope: Dict[Tuple[Any, ...], _core.LogEmitter] = {}

    def get(self, name: str, version: Optional[str] = None, schema_url: Optional[str] = None, attributes: Any = None) -> Optional[_core.LogEmitter]:
        client = self._client or get_client()
        engine = client._engine if client is not None else None
        if engine is not self._engine:
            self._engine, self._by_scope = engine, {}
        if engine is None:
            return None
        key = (name, version, schema_url, tuple(sorted(dict(attributes).items())) if attributes else None)
        emitter = self._by_scope.get(key)
        if emitter is None:
            emitter = self._by_scope[key] = _core.LogEmitter(engine, name, version, schema_url, attributes)
        return emitter


class LoggingHandler(logging.Handler):
    """Sends each ``logging`` record it handles as a log record of the scope named after its
    logger, as OpenTelemetry's ``LoggingHandler`` does: severity from the level, the formatted
    message as body (the handler's formatter's output if it has one), ``extra`` fields,
    ``code.*``, ``thread.*`` and ``exception.*`` as attributes, and the ids of the current span
    of either API. Records of the agent's own loggers are never sent. The client is the given
    one, else the current one when a record comes."""

    def __init__(self, level: int = logging.NOTSET, client: Any = None):
        super().__init__(level)
        self._client = client
        self._engine: Any = None
        self._records: Optional[_core.LoggingRecords] = None
        self._warned = False

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(OWN_LOGGERS):
            return
        try:
            records = self._records_of_current_engine()
            if records is None:
                return
            exception = exception_attributes(record.exc_info) if record.exc_info else None
            records.emit(record, self._body(record), exception, _get_current())
        except Exception:  # a logging handler never raises into the application
            if not self._warned:
                self._warned = True
                logging.getLogger("oxapm.logging").warning("could not send a log record; further failures are silent", exc_info=True)

    def _records_of_current_engine(self) -> Optional[_core.LoggingRecords]:
        client = self._client or get_client()
        engine = client._engine if client is not None else None
        if engine is not self._engine:  # the first record, a new client, or a forked child's engine
            self._engine = engine
            self._records = _core.LoggingRecords(engine, RECORD_FIELDS) if engine is not None else None
        return self._records

    def _body(self, record: logging.LogRecord) -> Any:
        if self.formatter is not None:
            return self.format(record)
        if not record.args and not isinstance(record.msg, str):
            return record.msg  # a dict or list logged as is stays structured
        return record.getMessage()

    def flush(self) -> None:
        """Records go out with the engine's batches; ``client.flush()`` waits for them."""


def exception_attributes(exc_info: Any) -> Optional[Dict[str, str]]:
    """The ``exception.*`` attributes of an ``exc_info`` triple, as OpenTelemetry names them."""
    exc_type, exc, tb = exc_info
    if exc_type is None:
        return None
    return {
        "exception.type": exc_type.__name__,
        "exception.message": str(exc),
        "exception.stacktrace": "".join(traceback.format_exception(exc_type, exc, tb)),
    }


def attach_to_root_logger(client: Any = None) -> bool:
    """A ``LoggingHandler`` on the root logger, once (what ``oxapm run`` and
    ``opentelemetry-instrument`` do with ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true``).
    Returns whether one was added."""
    root = logging.getLogger()
    if any(isinstance(handler, LoggingHandler) for handler in root.handlers):
        return False
    root.addHandler(LoggingHandler(client=client))
    return True

