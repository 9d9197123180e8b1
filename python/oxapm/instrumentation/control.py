"""``instrument()`` and ``uninstrument()``: apply or remove every registered instrumentation, once.

An instrumentation is a class with ``instrument()`` and ``uninstrument()`` methods. A failing one is
logged and skipped: instrumenting must never break the application.
"""

from __future__ import annotations

import sys
from _thread import allocate_lock  # threading.Lock, without importing threading

from oxapm.instrumentation import register
from oxapm.utils.lazylog import LazyLogger

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Dict

logger = LazyLogger("oxapm.instrumentation")

_lock = allocate_lock()
_active: Dict[str, object] = {}


def _load(class_path: str) -> object:
    module_name, _, class_name = class_path.rpartition(".")
    __import__(module_name)  # not importlib.import_module: importlib would be imported at start
    return getattr(sys.modules[module_name], class_name)()


def instrument() -> None:
    """Applies every registered instrumentation not applied yet; safe to call repeatedly."""
    from oxapm.base import get_client

    client = get_client()
    disabled = set(client.config.disabled_instrumentations or ()) if client is not None else set()
    if client is not None and not client.config.instrument:
        return
    with _lock:
        for name, class_path in register.registered().items():
            if name in _active or name in disabled:
                continue
            try:
                instrumentation = _load(class_path)
                instrumentation.instrument()
            except Exception:
                logger.warning("instrumentation %s failed to apply; skipped", name, exc_info=True)
                continue
            _active[name] = instrumentation


def uninstrument() -> None:
    """Removes every applied instrumentation."""
    with _lock:
        for name, instrumentation in list(_active.items()):
            try:
                instrumentation.uninstrument()
            except Exception:
                logger.warning("instrumentation %s failed to remove itself", name, exc_info=True)
            del _active[name]


def applied() -> Dict[str, object]:
    return dict(_active)
