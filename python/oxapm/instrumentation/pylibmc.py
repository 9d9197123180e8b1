"""pylibmc: the commands of ``pylibmc.Client`` (and of the clients its pools hand out) as exit spans
(``cache_spans``), named ``Client.get``, ``Client.set_multi``... as Elastic's agent names them. A
client of several servers has no destination, since the key decides which one a command goes to."""

from __future__ import annotations

from oxapm.instrumentation.base import Instrumentation
from oxapm.instrumentation.cache_spans import CacheSpans, destination

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, Optional

# Every command that reaches a server (methods of the C base class, wrapped on pylibmc.Client).
COMMANDS = (
    "get", "gets", "get_multi", "set", "set_multi", "add", "add_multi", "replace", "append", "prepend",
    "cas", "delete", "delete_multi", "incr", "decr", "incr_multi", "touch", "get_stats", "flush_all",
)


class PylibmcInstrumentation(Instrumentation):
    name = "pylibmc"

    def apply(self) -> None:
        import _pylibmc
        import pylibmc.client

        parse, unix = pylibmc.client.translate_server_spec, _pylibmc.server_type_unix

        def destination_of(client: Any) -> Optional[Dict[str, Any]]:
            if len(client.addresses) != 1:
                return None
            kind, address, port, _ = parse(client.addresses[0])  # a spec as "host:port" or a path
            return destination(address) if kind == unix else destination(address, port)

        CacheSpans(self.name, "memcached", destination_of).wrap_methods(self, pylibmc.client.Client, COMMANDS)
