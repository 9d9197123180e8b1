"""An ECS JSON formatter for stdlib ``logging``: one JSON object per record with the fields
Elastic's log integrations read (``@timestamp``, ``log.level``, ``message``, ``ecs.version``,
``log.logger``, ``log.origin``, ``process``, ``trace.id``, ``transaction.id``, ``span.id``,
``service.name``, ``error``), and the record's ``extra`` fields. Written here from the ECS field
reference, not taken from the ecs-logging package.

``log_ecs_reformatting=override`` puts it on the handlers the root logger has when the ``Client``
is created.
"""

from __future__ import annotations

import json
import logging
import time

from oxapm.log_correlation import annotate
from oxapm.logs import RECORD_FIELDS

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict

ECS_VERSION = "1.6.0"

class EcsFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "elasticapm_trace_id"):  # the record factory is off
            annotate(record)
        document: Dict[str, Any] = {
            "@timestamp": self.formatTime(record),
            "log.level": record.levelname.lower(),
            "message": record.getMessage(),
            "ecs.version": ECS_VERSION,
            "log": {
                "logger": record.name,
                "origin": {"file": {"name": record.filename, "line": record.lineno}, "function": record.funcName},
            },
            "process": {"pid": record.process, "name": record.processName, "thread": {"id": record.thread, "name": record.threadName}},
        }
        for field, value in (
            ("service.name", record.elasticapm_service_name),  # type: ignore[attr-defined]
            ("event.dataset", record.elasticapm_event_dataset),  # type: ignore[attr-defined]
            ("trace.id", record.elasticapm_trace_id),  # type: ignore[attr-defined]
            ("transaction.id", record.elasticapm_transaction_id),  # type: ignore[attr-defined]
            ("span.id", record.elasticapm_span_id),  # type: ignore[attr-defined]
        ):
            if value is not None:
                _put(document, field, value)
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, exc, _ = record.exc_info
            error = {"type": exc_type.__name__, "message": str(exc), "stack_trace": self.formatException(record.exc_info)}
            document["error"] = error
        for key, value in vars(record).items():
            if key not in RECORD_FIELDS:
                _put(document, key, value)
        return json.dumps(document, default=str, ensure_ascii=False)

    def formatTime(self, record: logging.LogRecord, datefmt: Any = None) -> str:
        """ISO 8601 in UTC with milliseconds: ``2026-11-22T04:01:02.345Z``."""
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + ".%03dZ" % int(record.msecs)


def _put(document: Dict[str, Any], dotted: str, value: Any) -> None:
    """``trace.id`` goes to ``{"trace": {"id": ...}}``; a name already holding a value is kept."""
    *parents, leaf = dotted.split(".")
    node = document
    for name in parents:
        child = node.setdefault(name, {})
        if not isinstance(child, dict):
            return
        node = child
    node.setdefault(leaf, value)


def override_root_formatters() -> None:
    """``log_ecs_reformatting=override``: the root logger's handlers format with ``EcsFormatter``."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(EcsFormatter())
