"""oxapm as an OpenTelemetry SDK: the OpenTelemetry API's spans on the engine, with every span
feature, the samplers, the resource, span processors, and one context shared with the Elastic API.
OTLP is decoded with ``opentelemetry-proto``; intake events are validated against the schemas."""

import asyncio
import contextvars
import logging
import threading

import pytest
from conftest import decoded, exported, spans_of, use_otlp
from opentelemetry import baggage, context, trace
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status as OtlpStatus
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

import oxapm
from oxapm.otel.trace import TracerProvider

REMOTE = SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, is_remote=True, trace_flags=TraceFlags(1))


def value_of(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in any_value.array_value.values]
    return getattr(any_value, kind)


def attrs(kvs):
    return {kv.key: value_of(kv.value) for kv in kvs}


@pytest.fixture
def tracer(client):
    return TracerProvider(client).get_tracer("tests.sdk", "1.0")


@pytest.fixture
def global_provider(client, monkeypatch):
    """oxapm as the API's global tracer provider, for this test only."""
    provider = TracerProvider(client)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    return provider


def otlp_client(monkeypatch, otlp_http, **variables):
    use_otlp(monkeypatch, otlp_http.url, **variables)
    return oxapm.Client(service_name="otel-sdk")


# --- span features, as OTLP carries them --------------------------------------------------------------


