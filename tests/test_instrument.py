"""The machinery every library instrumentation stands on: the registry and its version checks,
``instrument()``/``uninstrument()`` applying each instrumentation when its library is imported,
the disable lists, undoable patches, contained failures, exit spans, and trace-context headers."""

import logging
import sys
import threading
from pathlib import Path

import pytest
from conftest import exported

import oxapm
from oxapm.instrumentation import base, control, installed, propagation, registry, spans
from oxapm.instrumentation.registry import Entry

calls = []


class FakeInstrumentation:
    def instrument(self):
        calls.append(("instrument", "fake"))

    def uninstrument(self):
        calls.append(("uninstrument", "fake"))


class OtherInstrumentation:
    def instrument(self):
        calls.append(("instrument", "other"))

    def uninstrument(self):
        calls.append(("uninstrument", "other"))


class FailingInstrumentation:
    def instrument(self):
        calls.append(("instrument", "failing"))
        raise RuntimeError("cannot patch")

    def uninstrument(self):
        calls.append(("uninstrument", "failing"))


class FailingUninstrumentation(FakeInstrumentation):
    def uninstrument(self):
        calls.append(("uninstrument", "failing-removal"))
        raise RuntimeError("cannot restore")


class FailingConstructor:
    def __init__(self):
        raise RuntimeError("cannot construct")


# "sys" is always imported: an entry on it applies at once.
def entry(target, modules=("sys",), distributions=(), versions=""):
    return Entry("test_instrument:" + target, modules, distributions, versions)


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    """Only this module's instrumentations are registered while a test runs."""
    monkeypatch.setattr(registry, "_entries", {})
    monkeypatch.setattr(control, "_active", {})
    monkeypatch.setattr(control, "_waiting", {})
    monkeypatch.setattr(control, "_unsupported", set())
    monkeypatch.delenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", raising=False)
    del calls[:]
    yield
    control.uninstrument()
    del calls[:]


