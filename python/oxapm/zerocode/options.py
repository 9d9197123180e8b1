"""The flags of ``oxapm run``: one per environment variable the agent reads, named after it without
its family's prefix (``--server-url`` sets ``ELASTIC_APM_SERVER_URL``, ``--exporter-otlp-endpoint``
sets ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``--service_name`` is ``--service-name``). A flag that two
variables share (``--service-name``) sets both, so it wins over either one from the environment."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs milliseconds on the launcher's path
if TYPE_CHECKING:
    from typing import Dict, List

# Read by the Python side (oxapm.otel, zerocode.startup, oxapm.log_correlation) rather than by the
# engine. OTEL_PYTHON_LOG_LEVEL is left out: its flag would be --log-level, the agent's own.
PYTHON_VARIABLES = (
    "OTEL_PROPAGATORS",
    "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS",
    "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED",
    "OTEL_PYTHON_LOG_CORRELATION",
    "OTEL_PYTHON_LOG_FORMAT",
)

def logging_auto_instrumentation() -> bool:
    """``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED=true``, as opentelemetry-instrument reads it:
    the application's log records are exported only when this asks for it."""
    import os

    return os.environ.get("OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED", "").strip().lower() == "true"


# Longest first: OTEL_PYTHON_DISABLED_INSTRUMENTATIONS is --disabled-instrumentations.
_PREFIXES = ("ELASTIC_APM_", "OTEL_PYTHON_", "OTEL_")


def flag_name(text: str) -> str:
    """``--service_name`` and ``--SERVICE-NAME`` as ``--service-name``."""
    return "--" + text.lstrip("-").lower().replace("_", "-")


def flag_of(variable: str) -> str:
    prefix = next(p for p in _PREFIXES if variable.startswith(p))
    return flag_name(variable[len(prefix):])


def flags() -> Dict[str, List[str]]:
    """Each flag and the variables it sets, in the engine's order (Elastic options first)."""
    from oxapm import _core

    out: Dict[str, List[str]] = {}
    for variable in [*_core.environment_variables(), *PYTHON_VARIABLES]:
        out.setdefault(flag_of(variable), []).append(variable)
    return out
