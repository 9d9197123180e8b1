"""What is installed, as far as instrumenting goes: the version of every distribution, and the
OpenTelemetry contrib instrumentors (entry point group ``opentelemetry_instrumentor``) with the
modules whose import should apply each one.

Scanning every distribution's metadata costs tens of milliseconds (and importing importlib.metadata
as much again), on every start. The result is
kept in a file under the user's cache directory, keyed on what installing or removing a package
changes: the modification times of the ``sys.path`` directories (and the interpreter's version).
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

GROUP = "opentelemetry_instrumentor"
_FORMAT = 3  # of the cached entries
# Programs of one environment may start with different paths (PYTHONPATH): a few are remembered.
_KEYS_KEPT = 8


class Instrumentor(tuple):
    """(name, value, modules). A plain tuple subclass: typing.NamedTuple would cost its import at
    every start."""

    __slots__ = ()

    def __new__(cls, name: str, value: str, modules: Optional[Tuple[str, ...]]) -> Instrumentor:
        return tuple.__new__(cls, (name, value, modules))

    # The entry point's name, which OTEL_PYTHON_DISABLED_INSTRUMENTATIONS uses.
    name = property(lambda self: self[0])
    # "module:Class"
    value = property(lambda self: self[1])
    # Top-level modules whose import applies it; None when it names no library (applied at start).
    modules = property(lambda self: self[2])


def instrumentors() -> List[Instrumentor]:
    """The contrib instrumentors whose library is installed."""
    return _index()[0]


def versions() -> Dict[str, str]:
    """The version of each installed distribution, by canonical name (``python-memcached``)."""
    return _index()[1]


def version_of(distribution: str, installed_versions: Dict[str, str]) -> Optional[str]:
    """``distribution``'s version in ``versions()``, by any spelling of its name."""
    return installed_versions.get(_canonical(distribution))


# The index for this process's current sys.path (a program may change its path after the start),
# by (cache file, key).
_memo: Dict[Tuple[str, Tuple[Any, ...]], Tuple[List[Instrumentor], Dict[str, str]]] = {}


def _index() -> Tuple[List[Instrumentor], Dict[str, str]]:
    where = (_cache_path(), _cache_key())
    if where not in _memo:
        _memo.clear()
        _memo[where] = _cached_or_scanned(*where)
    return _memo[where]


def _cached_or_scanned(path: str, key: Tuple[Any, ...]) -> Tuple[List[Instrumentor], Dict[str, str]]:
    # The file maps each key to its entry marshalled apart: only this key's entry is decoded.
    cache: Dict[Tuple[Any, ...], bytes] = {}
    try:
        with open(path, "rb") as f:
            loaded = marshal.load(f)
        cache = loaded if isinstance(loaded, dict) else {}
        if key in cache:
            entries, found_versions = marshal.loads(cache[key])
            return [Instrumentor(*entry) for entry in entries], found_versions
    except (OSError, EOFError, ValueError, TypeError):
        pass
    found, found_versions = scan()
    # Dicts keep their order: the oldest key goes first.
    kept = dict(list(cache.items())[-(_KEYS_KEPT - 1):])
    kept[key] = marshal.dumps(([tuple(i) for i in found], found_versions))
    _store(path, kept)
    return found, found_versions


def scan() -> Tuple[List[Instrumentor], Dict[str, str]]:
    from importlib import metadata

    found: List[Instrumentor] = []
    found_versions: Dict[str, str] = {}
    for dist in metadata.distributions():
        name = _canonical(dist.metadata["Name"] or "")
        # A distribution found twice on sys.path counts once, the first (as importlib does).
        if not name or name in found_versions:
            continue
        found_versions[name] = dist.version or ""
        libraries = _instrumented_libraries(dist.requires or []) if any(ep.group == GROUP for ep in dist.entry_points) else []
        for ep in dist.entry_points:
            if ep.group != GROUP:
                continue
            modules = _modules_of(libraries) if libraries else _module_named(ep.name)
            if modules != ():  # () : none of its libraries is installed
                found.append(Instrumentor(ep.name, ep.value, modules))
    return found, found_versions


def _instrumented_libraries(requirements: List[str]) -> List[str]:
    """The libraries declared in the "instruments" extra (or "instruments-any": any of them)."""
    import re

    libraries = []
    for requirement in requirements:
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)[^;]*;(.*)", requirement)
        if match and re.search(r"""extra\s*==\s*["']instruments(-any)?["']""", match.group(2)):
            libraries.append(match.group(1))
    return libraries


def _modules_of(libraries: List[str]) -> Tuple[str, ...]:
    """The top-level modules of those of ``libraries`` that are installed."""
    from importlib import metadata

    modules: List[str] = []
    for library in libraries:
        try:
            dist = metadata.distribution(library)
        except metadata.PackageNotFoundError:
            continue
        modules += _top_level_modules(dist) or [_canonical(library).replace("-", "_")]
    return tuple(dict.fromkeys(modules))


def _top_level_modules(dist: Any) -> List[str]:
    listed = dist.read_text("top_level.txt")
    if listed:
        return [line.strip() for line in listed.splitlines() if line.strip()]
    modules = []
    for file in dist.files or ():
        top = file.parts[0]
        if ".." in file.parts or top == "__pycache__" or top.endswith((".dist-info", ".egg-info", ".data")):
            continue
        if len(file.parts) > 1:
            modules.append(top)
        elif file.suffix in (".py", ".so", ".pyd"):
            modules.append(top.partition(".")[0])
    return list(dict.fromkeys(modules))


def _module_named(name: str) -> Optional[Tuple[str, ...]]:
    """Instrumentations of the standard library (sqlite3, logging, ...) declare no library: their
    entry point is named after the module."""
    import importlib.util

    try:
        return (name,) if importlib.util.find_spec(name) is not None else None
    except (ImportError, ValueError):
        return None


def _canonical(name: str) -> str:
    """PEP 503's normal form: runs of ``-``, ``_`` and ``.`` become one ``-``. Without ``re``, since
    the agent's start looks up the registry's distributions and must not import it."""
    return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-") if part)


def _cache_key() -> Tuple[Any, ...]:
    stamps = []
    for entry in sys.path:
        try:
            stamps.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamps.append((entry, None))
    return (_FORMAT, sys.version, tuple(stamps))


def _cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    # One file per interpreter environment.
    return os.path.join(base, "oxapm", "installed-%08x.marshal" % _fnv1a(sys.prefix.encode()))


def _fnv1a(data: bytes) -> int:
    """A stable 32-bit hash, computed here: zlib.crc32 would load zlib at every start."""
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def _store(path: str, cache: Dict[Tuple[Any, ...], bytes]) -> None:
    """Best effort (a read-only home only costs the scan on every start); written whole, then
    renamed, so that concurrent starts never read half a file."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = "%s.%d" % (path, os.getpid())
        with open(partial, "wb") as f:
            marshal.dump(cache, f)
        os.replace(partial, path)
    except OSError:
        pass
