"""The Elastic agent's logging helpers: ``LoggingHandler`` sends Python log records to APM as
errors; ``Formatter`` appends the trace ids to each formatted line; ``log_record_factory`` wraps a
record factory so records carry them (see ``oxapm.log_correlation``)."""

from __future__ import annotations

import datetime
import logging
import sys
from typing import Iterable, Optional

from oxapm.base import Client, get_client
from oxapm.log_correlation import CorrelatingRecordFactory, annotate

EXCLUDE_LOGGER_DEFAULTS = ("oxapm", "elasticapm.errors")


class LoggingHandler(logging.Handler):
    """Captures each record it handles as an error with a ``log`` (and its exception, if any)."""

    def __init__(self, *args, client: Optional[Client] = None, **kwargs):
        self.client = client or kwargs.pop("client", None)
        super().__init__(*args, **kwargs)

    def emit(self, record: logging.LogRecord) -> None:
        # The agent's own records would loop back through here.
        if record.name.startswith(EXCLUDE_LOGGER_DEFAULTS):
            return
        client = self.client or get_client()
        if client is None:
            return
        try:
            exc_info = record.exc_info if record.exc_info and record.exc_info[0] is not None else False
            client.capture_message(
                param_message={"message": str(record.msg), "params": record.args or None},
                exc_info=exc_info,
                level=logging.getLevelName(record.levelno).lower(),
                logger_name=record.name,
                stack=bool(getattr(record, "stack", False)),
                custom=getattr(record, "data", None),
                date=datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc),
            )
        except Exception:  # a logging handler must never raise into the application
            print("oxapm: could not capture a log record", file=sys.stderr)


def setup_logging(handler: logging.Handler, exclude: Iterable[str] = EXCLUDE_LOGGER_DEFAULTS) -> bool:
    """Adds ``handler`` to the root logger; returns False if it was already there. Records of the
    excluded loggers are kept out of it (they go to stderr instead)."""
    root = logging.getLogger()
    if any(type(h) is type(handler) for h in root.handlers):
        return False
    root.addHandler(handler)
    for name in exclude:
        excluded = logging.getLogger(name)
        excluded.propagate = False
        if not excluded.handlers:
            excluded.addHandler(logging.StreamHandler())
    return True


class Formatter(logging.Formatter):
    """Appends ``| elasticapm transaction.id=... trace.id=... span.id=...`` to ``fmt`` (default
    ``%(message)s``), in the format's style; the ids come from the record factory, or are read
    here when it is off."""

    _SUFFIX = {
        "%": " | elasticapm transaction.id=%(elasticapm_transaction_id)s trace.id=%(elasticapm_trace_id)s span.id=%(elasticapm_span_id)s",
        "{": " | elasticapm transaction.id={elasticapm_transaction_id} trace.id={elasticapm_trace_id} span.id={elasticapm_span_id}",
        "$": " | elasticapm transaction.id=${elasticapm_transaction_id} trace.id=${elasticapm_trace_id} span.id=${elasticapm_span_id}",
    }

    def __init__(self, fmt: Optional[str] = None, datefmt: Optional[str] = None, style: str = "%", **kwargs):
        default = {"%": "%(message)s", "{": "{message}", "$": "${message}"}.get(style, "%(message)s")
        super().__init__((fmt or default) + self._SUFFIX.get(style, ""), datefmt, style, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "elasticapm_transaction_id"):
            annotate(record)
        return super().format(record)


def log_record_factory(wrapped):
    """``logging.setLogRecordFactory(log_record_factory(logging.getLogRecordFactory()))``."""
    return CorrelatingRecordFactory(wrapped, None)
