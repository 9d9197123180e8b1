"""Python exceptions and call stacks as Elastic APM intake v2 objects.

Produces the ``error.exception`` object and ``stacktrace`` frame lists in the
shape elastic-apm 6.x sends, so the APM UI renders them the same way:

* exception stack traces are in traceback order (outermost frame first,
  innermost frame last), call stacks from :func:`stack_frames` start with the
  innermost frame -- both exactly as elastic-apm does;
* ``include_paths`` / ``exclude_paths`` are fnmatch globs matched against a
  frame's absolute path; ``include_paths`` wins and unmatched frames are
  application frames.

Nothing here raises: a frame that cannot be described is dropped, and an
optional part of a frame (source context, variables) that fails is omitted.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import linecache
import math
import os
import re
import reprlib
import sys

__all__ = [
    "DEFAULT_EXCLUDE_PATHS",
    "DEFAULT_SANITIZE_FIELD_NAMES",
    "culprit",
    "exception_info",
    "stack_frames",
    "traceback_frames",
]

KEYWORD_MAX_LENGTH = 1024
# elastic-apm's long_field limit, applied to the exception message
LONG_FIELD_MAX_LENGTH = 10000
MAX_CAUSE_DEPTH = 10
MASK = "[REDACTED]"

# elastic-apm's defaults (conf/constants.py)
DEFAULT_SANITIZE_FIELD_NAMES = (
    "password",
    "passwd",
    "pwd",
    "secret",
    "*key",
    "*token*",
    "*session*",
    "*credit*",
    "*card*",
    "*auth*",
    "*principal*",
    "set-cookie",
)


def _default_exclude_paths():
    # elastic-apm's compat.get_default_library_patters(), plus site-packages and
    # dist-packages on POSIX so Debian-style /usr/lib/python3/dist-packages and
    # unusual venv layouts count as library code too.
    major, minor = sys.version_info[:2]
    if sys.implementation.name == "pypy":
        return ("*/lib-python/%d/*" % major, "*/site-packages/*")
    if os.name == "nt":
        return (r"*\lib\*",)
    return (
        "*/lib/python%d.%d/*" % (major, minor),
        "*/lib64/python%d.%d/*" % (major, minor),
        "*/site-packages/*",
        "*/dist-packages/*",
    )


DEFAULT_EXCLUDE_PATHS = _default_exclude_paths()

_AGENT_PACKAGE = __name__.partition(".")[0]
# Containers nested deeper than this are rendered by reprlib, which bounds the
# work: with 10 items per level a full tree would otherwise grow as 10**depth.
_MAX_VAR_DEPTH = 3
_nested_repr = reprlib.Repr()
_nested_repr.maxlevel = 2
_INT_LIMIT = 1 << 63


def exception_info(exc, config):
    """The intake ``exception`` object for ``exc`` (``handled`` is left to the caller).

    ``cause`` holds the chained exception (``__cause__``, else ``__context__``
    unless ``__suppress_context__``), recursively, at most MAX_CAUSE_DEPTH deep.
    """
    opts = _Options(config, for_error=True)
    result = _describe(exc, opts)
    seen = {id(exc)}
    current = result
    for _ in range(MAX_CAUSE_DEPTH):
        exc = _chained(exc)
        if exc is None or id(exc) in seen:
            break
        seen.add(id(exc))
        cause = _describe(exc, opts)
        current["cause"] = [cause]
        current = cause
    return result


def traceback_frames(tb, config):
    """Frames of traceback ``tb``, outermost first (error settings)."""
    return _traceback_frames(tb, _Options(config, for_error=True))


def stack_frames(skip, config, *, for_error=False):
    """Frames of the caller's stack, innermost first.

    ``skip`` more frames are dropped beyond stack_frames itself, then any
    leading oxapm frames (like elastic-apm skips its own). Span settings are
    used for source lines and variables unless ``for_error`` (elastic-apm uses
    the error settings for ``capture_message(stack=True)``).
    """
    opts = _Options(config, for_error=for_error)
    if opts.limit == 0:
        return []
    frame = sys._getframe(1)
    for _ in range(skip if isinstance(skip, int) else 0):
        if frame is None:
            break
        frame = frame.f_back
    while frame is not None and _is_agent_frame(frame):
        frame = frame.f_back
    pairs = []
    while frame is not None and (opts.limit < 0 or len(pairs) < opts.limit):
        if not _is_hidden(frame):
            pairs.append((frame, frame.f_lineno))
        frame = frame.f_back
    return _frames_info(pairs, opts)


def culprit(frames, *, innermost_first=False):
    """``module.function`` of the innermost application frame.

    Falls back to the innermost frame when all are library frames; None for no
    frames. ``frames`` are taken in exception order (innermost last) unless
    ``innermost_first`` (for lists from :func:`stack_frames`).
    """
    try:
        ordered = list(frames) if innermost_first else list(reversed(frames))
        if not ordered:
            return None
        frame = next((f for f in ordered if not f.get("library_frame")), ordered[0])
        name = "%s.%s" % (frame.get("module") or "<unknown>", frame.get("function") or "<unknown>")
        return _truncate(name, KEYWORD_MAX_LENGTH)
    except Exception:
        return None


class _Options:
    """Config read once per call, with elastic-apm's defaults for missing values."""

    __slots__ = (
        "limit",
        "include_re",
        "exclude_re",
        "app_lines",
        "library_lines",
        "with_vars",
        "sanitize_re",
        "string_length",
        "list_length",
        "dict_length",
    )

    def __init__(self, config, for_error):
        self.limit = _int_setting(config, "stack_trace_limit", 50)
        self.include_re = _path_regex(_patterns(_setting(config, "include_paths", ())))
        self.exclude_re = _path_regex(_patterns(_setting(config, "exclude_paths", DEFAULT_EXCLUDE_PATHS)))
        kind, lines = ("error", 5) if for_error else ("span", 0)
        self.app_lines = _int_setting(config, "source_lines_%s_app_frames" % kind, lines)
        self.library_lines = _int_setting(config, "source_lines_%s_library_frames" % kind, lines)
        collect = _setting(config, "collect_local_variables", "errors")
        collect = collect.lower() if isinstance(collect, str) else "errors"
        self.with_vars = collect == "all" or collect == ("errors" if for_error else "transactions")
        sanitize = _setting(config, "sanitize_field_names", DEFAULT_SANITIZE_FIELD_NAMES)
        self.sanitize_re = _sanitize_regex(_patterns(sanitize))
        self.string_length = _int_setting(config, "local_var_max_length", 200)
        self.list_length = _int_setting(config, "local_var_list_max_length", 10)
        self.dict_length = _int_setting(config, "local_var_dict_max_length", 10)


