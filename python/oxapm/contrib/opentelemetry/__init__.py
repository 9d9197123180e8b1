"""The Elastic agent's OpenTelemetry bridge API (``elasticapm.contrib.opentelemetry``), without its
caveats: spans are full OpenTelemetry spans (events, links, processors), and the context is the
API's own, tokens included.

    from oxapm.contrib.opentelemetry import Tracer, trace
    tracer = Tracer(__name__)                # or trace.get_tracer(__name__)
    with tracer.start_as_current_span("work"):
        ...
"""

from oxapm.contrib.opentelemetry import trace
from oxapm.contrib.opentelemetry.trace import Tracer, get_tracer

__all__ = ["Tracer", "get_tracer", "trace"]
