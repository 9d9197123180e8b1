"""A forked child gets a fresh export thread and an empty queue, and reports under its own pid;
the parent is unaffected."""

import contextlib
import gc
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import oxapm


def _record(name):
    client = oxapm.get_client()
    transaction = client.begin_transaction("job")
    with oxapm.capture_span("work"):
        pass
    client.end_transaction(name)
    return transaction.trace_id


def _by_pid(intake):
    """Transaction names per reporting pid (from each request's metadata)."""
    names = {}
    for request in intake.requests:
        pid = request["lines"][0]["metadata"]["process"]["pid"]
        for line in request["lines"][1:]:
            if "transaction" in line:
                names.setdefault(pid, []).append(line["transaction"]["name"])
    intake.events()  # validates every line
    return names


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_os_fork_child_reports_and_parent_is_unaffected(intake):
    client = oxapm.Client(service_name="forking", server_url=intake.url, api_request_time="60s")
    _record("before fork")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            child_trace = _record("in child")
            os.write(write_end, child_trace.encode())
            client.close()
        finally:
            os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    assert status == 0
    child_trace = os.read(read_end, 64).decode()
    parent_trace = _record("in parent")
    client.close()
    names = _by_pid(intake)
    assert names == {os.getpid(): ["before fork", "in parent"], pid: ["in child"]}
    # The child's id generator was reseeded: it does not replay the parent's sequence.
    assert child_trace != parent_trace


def _pool_job(n):
    _record("job-%d" % n)
    oxapm.get_client().flush(5.0)
    return os.getpid()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_multiprocessing_workers_report(intake):
    client = oxapm.Client(service_name="pool", server_url=intake.url)
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pids = set(pool.map(_pool_job, range(6)))
    client.close()
    names = _by_pid(intake)
    assert set(names) == pids and os.getpid() not in names
    assert sorted(n for per_pid in names.values() for n in per_pid) == ["job-%d" % n for n in range(6)]


def test_a_changed_pid_renews_the_engine_without_fork_hooks(intake):
    client = oxapm.Client(service_name="uwsgi-like", server_url=intake.url)
    engine = client._engine
    client._pid = -1  # as after a fork that ran no register_at_fork hooks
    _record("after")
    assert client._engine is not engine and client._pid == os.getpid()
    client.close()
    assert _by_pid(intake) == {os.getpid(): ["after"]}


@pytest.mark.metrics
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_tracer_and_a_counter_whose_providers_were_dropped_follow_a_fork():
    """Programs keep the tracer or the instrument, not always its provider."""
    from oxapm.otel.metrics import MeterProvider
    from oxapm.otel.trace import TracerProvider

    client = oxapm.Client(service_name="forking", traces_exporter="memory", metrics_interval="10m", disable_metrics="system.*,python.*")
    tracer = TracerProvider(client).get_tracer("tests")
    counter = MeterProvider(client).get_meter("tests").create_counter("served")
    gc.collect()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            with tracer.start_as_current_span("in the child"):
                counter.add(1)
            client.flush()
            lines = client._engine.take_memory()
            events = [json.loads(line) for line in lines]
            transactions = [e["transaction"]["name"] for e in events if "transaction" in e]
            served = [e["metricset"]["samples"]["served"]["value"] for e in events if "served" in e.get("metricset", {}).get("samples", {})]
            os.write(write_end, json.dumps([transactions, served]).encode())
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert json.loads(os.read(read_end, 1000)) == [["in the child"], [1]]
    client.close()


@contextlib.contextmanager
def _gunicorn_preloaded(intake, **variables):
    """tests/gunicorn_app.py under gunicorn --preload with two workers, each of which has served a
    request: the workers' pids, and the master's."""
    pytest.importorskip("gunicorn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, OXAPM_TEST_INTAKE_URL=intake.url, **variables)
    command = [sys.executable, "-m", "gunicorn", "--preload", "-w", "2", "-b", "127.0.0.1:%d" % port, "--chdir", os.path.dirname(__file__), "gunicorn_app:app"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        worker_pids = set()
        give_up = time.monotonic() + 60
        while len(worker_pids) < 2 and time.monotonic() < give_up:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5) as response:
                    worker_pids.add(int(response.read()))
            except OSError:
                time.sleep(0.1)  # not listening yet
        assert len(worker_pids) == 2, server.stderr
        yield worker_pids, server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_gunicorn_preload_workers_report(intake):
    with _gunicorn_preloaded(intake) as (worker_pids, master_pid):
        assert intake.wait_for(lambda requests: worker_pids <= {r["lines"][0]["metadata"]["process"]["pid"] for r in requests}, timeout=30)
    reporting = set(_by_pid(intake))
    assert worker_pids <= reporting and master_pid not in reporting


def _served_by_pid(requests):
    """The last value of the OpenTelemetry counter ``served`` each pid reported."""
    served = {}
    for request in requests:
        pid = request["lines"][0]["metadata"]["process"]["pid"]
        for line in request["lines"][1:]:
            if "served" in line.get("metricset", {}).get("samples", {}):
                served[pid] = line["metricset"]["samples"]["served"]["value"]
    return served


def test_gunicorn_preload_workers_collect_and_export_their_own_metrics(intake):
    """The meter provider and its counter are made in the master (the upstream periodic reader's
    thread does not survive this: opentelemetry-python #2767, #3307); each worker collects and
    exports what it counted, every metrics_interval, and the master nothing."""
    variables = {"ELASTIC_APM_METRICS_INTERVAL": "200ms", "ELASTIC_APM_DISABLE_METRICS": "system.*,python.*"}
    with _gunicorn_preloaded(intake, **variables) as (worker_pids, master_pid):
        assert intake.wait_for(lambda requests: worker_pids <= set(_served_by_pid(requests)), timeout=30)
    served = _served_by_pid(intake.requests)
    assert set(served) == worker_pids and all(count >= 1 for count in served.values())
    intake.events()  # validates every line
