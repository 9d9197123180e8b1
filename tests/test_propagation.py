"""Context propagation through the OpenTelemetry API: every format's propagator class, the global
propagator ``OTEL_PROPAGATORS`` selects, and the ``opentelemetry_propagator`` entry points, with
vectors from the W3C, B3, Jaeger and X-Ray documentation. Span contexts are built with
``NonRecordingSpan``, so nothing here depends on the SDK."""

from __future__ import annotations

import importlib.metadata
import logging
from typing import Dict, List, Optional

import pytest
from opentelemetry import baggage, propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from oxapm.otel import propagators
from oxapm.otel.propagators import propagator_from_names

NAMES = ["tracecontext", "baggage", "b3", "b3multi", "jaeger", "xray", "ottrace", "elastic"]
W3C_TRACE = "0af7651916cd43dd8448eb211c80319c"
W3C_SPAN = "b7ad6b7169203331"
B3_TRACE = "80f198ee56343ba864fe8b2a57d3eff7"
B3_SPAN = "e457b5a2e4d86bd1"

# (format, headers, trace id, span id, trace flags)
EXTRACTED = [
    ("tracecontext", {"traceparent": "00-%s-%s-01" % (W3C_TRACE, W3C_SPAN)}, W3C_TRACE, W3C_SPAN, 0x01),
    ("tracecontext", {"traceparent": "00-%s-%s-03" % (W3C_TRACE, W3C_SPAN)}, W3C_TRACE, W3C_SPAN, 0x03),
    ("tracecontext", {"traceparent": "cc-%s-%s-00-future" % (W3C_TRACE, W3C_SPAN)}, W3C_TRACE, W3C_SPAN, 0x00),
    ("b3", {"b3": "%s-%s-1-05e3ac9a4f6e3b90" % (B3_TRACE, B3_SPAN)}, B3_TRACE, B3_SPAN, 0x01),
    ("b3", {"b3": "a3ce929d0e0e4736-%s-d" % B3_SPAN}, "0000000000000000a3ce929d0e0e4736", B3_SPAN, 0x01),
    ("b3", {"X-B3-TraceId": B3_TRACE, "X-B3-SpanId": B3_SPAN, "X-B3-Sampled": "0"}, B3_TRACE, B3_SPAN, 0x00),
    ("b3multi", {"X-B3-TraceId": B3_TRACE, "X-B3-SpanId": B3_SPAN, "X-B3-Flags": "1"}, B3_TRACE, B3_SPAN, 0x01),
    ("b3multi", {"b3": "%s-%s-0" % (B3_TRACE, B3_SPAN)}, B3_TRACE, B3_SPAN, 0x00),
    ("jaeger", {"uber-trace-id": "%s:%s:0:1" % (B3_TRACE, B3_SPAN)}, B3_TRACE, B3_SPAN, 0x01),
    ("jaeger", {"uber-trace-id": "deadbeef:beef:0:0"}, "000000000000000000000000deadbeef", "000000000000beef", 0x00),
    ("jaeger", {"uber-trace-id": "6e0c63257de34c92%3Abff2c0f2de8ec7b8%3A0%3A3"}, "00000000000000006e0c63257de34c92", "bff2c0f2de8ec7b8", 0x01),
    (
        "xray",
        {"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"},
        "5759e988bd862e3fe1be46a994272793",
        "53995c3f42cd8ad8",
        0x01,
    ),
    (
        "xray",
        {"X-Amzn-Trace-Id": "Sampled=0;Lineage=a87bd80c:1;Parent=53995c3f42cd8ad8;Root=1-5759e988-bd862e3fe1be46a994272793"},
        "5759e988bd862e3fe1be46a994272793",
        "53995c3f42cd8ad8",
        0x00,
    ),
    ("ottrace", {"ot-tracer-traceid": B3_TRACE, "ot-tracer-spanid": B3_SPAN, "ot-tracer-sampled": "true"}, B3_TRACE, B3_SPAN, 0x01),
    ("ottrace", {"ot-tracer-traceid": "64fe8b2a57d3eff7", "ot-tracer-spanid": B3_SPAN, "ot-tracer-sampled": "0"}, "000000000000000064fe8b2a57d3eff7", B3_SPAN, 0x00),
    ("elastic", {"elastic-apm-traceparent": "00-%s-%s-01" % (W3C_TRACE, W3C_SPAN)}, W3C_TRACE, W3C_SPAN, 0x01),
]

