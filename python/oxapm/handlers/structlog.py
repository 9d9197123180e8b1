"""A structlog processor adding the ids of the current transaction and span to each event, as the
Elastic agent's does: ``transaction.id``, ``trace.id``, ``span.id``, and the service's
``service.name``, ``service.environment`` and ``event.dataset`` (the service name). structlog
itself is not imported: ``structlog.configure(processors=[structlog_processor, ...])``.
"""

from __future__ import annotations

from oxapm import _core, traces
from oxapm.base import get_client

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict

_correlation = _core.correlation
_get_current = traces._current.get


def structlog_processor(logger: Any, method_name: str, event_dict: Dict[str, Any]) -> Dict[str, Any]:
    """Outside a transaction only the service fields are added; unset ones are left out."""
    current = _get_current()
    ids = _correlation(current) if current is not None else None
    if ids is not None:
        trace_id, transaction_id, span_id, _ = ids
        if transaction_id is not None:
            event_dict["transaction.id"] = transaction_id
        event_dict["trace.id"] = trace_id
        if span_id is not None:
            event_dict["span.id"] = span_id
    client = get_client()
    if client is not None:
        config = client.config
        event_dict["service.name"] = config.service_name
        if config.environment is not None:
            event_dict["service.environment"] = config.environment
        event_dict["event.dataset"] = config.service_name
    return event_dict