def _setting(config, name, default):
    try:
        value = getattr(config, name, None)
    except Exception:
        return default
    return default if value is None else value


def _int_setting(config, name, default):
    try:
        return int(_setting(config, name, default))
    except (TypeError, ValueError):
        return default


def _patterns(value):
    if isinstance(value, str):
        value = value.split(",")
    try:
        return tuple(p.strip() for p in value if isinstance(p, str) and p.strip())
    except TypeError:
        return ()


@functools.lru_cache(maxsize=32)
def _path_regex(patterns):
    if not patterns:
        return None
    # Windows paths are case-insensitive ("Lib" vs elastic's "*\lib\*")
    flags = re.IGNORECASE if os.name == "nt" else 0
    return re.compile("|".join(fnmatch.translate(p) for p in patterns), flags)


@functools.lru_cache(maxsize=32)
def _sanitize_regex(patterns):
    # elastic-apm wildcard syntax: "*" matches anything, whole-name match,
    # case-insensitive unless the pattern starts with "(?-i)"
    parts = []
    for pattern in patterns:
        flag = "i"
        if pattern.startswith("(?-i)"):
            pattern, flag = pattern[5:], "-i"
        body = ".*".join(re.escape(piece) for piece in pattern.split("*"))
        parts.append("(?%s:%s)\\Z" % (flag, body))
    return re.compile("|".join(parts), re.DOTALL) if parts else None


