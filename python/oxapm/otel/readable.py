"""What span processors and exporters receive when a span ends: an object with the attributes of
the OpenTelemetry SDK's ``ReadableSpan``, so processors and exporters written for that SDK work."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any, Dict, Mapping, Optional, Sequence

from opentelemetry import trace as trace_api
from opentelemetry.trace.status import Status, StatusCode

_KINDS = {kind.value: kind for kind in trace_api.SpanKind}
_STATUS_CODES = {code.value: code for code in StatusCode}


class Resource:
    """The resource every span of this process shares (the SDK's ``Resource`` interface)."""

    def __init__(self, attributes: Mapping[str, Any], schema_url: str = ""):
        self.attributes = MappingProxyType(dict(attributes))
        self.schema_url = schema_url

    def to_json(self, indent: Optional[int] = 4) -> str:
        return json.dumps({"attributes": dict(self.attributes), "schema_url": self.schema_url}, indent=indent)


class InstrumentationScope:
    def __init__(self, name: str, version: Optional[str] = None, schema_url: Optional[str] = None):
        self.name = name
        self.version = version
        self.schema_url = schema_url or ""
        self.attributes = MappingProxyType({})


class Event:
    def __init__(self, name: str, timestamp: int, attributes: Mapping[str, Any]):
        self.name = name
        self.timestamp = timestamp
        self.attributes = MappingProxyType(dict(attributes))
        self.dropped_attributes = 0


class ReadableSpan:
    """A finished span: ``fields`` come from the engine (``oxapm._core`` span hooks)."""

    def __init__(self, fields: Dict[str, Any], resource: Resource):
        sampled = trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED if fields["sampled"] else 0)
        self.name: str = fields["name"]
        self.context = trace_api.SpanContext(fields["trace_id"], fields["span_id"], is_remote=False, trace_flags=sampled)
        parent_id = fields["parent_id"]
        self.parent: Optional[trace_api.SpanContext] = None
        if parent_id is not None:
            self.parent = trace_api.SpanContext(fields["trace_id"], parent_id, is_remote=fields["parent_is_remote"], trace_flags=sampled)
        self.kind = _KINDS.get(fields["kind"], trace_api.SpanKind.INTERNAL)
        self.start_time: int = fields["start_time"]
        self.end_time: int = fields["end_time"]
        self.attributes = MappingProxyType(fields["attributes"])
        self.events: Sequence[Event] = tuple(Event(*event) for event in fields["events"])
        self.links: Sequence[trace_api.Link] = tuple(
            trace_api.Link(trace_api.SpanContext(trace_id, span_id, is_remote=True), attributes)
            for trace_id, span_id, attributes in fields["links"]
        )
        code, description = fields["status"]
        self.status = Status(_STATUS_CODES[code], description)
        self.resource = resource
        scope = fields["scope"]
        self.instrumentation_scope = InstrumentationScope(*scope) if scope else InstrumentationScope("oxapm")
        self.dropped_attributes: int = fields["dropped_attributes"]
        self.dropped_events: int = fields["dropped_events"]
        self.dropped_links: int = fields["dropped_links"]
        # The Elastic outcome the engine gave the span (success, failure, unknown).
        self.outcome: str = fields["outcome"]

    @property
    def instrumentation_info(self) -> InstrumentationScope:
        return self.instrumentation_scope

    def get_span_context(self) -> trace_api.SpanContext:
        return self.context

    def to_json(self, indent: Optional[int] = 4) -> str:
        """The same shape as the SDK's ``ReadableSpan.to_json``."""
        hex_id = trace_api.format_span_id
        data = {
            "name": self.name,
            "context": {
                "trace_id": "0x" + trace_api.format_trace_id(self.context.trace_id),
                "span_id": "0x" + hex_id(self.context.span_id),
                "trace_state": repr(self.context.trace_state),
            },
            "kind": str(self.kind),
            "parent_id": "0x" + hex_id(self.parent.span_id) if self.parent else None,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "status": {"status_code": self.status.status_code.name, "description": self.status.description},
            "attributes": dict(self.attributes),
            "events": [{"name": e.name, "timestamp": e.timestamp, "attributes": dict(e.attributes)} for e in self.events],
            "links": [
                {"context": {"trace_id": "0x" + trace_api.format_trace_id(l.context.trace_id), "span_id": "0x" + hex_id(l.context.span_id)},
                 "attributes": dict(l.attributes or {})}
                for l in self.links
            ],
            "resource": {"attributes": dict(self.resource.attributes), "schema_url": self.resource.schema_url},
        }
        return json.dumps(data, indent=indent, default=str)
