"""Sends Python log records to APM as errors, as the Elastic agent's ``LoggingHandler`` does."""

from __future__ import annotations

import datetime
import logging
import sys
from typing import Iterable, Optional

from oxapm.base import Client, get_client

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