# (format, headers that must start a new trace)
MALFORMED = [
    ("tracecontext", {"traceparent": "00-%s-%s-01-extra" % (W3C_TRACE, W3C_SPAN), "tracestate": "rojo=1"}),
    ("tracecontext", {"traceparent": "ff-%s-%s-01" % (W3C_TRACE, W3C_SPAN)}),
    ("tracecontext", {"traceparent": "00-%s-%s-01" % ("0" * 32, W3C_SPAN)}),
    ("tracecontext", {"traceparent": "00-%s-%s-01" % (W3C_TRACE.upper(), W3C_SPAN)}),
    ("tracecontext", {"traceparent": "\u00e9" * 55}),
    ("b3", {"b3": "0"}),
    ("b3", {"b3": "%s-%s-1-x-y" % (B3_TRACE, B3_SPAN)}),
    ("b3multi", {"X-B3-TraceId": B3_TRACE[:20], "X-B3-SpanId": B3_SPAN}),
    ("b3multi", {"X-B3-SpanId": B3_SPAN, "X-B3-Sampled": "1"}),
    ("jaeger", {"uber-trace-id": "%s:%s:0" % (B3_TRACE, B3_SPAN)}),
    ("jaeger", {"uber-trace-id": "0:%s:0:1" % B3_SPAN}),
    ("xray", {"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793"}),
    ("xray", {"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?"}),
    ("ottrace", {"ot-tracer-traceid": B3_TRACE.upper(), "ot-tracer-spanid": B3_SPAN}),
    ("ottrace", {"ot-tracer-traceid": "abc", "ot-tracer-spanid": B3_SPAN}),
    ("elastic", {"elastic-apm-traceparent": "00-%s-%s" % (W3C_TRACE, W3C_SPAN)}),
    ("elastic", {"traceparent": "00-%s-%s-01" % (W3C_TRACE, W3C_SPAN)}),
]

# (format, flags and tracestate of the span, the headers injected)
INJECTED = [
    ("tracecontext", 0x03, "rojo=00f067aa0ba902b7", {"traceparent": "00-%s-%s-03" % (B3_TRACE, B3_SPAN), "tracestate": "rojo=00f067aa0ba902b7"}),
    ("tracecontext", 0x00, "", {"traceparent": "00-%s-%s-00" % (B3_TRACE, B3_SPAN)}),
    ("b3", 0x03, "rojo=1", {"b3": "%s-%s-1" % (B3_TRACE, B3_SPAN)}),
    ("b3multi", 0x00, "", {"x-b3-traceid": B3_TRACE, "x-b3-spanid": B3_SPAN, "x-b3-sampled": "0"}),
    ("jaeger", 0x03, "", {"uber-trace-id": "%s:%s:0:1" % (B3_TRACE, B3_SPAN)}),
    ("xray", 0x01, "", {"X-Amzn-Trace-Id": "Root=1-80f198ee-56343ba864fe8b2a57d3eff7;Parent=%s;Sampled=1" % B3_SPAN}),
    ("ottrace", 0x01, "", {"ot-tracer-traceid": "64fe8b2a57d3eff7", "ot-tracer-spanid": B3_SPAN, "ot-tracer-sampled": "true"}),
    ("elastic", 0x01, "es=s:0.5", {"elastic-apm-traceparent": "00-%s-%s-01" % (B3_TRACE, B3_SPAN), "tracestate": "es=s:0.5"}),
]


@pytest.fixture(autouse=True)
def restore_global_textmap():
    saved = propagate.get_global_textmap()
    yield
    propagate.set_global_textmap(saved)


def oxapm_entry_points() -> Dict[str, importlib.metadata.EntryPoint]:
    """Ours among the ``opentelemetry_propagator`` entry points (opentelemetry-api registers its
    own tracecontext and baggage)."""
    found = importlib.metadata.entry_points()
    group = found.select(group="opentelemetry_propagator") if hasattr(found, "select") else found.get("opentelemetry_propagator", ())
    return {ep.name: ep for ep in group if ep.value.startswith("oxapm.")}