@functools.lru_cache(maxsize=4096)
def _is_library_path(abs_path, include_re, exclude_re):
    if not abs_path or abs_path.startswith("<frozen "):
        return True
    if include_re is not None and include_re.match(abs_path):
        return False
    return exclude_re is not None and exclude_re.match(abs_path) is not None


@functools.lru_cache(maxsize=4096)
def _relative_filename(abs_path, module):
    # elastic-apm's rule: strip everything above the directory that holds the
    # top-level package (/venv/site-packages/pkg/mod.py -> pkg/mod.py,
    # /srv/app/main.py run as __main__ -> app/main.py).
    if module:
        top = sys.modules.get(module.partition(".")[0])
        base = getattr(top, "__file__", None)
        if isinstance(base, str):
            prefix = base.rsplit(os.sep, 2)[0]
            if prefix and abs_path.startswith(prefix + os.sep):
                return abs_path[len(prefix) + 1 :]
    # Otherwise relative to the nearest sys.path entry.
    best = ""
    for entry in sys.path:
        if isinstance(entry, str) and entry:
            entry = entry.rstrip(os.sep)
            if len(entry) > len(best) and abs_path.startswith(entry + os.sep):
                best = entry
    return abs_path[len(best) + 1 :] if best else abs_path


def _chained(exc):
    cause = getattr(exc, "__cause__", None)
    if cause is not None:
        return cause
    if getattr(exc, "__suppress_context__", False):
        return None
    return getattr(exc, "__context__", None)


def _describe(exc, opts):
    exc_type = type(exc)
    type_name = exc_type.__name__
    try:
        text = str(exc)
    except Exception:
        text = "<exception str() failed>"
    return {
        "message": _truncate("%s: %s" % (type_name, text), LONG_FIELD_MAX_LENGTH),
        "type": _truncate(type_name, KEYWORD_MAX_LENGTH),
        "module": _truncate(str(getattr(exc_type, "__module__", None)), KEYWORD_MAX_LENGTH),
        "stacktrace": _traceback_frames(getattr(exc, "__traceback__", None), opts),
    }


def _traceback_frames(tb, opts):
    if opts.limit == 0:
        return []
    pairs = []
    while tb is not None:
        if not _is_hidden(tb.tb_frame):
            pairs.append((tb.tb_frame, tb.tb_lineno))
        tb = tb.tb_next
    if opts.limit > 0:
        pairs = pairs[-opts.limit :]  # keep the innermost frames
    return _frames_info(pairs, opts)


def _is_agent_frame(frame):
    name = frame.f_globals.get("__name__")
    return isinstance(name, str) and (name == _AGENT_PACKAGE or name.startswith(_AGENT_PACKAGE + "."))


def _is_hidden(frame):
    # The __traceback_hide__ convention elastic-apm honours; checking co_varnames
    # first avoids materialising f_locals for every frame.
    if "__traceback_hide__" not in frame.f_code.co_varnames:
        return False
    try:
        return bool(frame.f_locals.get("__traceback_hide__"))
    except Exception:
        return False


def _frames_info(pairs, opts):
    frames = []
    for frame, lineno in pairs:
        try:
            frames.append(_frame_info(frame, lineno, opts))
        except Exception:
            continue  # drop the frame, keep the rest of the stack
    return frames


