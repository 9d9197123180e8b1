"""The OpenTelemetry SDK over the oxapm engine.

``install()`` makes oxapm the global tracer, meter and logger provider; ``TracerProvider``,
``MeterProvider`` and ``LoggerProvider`` can also be set by hand
(``trace.set_tracer_provider(oxapm.otel.TracerProvider())``) or chosen with
``OTEL_PYTHON_TRACER_PROVIDER=oxapm``, ``OTEL_PYTHON_METER_PROVIDER=oxapm`` and
``OTEL_PYTHON_LOGGER_PROVIDER=oxapm``. Nothing here imports ``opentelemetry`` until used.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:
    from oxapm.otel.trace import Tracer, TracerProvider

logger = logging.getLogger("oxapm")

_installed: Optional["TracerProvider"] = None
_install_lock = threading.Lock()


def install(client: Optional[Any] = None) -> "TracerProvider":
    """Makes oxapm the global OpenTelemetry tracer, meter and logger provider (with ``client``, else
    the current ``oxapm.Client``, else one configured from the environment) and the propagators of
    ``OTEL_PROPAGATORS`` the global ones. Calling it again returns the same tracer provider."""
    global _installed
    with _install_lock:
        if _installed is not None and (client is None or _installed.client is client):
            return _installed
        from opentelemetry import propagate
        from opentelemetry import trace as trace_api

        from oxapm.otel.propagators import propagator_from_names
        from oxapm.otel.trace import TracerProvider

        provider = TracerProvider(client)
        trace_api.set_tracer_provider(provider)
        _is_global("tracer", trace_api.get_tracer_provider(), provider)
        _install_logger_provider(provider.client)
        propagate.set_global_textmap(propagator_from_names(os.environ.get("OTEL_PROPAGATORS", "tracecontext,baggage")))
        _install_meter_provider(provider.client)
        _installed = provider
        return provider


def _install_meter_provider(client: Any) -> None:
    from opentelemetry import metrics as metrics_api

    from oxapm.otel.metrics import MeterProvider

    provider = MeterProvider(client)
    metrics_api.set_meter_provider(provider)
    if not _is_global("meter", metrics_api.get_meter_provider(), provider):
        provider.shutdown()


def _install_logger_provider(client: Any) -> None:
    """The global logger provider too, unless another was set first (the API allows one)."""
    from opentelemetry import _logs

    from oxapm.otel.logs import LoggerProvider

    current = _logs.get_logger_provider()
    if isinstance(current, LoggerProvider):
        return
    if type(current).__name__ != "ProxyLoggerProvider":  # the API's stand-in until one is set
        _is_global("logger", current, None)
        return
    _logs.set_logger_provider(LoggerProvider(client))


def _is_global(signal: str, current: Any, provider: Any) -> bool:
    """Whether ``provider`` is the API's global ``signal`` provider now, ``current``; the API keeps
    the first one set, so if another came first it says so."""
    if current is provider:
        return True
    logger.warning("another OpenTelemetry %s provider (%s) was set before oxapm's; its %ss keep it", signal, type(current).__name__, signal)
    return False


def __getattr__(name: str) -> Any:
    if name in ("Tracer", "TracerProvider"):
        from oxapm.otel import trace

        return getattr(trace, name)
    if name in ("Meter", "MeterProvider", "View"):
        from oxapm.otel import metrics

        return getattr(metrics, name)
    if name in ("Logger", "LoggerProvider", "LoggingHandler"):
        from oxapm.otel import logs

        return getattr(logs, name)
    raise AttributeError(name)


__all__ = ["Logger", "LoggerProvider", "LoggingHandler", "Meter", "MeterProvider", "Tracer", "TracerProvider", "View", "install"]