def with_span(trace_id: str, span_id: str, flags: int = 1, tracestate: str = "", context: Optional[Context] = None) -> Context:
    span_context = trace.SpanContext(
        int(trace_id, 16),
        int(span_id, 16),
        is_remote=False,
        trace_flags=trace.TraceFlags(flags),
        trace_state=trace.TraceState.from_header([tracestate]) if tracestate else None,
    )
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context), context)


def with_baggage(entries: Dict[str, str], context: Optional[Context] = None) -> Context:
    for key, value in entries.items():
        context = baggage.set_baggage(key, value, context)
    return context  # type: ignore[return-value]


def span_context_of(context: Context) -> trace.SpanContext:
    return trace.get_current_span(context).get_span_context()


def assert_extracted(context: Context, trace_id: str, span_id: str, flags: int) -> None:
    span_context = span_context_of(context)
    assert span_context.is_valid and span_context.is_remote
    assert (trace.format_trace_id(span_context.trace_id), trace.format_span_id(span_context.span_id)) == (trace_id, span_id)
    assert span_context.trace_flags == flags
    assert span_context.trace_flags.sampled == bool(flags & 1)


# --- extraction ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name, headers, trace_id, span_id, flags", EXTRACTED)
def test_extract_through_the_class(name, headers, trace_id, span_id, flags):
    assert_extracted(propagators.PROPAGATORS[name]().extract(headers), trace_id, span_id, flags)


@pytest.mark.parametrize("name, headers, trace_id, span_id, flags", EXTRACTED)
def test_extract_through_the_global_propagator(name, headers, trace_id, span_id, flags):
    propagate.set_global_textmap(propagator_from_names("baggage,%s" % name))
    assert_extracted(propagate.extract(headers), trace_id, span_id, flags)


@pytest.mark.parametrize("name, headers, trace_id, span_id, flags", EXTRACTED)
def test_extract_through_the_entry_point(name, headers, trace_id, span_id, flags):
    propagator = oxapm_entry_points()[name].load()()
    assert_extracted(propagator.extract(headers), trace_id, span_id, flags)


def test_every_format_has_an_entry_point_to_its_class():
    entry_points = oxapm_entry_points()
    assert sorted(entry_points) == sorted(NAMES)
    for name, entry_point in entry_points.items():
        assert entry_point.load() is propagators.PROPAGATORS[name]


def test_tracestate_comes_with_the_trace_and_repeated_values_are_one_list():
    class ListGetter(Getter):
        def get(self, carrier, key):
            return carrier.get(key)

        def keys(self, carrier):
            return list(carrier)

    carrier = {"traceparent": ["00-%s-%s-01" % (W3C_TRACE, W3C_SPAN)], "tracestate": ["rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE, "]}
    context = propagators.TraceContextPropagator().extract(carrier, getter=ListGetter())
    assert span_context_of(context).trace_state.to_header() == "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    carrier["tracestate"].append("Bad=1")  # the list does not parse: it is discarded whole
    context = propagators.TraceContextPropagator().extract(carrier, getter=ListGetter())
    assert span_context_of(context).trace_id == int(W3C_TRACE, 16) and span_context_of(context).trace_state.to_header() == ""
    elastic = propagators.ElasticPropagator().extract({"elastic-apm-traceparent": "00-%s-%s-01" % (W3C_TRACE, W3C_SPAN), "tracestate": "es=s:0.5"})
    assert span_context_of(elastic).trace_state.get("es") == "s:0.5"


def test_header_names_are_case_insensitive():
    headers = {
        "TraceParent": "00-%s-%s-01" % (W3C_TRACE, W3C_SPAN),
        "TRACESTATE": "rojo=1",
        "Baggage": "a=1",
        "X-B3-TRACEID": B3_TRACE,
        "x-B3-spanid": B3_SPAN,
        "X-AMZN-TRACE-ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "UberCtx-Tier": "gold",
        "Uber-Trace-Id": "deadbeef:beef:0:1",
    }
    context = propagators.TraceContextPropagator().extract(headers)
    assert_extracted(context, W3C_TRACE, W3C_SPAN, 1)
    assert span_context_of(context).trace_state.to_header() == "rojo=1"
    assert baggage.get_all(propagators.BaggagePropagator().extract(headers, Context())) == {"a": "1"}
    assert_extracted(propagators.B3MultiPropagator().extract(headers), B3_TRACE, B3_SPAN, 0)
    assert_extracted(propagators.XRayPropagator().extract(headers), "5759e988bd862e3fe1be46a994272793", "53995c3f42cd8ad8", 1)
    jaeger = propagators.JaegerPropagator().extract(headers)
    assert_extracted(jaeger, "000000000000000000000000deadbeef", "000000000000beef", 1)
    assert baggage.get_all(jaeger) == {"Tier": "gold"}