def _frame_info(frame, lineno, opts):
    code = frame.f_code
    abs_path = code.co_filename
    module_globals = frame.f_globals
    module = module_globals.get("__name__")
    if not isinstance(module, str):
        module = None
    library = _is_library_path(abs_path, opts.include_re, opts.exclude_re)
    info = {
        "abs_path": abs_path,
        "filename": _relative_filename(abs_path, module),
        "module": module,
        "function": code.co_name,
        "lineno": lineno,
        "library_frame": library,
    }
    if opts.with_vars and not library:
        try:
            info["vars"] = _frame_vars(frame, opts)
        except Exception:
            pass
    # elastic-apm: N lines means N // 2 before and after the line itself
    lines = opts.library_lines if library else opts.app_lines
    if lines > 0 and lineno:
        try:
            _add_context(info, abs_path, lineno, lines // 2, module_globals)
        except Exception:
            pass
    return info


def _add_context(info, abs_path, lineno, around, module_globals):
    source = linecache.getlines(abs_path, module_globals)
    index = lineno - 1
    if not 0 <= index < len(source):
        return
    info["pre_context"] = [line.rstrip("\r\n") for line in source[max(0, index - around) : index]]
    info["context_line"] = source[index].rstrip("\r\n")
    info["post_context"] = [line.rstrip("\r\n") for line in source[index + 1 : index + 1 + around]]


def _frame_vars(frame, opts):
    result = {}
    for name, value in list(frame.f_locals.items()):
        try:
            name = str(name)
            if _is_sensitive(name, opts):
                result[name] = MASK
            else:
                result[name] = _shorten(value, opts, 0, set())
        except Exception:
            continue  # leave out the one variable we cannot render
    return result


def _is_sensitive(name, opts):
    return opts.sanitize_re is not None and opts.sanitize_re.match(name.strip()) is not None


def _shorten(value, opts, depth, path):
    """A JSON-able, size-bounded rendering of a local variable, like elastic-apm's shorten()."""
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return _ellipsize(str.__str__(value), opts.string_length)
    if isinstance(value, int) and -_INT_LIMIT <= value < _INT_LIMIT:
        return int(value)
    if isinstance(value, float):
        value = float(value)
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, (bytes, bytearray)):
        # decode only what can survive truncation (at most 4 bytes per character)
        limit = max(opts.string_length, 0) * 4 + 4
        text = bytes(value[:limit]).decode("utf-8", "replace")
        if len(value) > limit:
            text += "..."
        return _ellipsize(text, opts.string_length)
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if id(value) in path:
            return "<...>"
        if depth >= _MAX_VAR_DEPTH:
            return _ellipsize(_safe_repr(value, _nested_repr.repr), opts.string_length)
        path.add(id(value))
        try:
            if isinstance(value, dict):
                return _shorten_dict(value, opts, depth, path)
            head = itertools.islice(value, max(opts.list_length, 0))
            items = [_shorten(item, opts, depth + 1, path) for item in head]
            if len(value) > opts.list_length:
                items += ["...", "(%d more elements)" % (len(value) - opts.list_length)]
            return items
        finally:
            path.discard(id(value))
    return _ellipsize(_safe_repr(value, repr), opts.string_length)


def _shorten_dict(value, opts, depth, path):
    result = {}
    for key, item in itertools.islice(value.items(), max(opts.dict_length, 0)):
        key = key if isinstance(key, str) else str(key)
        result[key] = MASK if _is_sensitive(key, opts) else _shorten(item, opts, depth + 1, path)
    if len(value) > opts.dict_length:
        result["<truncated>"] = "<truncated %d keys>" % (len(value) - opts.dict_length)
    return result


def _safe_repr(value, render):
    try:
        return str.__str__(render(value))
    except Exception:
        return "<BadRepr: %s>" % type(value).__name__


def _ellipsize(text, length):
    # elastic-apm local variables: keep `length` characters, the last three being "..."
    if length > 0 and len(text) > length:
        return text[: max(length - 3, 0)] + "..."
    return text


def _truncate(text, length):
    # elastic-apm keyword/long fields: cut to `length` characters ending in "…"
    if len(text) > length:
        return text[: length - 1] + "\u2026"
    return text
