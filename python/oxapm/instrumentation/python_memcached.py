"""python-memcached (module ``memcache``): the commands of ``memcache.Client`` as exit spans
(``cache_spans``), named ``Client.get``, ``Client.set_multi``... as Elastic's agent names them.

python-memcached answers a failed command with None or 0 instead of raising (it marks the server
dead): such a command is not a failure here either, since a miss looks the same. A client of
several servers has no destination, since the key decides which one a command goes to."""

from __future__ import annotations

from oxapm.instrumentation.base import Instrumentation
from oxapm.instrumentation.cache_spans import CacheSpans, destination

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

# Every command that reaches a server.
COMMANDS = (
    "get", "gets", "get_multi", "set", "set_multi", "add", "replace", "append", "prepend", "cas",
    "delete", "delete_multi", "incr", "decr", "touch", "get_stats", "get_slab_stats", "get_slabs", "flush_all",
)


def _destination(client: Any) -> Optional[Dict[str, Any]]:
    if len(client.servers) != 1:
        return None
    address = client.servers[0].address  # (host, port), or a unix socket's path
    return destination(address) if isinstance(address, str) else destination(*address)


class PythonMemcachedInstrumentation(Instrumentation):
    name = "python-memcached"

    def apply(self) -> None:
        import memcache

        CacheSpans(self.name, "memcached", _destination).wrap_methods(self, memcache.Client, COMMANDS)