def test_every_span_feature_over_otlp(otlp_http, monkeypatch):
    client = otlp_client(monkeypatch, otlp_http)
    provider = TracerProvider(client)
    tracer = provider.get_tracer("shop.checkout", "2.1", schema_url="https://opentelemetry.io/schemas/1.21.0", attributes={"team": "pay"})
    other = provider.get_tracer("shop.db")
    linked = SpanContext(0x11111111111111111111111111111111, 0x2222222222222222, is_remote=True)
    values = {"s": "text", "b": True, "i": 7, "f": 0.5, "ss": ["a", "b"], "bs": [True, False], "is": (1, 2), "fs": [1.5]}
    with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER, attributes=values, links=[Link(linked, {"why": "batch"})]) as root:
        root.set_attribute("http.route", "/pay")
        root.add_event("validated", {"items": 3}, timestamp=1_700_000_000_000_000_000)
        root.update_name("POST /pay")
        with other.start_as_current_span("insert", kind=SpanKind.CLIENT, start_time=1_700_000_001_000_000_000) as child:
            child.set_status(Status(StatusCode.ERROR, "constraint violated"))
            child.end(end_time=1_700_000_001_250_000_000)
        try:
            raise KeyError("card")
        except KeyError as exc:
            root.record_exception(exc, {"retry": False})
        root.set_status(StatusCode.OK)
    client.close()

    (message,) = decoded(otlp_http.requests)
    scopes = {ss.scope.name: ss for ss in message.resource_spans[0].scope_spans}
    checkout = scopes["shop.checkout"]
    assert checkout.scope.version == "2.1" and checkout.schema_url == "https://opentelemetry.io/schemas/1.21.0"
    assert attrs(checkout.scope.attributes) == {"team": "pay"}
    (span,) = checkout.spans
    assert span.name == "POST /pay" and span.kind == OtlpSpan.SPAN_KIND_SERVER
    got = attrs(span.attributes)
    assert got == {**{k: list(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()}, "http.route": "/pay"}
    validated, exception = span.events
    assert (validated.name, validated.time_unix_nano, attrs(validated.attributes)) == ("validated", 1_700_000_000_000_000_000, {"items": 3})
    details = attrs(exception.attributes)
    assert exception.name == "exception" and details["exception.type"] == "KeyError"
    assert details["exception.message"] == "'card'" and "Traceback" in details["exception.stacktrace"]
    assert details["exception.escaped"] is False and details["retry"] is False
    (link,) = span.links
    assert (int.from_bytes(link.trace_id, "big"), int.from_bytes(link.span_id, "big")) == (linked.trace_id, linked.span_id)
    assert attrs(link.attributes) == {"why": "batch"}
    assert span.status.code == OtlpStatus.STATUS_CODE_OK
    (insert,) = scopes["shop.db"].spans
    assert insert.kind == OtlpSpan.SPAN_KIND_CLIENT and insert.parent_span_id == span.span_id
    assert (insert.start_time_unix_nano, insert.end_time_unix_nano) == (1_700_000_001_000_000_000, 1_700_000_001_250_000_000)
    assert (insert.status.code, insert.status.message) == (OtlpStatus.STATUS_CODE_ERROR, "constraint violated")


def test_limits_from_the_environment(otlp_http, monkeypatch):
    client = otlp_client(
        monkeypatch,
        otlp_http,
        OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT="2",
        OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT="4",
        OTEL_SPAN_EVENT_COUNT_LIMIT="1",
        OTEL_SPAN_LINK_COUNT_LIMIT="1",
        OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT="1",
    )
    tracer = TracerProvider(client).get_tracer("limits")
    links = [Link(SpanContext(n, n, is_remote=True)) for n in (1, 2, 3)]
    with tracer.start_as_current_span("s", attributes={"a": "abcdefgh", "b": ["123456"], "c": 1}, links=links) as span:
        span.set_attribute("a", "overwrite-is-not-a-new-key")
        span.add_event("first", {"x": 1, "y": 2})
        span.add_event("second")
    client.close()
    (span,) = spans_of(otlp_http.requests)
    assert attrs(span.attributes) == {"a": "over", "b": ["1234"]}
    assert span.dropped_attributes_count == 1
    assert [e.name for e in span.events] == ["first"] and span.dropped_events_count == 1
    assert span.events[0].dropped_attributes_count == 1
    assert len(span.links) == 1 and span.dropped_links_count == 2


def test_bad_attribute_values_are_dropped_with_one_warning(tracer, client, caplog):
    with caplog.at_level(logging.WARNING, logger="oxapm"):
        with tracer.start_as_current_span("s", attributes={"ok": 1, "bad": object()}) as span:
            span.set_attribute("mixed", [1, "two"])
            span.set_attribute("none", None)
            span.set_attributes({"fine": "yes"})
    (transaction,) = exported(client).transactions
    assert transaction["otel"]["attributes"] == {"ok": 1, "fine": "yes"}
    warnings = [r.getMessage() for r in caplog.records if "not an OpenTelemetry attribute value" in r.getMessage()]
    assert len(warnings) <= 1  # once per process: an earlier test may have had it


def test_a_bad_limit_value_warns_and_keeps_the_default(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "many")
    with caplog.at_level(logging.WARNING):
        client = oxapm.Client(service_name="x", traces_exporter="memory")
    assert [r.getMessage() for r in caplog.records if "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT" in r.getMessage()] == [
        'invalid value "many" for OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: expected a non-negative integer; ignored'
    ]
    client.close()


def test_span_methods_after_end_and_non_recording_spans(tracer, client):
    span = tracer.start_span("s")
    assert span.is_recording()
    span.end()
    assert not span.is_recording()
    span.set_attribute("late", 1)
    span.end()
    (transaction,) = exported(client).transactions
    assert "otel" not in transaction or "attributes" not in transaction["otel"]


# --- one context for both APIs ------------------------------------------------------------------------


def test_otel_and_elastic_spans_nest_in_both_directions(tracer, client):
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        assert trace.get_current_span() is root
        assert oxapm.get_trace_id() == format(root.get_span_context().trace_id, "032x")
        with oxapm.capture_span("elastic") as elastic:
            assert trace.get_current_span() is elastic
            with tracer.start_as_current_span("otel") as inner:
                assert oxapm.get_span_id() == inner.get_span_context().span_id.to_bytes(8, "big").hex()
            assert trace.get_current_span() is elastic
        with trace.use_span(elastic, end_on_exit=False):
            assert trace.get_current_span() is elastic
    events = exported(client)
    spans = {s["name"]: s for s in events.spans}
    (transaction,) = events.transactions
    assert spans["elastic"]["parent_id"] == transaction["id"]
    assert spans["otel"]["parent_id"] == spans["elastic"]["id"]
    assert {s["transaction_id"] for s in spans.values()} == {transaction["id"]}


def test_context_attach_and_detach_see_oxapm_spans(tracer, client):
    client.begin_transaction("job")
    with oxapm.capture_span("outer") as outer:
        ctx = baggage.set_baggage("tenant", "acme")
        token = context.attach(ctx)
        assert trace.get_current_span() is outer
        with tracer.start_as_current_span("child"):
            assert baggage.get_baggage("tenant") == "acme"
        context.detach(token)
        assert baggage.get_baggage("tenant") is None
        assert trace.get_current_span() is outer
    client.end_transaction("t")
    spans = {s["name"]: s for s in exported(client).spans}
    assert spans["child"]["parent_id"] == spans["outer"]["id"]


def test_a_remote_parent_in_the_context_continues_its_trace(tracer, client):
    remote = trace.set_span_in_context(NonRecordingSpan(REMOTE))
    with tracer.start_as_current_span("handle", context=remote, kind=SpanKind.SERVER):
        pass
    token = context.attach(remote)
    try:
        with tracer.start_as_current_span("attached"):
            pass
    finally:
        context.detach(token)
    first, second = exported(client).transactions
    for transaction in (first, second):
        assert transaction["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
        assert transaction["parent_id"] == "b7ad6b7169203331"


def test_context_survives_copied_threads_and_asyncio_tasks(tracer, client):
    def in_thread():
        with tracer.start_as_current_span("threaded"):
            pass

    async def task(name):
        with tracer.start_as_current_span(name):
            await asyncio.sleep(0.01)
            with oxapm.capture_span(name + "-inner"):
                await asyncio.sleep(0)

    async def both():
        await asyncio.gather(task("a"), task("b"))

    with tracer.start_as_current_span("root"):
        worker = threading.Thread(target=contextvars.copy_context().run, args=(in_thread,))
        worker.start()
        worker.join()
        asyncio.run(both())
    events = exported(client)
    spans = {s["name"]: s for s in events.spans}
    (root,) = events.transactions
    assert spans["threaded"]["parent_id"] == root["id"]
    assert spans["a-inner"]["parent_id"] == spans["a"]["id"]
    assert spans["b-inner"]["parent_id"] == spans["b"]["id"]


def test_generators_resumed_elsewhere_do_not_fail_to_detach(tracer, client, caplog):
    def numbers():
        with tracer.start_as_current_span("generator"):
            yield 1
            yield 2

    with caplog.at_level(logging.ERROR):
        with tracer.start_as_current_span("root"):
            items = numbers()
            assert next(items) == 1
            # Resumed, and closed, in another context: its token cannot be reset there.
            assert contextvars.copy_context().run(next, items) == 2
            contextvars.copy_context().run(items.close)
            token = context.attach(context.set_value("k", "v"))
            contextvars.copy_context().run(context.detach, token)
            context.detach(token)
    assert not [r for r in caplog.records if "Failed to detach context" in r.getMessage()]
    assert {s["name"] for s in exported(client).spans} == {"generator"}


# --- sampling ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sampler, arg, parent_flags, expected",
    [
        ("always_off", None, None, False),
        ("always_on", None, 0, True),  # not parent-based: the unsampled parent does not decide
        ("traceidratio", "0", None, False),
        ("traceidratio", "1", 0, True),
        ("parentbased_always_off", None, 1, True),
        ("parentbased_always_off", None, None, False),
        ("parentbased_always_on", None, 0, False),
        ("parentbased_traceidratio", "0", 1, True),
    ],
)
def test_samplers(monkeypatch, sampler, arg, parent_flags, expected):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", sampler)
    if arg is not None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", arg)
    client = oxapm.Client(service_name="sampling", traces_exporter="memory")
    tracer = TracerProvider(client).get_tracer("sampling")
    parent = None
    if parent_flags is not None:
        remote = SpanContext(REMOTE.trace_id, REMOTE.span_id, is_remote=True, trace_flags=TraceFlags(parent_flags))
        parent = trace.set_span_in_context(NonRecordingSpan(remote))
    with tracer.start_as_current_span("root", context=parent) as root:
        assert root.is_recording() is expected
        with tracer.start_as_current_span("child") as child:
            assert child.is_recording() is expected
            if not expected:
                assert isinstance(child, NonRecordingSpan)
                assert child.get_span_context().trace_id == root.get_span_context().trace_id
    events = exported(client)
    (transaction,) = events.transactions  # unsampled transactions are still reported, as Elastic does
    assert transaction["sampled"] is expected
    assert len(events.spans) == (1 if expected else 0)
    client.close()


def test_an_unknown_sampler_warns_and_keeps_the_default(monkeypatch, caplog):
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "jaeger_remote")
    with caplog.at_level(logging.WARNING):
        client = oxapm.Client(service_name="x", traces_exporter="memory")
    assert len([r for r in caplog.records if "OTEL_TRACES_SAMPLER" in r.getMessage() and "jaeger_remote" in r.getMessage()]) == 1
    assert client.begin_transaction("job").is_sampled
    client.close()


