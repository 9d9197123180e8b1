"""What ``oxapm run`` does in each interpreter it starts: the agent's client from the environment,
oxapm's own instrumentations, and the installed OpenTelemetry contrib instrumentors of the other
libraries, each applied when the library it instruments is imported. OpenTelemetry is imported, and oxapm installed as its
SDK, only when the program or an instrumentor first needs it.

Nothing here raises into the program: a failure is one warning, and what failed is left out.
"""

from __future__ import annotations

import sys

import oxapm
from oxapm.instrumentation import control, import_hooks, installed
from oxapm.instrumentation.installed import Instrumentor
from oxapm.utils.lazylog import LazyLogger
from oxapm.zerocode import options

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import List, Set

logger = LazyLogger("oxapm.zerocode")


def start() -> None:
    try:
        client = oxapm.Client()
        if not (client.config.enabled and client.config.instrument):
            return
        if options.logging_auto_instrumentation():
            from oxapm.logs import attach_to_root_logger

            attach_to_root_logger(client)
        oxapm.instrument()
        _Instrumenting(client).watch(_enabled_instrumentors())
    except Exception as exc:
        logger.warning("oxapm could not start (%s: %s); the program runs uninstrumented", type(exc).__name__, exc)


def _enabled_instrumentors() -> List[Instrumentor]:
    """Neither disabled nor of a library oxapm instruments itself (one library, one span)."""
    left_out = control.disabled() | control.instrumenting()
    if "*" in left_out:  # central configuration deactivated every instrumentation
        return []
    return [i for i in installed.instrumentors() if i.name not in left_out]


class _Instrumenting:
    def __init__(self, client: oxapm.Client) -> None:
        self.client = client
        self.otel_installed = False
        self.applied: Set[str] = set()
        # Instrumentors whose library was imported before the program started (logging and
        # threading, by the agent itself): applied with OpenTelemetry, not before it is needed.
        self.waiting_for_otel: List[Instrumentor] = []

    def watch(self, instrumentors: List[Instrumentor]) -> None:
        at_start = []
        for instrumentor in instrumentors:
            if instrumentor.modules is None:
                at_start.append(instrumentor)
            elif any(module in sys.modules for module in instrumentor.modules):
                self.waiting_for_otel.append(instrumentor)
            else:
                for module in instrumentor.modules:
                    import_hooks.when_imported(module, lambda i=instrumentor: self.apply(i))
        if "opentelemetry" in sys.modules or at_start:
            self.install_otel()
        else:
            import_hooks.when_imported("opentelemetry", self.install_otel)
        for instrumentor in at_start:
            self.apply(instrumentor)

    def install_otel(self) -> None:
        """oxapm becomes OpenTelemetry's SDK, then the waiting instrumentors are applied."""
        if self.otel_installed:
            return
        self.otel_installed = True
        try:
            import oxapm.otel

            oxapm.otel.install(self.client)
        except Exception as exc:
            logger.warning("oxapm could not install itself as the OpenTelemetry SDK (%s: %s); "
                           "OpenTelemetry spans are not recorded", type(exc).__name__, exc)
        for instrumentor in self.waiting_for_otel:
            self.apply(instrumentor)

    def apply(self, instrumentor: Instrumentor) -> None:
        if instrumentor.name in self.applied:
            return
        self.applied.add(instrumentor.name)
        self.install_otel()
        from importlib.metadata import EntryPoint

        try:
            EntryPoint(instrumentor.name, instrumentor.value, installed.GROUP).load()().instrument()
        except Exception as exc:
            logger.warning("oxapm could not apply the OpenTelemetry instrumentor %s (%s: %s); it is left out",
                           instrumentor.name, type(exc).__name__, exc)
