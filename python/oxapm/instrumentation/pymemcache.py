"""pymemcache: the commands of ``Client``, ``PooledClient`` and ``HashClient`` as exit spans
(``cache_spans``), named ``Client.get``, ``HashClient.set_many``... as Elastic's agent names them.

The pooled and hashing clients send through plain clients: the span of the client the application
called is the one recorded (exit spans are leaves). A ``HashClient`` over several servers has no
destination, since the key decides which one a command goes to."""

from __future__ import annotations

from oxapm.instrumentation.base import Instrumentation
from oxapm.instrumentation.cache_spans import CacheSpans, destination

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

# Every command that reaches a server; each class has those of its version.
COMMANDS = (
    "get", "get_many", "get_multi", "gets", "gets_many", "gets_multi",
    "set", "set_many", "set_multi", "add", "replace", "append", "prepend", "cas",
    "delete", "delete_many", "delete_multi", "incr", "decr", "touch",
    "stats", "version", "flush_all", "cache_memlimit", "raw_command", "quit", "shutdown",
)


def _server(spec: Any) -> Dict[str, Any]:
    # pymemcache normalizes a server to (host, port), or a unix socket's path.
    return destination(spec) if isinstance(spec, str) else destination(*spec)


def _client_destination(client: Any) -> Optional[Dict[str, Any]]:
    return _server(client.server)


def _hash_destination(client: Any) -> Optional[Dict[str, Any]]:
    if len(client.clients) != 1:
        return None
    (only,) = client.clients.values()
    return _server(only.server)


class PymemcacheInstrumentation(Instrumentation):
    name = "pymemcache"

    def apply(self) -> None:
        from pymemcache.client.base import Client, PooledClient
        from pymemcache.client.hash import HashClient

        for owner, destination_of in ((Client, _client_destination), (PooledClient, _client_destination), (HashClient, _hash_destination)):
            CacheSpans(self.name, "memcached", destination_of).wrap_methods(self, owner, COMMANDS)