# --- resource -----------------------------------------------------------------------------------------------


def test_resource_from_the_environment_and_the_detectors(otlp_http, monkeypatch):
    client = otlp_client(monkeypatch, otlp_http, OTEL_SERVICE_NAME="billing", OTEL_RESOURCE_ATTRIBUTES="team=pay,cloud.region=eu-1")
    provider = TracerProvider(client)
    with provider.get_tracer("r").start_as_current_span("s"):
        pass
    client.close()
    (message,) = decoded(otlp_http.requests)
    resource = attrs(message.resource_spans[0].resource.attributes)
    assert resource["service.name"] == "billing" and resource["team"] == "pay" and resource["cloud.region"] == "eu-1"
    for key in ("process.pid", "process.executable.path", "process.command_args", "process.runtime.name", "host.name", "host.arch", "os.type", "service.instance.id"):
        assert key in resource, key
    assert resource["telemetry.sdk.name"] == "oxapm" and resource["telemetry.distro.name"] == "oxapm"
    assert resource["telemetry.sdk.language"] == "python"
    assert dict(provider.resource.attributes)["service.name"] == "billing"


# --- span processors and exporters ------------------------------------------------------------------------


def test_sdk_span_processors_and_exporters_receive_spans_of_both_apis(client):
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(client)
    provider.add_span_processor(export.SimpleSpanProcessor(exporter))
    started = []

    class Recorder:
        def on_start(self, span, parent_context=None):
            started.append(span.name)

        def on_end(self, span):
            pass

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis=30000):
            return True

    provider.add_span_processor(Recorder())
    tracer = provider.get_tracer("processors", "3.0")
    try:
        with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes={"k": "v"}) as root:
            root.add_event("e", {"n": 1})
            with oxapm.capture_span("elastic-child"):
                pass
        assert provider.force_flush()
    finally:
        provider.shutdown()
    finished = {s.name: s for s in exporter.get_finished_spans()}
    assert set(finished) == {"root", "elastic-child"}
    root_span, child = finished["root"], finished["elastic-child"]
    assert root_span.kind is SpanKind.SERVER and dict(root_span.attributes) == {"k": "v"}
    assert root_span.instrumentation_scope.name == "processors" and root_span.instrumentation_scope.version == "3.0"
    assert root_span.events[0].name == "e" and dict(root_span.events[0].attributes) == {"n": 1}
    assert child.parent.span_id == root_span.context.span_id and child.context.trace_id == root_span.context.trace_id
    assert root_span.parent is None and root_span.end_time >= root_span.start_time
    assert root_span.resource.attributes["service.name"] == "test-service"
    assert '"name": "root"' in root_span.to_json()
    assert started == ["root", "elastic-child"]


