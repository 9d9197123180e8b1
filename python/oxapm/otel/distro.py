"""Entry points that put the upstream ``opentelemetry-instrument`` on the oxapm engine: with
``OTEL_PYTHON_DISTRO=oxapm`` and ``OTEL_PYTHON_CONFIGURATOR=oxapm`` (or when these are the only ones
installed) its distro sets the defaults oxapm needs and its configurator makes oxapm the
OpenTelemetry SDK. Only opentelemetry-instrument loads this module."""

import os
from typing import Any

from opentelemetry.instrumentation.distro import BaseDistro

# Variables that choose where the Elastic side sends spans.
_ELASTIC_EXPORT_VARIABLES = ("ELASTIC_APM_SERVER_URL", "ELASTIC_APM_TRACES_EXPORTER")


class OxapmDistro(BaseDistro):
    def _configure(self, **kwargs: Any) -> None:
        # Spans go over OTLP, as with OpenTelemetry's own distro, unless the Elastic variables
        # already say where they go (the engine's own default is APM Server).
        if not any(name in os.environ for name in _ELASTIC_EXPORT_VARIABLES):
            os.environ.setdefault("OTEL_TRACES_EXPORTER", "otlp")


class OxapmConfigurator:
    """Called by opentelemetry-instrument before it applies the instrumentors."""

    def configure(self, **kwargs: Any) -> None:
        import oxapm.otel
        from oxapm.zerocode import options

        provider = oxapm.otel.install()
        if options.logging_auto_instrumentation():
            from oxapm.logs import attach_to_root_logger

            attach_to_root_logger(provider.client)
