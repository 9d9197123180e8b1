"""redis-py: the commands of ``Redis`` and of its pipelines, blocking and asyncio, as exit spans
(``cache_spans``).

A command's span is named as sent (``GET``, ``LPUSH``), as Elastic's agents name it. A pipeline is one
span for all its commands, named ``MULTI`` when it runs as a transaction and ``PIPELINE`` otherwise,
as redis-py's own metrics name them (Elastic's Python agent says ``Pipeline.execute`` for both). A
command a pipeline sends at once (``WATCH`` and what follows it) is a span of its own.

No ``context.db.instance``: the database number would make the service target ``redis/0``, where
every Elastic agent reports ``redis``, splitting one server into several in the service map.
"""

from __future__ import annotations

from oxapm.instrumentation.base import Instrumentation
from oxapm.instrumentation.cache_spans import CacheSpans, destination

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, Optional


def _destination(client: Any) -> Optional[Dict[str, Any]]:
    """Where the client's connection pool connects: a host and port, or a unix socket; None for a
    pool that looks its server up (Sentinel)."""
    settings = client.connection_pool.connection_kwargs
    path = settings.get("path")
    if path:
        return destination(path)
    host = settings.get("host")
    return destination(host, settings.get("port", 6379)) if host else None


def _command(client: Any, args: tuple) -> str:
    name = args[0] if args else "execute_command"
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def _pipeline(pipeline: Any, args: tuple) -> str:
    return "MULTI" if pipeline.transaction or pipeline.explicit_transaction else "PIPELINE"


def _async_pipeline(pipeline: Any, args: tuple) -> str:
    # The asyncio pipeline's flag is is_transaction: its `transaction` is Redis.transaction, a method.
    return "MULTI" if pipeline.is_transaction or pipeline.explicit_transaction else "PIPELINE"


class RedisInstrumentation(Instrumentation):
    name = "redis"

    def apply(self) -> None:
        # redis.asyncio exists from redis 4.2; `import redis` does not import it in every version.
        import redis.asyncio.client
        import redis.client

        spans = CacheSpans(self.name, "redis", _destination)
        for module, wrapper, pipeline_name in (
            (redis.client, spans.wrapper, _pipeline),
            (redis.asyncio.client, spans.async_wrapper, _async_pipeline),
        ):
            self.wrap(module.Redis, "execute_command", wrapper(_command))
            self.wrap(module.Pipeline, "immediate_execute_command", wrapper(_command))
            self.wrap(module.Pipeline, "execute", wrapper(pipeline_name))