@pytest.fixture
def library(tmp_path, monkeypatch):
    """A throwaway importable package ``fresh_lib``, removed from sys.modules afterwards."""
    (tmp_path / "fresh_lib").mkdir()
    (tmp_path / "fresh_lib" / "__init__.py").write_text("from fresh_lib import sub\n")
    (tmp_path / "fresh_lib" / "sub.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "fresh_lib"
    for name in [m for m in sys.modules if m.split(".")[0] == "fresh_lib"]:
        del sys.modules[name]


# --- registry and versions --------------------------------------------------------------------------


@pytest.mark.parametrize("versions, version, expected", [
    ("", "1.0", True),
    (">=2.0,<3", "2.31.0", True),
    (">=2.0,<3", "3.0", False),
    (">=2.0,<3", "1.9.9", False),
    (">=2", "2", True),
    (">=2.0", "2.0.0rc1", True),  # a pre-release counts as its release
    (">1.4", "1.4.post2", False),
    ("<=1.4", "1.4.0+local", True),
    ("!=2.1", "2.1.0", False),
    ("==3.1", "3.1", True),
    (">=1", "unknown", None),  # no release number: not judged
])
def test_version_ranges(versions, version, expected):
    assert registry.supports(versions, version) is expected


def test_a_library_not_installed_is_neither_applied_nor_watched(client):
    registry.register("fake", entry("FakeInstrumentation", distributions=("no-such-distribution-for-oxapm",)))
    oxapm.instrument()
    assert calls == [] and control.instrumenting() == set()


def test_an_installed_library_of_a_supported_version_is_applied(client):
    registry.register("fake", entry("FakeInstrumentation", distributions=("no-such-name", "pytest"), versions=">=7"))
    oxapm.instrument()
    assert calls == [("instrument", "fake")]


def test_an_unsupported_version_is_not_applied_and_says_so_once_imported(client, library, caplog):
    caplog.set_level(logging.WARNING, logger="oxapm")
    registry.register("fake", entry("FakeInstrumentation", modules=(library,), distributions=("pytest",), versions="<1"))
    oxapm.instrument()
    oxapm.instrument()
    assert [r for r in caplog.records if "pytest" in r.getMessage()] == []  # nothing imported yet
    __import__(library)
    assert calls == []
    (warning,) = [r.getMessage() for r in caplog.records if "not instrumented" in r.getMessage()]
    assert warning.startswith("pytest ") and "versions <1" in warning


# --- applying -----------------------------------------------------------------------------------------


def test_instrument_applies_once(client):
    registry.register("fake", entry("FakeInstrumentation"))
    oxapm.instrument()
    oxapm.instrument()
    assert calls == [("instrument", "fake")]
    assert isinstance(control.applied()["fake"], FakeInstrumentation)


def test_instrument_from_many_threads_applies_once(client):
    registry.register("fake", entry("FakeInstrumentation"))
    threads = [threading.Thread(target=oxapm.instrument) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [("instrument", "fake")]


def test_an_instrumentation_applies_when_its_library_is_imported_whole(client, library):
    seen = []

    class Recording(FakeInstrumentation):
        def instrument(self):
            seen.append(sorted(m for m in sys.modules if m.startswith(library)))

    sys.modules["test_instrument"].Recording = Recording
    registry.register("fake", entry("Recording", modules=(library,)))
    oxapm.instrument()
    assert seen == [] and control.instrumenting() == {"fake"}
    __import__(library)
    assert seen == [["fresh_lib", "fresh_lib.sub"]]
    assert set(control.applied()) == {"fake"}


def test_a_submodule_can_be_what_applies_it(client, library):
    __import__(library)  # the package is there; its submodule "late" is not
    (Path(sys.modules[library].__path__[0]) / "late.py").write_text("")
    registry.register("fake", entry("FakeInstrumentation", modules=(library + ".late",)))
    oxapm.instrument()
    assert calls == []
    __import__(library + ".late")
    assert calls == [("instrument", "fake")]


def test_uninstrument_removes_applied_ones_and_forgets_waiting_ones(client, library):
    registry.register("fake", entry("FakeInstrumentation"))
    registry.register("other", entry("OtherInstrumentation", modules=(library,)))
    oxapm.instrument()
    oxapm.uninstrument()
    __import__(library)
    assert calls == [("instrument", "fake"), ("uninstrument", "fake")]
    assert control.applied() == {} and control.instrumenting() == set()
    oxapm.uninstrument()  # nothing left to remove
    assert len(calls) == 2


def test_instrument_again_after_uninstrument(client):
    registry.register("fake", entry("FakeInstrumentation"))
    oxapm.instrument()
    oxapm.uninstrument()
    oxapm.instrument()
    assert calls == [("instrument", "fake"), ("uninstrument", "fake"), ("instrument", "fake")]


def test_instrumentations_registered_later_are_applied_by_the_next_call(client):
    registry.register("fake", entry("FakeInstrumentation"))
    oxapm.instrument()
    registry.register("other", entry("OtherInstrumentation"))
    oxapm.instrument()
    assert calls == [("instrument", "fake"), ("instrument", "other")]


@pytest.mark.parametrize("name, target", [
    ("failing", "test_instrument:FailingInstrumentation"),
    ("unimportable", "no_such_module_for_oxapm_tests:Instrumentation"),
    ("missing-class", "test_instrument:NoSuchClass"),
    ("constructor", "test_instrument:FailingConstructor"),
])
def test_a_failing_instrumentation_is_logged_and_skipped(client, caplog, name, target):
    caplog.set_level(logging.WARNING, logger="oxapm")
    registry.register(name, Entry(target, ("sys",)))
    registry.register("fake", entry("FakeInstrumentation"))
    oxapm.instrument()  # does not raise
    assert ("instrument", "fake") in calls
    assert set(control.applied()) == {"fake"}
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING and name in r.getMessage()]
    assert warning.name.startswith("oxapm") and warning.exc_info is not None


def test_a_failing_instrumentation_is_retried_by_the_next_call(client):
    registry.register("failing", entry("FailingInstrumentation"))
    oxapm.instrument()
    oxapm.instrument()
    assert calls == [("instrument", "failing"), ("instrument", "failing")]
    assert control.applied() == {}


def test_a_failing_removal_is_logged_and_skipped(client, caplog):
    caplog.set_level(logging.WARNING, logger="oxapm")
    registry.register("failing-removal", entry("FailingUninstrumentation"))
    registry.register("other", entry("OtherInstrumentation"))
    oxapm.instrument()
    oxapm.uninstrument()  # does not raise
    assert ("uninstrument", "failing-removal") in calls and ("uninstrument", "other") in calls
    assert control.applied() == {}
    assert any("failing-removal" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


# --- disabling ----------------------------------------------------------------------------------------


def test_disabled_instrumentations_are_skipped():
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", disabled_instrumentations="fake")
    try:
        registry.register("fake", entry("FakeInstrumentation"))
        registry.register("other", entry("OtherInstrumentation"))
        oxapm.instrument()
        assert calls == [("instrument", "other")]
    finally:
        client.close()


@pytest.mark.parametrize("variable", ["ELASTIC_APM_DISABLED_INSTRUMENTATIONS", "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"])
def test_disabled_instrumentations_from_the_environment(monkeypatch, variable):
    monkeypatch.setenv(variable, "other, fake")
    client = oxapm.Client(service_name="test-service", traces_exporter="memory")
    try:
        registry.register("fake", entry("FakeInstrumentation"))
        registry.register("other", entry("OtherInstrumentation"))
        oxapm.instrument()
        assert calls == []
    finally:
        client.close()


def test_instrument_false_applies_nothing():
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", instrument=False)
    try:
        registry.register("fake", entry("FakeInstrumentation"))
        oxapm.instrument()
        assert calls == [] and control.applied() == {}
    finally:
        client.close()


def test_instrument_without_a_client_applies_everything(monkeypatch):
    from oxapm import base as client_module

    monkeypatch.setattr(client_module, "_client", None)
    registry.register("fake", entry("FakeInstrumentation"))
    oxapm.instrument()
    assert calls == [("instrument", "fake")]


# --- patches and contained failures -----------------------------------------------------------------


class Greeter:
    def greet(self, name):
        return "hello " + name

    @classmethod
    def make(cls):
        return cls()


class PoliteGreeter(Greeter):
    pass


def test_patches_keep_methods_methods_and_are_undone_exactly(tmp_path, monkeypatch):
    module = type(sys)("patched_module")
    module.shout = lambda text: text.upper()
    seen = []

    def recording(wrapped, instance, args, kwargs):
        seen.append((type(instance).__name__ if instance is not None else None, args))
        return wrapped(*args, **kwargs)

    patch = base.Instrumentation()
    originals = (module.shout, vars(Greeter)["greet"], vars(Greeter)["make"])
    patch.wrap(module, "shout", recording)
    patch.wrap(Greeter, "greet", recording)
    patch.wrap(Greeter, "make", recording)
    patch.wrap(PoliteGreeter, "greet", recording)  # inherited: removed again, not copied down
    assert module.shout("a") == "A" and Greeter().greet("b") == "hello b" and isinstance(Greeter.make(), Greeter)
    assert PoliteGreeter().greet("c") == "hello c"
    assert seen[:3] == [(None, ("a",)), ("Greeter", ("b",)), ("type", ())]
    patch.uninstrument()
    assert (module.shout, vars(Greeter)["greet"], vars(Greeter)["make"]) == originals
    assert "greet" not in vars(PoliteGreeter)


def test_plain_functions_are_patched_with_plain_functions_and_coroutine_functions_with_wrapt():
    """A wrapt wrapper makes a bound wrapper at every access to a method; a plain function is
    patched with a plain function instead. Coroutine functions keep wrapt's wrapper, which frameworks
    still see as a coroutine function."""
    import inspect

    import wrapt

    class Service:
        def call(self, value):
            return value * 2

        async def call_later(self, value):
            return value * 3

    seen = []

    def recording(wrapped, instance, args, kwargs):
        seen.append((instance, args, kwargs))
        return wrapped(*args, **kwargs)

    async def recording_later(wrapped, instance, args, kwargs):
        seen.append((instance, args, kwargs))
        return await wrapped(*args, **kwargs)

    original = vars(Service)["call"]
    patch = base.Instrumentation()
    patch.wrap(Service, "call", recording)
    patch.wrap(Service, "call_later", recording_later)
    patched = vars(Service)["call"]
    assert type(patched) is type(original) and patched.__wrapped__ is original and patched.__name__ == "call"
    service = Service()
    assert service.call(2) == 4 and Service.call(service, value=5) == 10
    assert seen == [(service, (2,), {}), (service, (), {"value": 5})]
    assert isinstance(vars(Service)["call_later"], wrapt.FunctionWrapper) and inspect.iscoroutinefunction(service.call_later)
    patch.uninstrument()
    assert vars(Service)["call"] is original and not isinstance(vars(Service)["call_later"], wrapt.FunctionWrapper)


def test_an_instrumentation_that_fails_half_way_leaves_nothing_patched():
    class HalfWay(base.Instrumentation):
        name = "half-way"

        def apply(self):
            self.wrap(Greeter, "greet", lambda wrapped, instance, args, kwargs: "patched")
            raise RuntimeError("the second patch fails")

    original = vars(Greeter)["greet"]
    with pytest.raises(RuntimeError):
        HalfWay().instrument()
    assert vars(Greeter)["greet"] is original


def test_a_failure_is_reported_once_per_instrumentation(caplog, monkeypatch):
    monkeypatch.setattr(base, "_reported", set())
    caplog.set_level(logging.WARNING, logger="oxapm")
    for _ in range(3):
        try:
            raise KeyError("bug")
        except KeyError:
            base.report_failure("some-library")
    (record,) = caplog.records
    assert "some-library" in record.getMessage() and record.exc_info is not None


# --- exit spans -----------------------------------------------------------------------------------------


def test_exit_spans_are_leaves_and_never_raise(client, monkeypatch, caplog):
    monkeypatch.setattr(base, "_reported", set())
    client.begin_transaction("request")
    outer = spans.start_span("lib", "GET example.com", "external", "http", "GET",
                             {"http": {"url": "http://example.com/"}, "destination": {"address": "example.com", "port": 80}})
    assert outer is not None
    assert spans.start_span("lib", "inner", "external", "http") is None  # below an exit span
    spans.end_span("lib", outer, failed=True, context={"http": {"status_code": 503}})
    assert spans.start_span("lib", "bad", "db", context="not a mapping") is None  # contained
    spans.end_span("lib", None)  # nothing started: nothing to end
    client.end_transaction("t", "ok")
    (span,) = exported(client).spans
    assert (span["name"], span["outcome"], span["context"]["http"]["status_code"]) == ("GET example.com", "failure", 503)
    assert [r for r in caplog.records if "lib instrumentation failed" in r.getMessage()]


def test_no_span_outside_a_transaction(client):
    assert spans.start_span("lib", "query", "db", "sqlite", "query") is None


# --- trace context headers ---------------------------------------------------------------------------------


def test_outgoing_headers_carry_the_current_span(client, monkeypatch):
    monkeypatch.delenv("OTEL_PROPAGATORS", raising=False)
    assert propagation.outgoing_headers() == []
    transaction = client.begin_transaction("request")
    started = spans.start_span("lib", "call", "external", "http")
    headers = dict(propagation.outgoing_headers())
    spans.end_span("lib", started)
    client.end_transaction("t")
    span_id = started[0].id
    assert headers["traceparent"].split("-")[1:3] == [transaction.trace_id, span_id]
    assert headers["elastic-apm-traceparent"] == headers["traceparent"]
    assert "tracestate" in headers and len(headers) == 3


def test_outgoing_headers_follow_otel_propagators_and_the_elastic_switch(monkeypatch):
    monkeypatch.setenv("OTEL_PROPAGATORS", "b3,tracecontext")
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", use_elastic_traceparent_header=False)
    try:
        client.begin_transaction("request")
        names = [name for name, _ in propagation.outgoing_headers()]
        client.end_transaction("t")
    finally:
        client.close()
    assert names == ["b3", "traceparent", "tracestate"]


@pytest.mark.parametrize("headers, parent", [
    ({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 1)),
    ({"elastic-apm-traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"}, ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", 0)),
    ({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
      "elastic-apm-traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, ("0af7651916cd43dd8448eb211c80319c", "00f067aa0ba902b7", 1)),
    ({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01"}, None),
    ({"traceparent": "garbage"}, None),
    ({}, None),
])
def test_the_incoming_parent(client, monkeypatch, headers, parent):
    monkeypatch.delenv("OTEL_PROPAGATORS", raising=False)
    found = propagation.incoming_parent(headers)
    if parent is None:
        assert found is None
    else:
        _, trace_id, span_id, flags = found[0].split("-")
        assert (trace_id, span_id, int(flags, 16)) == parent


def test_the_incoming_tracestate_is_kept(client):
    found = propagation.incoming_parent({"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                                         "tracestate": "vendor=x,es=s:0.5"})
    assert found[1] == "vendor=x,es=s:0.5"


def test_an_unreadable_index_of_installed_distributions_leaves_the_standard_library_instrumented(client, monkeypatch, caplog):
    def broken():
        raise ValueError("a distribution with broken metadata")

    monkeypatch.setattr(installed, "versions", broken)
    registry.register("fake", entry("FakeInstrumentation"))
    registry.register("other", entry("OtherInstrumentation", distributions=("pytest",)))
    oxapm.instrument()  # does not raise
    assert calls == [("instrument", "fake")]
    assert [r for r in caplog.records if "installed distributions" in r.getMessage()]
