"""Post-import hooks: callbacks run once a module has been imported, so that an instrumentation
(and OpenTelemetry with it) is loaded only by programs that import the library it instruments.

A finder first on ``sys.meta_path`` wraps the loader of a watched module and of its submodules. When
the outermost of them has run (a package and what it imported; for a namespace package such as
``opentelemetry``, its first module), the module's callbacks run, once, in the importing thread.
A failing callback is logged: it never breaks the import.
"""

from __future__ import annotations

import sys
from _thread import get_ident  # what threading.get_ident is, without importing threading

from oxapm.utils.lazylog import LazyLogger

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from importlib.machinery import ModuleSpec
    from types import ModuleType
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

logger = LazyLogger("oxapm.instrumentation")


def when_imported(module: str, callback: Callable[[], None]) -> None:
    """Runs ``callback`` after ``module`` (``requests``, ``http.client``) is next imported, not if
    it already is."""
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    _finder.callbacks.setdefault(module, []).append(callback)


def forget(callback: Callable[[], None]) -> None:
    """``callback`` will not run."""
    for module, callbacks in list(_finder.callbacks.items()):
        callbacks[:] = [c for c in callbacks if c is not callback]
        if not callbacks:
            del _finder.callbacks[module]
    _finder.stop_if_idle()


class _Finder:
    def __init__(self) -> None:
        self.callbacks: Dict[str, List[Callable[[], None]]] = {}
        # (thread, watched module) -> how many of its modules are being executed
        self.depth: Dict[Tuple[int, str], int] = {}

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None, target: Optional[ModuleType] = None) -> Optional[ModuleSpec]:
        watched = self._watched(fullname)
        if watched is None:
            return None
        spec = self._spec_from_the_other_finders(fullname, path, target)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _NotifyingLoader(spec.loader, watched)
        return spec

    def _watched(self, fullname: str) -> Optional[str]:
        """The outermost watched module that ``fullname`` is or is inside of."""
        watched = None
        name = fullname
        while True:
            if name in self.callbacks:
                watched = name
            name, dot, _ = name.rpartition(".")
            if not dot:
                return watched

    def _spec_from_the_other_finders(self, fullname: str, path: Any, target: Any) -> Optional[ModuleSpec]:
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is not self and find_spec is not None:
                spec = find_spec(fullname, path, target)
                if spec is not None:
                    return spec
        return None

    def executed(self, module: str, delta: int) -> int:
        key = (get_ident(), module)
        depth = self.depth.get(key, 0) + delta
        if depth:
            self.depth[key] = depth
        else:
            self.depth.pop(key, None)
        return depth

    def notify(self, module: str) -> None:
        for callback in self.callbacks.pop(module, ()):
            try:
                callback()
            except Exception:
                logger.warning("oxapm: a hook on the import of %s failed", module, exc_info=True)
        self.stop_if_idle()

    def stop_if_idle(self) -> None:
        if not self.callbacks and self in sys.meta_path:
            sys.meta_path.remove(self)


class _NotifyingLoader:
    """The module's own loader, which it keeps seeing as its ``__loader__``; after the outermost
    module of the watched one has run, its callbacks run."""

    def __init__(self, loader: Any, watched: str) -> None:
        self.loader = loader
        self.watched = watched

    def create_module(self, spec: ModuleSpec) -> Optional[ModuleType]:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        # importlib.resources, pkgutil and pkg_resources look at the loader's type.
        module.__loader__ = self.loader
        if getattr(module.__spec__, "loader", None) is self:
            module.__spec__.loader = self.loader  # type: ignore[union-attr]
        _finder.executed(self.watched, +1)
        try:
            self.loader.exec_module(module)
        finally:
            outermost = _finder.executed(self.watched, -1) == 0
        if outermost:
            _finder.notify(self.watched)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


_finder = _Finder()
