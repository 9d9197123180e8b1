"""oxapm: application performance monitoring with a Rust engine.

The public API is the Elastic APM Python agent's, so ``import oxapm as elasticapm`` keeps
existing code working.

Its names are imported on first use (PEP 562): ``import oxapm.cli``, which every ``oxapm run``
starts with, then loads neither the engine nor ``logging``.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing itself costs a few milliseconds at start
if TYPE_CHECKING:
    from typing import Any, List

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

# name -> the module defining it (or, for ``constants``, the module itself)
_DEFINED_IN = {
    "VERSION": "oxapm.version",
    "Client": "oxapm.base",
    "get_client": "oxapm.base",
    "constants": "oxapm.conf.constants",
    "setup_logging": "oxapm.handlers.logging",
    "instrument": "oxapm.instrumentation.control",
    "uninstrument": "oxapm.instrumentation.control",
    "TraceParent": "oxapm.utils.disttracing",
    "trace_parent_from_headers": "oxapm.utils.disttracing",
    "trace_parent_from_string": "oxapm.utils.disttracing",
    **dict.fromkeys(
        [
            "async_capture_span",
            "capture_span",
            "get_span_id",
            "get_trace_id",
            "get_trace_parent_header",
            "get_transaction_id",
            "label",
            "set_context",
            "set_custom_context",
            "set_transaction_name",
            "set_transaction_outcome",
            "set_transaction_result",
            "set_user_context",
        ],
        "oxapm.traces",
    ),
}


def __getattr__(name: str) -> Any:
    module = _DEFINED_IN.get(name)
    if module is None:
        raise AttributeError("module 'oxapm' has no attribute %r" % name)
    __import__(module)  # importlib.import_module would cost importlib's import at every start
    defining = sys.modules[module]
    value = defining if module.endswith("." + name) else getattr(defining, name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_DEFINED_IN))


__all__ = sorted(_DEFINED_IN)
