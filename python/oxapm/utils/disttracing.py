"""W3C trace context as the Elastic agent exposes it: ``TraceParent`` and its parsing helpers.
Parsing is done by the engine; a malformed header gives ``None`` and never raises."""

from __future__ import annotations

from oxapm import _core
from oxapm.conf import constants
from oxapm.utils.lazylog import LazyLogger

TYPE_CHECKING = False  # typing is not imported at run time: it costs milliseconds at every start
if TYPE_CHECKING:
    from typing import Any, Dict, Iterable, Optional, Tuple

logger = LazyLogger("oxapm.utils.disttracing")


class TracingOptions:
    """The trace-flags byte; ``recorded`` is the sampled flag."""

    __slots__ = ("asByte",)

    def __init__(self, recorded: bool = False, byte: Optional[int] = None):
        self.asByte = byte if byte is not None else int(bool(recorded))

    @property
    def recorded(self) -> bool:
        return bool(self.asByte & 0x01)

    @recorded.setter
    def recorded(self, value: bool) -> None:
        self.asByte = (self.asByte | 0x01) if value else (self.asByte & ~0x01)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TracingOptions) and other.asByte == self.asByte


class TraceParent:
    __slots__ = ("version", "trace_id", "span_id", "trace_options", "tracestate", "is_legacy")

    def __init__(
        self,
        version: int,
        trace_id: str,
        span_id: str,
        trace_options: TracingOptions,
        tracestate: Optional[str] = None,
        is_legacy: bool = False,
    ):
        self.version = version
        self.trace_id = trace_id
        self.span_id = span_id
        self.trace_options = trace_options
        self.tracestate = tracestate
        self.is_legacy = is_legacy

    def copy_from(self, version=None, trace_id=None, span_id=None, trace_options=None, tracestate=None) -> "TraceParent":
        return TraceParent(
            version if version is not None else self.version,
            trace_id or self.trace_id,
            span_id or self.span_id,
            trace_options or self.trace_options,
            tracestate if tracestate is not None else self.tracestate,
        )

    def to_string(self) -> str:
        return "{:02x}-{}-{}-{:02x}".format(self.version, self.trace_id, self.span_id, self.trace_options.asByte)

    def to_ascii(self) -> bytes:
        return self.to_string().encode("ascii")

    @property
    def tracestate_dict(self) -> Dict[str, str]:
        """The sub-keys of the ``es`` tracestate entry (``{"s": "0.5"}``)."""
        result = {}
        for member in (self.tracestate or "").split(","):
            key, _, value = member.strip().partition("=")
            if key == "es":
                for part in value.split(";"):
                    sub, sep, val = part.partition(":")
                    if sep:
                        result[sub] = val
        return result

    def add_tracestate(self, key: str, value: str) -> None:
        """Sets ``key:value`` in the ``es`` entry, which goes first."""
        entries = self.tracestate_dict
        entries[key] = str(value)
        es = "es=" + ";".join("%s:%s" % kv for kv in entries.items())
        others = [m for m in (self.tracestate or "").split(",") if m.strip() and not m.strip().startswith("es=")]
        self.tracestate = _core.normalize_tracestate(",".join([es] + others))

    @classmethod
    def new(cls, trace_id: str, span_id: str, sampled: bool = True) -> "TraceParent":
        return cls(0, trace_id, span_id, TracingOptions(recorded=sampled))

    @classmethod
    def from_string(
        cls, traceparent_string: str, tracestate_string: Optional[str] = None, is_legacy: bool = False
    ) -> Optional["TraceParent"]:
        if not isinstance(traceparent_string, str):
            return None
        parsed = _core.parse_traceparent(traceparent_string)
        if parsed is None:
            logger.debug("Invalid traceparent header format, value %r", traceparent_string)
            return None
        version, trace_id, span_id, flags = parsed
        tracestate = _core.normalize_tracestate(tracestate_string) if isinstance(tracestate_string, str) else None
        return cls(version, trace_id, span_id, TracingOptions(byte=flags), tracestate or None, is_legacy)

    @classmethod
    def from_headers(
        cls,
        headers: Any,
        header_name: str = constants.TRACEPARENT_HEADER_NAME,
        legacy_header_name: str = constants.TRACEPARENT_LEGACY_HEADER_NAME,
        tracestate_header_name: str = constants.TRACESTATE_HEADER_NAME,
    ) -> Optional["TraceParent"]:
        tracestate = cls.merge_duplicate_headers(headers, tracestate_header_name)
        traceparent = cls.merge_duplicate_headers(headers, header_name)
        # A present traceparent header decides, even empty (then invalid): no fall-back to legacy.
        if traceparent is not None:
            return cls.from_string(traceparent, tracestate)
        legacy = cls.merge_duplicate_headers(headers, legacy_header_name)
        if legacy is not None:
            return cls.from_string(legacy, tracestate, is_legacy=True)
        return None

    @classmethod
    def merge_duplicate_headers(cls, headers: Any, key: str) -> Optional[str]:
        """All values of header ``key`` (any case), joined with commas: a header sent twice is one
        list, which makes a duplicated ``traceparent`` invalid, as W3C requires."""
        values = [value for name, value in _header_items(headers) if isinstance(name, str) and name.lower() == key]
        flat = []
        for value in values:
            if isinstance(value, (list, tuple)):
                flat.extend(str(v) for v in value)
            elif isinstance(value, bytes):
                flat.append(value.decode("latin-1"))
            elif value is not None:
                flat.append(str(value))
        return ",".join(flat) if flat else None

    def __repr__(self) -> str:
        return "<TraceParent %s>" % self.to_string()


def _header_items(headers: Any) -> Iterable[Tuple[Any, Any]]:
    """(name, value) pairs of a dict, a multi-value header container (whose ``items()`` yields
    every occurrence: werkzeug, http.client, multidict) or a list of pairs."""
    if headers is None:
        return ()
    try:
        pairs = headers.items() if hasattr(headers, "items") else headers
        return [pair for pair in pairs if isinstance(pair, tuple) and len(pair) == 2]
    except Exception:  # a broken header container must not break the request
        return ()


def trace_parent_from_string(
    traceparent_string: str, tracestate_string: Optional[str] = None, is_legacy: bool = False
) -> Optional[TraceParent]:
    return TraceParent.from_string(traceparent_string, tracestate_string, is_legacy)


def trace_parent_from_headers(headers: Any) -> Optional[TraceParent]:
    return TraceParent.from_headers(headers)
