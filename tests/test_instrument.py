"""``instrument()`` and ``uninstrument()`` over the registry of instrumentations: applied once,
removed, failures logged and skipped, ``disabled_instrumentations`` and ``instrument`` honoured."""

import logging
import threading

import pytest

import oxapm
from oxapm.instrumentation import control, register

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
        raise RuntimeError("library not installed")

    def uninstrument(self):
        calls.append(("uninstrument", "failing"))


class FailingUninstrumentation(FakeInstrumentation):
    def uninstrument(self):
        calls.append(("uninstrument", "failing-removal"))
        raise RuntimeError("cannot restore")


class FailingConstructor:
    def __init__(self):
        raise RuntimeError("cannot construct")




@pytest.fixture(autouse=True)
def registry():
    """Only this module's instrumentations are registered while a test runs; everything is
    restored afterwards."""
    saved_registry = dict(register._registry)
    saved_active = dict(control._active)
    register._registry.clear()
    control._active.clear()
    del calls[:]
    yield
    control.uninstrument()
    register._registry.clear()
    register._registry.update(saved_registry)
    control._active.clear()
    control._active.update(saved_active)
    del calls[:]


@pytest.fixture
def plain_client():
    client = oxapm.Client(service_name="test-service", traces_exporter="memory")
    yield client
    client.close()


def test_the_test_module_is_importable_by_its_dotted_path():
    import importlib

    assert importlib.import_module("test_instrument").FakeInstrumentation is FakeInstrumentation


def test_register_and_registered():
    register.register("fake", "test_instrument.FakeInstrumentation")
    assert register.registered() == {"fake": "test_instrument.FakeInstrumentation"}
    # A copy: changing it does not change the registry.
    register.registered()["x"] = "y"
    assert "x" not in register.registered()


def test_instrument_applies_once(plain_client):
    register.register("fake", "test_instrument.FakeInstrumentation")
    oxapm.instrument()
    oxapm.instrument()
    assert calls == [("instrument", "fake")]
    assert set(control.applied()) == {"fake"}
    assert isinstance(control.applied()["fake"], FakeInstrumentation)


def test_instrument_from_many_threads_applies_once(plain_client):
    register.register("fake", "test_instrument.FakeInstrumentation")
    threads = [threading.Thread(target=oxapm.instrument) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [("instrument", "fake")]


def test_uninstrument_removes_it(plain_client):
    register.register("fake", "test_instrument.FakeInstrumentation")
    oxapm.instrument()
    oxapm.uninstrument()
    assert calls == [("instrument", "fake"), ("uninstrument", "fake")]
    assert control.applied() == {}
    oxapm.uninstrument()  # nothing left to remove
    assert len(calls) == 2


def test_instrument_again_after_uninstrument(plain_client):
    register.register("fake", "test_instrument.FakeInstrumentation")
    oxapm.instrument()
    oxapm.uninstrument()
    oxapm.instrument()
    assert calls == [("instrument", "fake"), ("uninstrument", "fake"), ("instrument", "fake")]


def test_instrumentations_registered_later_are_applied_by_the_next_call(plain_client):
    register.register("fake", "test_instrument.FakeInstrumentation")
    oxapm.instrument()
    register.register("other", "test_instrument.OtherInstrumentation")
    oxapm.instrument()
    assert calls == [("instrument", "fake"), ("instrument", "other")]


@pytest.mark.parametrize(
    "name, path",
    [
        ("failing", "test_instrument.FailingInstrumentation"),
        ("unimportable", "no_such_module_for_oxapm_tests.Instrumentation"),
        ("missing-class", "test_instrument.NoSuchClass"),
        ("constructor", "test_instrument.FailingConstructor"),
    ],
)
def test_a_failing_instrumentation_is_logged_and_skipped(plain_client, caplog, name, path):
    caplog.set_level(logging.WARNING, logger="oxapm")
    register.register(name, path)
    register.register("fake", "test_instrument.FakeInstrumentation")
    oxapm.instrument()  # does not raise
    assert ("instrument", "fake") in calls
    assert set(control.applied()) == {"fake"}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and name in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].name.startswith("oxapm")
    assert warnings[0].exc_info is not None


def test_a_failing_instrumentation_is_retried_by_the_next_call(plain_client):
    register.register("failing", "test_instrument.FailingInstrumentation")
    oxapm.instrument()
    oxapm.instrument()
    assert calls == [("instrument", "failing"), ("instrument", "failing")]
    assert control.applied() == {}


def test_a_failing_removal_is_logged_and_skipped(plain_client, caplog):
    caplog.set_level(logging.WARNING, logger="oxapm")
    register.register("failing-removal", "test_instrument.FailingUninstrumentation")
    register.register("other", "test_instrument.OtherInstrumentation")
    oxapm.instrument()
    oxapm.uninstrument()  # does not raise
    assert ("uninstrument", "failing-removal") in calls and ("uninstrument", "other") in calls
    assert control.applied() == {}
    assert any("failing-removal" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_disabled_instrumentations_are_skipped():
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", disabled_instrumentations="fake")
    try:
        assert client.config.disabled_instrumentations == ["fake"]
        register.register("fake", "test_instrument.FakeInstrumentation")
        register.register("other", "test_instrument.OtherInstrumentation")
        oxapm.instrument()
        assert calls == [("instrument", "other")]
        assert set(control.applied()) == {"other"}
    finally:
        client.close()


def test_disabled_instrumentations_from_the_environment(monkeypatch):
    monkeypatch.setenv("ELASTIC_APM_DISABLED_INSTRUMENTATIONS", "other, fake")
    client = oxapm.Client(service_name="test-service", traces_exporter="memory")
    try:
        register.register("fake", "test_instrument.FakeInstrumentation")
        register.register("other", "test_instrument.OtherInstrumentation")
        oxapm.instrument()
        assert calls == []
    finally:
        client.close()


def test_instrument_false_applies_nothing():
    client = oxapm.Client(service_name="test-service", traces_exporter="memory", instrument=False)
    try:
        register.register("fake", "test_instrument.FakeInstrumentation")
        oxapm.instrument()
        assert calls == []
        assert control.applied() == {}
    finally:
        client.close()


def test_instrument_without_a_client_applies_everything(monkeypatch):
    from oxapm import base

    monkeypatch.setattr(base, "_client", None)
    register.register("fake", "test_instrument.FakeInstrumentation")
    oxapm.instrument()
    assert calls == [("instrument", "fake")]