def test_a_failing_processor_is_reported_and_the_application_goes_on(client, caplog):
    class Broken:
        def on_start(self, span, parent_context=None):
            raise RuntimeError("on_start broke")

        def on_end(self, span):
            raise RuntimeError("on_end broke")

    provider = TracerProvider(client)
    provider.add_span_processor(Broken())
    try:
        with caplog.at_level(logging.WARNING, logger="oxapm"):
            with provider.get_tracer("t").start_as_current_span("still-works"):
                pass
    finally:
        provider.shutdown()
    messages = [r.getMessage() for r in caplog.records]
    assert any("failed in on_start" in m for m in messages) and any("failed in on_end" in m for m in messages)


def test_disabled_sdk_hands_out_no_op_tracers(monkeypatch):
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    provider = TracerProvider(oxapm.Client(service_name="off"))
    assert isinstance(provider.get_tracer("x"), trace.NoOpTracer)


# --- through the global API and the Elastic bridge's names -------------------------------------------------


def test_the_global_api_and_the_elastic_bridge_names(global_provider, client):
    from oxapm.contrib.opentelemetry import Tracer
    from oxapm.contrib.opentelemetry import trace as bridge_trace

    with trace.get_tracer("global").start_as_current_span("via-global"):
        pass
    with Tracer(__name__, elasticapm_client=client).start_as_current_span("via-bridge-tracer"):
        pass
    with bridge_trace.get_tracer(__name__, elasticapm_client=client).start_as_current_span("via-bridge-get-tracer") as span:
        span.add_event("events work")  # one of the Elastic bridge's caveats, gone
    names = sorted(t["name"] for t in exported(client).transactions)
    assert names == ["via-bridge-get-tracer", "via-bridge-tracer", "via-global"]


def test_start_as_current_span_as_a_decorator_records_exceptions(tracer, client):
    @tracer.start_as_current_span("decorated")
    def work():
        raise ValueError("nope")

    with pytest.raises(ValueError):
        work()
    (transaction,) = exported(client).transactions
    assert transaction["name"] == "decorated" and transaction["outcome"] == "failure"


def test_otel_python_context_selects_the_shared_context_by_entry_point(tmp_path):
    import subprocess
    import sys

    script = (
        "import oxapm, opentelemetry.context as c, opentelemetry.trace as t\n"
        "from oxapm.otel.context import OxapmRuntimeContext\n"
        "assert isinstance(c._RUNTIME_CONTEXT, OxapmRuntimeContext), c._RUNTIME_CONTEXT\n"
        "client = oxapm.Client(service_name='ctx', traces_exporter='none')\n"
        "client.begin_transaction('job')\n"
        "with oxapm.capture_span('s') as span:\n"
        "    assert t.get_current_span() is span\n"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("OTEL_", "ELASTIC_APM_"))}
    env["OTEL_PYTHON_CONTEXT"] = "oxapm"
    subprocess.run([sys.executable, "-c", script], env=env, check=True, cwd=tmp_path)
