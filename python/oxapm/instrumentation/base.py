"""What every library instrumentation is made of: patches that can be undone, and a rule for the
agent's own failures inside a patched call.

The rule: the library call always proceeds, as if uninstrumented. Agent code that fails is skipped
for that call, and reported once per instrumentation (a warning with its traceback), so that a
broken instrumentation neither breaks the application nor floods its log.
"""

from __future__ import annotations

import functools
from types import FunctionType, MethodType

from oxapm.utils.lazylog import LazyLogger

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Callable, List, Optional, Set, Tuple

logger = LazyLogger("oxapm.instrumentation")

_MISSING = object()
_reported: Set[str] = set()


def report_failure(instrumentation: str, error: Optional[BaseException] = None) -> None:
    """Call from an ``except`` block around agent code (or with the ``error`` the engine caught):
    the first failure of each instrumentation is logged with its traceback, later ones are not."""
    if instrumentation in _reported:
        return
    _reported.add(instrumentation)
    logger.warning("the %s instrumentation failed inside a call it traces; the call went on untraced "
                   "(further failures of this instrumentation are not logged)", instrumentation,
                   exc_info=error if error is not None else True)


class Instrumentation:
    """One library's instrumentation. Subclasses set ``name`` and implement ``apply()``, patching
    with ``wrap``; ``uninstrument()`` undoes every patch."""

    name = ""

    def __init__(self) -> None:
        self._patches: List[Tuple[Any, str, Any]] = []

    def apply(self) -> None:
        raise NotImplementedError

    def instrument(self) -> None:
        try:
            self.apply()
        except BaseException:
            self.uninstrument()  # nothing half-applied stays
            raise

    def uninstrument(self) -> None:
        while self._patches:
            owner, attribute, original = self._patches.pop()
            if original is _MISSING:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)

    def wrap(
        self,
        owner: Any,
        attribute: str,
        wrapper: Callable[[Any, Any, tuple, dict], Any],
        engine_patch: Optional[Callable[[Callable[..., Any], bool], Any]] = None,
    ) -> None:
        """Replaces ``owner.attribute`` (a function of a module, a method of a class) by
        ``wrapper(wrapped, instance, args, kwargs)``, which should call ``wrapped(*args, **kwargs)``.
        Methods stay methods, class- and static methods stay what they were (wrapt binds them).

        A plain Python function that is no coroutine function becomes a plain function calling
        ``wrapper``: wrapt would make a bound wrapper object at every access to the method, which
        costs more than the rest of an exit span's work (requests goes through five patched methods
        per call). Or, given ``engine_patch``, what ``engine_patch(original, binds)`` makes of it:
        the engine's own version of ``wrapper``, ``binds`` telling whether it is a method."""
        # The owner's own attribute, not an inherited one: undoing restores exactly this.
        original = vars(owner).get(attribute, _MISSING) if hasattr(owner, "__dict__") else getattr(owner, attribute)
        if not _is_plain_function(original):
            import wrapt

            wrapt.wrap_function_wrapper(owner, attribute, wrapper)
        elif engine_patch is not None:
            setattr(owner, attribute, engine_patch(original, isinstance(owner, type)))
        else:
            setattr(owner, attribute, _patched_function(owner, original, wrapper))
        self._patches.append((owner, attribute, original))

    def wrap_in_engine(self, owner: Any, attribute: str, engine_patch: Callable[[Callable[..., Any], bool], Any]) -> None:
        """``wrap`` with the engine's patch alone: an attribute that is no plain function (another
        tool's wrapt wrapper) gets a wrapt wrapper calling the patch made around the bound
        function wrapt passes."""

        def wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
            return engine_patch(wrapped, False)(*args, **kwargs)

        self.wrap(owner, attribute, wrapper, engine_patch)


# Code flags of coroutine functions and async generators: those are left to wrapt, which keeps what
# frameworks inspect of them.
_ASYNC_CODE = 0x80 | 0x100 | 0x200


def _is_plain_function(original: Any) -> bool:
    """Whether ``original`` is a Python function, and no coroutine function."""
    return type(original) is FunctionType and not original.__code__.co_flags & _ASYNC_CODE


def _patched_function(owner: Any, original: Callable[..., Any], wrapper: Callable[[Any, Any, tuple, dict], Any]) -> Callable[..., Any]:
    """``original`` (a plain function of a module, a method of a class) calling ``wrapper``."""
    if isinstance(owner, type):
        def method(instance: Any, *args: Any, **kwargs: Any) -> Any:
            return wrapper(MethodType(original, instance), instance, args, kwargs)

        patched = method
    else:
        def function(*args: Any, **kwargs: Any) -> Any:
            return wrapper(original, None, args, kwargs)

        patched = function
    return functools.update_wrapper(patched, original)
