"""oxapm: application performance monitoring with a Rust engine.

The public API is the Elastic APM Python agent's, so ``import oxapm as elasticapm`` keeps
existing code working.
"""

from oxapm.base import Client, get_client
from oxapm.conf import constants
from oxapm.handlers.logging import setup_logging
from oxapm.instrumentation.control import instrument, uninstrument
from oxapm.traces import (
    async_capture_span,
    capture_span,
    get_span_id,
    get_trace_id,
    get_trace_parent_header,
    get_transaction_id,
    label,
    set_context,
    set_custom_context,
    set_transaction_name,
    set_transaction_outcome,
    set_transaction_result,
    set_user_context,
)
from oxapm.utils.disttracing import TraceParent, trace_parent_from_headers, trace_parent_from_string
from oxapm.version import VERSION

__all__ = [
    "VERSION",
    "Client",
    "TraceParent",
    "async_capture_span",
    "capture_span",
    "constants",
    "get_client",
    "get_span_id",
    "get_trace_id",
    "get_trace_parent_header",
    "get_transaction_id",
    "instrument",
    "label",
    "set_context",
    "set_custom_context",
    "set_transaction_name",
    "set_transaction_outcome",
    "set_transaction_result",
    "set_user_context",
    "setup_logging",
    "trace_parent_from_headers",
    "trace_parent_from_string",
    "uninstrument",
]
