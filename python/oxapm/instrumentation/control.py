"""``instrument()`` and ``uninstrument()``: apply or remove the registered instrumentations, once.

An instrumentation applies when its library is imported (now, if it already is), and only when the
installed version of the library is one it supports: that is checked from the index of installed
distributions (``installed``) before anything is imported. One named in
``ELASTIC_APM_DISABLED_INSTRUMENTATIONS`` or ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` is left out, as
are those central configuration (OpAMP) turns off (``set_deactivated``).
A failing instrumentation is logged and skipped: instrumenting must never break the application.
"""

from __future__ import annotations

import os
import sys
from _thread import allocate_lock  # threading.Lock, without importing threading

from oxapm.instrumentation import import_hooks, installed, registry
from oxapm.utils.lazylog import LazyLogger

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Callable, Dict, Iterable, Optional, Set

    from oxapm.instrumentation.registry import Entry

logger = LazyLogger("oxapm.instrumentation")

# Guards the two tables only: applying runs outside it, since it imports (a library being imported
# in another thread may be waiting for this lock in its import hook).
_lock = allocate_lock()
_active: Dict[str, object] = {}  # name -> the applied instrumentation (None while it is applied)
_waiting: Dict[str, Callable[[], None]] = {}  # name -> its import hook
_unsupported: Set[str] = set()  # names whose installed library version is not supported
_deactivated: Set[str] = set()  # names turned off by central configuration; "*" for all
_instrumenting = False  # instrument() was called and not undone: what is no longer turned off applies again


def instrument() -> None:
    """Applies every registered instrumentation not applied yet, each when its library is
    imported; safe to call repeatedly and from several threads."""
    from oxapm.base import get_client

    global _instrumenting
    client = get_client()
    if client is not None and not client.config.instrument:
        return
    _instrumenting = True
    try:
        versions = installed.versions()  # once: each lookup of the index stats every sys.path entry
    except Exception:  # a broken distribution's metadata: only the standard library is instrumented
        logger.warning("could not list the installed distributions; only the standard library is instrumented", exc_info=True)
        versions = {}
    ready = []
    with _lock:
        left_out = disabled()  # under the lock: set_deactivated may be changing it
        for name, entry in registry.entries().items():
            if name in _active or name in _waiting or name in _unsupported or name in left_out or "*" in left_out or not _supported(name, entry, versions):
                continue
            if any(module in sys.modules for module in entry.modules):
                _active[name] = None
                ready.append((name, entry))
            else:
                _waiting[name] = hook = _import_hook(name, entry)
                for module in entry.modules:
                    import_hooks.when_imported(module, hook)
    for name, entry in ready:
        _apply(name, entry)


def uninstrument() -> None:
    """Removes every applied instrumentation, and forgets those waiting for their library."""
    global _instrumenting
    _instrumenting = False
    _remove(None)


def set_deactivated(names: Iterable[str], everything: bool = False) -> None:
    """Central configuration turns off the instrumentations ``names``, or all of them; those it
    stops naming apply again (if ``instrument()`` was called)."""
    global _deactivated
    deactivated = {"*"} if everything else {name for name in names if name}
    with _lock:
        if deactivated == _deactivated:
            return
        _deactivated = deactivated
    _remove(None if everything else deactivated)
    if _instrumenting:
        instrument()


def _remove(names: Optional[Set[str]]) -> None:
    """Removes the instrumentations ``names`` (None: all), applied or waiting for their library."""
    with _lock:
        waiting = [_waiting.pop(name) for name in list(_waiting) if names is None or name in names]
        active = [(name, instrumentation) for name, instrumentation in _active.items() if instrumentation is not None and (names is None or name in names)]
        for name, _ in active:
            del _active[name]
    for hook in waiting:
        import_hooks.forget(hook)
    for name, instrumentation in active:
        _uninstrument(name, instrumentation)


def _uninstrument(name: str, instrumentation: object) -> None:
    try:
        instrumentation.uninstrument()  # type: ignore[attr-defined]
    except Exception:
        logger.warning("instrumentation %s failed to remove itself", name, exc_info=True)


def applied() -> Dict[str, object]:
    return {name: instrumentation for name, instrumentation in _active.items() if instrumentation is not None}


def instrumenting() -> Set[str]:
    """The names of the instrumentations applied, or waiting for their library."""
    with _lock:
        return set(_active) | set(_waiting)


def disabled() -> Set[str]:
    """The names left out by ``disabled_instrumentations``, ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``
    and central configuration (``"*"``: all of them)."""
    from oxapm.base import get_client

    client = get_client()
    names = set(client.config.disabled_instrumentations or ()) if client is not None else set()
    names.update(os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(","))
    names.update(_deactivated)
    return {name.strip() for name in names if name.strip()}


def _supported(name: str, entry: Entry, versions: Dict[str, str]) -> bool:
    """Whether the installed library is one ``entry`` instruments. A library that is not installed
    (by any of its distribution names) is not; one of an unsupported version is not either, and
    says so once it is imported."""
    if not entry.distributions:
        return True
    version = next(filter(None, (installed.version_of(d, versions) for d in entry.distributions)), None)
    if version is None:
        return False
    if registry.supports(entry.versions, version) is not False:
        return True
    _unsupported.add(name)

    def explain() -> None:
        logger.warning("%s %s is not instrumented: oxapm's %s instrumentation supports versions %s",
                       entry.distributions[0], version, name, entry.versions)

    for module in entry.modules:
        import_hooks.when_imported(module, explain)
    return False


def _import_hook(name: str, entry: Entry) -> Callable[[], None]:
    def imported() -> None:
        with _lock:
            if _waiting.pop(name, None) is None:  # uninstrumented meanwhile, or another module's hook ran
                return
            _active[name] = None
        _apply(name, entry)

    return imported


def _apply(name: str, entry: Entry) -> None:
    instrumentation: Optional[object] = None
    try:
        module_name, _, class_name = entry.target.partition(":")
        __import__(module_name)  # not importlib.import_module: importlib would be imported at start
        instrumentation = getattr(sys.modules[module_name], class_name)()
        instrumentation.instrument()  # type: ignore[attr-defined]
    except Exception:
        logger.warning("instrumentation %s failed to apply; skipped", name, exc_info=True)
        instrumentation = None
    with _lock:
        turned_off = name in _deactivated or "*" in _deactivated  # while it was being applied
        if instrumentation is None or turned_off:
            _active.pop(name, None)  # the next instrument() tries again
        else:
            _active[name] = instrumentation
    if instrumentation is not None and turned_off:
        _uninstrument(name, instrumentation)