@pytest.mark.parametrize("name, headers", MALFORMED)
def test_a_malformed_header_starts_a_new_trace_quietly(name, headers, caplog):
    given = Context()
    with caplog.at_level(logging.DEBUG):
        assert propagators.PROPAGATORS[name]().extract(headers, given) is given
        propagate.set_global_textmap(propagator_from_names(name))
        assert not span_context_of(propagate.extract(headers)).is_valid
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_an_unreadable_carrier_is_as_if_the_headers_were_absent():
    class BrokenGetter(Getter):
        def get(self, carrier, key):
            raise RuntimeError("broken getter")

        def keys(self, carrier):
            return []

    given = Context()
    for name in NAMES:
        assert propagators.PROPAGATORS[name]().extract({}, given, getter=BrokenGetter()) is given
        assert propagators.PROPAGATORS[name]().extract({"traceparent": b"bytes"}, given) is given


def test_a_later_format_overrides_and_a_missing_one_keeps_the_context():
    headers = {"traceparent": "00-%s-%s-01" % (W3C_TRACE, W3C_SPAN), "b3": "%s-%s-0" % (B3_TRACE, B3_SPAN)}
    assert_extracted(propagator_from_names("tracecontext,b3").extract(headers), B3_TRACE, B3_SPAN, 0)
    assert_extracted(propagator_from_names("b3,tracecontext").extract(headers), W3C_TRACE, W3C_SPAN, 1)
    assert_extracted(propagator_from_names("tracecontext,jaeger,xray").extract(headers), W3C_TRACE, W3C_SPAN, 1)


# --- injection ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name, flags, tracestate, expected", INJECTED)
def test_inject(name, flags, tracestate, expected):
    context = with_span(B3_TRACE, B3_SPAN, flags, tracestate)
    carrier: Dict[str, str] = {}
    propagators.PROPAGATORS[name]().inject(carrier, context)
    assert carrier == expected
    propagate.set_global_textmap(propagator_from_names(name))
    carrier = {}
    propagate.inject(carrier, context)
    assert carrier == expected
    assert set(expected) <= propagators.PROPAGATORS[name]().fields


def test_inject_uses_the_current_context_and_skips_an_invalid_span():
    for name in NAMES:
        carrier: Dict[str, str] = {}
        propagators.PROPAGATORS[name]().inject(carrier)
        propagators.PROPAGATORS[name]().inject(carrier, trace.set_span_in_context(trace.INVALID_SPAN))
        assert carrier == {}, name
    from opentelemetry import context as otel_context

    token = otel_context.attach(with_span(W3C_TRACE, W3C_SPAN))
    try:
        carrier = {}
        propagators.TraceContextPropagator().inject(carrier)
    finally:
        otel_context.detach(token)
    assert carrier == {"traceparent": "00-%s-%s-01" % (W3C_TRACE, W3C_SPAN)}


def test_fields():
    fields = {name: propagators.PROPAGATORS[name]().fields for name in NAMES}
    assert fields == {
        "tracecontext": {"traceparent", "tracestate"},
        "baggage": {"baggage"},
        "b3": {"b3"},
        "b3multi": {"x-b3-traceid", "x-b3-spanid", "x-b3-sampled"},
        "jaeger": {"uber-trace-id"},
        "xray": {"X-Amzn-Trace-Id"},
        "ottrace": {"ot-tracer-traceid", "ot-tracer-spanid", "ot-tracer-sampled"},
        "elastic": {"elastic-apm-traceparent", "tracestate"},
    }
    assert propagator_from_names("tracecontext,b3").fields == {"traceparent", "tracestate", "b3"}


# --- round trips and baggage --------------------------------------------------------------------


