"""``Tracer`` and ``get_tracer`` as the Elastic bridge offers them: ``elasticapm_client`` (an
existing client) or ``config`` (options for a new one), else the current client."""

from __future__ import annotations

import weakref
from typing import Any, Dict, Optional

from oxapm.otel import install

# One provider per explicitly given client, alive as long as the client is.
_providers: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def _provider(elasticapm_client: Optional[Any], config: Optional[Dict[str, Any]]) -> Any:
    """The global provider (installed if needed), or one of the client given or configured."""
    if elasticapm_client is None and config is None:
        return install()
    if elasticapm_client is None:
        import oxapm

        elasticapm_client = oxapm.Client(config)
    provider = _providers.get(elasticapm_client)
    if provider is None:
        from oxapm.otel.trace import TracerProvider

        provider = _providers[elasticapm_client] = TracerProvider(elasticapm_client)
    return provider


def get_tracer(
    instrumenting_module_name: str,
    instrumenting_library_version: Optional[str] = None,
    tracer_provider: Any = None,
    schema_url: Optional[str] = None,
    attributes: Optional[Any] = None,
    elasticapm_client: Optional[Any] = None,
    config: Optional[Dict[str, Any]] = None,
) -> Any:
    provider = tracer_provider or _provider(elasticapm_client, config)
    return provider.get_tracer(instrumenting_module_name, instrumenting_library_version, schema_url, attributes)


def Tracer(  # noqa: N802 -- a class in the Elastic bridge; a factory of the SDK's tracers here
    instrumenting_module_name: str,
    instrumenting_library_version: Optional[str] = None,
    elasticapm_client: Optional[Any] = None,
    config: Optional[Dict[str, Any]] = None,
    schema_url: Optional[str] = None,
) -> Any:
    return get_tracer(instrumenting_module_name, instrumenting_library_version, None, schema_url, None, elasticapm_client, config)