@pytest.mark.parametrize("name", [n for n in NAMES if n != "baggage"])
def test_span_context_round_trip(name):
    trace_id = B3_TRACE if name != "ottrace" else "000000000000000064fe8b2a57d3eff7"
    tracestate = "rojo=1,congo=2" if name in ("tracecontext", "elastic") else ""
    for flags in (0, 1):
        carrier: Dict[str, str] = {}
        propagator = propagators.PROPAGATORS[name]()
        propagator.inject(carrier, with_span(trace_id, B3_SPAN, flags, tracestate))
        extracted = span_context_of(propagator.extract(carrier))
        assert (extracted.trace_id, extracted.span_id, extracted.trace_flags) == (int(trace_id, 16), int(B3_SPAN, 16), flags)
        assert extracted.trace_state.to_header() == tracestate


@pytest.mark.parametrize("name", ["baggage", "jaeger", "ottrace"])
def test_baggage_round_trip(name):
    entries = {"userId": "alice", "note": "a b+c", "quote": "don't"}
    if name != "ottrace":  # the only format whose values are not encoded
        entries.update(unicode="ünï cødé ✓", separators=",;=%")
    context = with_baggage(entries, with_span(B3_TRACE, B3_SPAN))
    carrier: Dict[str, str] = {}
    propagators.PROPAGATORS[name]().inject(carrier, context)
    assert baggage.get_all(propagators.PROPAGATORS[name]().extract(carrier)) == entries


def test_baggage_examples():
    header = "key1=value1;property1;property2, key2 = value2, key3=value3; propertyKey=propertyValue,bad key=x,serverNode=DF%2028"
    context = propagators.BaggagePropagator().extract({"baggage": header})
    assert baggage.get_all(context) == {"key1": "value1", "key2": "value2", "key3": "value3", "serverNode": "DF 28"}
    jaeger = propagators.JaegerPropagator().extract({"uberctx-user": "alice%20smith"})
    assert baggage.get_all(jaeger) == {"user": "alice smith"}
    assert not span_context_of(jaeger).is_valid
    ot = propagators.OTTracePropagator().extract({"ot-baggage-tier": "gold"})
    assert baggage.get_all(ot) == {"tier": "gold"}


def test_baggage_adds_to_the_given_or_current_context():
    given = with_baggage({"kept": "yes"})
    assert baggage.get_all(propagators.BaggagePropagator().extract({"baggage": "new=1"}, given)) == {"kept": "yes", "new": "1"}
    from opentelemetry import context as otel_context

    token = otel_context.attach(given)
    try:
        assert baggage.get_all(propagators.BaggagePropagator().extract({"baggage": "new=1"})) == {"kept": "yes", "new": "1"}
    finally:
        otel_context.detach(token)


def test_interoperates_with_opentelemetry_api_propagators():
    context = with_baggage({"user": "alice", "path": "/a/b?c=d"}, with_span(W3C_TRACE, W3C_SPAN, 0x03, "rojo=1"))
    ours = propagator_from_names("tracecontext,baggage")
    theirs = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    for writer, reader in ((ours, theirs), (theirs, ours)):
        carrier: Dict[str, str] = {}
        writer.inject(carrier, context)
        extracted = reader.extract(carrier)
        assert span_context_of(extracted).trace_id == int(W3C_TRACE, 16)
        assert span_context_of(extracted).trace_flags == 0x03
        assert span_context_of(extracted).trace_state.to_header() == "rojo=1"
        assert baggage.get_all(extracted) == {"user": "alice", "path": "/a/b?c=d"}


# --- OTEL_PROPAGATORS ---------------------------------------------------------------------------


def test_names_select_the_propagators():
    def kinds(value: str) -> List[type]:
        return [type(p) for p in propagator_from_names(value)._propagators]

    assert kinds("tracecontext,baggage") == [propagators.TraceContextPropagator, propagators.BaggagePropagator]
    assert kinds("") == kinds(" , ") == [propagators.TraceContextPropagator, propagators.BaggagePropagator]
    assert kinds(" b3 , xray,b3") == [propagators.B3SinglePropagator, propagators.XRayPropagator]
    assert kinds("none") == kinds("tracecontext,None") == []


def test_unknown_names_warn_once_and_are_skipped(caplog):
    with caplog.at_level(logging.WARNING, logger="oxapm"):
        composite = propagator_from_names("tracecontext,nonesuch,nonesuch,other")
    assert [type(p) for p in composite._propagators] == [propagators.TraceContextPropagator]
    warnings = [r.getMessage() for r in caplog.records if r.name == "oxapm"]
    assert len(warnings) == 1, warnings
    assert "'nonesuch'" in warnings[0] and "'other'" in warnings[0]
