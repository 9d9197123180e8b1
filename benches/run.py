"""Side-by-side benchmark: oxapm vs elastic-apm vs OpenTelemetry SDK vs ddtrace.

Starts one loopback sink (benches/sink.py), then runs every contender in its
own process (benches/contenders/<name>_bench.py) against it, N times,
interleaved.  Seven sections:

* main: per contender the median/min cost per span, as fast as it goes, and
  how many of the events it produced actually reached the sink;
* sustained: the same workload paced at a steady rate (50 000 units/s): the
  rate achieved and what was delivered / dropped;
* faults: the cost per span with the backend healthy, down (closed port) or
  hanging (accepts and reads, never answers), and how long close() takes;
* startup: the wall time of `python -c pass`, bare and under `oxapm run`,
  `opentelemetry-instrument` and `elasticapm-run` (no sink involved);
* web: requests per second and p99 latency of a Flask service (gunicorn, one
  sqlite query and one outgoing HTTP call per request) under wrk, bare and
  under each agent's launcher;
* web-instructions: the instructions one request of the same service costs,
  bare and with oxapm, counted by callgrind (they do not depend on the load);
* metrics: nanoseconds per `counter.add` and `histogram.record` through the
  OpenTelemetry API, on oxapm's meter provider, opentelemetry-sdk's and the
  API's no-op one (no sink involved).

Writes the sections that were run to docs/benchmarks.md.

    .venv/bin/python benches/run.py [--section main,sustained,faults,startup,web,web-instructions,metrics] [--repeat 3] [--only oxapm,elastic-apm]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Iterable, Iterator, Optional

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent
CONTENDER_DIR = BENCHES / "contenders"
RESULT_MARKER = "BENCH_RESULT "

# name -> distribution whose version is reported (None: nothing to report).
CONTENDERS = {
    "bare": None,
    "oxapm": "oxapm",
    "oxapm-otlp": "oxapm",
    # The OpenTelemetry API on the oxapm engine, exporting OTLP as the opentelemetry-sdk contender does.
    "oxapm-otel-api": "oxapm",
    "elastic-apm": "elastic-apm",
    "opentelemetry-sdk": "opentelemetry-sdk",
    "ddtrace": "ddtrace",
    # Span compression at work: the spans are identical database calls (leaf spans), compressed
    # into one composite per transaction. The sink counts a composite as the spans it stands for.
    "oxapm-compressed": "oxapm",
    "elastic-apm-compressed": "elastic-apm",
}
# Contenders that ship nothing, so have no delivered figure.
NO_DELIVERY = {"bare"}

# Packages whose versions go in the report (besides the contenders).
EXTRA_DISTS = ["opentelemetry-exporter-otlp-proto-http", "opentelemetry-proto", "protobuf", "msgpack",
               "opentelemetry-instrumentation", "opentelemetry-distro"]

# Agent configuration leaking in from the caller's shell would silently change
# what is measured; every contender sets what it needs explicitly.
SCRUB_ENV_PREFIXES = ("ELASTIC_APM_", "OXAPM_", "OTEL_", "DD_")

STRAGGLER_WAIT_S = 5.0  # max wait for late events after the contender exited
STABLE_S = 1.0  # ...but stop early once the count has not moved for this long

SECTIONS = ("main", "sustained", "faults", "startup", "web", "web-instructions", "metrics")
# ddtrace is left out of the sustained and fault sections: the issue's
# requirements are about oxapm; elastic-apm and the OTel SDK are its reference points.
SUSTAINED_CONTENDERS = ("oxapm", "oxapm-otlp", "elastic-apm", "opentelemetry-sdk")
FAULT_CONTENDERS = SUSTAINED_CONTENDERS
FAULT_SCENARIOS = ("healthy", "down", "hanging")
# oxapm reads it; without it close() would try to deliver to a dead backend for the default 5 s.
FAULT_ENV = {"ELASTIC_APM_SHUTDOWN_TIMEOUT": "1s"}

BIN = Path(sys.executable).parent
# The startup section: name -> (command, distribution reported, environment). The agents send to a
# closed port (they have nothing to send: the program does nothing). oxapm is installed as an
# OpenTelemetry distro too, so opentelemetry-instrument is told to use OpenTelemetry's own.
PYTHON_PASS = [sys.executable, "-c", "pass"]
STARTUP_COMMANDS = {
    "bare python": (PYTHON_PASS, None, {}),
    # A reference: nearly every program imports logging, which the agents import too.
    "bare python, importing logging": ([sys.executable, "-c", "import logging"], None, {}),
    # Metrics off, as for opentelemetry-instrument: otherwise the final collection at exit would be
    # retried against the closed port until the shutdown timeout, which is not start-up cost.
    "oxapm run": ([str(BIN / "oxapm"), "run", "--", *PYTHON_PASS], "oxapm",
                  {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_METRICS_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "CLOSED_PORT"}),
    "opentelemetry-instrument": ([str(BIN / "opentelemetry-instrument"), *PYTHON_PASS], "opentelemetry-distro",
                                 {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator",
                                  "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                                  "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
                                  "OTEL_EXPORTER_OTLP_ENDPOINT": "CLOSED_PORT"}),
    "elasticapm-run": ([str(BIN / "elasticapm-run"), *PYTHON_PASS], "elastic-apm",
                       {"ELASTIC_APM_SERVER_URL": "CLOSED_PORT", "ELASTIC_APM_CENTRAL_CONFIG": "false",
                        "ELASTIC_APM_CLOUD_PROVIDER": "none", "ELASTIC_APM_METRICS_INTERVAL": "0ms"}),
}

# The web section: name -> (launcher of gunicorn, distribution reported, environment).
WEB_DIR = BENCHES / "web"
WEB_CONTENDERS = {
    "uninstrumented": ([], None, {}),
    "oxapm": ([str(BIN / "oxapm"), "run", "--"], "oxapm",
              {"ELASTIC_APM_SERVER_URL": "SINK", "ELASTIC_APM_METRICS_INTERVAL": "0ms",
               "ELASTIC_APM_CENTRAL_CONFIG": "false", "ELASTIC_APM_CLOUD_PROVIDER": "none"}),
    "elastic-apm": ([str(BIN / "elasticapm-run")], "elastic-apm",
                    {"ELASTIC_APM_SERVER_URL": "SINK", "ELASTIC_APM_METRICS_INTERVAL": "0ms",
                     "ELASTIC_APM_CENTRAL_CONFIG": "false", "ELASTIC_APM_CLOUD_PROVIDER": "none"}),
    "opentelemetry-instrument": ([str(BIN / "opentelemetry-instrument")], "opentelemetry-distro",
                                 {"OTEL_PYTHON_DISTRO": "distro", "OTEL_PYTHON_CONFIGURATOR": "configurator",
                                  "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                                  "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
                                  "OTEL_EXPORTER_OTLP_ENDPOINT": "SINK"}),
}
# The metrics section: name -> (benches/contenders/otel_metrics_bench.py --provider, distribution reported).
METRICS_PROVIDERS = {
    "no-op API": ("noop", "opentelemetry-api"),
    "oxapm": ("oxapm", "oxapm"),
    "opentelemetry-sdk": ("sdk", "opentelemetry-sdk"),
}

# The web-instructions section: name -> (benches/web/count_instructions.py --agent, environment).
INSTRUCTION_CONTENDERS = {
    "uninstrumented": ("none", {}),
    # Under callgrind everything runs some 50 times slower: every span would outlast
    # span_stack_trace_min_duration (5 ms) and have its stack captured, which at full speed few do.
    "oxapm": ("oxapm", {**WEB_CONTENDERS["oxapm"][2], "ELASTIC_APM_SPAN_STACK_TRACE_MIN_DURATION": "-1"}),
}
# Requests of the two counted runs: their difference cancels start-up, warm-up and exit.
INSTRUCTION_REQUESTS = (100, 300)
# Each count made once per string-hash seed, the same seeds for every contender: how dicts and
# sets order and collide moves a request's count by some 10,000 instructions from seed to seed.
INSTRUCTION_HASH_SEEDS = ("1", "2", "3")

WEB_WORKERS = 2
WEB_CONNECTIONS = 8
WEB_WARMUP_SECONDS = 3


def script_for(name: str) -> Path:
    # "<name>_bench.py", not "<name>.py": a contenders/oxapm.py or ddtrace.py would
    # shadow the real package (the script's directory comes first on sys.path).
    return CONTENDER_DIR / (name.replace("-", "_") + "_bench.py")


# --------------------------------------------------------------------------- sink


class Sink:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCHES / "sink.py"), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("LISTENING "):
            self.proc.kill()
            raise RuntimeError("sink failed to start: %r" % line)
        self.url = "http://127.0.0.1:%d" % int(line.split()[1])

    def _call(self, method: str, path: str) -> dict:
        req = urllib.request.Request(self.url + path, method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read() or b"{}")

    def reset(self) -> None:
        self._call("POST", "/_reset")

    def counts(self) -> dict:
        return self._call("GET", "/_counts")

    def wait_delivered(self, expected: int) -> dict:
        """Counts once `expected` measured events arrived, or the count stopped moving."""
        deadline = time.monotonic() + STRAGGLER_WAIT_S
        counts = self.counts()
        last, last_change = counts["measured_total"], time.monotonic()
        while counts["measured_total"] < expected and time.monotonic() < deadline:
            if time.monotonic() - last_change >= STABLE_S:
                break
            time.sleep(0.1)
            counts = self.counts()
            if counts["measured_total"] != last:
                last, last_change = counts["measured_total"], time.monotonic()
        return counts

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# --------------------------------------------------------------------------- fault backends


def free_port() -> int:
    """A loopback port nothing listens on (yet)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_port_url() -> str:
    """A backend that is down: nothing listens there, connections are refused."""
    return "http://127.0.0.1:%d" % free_port()


class HangingServer:
    """A backend that hangs: accepts connections and reads requests, never answers."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.sock.setblocking(False)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        # One thread, one selector: reading keeps the agents' sends from blocking on a
        # full socket buffer, so they wait for an answer, as with a stuck server.
        sel = selectors.DefaultSelector()
        sel.register(self.sock, selectors.EVENT_READ)
        while not self.stopped.is_set():
            for key, _ in sel.select(timeout=0.2):
                if key.fileobj is self.sock:
                    conn, _ = self.sock.accept()
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ)
                    continue
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if not data:  # the client gave up
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
        for key in list(sel.get_map().values()):
            key.fileobj.close()

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)


# --------------------------------------------------------------------------- running


def contender_env(extra: Optional[dict] = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_one(name: str, sink: Sink, args: argparse.Namespace, transactions: int, flags: tuple = (),
            env: Optional[dict] = None, target: Optional[str] = None) -> dict:
    """One contender process. ``flags``: more _workload.py options; ``env``: set after
    the scrub; ``target``: a URL it sends to instead of the sink (nothing is counted then)."""
    units = transactions * (args.spans + 1)
    cmd = [sys.executable, str(script_for(name)), "--sink", target or sink.url,
           "--transactions", str(transactions), "--spans", str(args.spans),
           "--warmup", str(args.warmup), *flags]
    sink.reset()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                              env=contender_env(env), cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return {"contender": name, "ok": False, "error": "timed out after %ds" % args.timeout}

    result: Optional[dict] = None
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
    if result is None:
        tail = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        reason = tail[-1].strip() if tail else "no result line"
        result = {"contender": name, "ok": False, "error": "exit %d: %s" % (proc.returncode, reason)}
    elif result.get("ok") and proc.returncode != 0:
        result["ok"] = False
        result["error"] = "exit code %d after reporting" % proc.returncode
    if not result.get("ok"):
        if "stage" in result:
            result["error"] = "%s (during %s)" % (result.get("error"), result["stage"])
        return result

    if name not in NO_DELIVERY and target is None:
        counts = sink.wait_delivered(units)
        result["delivered"] = counts["measured_total"]
        result["warmup_delivered"] = counts["warmup_total"]
        result["by_kind"] = counts["measured"]
        result["sink_errors"] = counts["errors"]
    return result


def rotated(items: list, rep: int) -> list:
    # Rotate the order every repetition so slow drifts in machine load are shared.
    k = rep % len(items)
    return items[k:] + items[:k]


def fmt_drops(stats: Optional[dict]) -> str:
    if not stats:
        return "n/a"
    return "%d / %d" % (stats["dropped_queue_full"], stats["dropped_buffer_full"])


def log_run(tag: str, r: dict) -> None:
    name = r["contender"] + (" " + r["scenario"] if "scenario" in r else "")
    if not r.get("ok"):
        print("%s %-26s FAILED: %s" % (tag, name, r.get("error")), file=sys.stderr)
        return
    if "ms" in r:  # the startup section
        print("%s %-26s %8.1f ms" % (tag, name, r["ms"]), file=sys.stderr)
        return
    if "add_ns" in r:  # the metrics section
        print("%s %-26s %8.0f ns/add, %.0f ns/record" % (tag, name, r["add_ns"], r["record_ns"]), file=sys.stderr)
        return
    if "rps" in r:  # the web section
        print("%s %-26s %8.0f req/s, p99 %.1f ms, %d events" % (tag, name, r["rps"], r["p99_ms"], r["events"]), file=sys.stderr)
        return
    if "per_request" in r:  # the web-instructions section
        print("%s %-26s %10.0f instructions per request" % (tag, name, r["per_request"]), file=sys.stderr)
        return
    extra = ""
    if r.get("rate"):
        extra += ", %.0f units/s" % (r["units"] / r["loop_s"])
    if "delivered" in r:
        extra += ", delivered %d/%d, warm-up %d" % (r["delivered"], r["units"], r["warmup_delivered"])
    if r.get("sink_errors"):
        extra += ", sink errors: %s" % r["sink_errors"][:3]
    if "agent_stats" in r:
        extra += ", drops (queue/buffer) %s" % fmt_drops(r["agent_stats"])
    extra += ", close %.2f s%s" % (r["close_s"], " HUNG" if r.get("close_hung") else "")
    print("%s %-26s %8.2f µs/span%s" % (tag, name, r["us_per_span"], extra), file=sys.stderr)


def run_rounds(label: str, items: list, repeat: int, run) -> list[tuple[int, dict]]:
    """``run(item)`` for every item, ``repeat`` times, interleaved; (repetition, result) pairs."""
    runs = []
    for rep in range(repeat):
        for item in rotated(items, rep):
            r = run(item)
            runs.append((rep + 1, r))
            log_run("[%s %d/%d]" % (label, rep + 1, repeat), r)
    return runs


def run_main(sink: Sink, args: argparse.Namespace, names: list[str]) -> list[tuple[int, dict]]:
    return run_rounds("main", names, args.repeat, lambda name: run_one(name, sink, args, args.transactions))


def sustained_transactions(args: argparse.Namespace) -> int:
    return max(1, round(args.sustained_rate * args.sustained_seconds / (args.spans + 1)))


def run_sustained(sink: Sink, args: argparse.Namespace, names: list[str]) -> list[tuple[int, dict]]:
    n, flags = sustained_transactions(args), ("--rate", str(args.sustained_rate))
    return run_rounds("sustained", names, args.sustained_repeat, lambda name: run_one(name, sink, args, n, flags))


def run_faults(sink: Sink, args: argparse.Namespace, names: list[str]) -> list[tuple[int, dict]]:
    hanging = HangingServer()
    targets = {"healthy": lambda: None, "down": closed_port_url, "hanging": lambda: hanging.url}
    flags = ("--close-timeout", str(args.close_timeout))

    def run(item: tuple[str, str]) -> dict:
        name, scenario = item
        r = run_one(name, sink, args, args.transactions, flags, FAULT_ENV, targets[scenario]())
        r["scenario"] = scenario
        return r

    # A contender's three scenarios run back to back: the ratio compares runs close in time.
    items = [(name, scenario) for name in names for scenario in FAULT_SCENARIOS]
    try:
        return run_rounds("faults", items, args.faults_repeat, run)
    finally:
        hanging.close()


def run_startup(sink: Sink, args: argparse.Namespace, names: list[str]) -> list[tuple[int, dict]]:
    """The wall time of each command, from start to exit, in its own process. Each is run once
    untimed first: its modules' bytecode is then cached, as on any machine after the first start."""
    closed = closed_port_url()

    def run(name: str) -> dict:
        command, _, env = STARTUP_COMMANDS[name]
        env = contender_env({k: closed if v == "CLOSED_PORT" else v for k, v in env.items()})
        # Without bytecode written, every run would compile every module again.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        started = time.perf_counter()
        proc = subprocess.run(command, env=env, cwd=str(REPO), capture_output=True, text=True, timeout=args.timeout)
        ms = (time.perf_counter() - started) * 1000.0
        if proc.returncode != 0:
            lines = [ln for ln in (proc.stderr or "").splitlines() if ln.strip()]
            return {"contender": name, "ok": False,
                    "error": "exit %d: %s" % (proc.returncode, lines[-1].strip() if lines else "")}
        return {"contender": name, "ok": True, "ms": ms, "exit": proc.returncode}

    for name in names:
        run(name)
    return run_rounds("startup", names, args.startup_repeat, run)

def run_web_instructions(sink: Sink, args: argparse.Namespace, names: list[str]) -> list[tuple[int, dict]]:
    """benches/web/count_instructions.py under callgrind, for N and 3N requests per contender:
    the instructions of one request, those of the agent's export thread included."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("the web-instructions section needs valgrind (Debian package valgrind; make bench installs it)")
    with downstream_service() as downstream_url:
        return run_rounds("web-instructions", names, 1, lambda name: _count_instructions(name, valgrind, sink, args, downstream_url))


def _count_instructions(name: str, valgrind: str, sink: Sink, args: argparse.Namespace, downstream_url: str) -> dict:
    agent, variables = INSTRUCTION_CONTENDERS[name]
    env = web_env(variables, [v for _, v in INSTRUCTION_CONTENDERS.values()], sink, downstream_url)
    script = [sys.executable, str(WEB_DIR / "count_instructions.py"), "--agent", agent, "--requests"]
    # Once uncounted: what a first run does once (bytecode written) is no part of a request.
    subprocess.run(script + ["1"], env=env, cwd=str(WEB_DIR), capture_output=True, timeout=args.timeout)
    first, second = INSTRUCTION_REQUESTS
    per_seed = []
    with tempfile.TemporaryDirectory() as scratch:
        for seed in INSTRUCTION_HASH_SEEDS:
            counted = []
            for requests in INSTRUCTION_REQUESTS:
                out = os.path.join(scratch, "callgrind.%s.%d" % (seed, requests))
                proc = subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=" + out, *script, str(requests)],
                                      env={**env, "PYTHONHASHSEED": seed}, cwd=str(WEB_DIR), capture_output=True, text=True, timeout=args.timeout * 10)
                total = re.search(r"Collected : (\d+)", proc.stderr)
                if proc.returncode != 0 or total is None:
                    return {"contender": name, "ok": False, "error": "callgrind: exit %d: %s" % (proc.returncode, _last_line(proc.stderr))}
                counted.append(int(total.group(1)))
            per_seed.append((counted[1] - counted[0]) / (second - first))
    return {"contender": name, "ok": True, "per_request": statistics.mean(per_seed), "per_seed": per_seed}


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def run_metrics(sink: Sink, args: argparse.Namespace, names: list[str]) -> list[tuple[int, dict]]:
    """benches/contenders/otel_metrics_bench.py once per provider and repetition, each in its own process."""

    def run(name: str) -> dict:
        command = [sys.executable, str(CONTENDER_DIR / "otel_metrics_bench.py"), "--provider", METRICS_PROVIDERS[name][0],
                   "--calls", str(args.metrics_calls)]
        proc = subprocess.run(command, env=contender_env(), cwd=str(REPO), capture_output=True, text=True, timeout=args.timeout)
        for line in proc.stdout.splitlines():
            if line.startswith(RESULT_MARKER) and proc.returncode == 0:
                return {"contender": name, **json.loads(line[len(RESULT_MARKER):])}
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return {"contender": name, "ok": False, "error": "exit %d: %s" % (proc.returncode, lines[-1].strip() if lines else "no result line")}

    return run_rounds("metrics", names, args.metrics_repeat, run)


def run_web(sink: Sink, args: argparse.Namespace, names: list[str]) -> list[tuple[int, dict]]:
    """gunicorn serving benches/web/app.py, bare or under each launcher, loaded by wrk."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("the web section needs wrk (Debian package wrk; make bench installs it)")
    with downstream_service() as downstream_url:
        return run_rounds("web", names, args.web_repeat, lambda name: run_web_one(name, wrk, sink, args, downstream_url))


@contextlib.contextmanager
def downstream_service() -> Iterator[str]:
    """benches/web/downstream.py running: its URL."""
    downstream = subprocess.Popen([sys.executable, str(WEB_DIR / "downstream.py")], stdout=subprocess.PIPE, text=True)
    try:
        yield "http://127.0.0.1:%d" % int(downstream.stdout.readline().split()[1])
    finally:
        downstream.terminate()
        downstream.wait(timeout=10)


def web_env(variables: dict, every: Iterable[dict], sink: Sink, downstream_url: str) -> dict:
    """The environment of a web contender configured by ``variables`` ("SINK": the sink's URL), one
    of ``every``. Each gets as many variables, unused ones added: requests reads the whole
    environment on every call (its proxy settings), some 25 K instructions per variable, which a
    contender configured by more variables would pay in the endpoint's own work."""
    padding = {"BENCH_PADDING_%d" % index: "1" for index in range(max(map(len, every)) - len(variables))}
    env = contender_env({**{k: sink.url if v == "SINK" else v for k, v in variables.items()}, **padding})
    env.update(BENCH_DOWNSTREAM_URL=downstream_url, PYTHONPATH=str(WEB_DIR))
    return env


def run_web_one(name: str, wrk: str, sink: Sink, args: argparse.Namespace, downstream_url: str) -> dict:
    launcher, _, variables = WEB_CONTENDERS[name]
    port = free_port()
    env = web_env(variables, [v for _, _, v in WEB_CONTENDERS.values()], sink, downstream_url)
    command = launcher + [str(BIN / "gunicorn"), "--workers", str(WEB_WORKERS), "--bind", "127.0.0.1:%d" % port,
                          "--log-level", "warning", "app:app"]
    sink.reset()
    server = subprocess.Popen(command, env=env, cwd=str(WEB_DIR), stderr=subprocess.PIPE, text=True)
    try:
        if not _wait_listening(port, server, timeout=60):
            return {"contender": name, "ok": False, "error": "gunicorn did not start: %s" % _tail(server)}
        url = "http://127.0.0.1:%d/orders/7" % port
        _wrk(wrk, url, WEB_WARMUP_SECONDS)
        measured = _wrk(wrk, url, args.web_seconds)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    if measured is None or measured.get("errors"):
        return {"contender": name, "ok": False, "error": "wrk: %s" % (measured or {}).get("errors", "no output")}
    counts = sink.counts()
    measured.update(contender=name, ok=True, events=counts["measured_total"] + counts["warmup_total"])
    return measured


def _wrk(wrk: str, url: str, seconds: float) -> Optional[dict]:
    proc = subprocess.run([wrk, "--threads", "1", "--connections", str(WEB_CONNECTIONS), "--duration", "%ds" % seconds,
                           "--latency", url], capture_output=True, text=True, timeout=seconds + 60)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", proc.stdout, re.M)
    if rps is None or p99 is None:
        return None
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", proc.stdout)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return {"rps": float(rps.group(1)), "p99_ms": float(p99.group(1)) * scale,
            "errors": errors.group(0) if errors else None}


def _wait_listening(port: int, server: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def _tail(server: subprocess.Popen) -> str:
    server.kill()
    lines = [line for line in (server.communicate()[1] or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# --------------------------------------------------------------------------- summaries


def base_row(name: str, runs: list[dict]) -> tuple[dict, list[dict]]:
    ok = [r for r in runs if r.get("ok")]
    failed = [r for r in runs if not r.get("ok")]
    row = {"contender": name, "runs": len(runs), "ok_runs": len(ok),
           "errors": sorted({r.get("error", "?") for r in failed}),
           "version": ok[0].get("version", "") if ok else ""}
    return row, ok


def delivery(ok: list[dict], units: int) -> dict:
    # Worst run: a delivery figure is only as good as its worst repetition.
    worst = min(r["delivered"] for r in ok)
    return {"delivered": worst, "delivered_max": max(r["delivered"] for r in ok),
            "pct": 100.0 * worst / units if units else 0.0}


def worst_drops(ok: list[dict]) -> Optional[dict]:
    """oxapm's drop counters, the largest of the repetitions; None for other agents."""
    stats = [r["agent_stats"] for r in ok if r.get("agent_stats")]
    if not stats:
        return None
    return {k: max(s[k] for s in stats) for k in ("dropped_queue_full", "dropped_buffer_full")}


def summarize(name: str, runs: list[dict], units: int) -> dict:
    row, ok = base_row(name, runs)
    if not ok:
        return row
    us = [r["us_per_span"] for r in ok]
    row.update(us_median=statistics.median(us), us_min=min(us),
               close_median=statistics.median(r["close_s"] for r in ok))
    if name not in NO_DELIVERY:
        row.update(delivery(ok, units))
    return row


def summarize_sustained(name: str, runs: list[dict], units: int) -> dict:
    row, ok = base_row(name, runs)
    if not ok:
        return row
    rates = [r["units"] / r["loop_s"] for r in ok]
    row.update(rate_median=statistics.median(rates), rate_min=min(rates), drops=worst_drops(ok),
               cpu_pct=statistics.median(100.0 * r["cpu_s"] / r["loop_s"] for r in ok),
               close_median=statistics.median(r["close_s"] for r in ok), **delivery(ok, units))
    return row


def summarize_faults(name: str, runs: list[dict]) -> list[dict]:
    """One row per scenario; ``ratio`` is the median µs/span over the healthy one's."""
    rows = []
    for scenario in FAULT_SCENARIOS:
        row, ok = base_row(name, [r for r in runs if r["scenario"] == scenario])
        row["scenario"] = scenario
        if ok:
            row.update(us_median=statistics.median(r["us_per_span"] for r in ok), drops=worst_drops(ok),
                       close_median=statistics.median(r["close_s"] for r in ok),
                       hung=sum(1 for r in ok if r.get("close_hung")))
        rows.append(row)
    healthy = rows[0].get("us_median")
    for row in rows:
        row["ratio"] = row["us_median"] / healthy if healthy and "us_median" in row else None
    return rows


# --------------------------------------------------------------------------- report


def machine_info() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        nproc = len(os.sched_getaffinity(0))  # what `nproc` prints
    except AttributeError:
        nproc = os.cpu_count()
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "n/a"
    return {
        "nproc": nproc,
        "cpu": cpu,
        "python": "%s %s" % (platform.python_implementation(), platform.python_version()),
        "platform": platform.platform(),
        "load": load,
    }


def dist_version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def fmt_delivered(row: dict, units: int) -> tuple[str, str]:
    if row["contender"] in NO_DELIVERY:
        return "n/a (sends nothing)", "n/a"
    if "delivered" not in row:
        return "-", "-"
    spread = "" if row["delivered"] == row["delivered_max"] else " (best %d)" % row["delivered_max"]
    return "%d / %d%s" % (row["delivered"], units, spread), "%.1f %%" % row["pct"]


def failure_note(row: dict) -> str:
    if not row["errors"]:
        return ""
    return "%d/%d runs failed: %s" % (row["runs"] - row["ok_runs"], row["runs"], "; ".join(row["errors"]))


def failed_row(row: dict, headers: list[str], lead: list[str]) -> list[str]:
    """A row whose runs all failed: the leading cells, FAILED, the errors in Notes."""
    cells = lead + ["FAILED"] + ["-"] * (len(headers) - len(lead) - 2)
    return cells + ["; ".join(row["errors"])]


HEADERS = ["Contender", "Version", "µs/span (median)", "µs/span (min)", "Delivered (worst run)", "%", "close() s",
           "Notes"]


def table_rows(rows: list[dict], units: int) -> list[list[str]]:
    out = []
    for row in rows:
        if not row["ok_runs"]:
            out.append(failed_row(row, HEADERS, [row["contender"], "-"]))
            continue
        delivered, pct = fmt_delivered(row, units)
        out.append([row["contender"], row["version"] or "-", "%.2f" % row["us_median"], "%.2f" % row["us_min"],
                    delivered, pct, "%.2f" % row["close_median"], failure_note(row)])
    return out


SUSTAINED_HEADERS = ["Contender", "Version", "Achieved units/s (median)", "Achieved units/s (min)",
                     "Delivered (worst run)", "%", "oxapm drops: queue full / buffer full", "CPU, % of one core",
                     "close() s", "Notes"]


def sustained_rows(rows: list[dict], units: int) -> list[list[str]]:
    out = []
    for row in rows:
        if not row["ok_runs"]:
            out.append(failed_row(row, SUSTAINED_HEADERS, [row["contender"], "-"]))
            continue
        delivered, pct = fmt_delivered(row, units)
        out.append([row["contender"], row["version"] or "-", "{:,.0f}".format(row["rate_median"]),
                    "{:,.0f}".format(row["rate_min"]), delivered, pct, fmt_drops(row["drops"]),
                    "%.0f %%" % row["cpu_pct"], "%.2f" % row["close_median"], failure_note(row)])
    return out


FAULT_HEADERS = ["Contender", "Backend", "µs/span (median)", "× healthy", "close() s (median)",
                 "oxapm drops: queue full / buffer full", "Notes"]


def fmt_close(row: dict, timeout: float) -> str:
    if not row["hung"]:
        return "%.2f" % row["close_median"]
    return "hung (> %g s) in %d/%d runs" % (timeout, row["hung"], row["ok_runs"])


def fault_rows(rows: list[dict], timeout: float) -> list[list[str]]:
    out = []
    for row in rows:
        if not row["ok_runs"]:
            out.append(failed_row(row, FAULT_HEADERS, [row["contender"], row["scenario"]]))
            continue
        ratio = "-" if row["ratio"] is None else "%.2f" % row["ratio"]
        out.append([row["contender"], row["scenario"], "%.2f" % row["us_median"], ratio, fmt_close(row, timeout),
                    fmt_drops(row["drops"]), failure_note(row)])
    return out


def print_table(title: str, headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths))
    print("\n" + title)
    print(line)
    print("-" * len(line))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def command_line(args: argparse.Namespace) -> str:
    defaults = vars(parse_args([]))
    extra = ["--%s %s" % (k.replace("_", "-"), v) for k, v in vars(args).items()
             if v != defaults[k] and k not in ("out", "timeout")]
    if not extra:
        return "make bench"
    return ".venv/bin/python benches/run.py " + " ".join(extra)


def of(runs: list[tuple[int, dict]], name: str) -> list[dict]:
    return [r for _, r in runs if r["contender"] == name]


def names_in(runs: list[tuple[int, dict]]) -> list[str]:
    return [n for n in CONTENDERS if of(runs, n)]


def main_table(args: argparse.Namespace, runs: list[tuple[int, dict]]) -> list[list[str]]:
    units = args.transactions * (args.spans + 1)
    return table_rows([summarize(n, of(runs, n), units) for n in names_in(runs)], units)


def sustained_table(args: argparse.Namespace, runs: list[tuple[int, dict]]) -> list[list[str]]:
    units = sustained_transactions(args) * (args.spans + 1)
    return sustained_rows([summarize_sustained(n, of(runs, n), units) for n in names_in(runs)], units)


def fault_table(args: argparse.Namespace, runs: list[tuple[int, dict]]) -> list[list[str]]:
    return fault_rows([row for n in names_in(runs) for row in summarize_faults(n, of(runs, n))], args.close_timeout)


def contender_rows(names: Iterable[str], runs: list[tuple[int, dict]], headers: list[str], rows: list[list[str]]) -> Iterator[tuple[str, dict, list[dict]]]:
    """For each of ``names`` that ran: its name, summary row and successful runs; one whose every
    run failed gets its failure row in ``rows`` instead."""
    for name in names:
        row, ok = base_row(name, [r for _, r in runs if r["contender"] == name])
        if not row["runs"]:
            continue
        if not ok:
            rows.append(failed_row(row, headers, [name, "-"]))
            continue
        yield name, row, ok


STARTUP_HEADERS = ["Command", "Version", "ms (median)", "ms (min)", "over bare python, ms (median)", "Notes"]


def startup_table(args: argparse.Namespace, runs: list[tuple[int, dict]]) -> list[list[str]]:
    rows = []
    bare = None
    for name, row, ok in contender_rows(STARTUP_COMMANDS, runs, STARTUP_HEADERS, rows):
        median = statistics.median(r["ms"] for r in ok)
        bare = median if bare is None and name == "bare python" else bare
        dist = STARTUP_COMMANDS[name][1]
        rows.append([name, dist_version(dist) if dist else platform.python_version(), "%.1f" % median,
                     "%.1f" % min(r["ms"] for r in ok), "-" if bare is None else "%+.1f" % (median - bare),
                     failure_note(row)])
    return rows


WEB_HEADERS = ["Contender", "Version", "req/s (median)", "of uninstrumented", "p99 ms (median)", "Events received", "Notes"]


def web_table(args: argparse.Namespace, runs: list[tuple[int, dict]]) -> list[list[str]]:
    rows = []
    bare = None
    for name, row, ok in contender_rows(WEB_CONTENDERS, runs, WEB_HEADERS, rows):
        rps = statistics.median(r["rps"] for r in ok)
        bare = rps if name == "uninstrumented" else bare
        dist = WEB_CONTENDERS[name][1]
        rows.append([name, dist_version(dist) if dist else "-", "{:,.0f}".format(rps),
                     "-" if bare is None else "%.1f %%" % (100.0 * rps / bare),
                     "%.1f" % statistics.median(r["p99_ms"] for r in ok),
                     "n/a" if dist is None else str(min(r["events"] for r in ok)), failure_note(row)])
    return rows

INSTRUCTION_HEADERS = ["Contender", "Version", "Instructions per request", "Over uninstrumented", "Per hash seed", "Notes"]


def instructions_table(args: argparse.Namespace, runs: list[tuple[int, dict]]) -> list[list[str]]:
    rows = []
    bare = None
    for name, row, ok in contender_rows(INSTRUCTION_CONTENDERS, runs, INSTRUCTION_HEADERS, rows):
        count = ok[0]["per_request"]
        bare = count if name == "uninstrumented" else bare
        rows.append([name, "-" if name == "uninstrumented" else dist_version("oxapm"), "{:,.0f}".format(count),
                     "-" if bare is None or name == "uninstrumented" else "{:+.1f} % ({:+,.0f})".format(100.0 * (count - bare) / bare, count - bare),
                     " / ".join("{:,.0f}".format(c) for c in ok[0]["per_seed"]), failure_note(row)])
    return rows


METRICS_HEADERS = ["Meter provider", "Version", "counter.add ns (median)", "counter.add ns (min)",
                   "histogram.record ns (median)", "histogram.record ns (min)", "Notes"]


def metrics_table(args: argparse.Namespace, runs: list[tuple[int, dict]]) -> list[list[str]]:
    rows = []
    for name, row, ok in contender_rows(METRICS_PROVIDERS, runs, METRICS_HEADERS, rows):
        dist = METRICS_PROVIDERS[name][1]
        cells = []
        for key in ("add_ns", "record_ns"):
            cells += ["%.0f" % statistics.median(r[key] for r in ok), "%.0f" % min(r[key] for r in ok)]
        rows.append([name, dist_version(dist), *cells, failure_note(row)])
    return rows

# section -> (runner, table maker, headers)
SECTION_RUNS = {
    "main": (run_main, main_table, HEADERS),
    "sustained": (run_sustained, sustained_table, SUSTAINED_HEADERS),
    "faults": (run_faults, fault_table, FAULT_HEADERS),
    "startup": (run_startup, startup_table, STARTUP_HEADERS),
    "web": (run_web, web_table, WEB_HEADERS),
    "web-instructions": (run_web_instructions, instructions_table, INSTRUCTION_HEADERS),
    "metrics": (run_metrics, metrics_table, METRICS_HEADERS),
}


# --------------------------------------------------------------------------- markdown


def delivered_cell(key: str):
    return lambda r: "n/a" if r["contender"] in NO_DELIVERY else str(r[key])


# section -> (identifying columns, [(header, cell)]) of the raw-runs table.
RAW_COLUMNS = {
    "main": (1, [
        ("Contender", lambda r: r["contender"]),
        ("µs/span", lambda r: "%.2f" % r["us_per_span"]),
        ("loop s", lambda r: "%.3f" % r["loop_s"]),
        ("close s", lambda r: "%.3f" % r["close_s"]),
        ("Delivered", delivered_cell("delivered")),
        ("Warm-up delivered", delivered_cell("warmup_delivered")),
    ]),
    "sustained": (1, [
        ("Contender", lambda r: r["contender"]),
        ("units/s", lambda r: "{:,.0f}".format(r["units"] / r["loop_s"])),
        ("loop s", lambda r: "%.3f" % r["loop_s"]),
        ("CPU s", lambda r: "%.3f" % r["cpu_s"]),
        ("close s", lambda r: "%.3f" % r["close_s"]),
        ("Delivered", delivered_cell("delivered")),
        ("oxapm drops", lambda r: fmt_drops(r.get("agent_stats"))),
    ]),
    "faults": (2, [
        ("Contender", lambda r: r["contender"]),
        ("Backend", lambda r: r["scenario"]),
        ("µs/span", lambda r: "%.2f" % r["us_per_span"]),
        ("loop s", lambda r: "%.3f" % r["loop_s"]),
        ("close s", lambda r: "%.3f%s" % (r["close_s"], " (hung)" if r.get("close_hung") else "")),
        ("oxapm drops", lambda r: fmt_drops(r.get("agent_stats"))),
    ]),
    "startup": (1, [
        ("Command", lambda r: r["contender"]),
        ("ms", lambda r: "%.1f" % r["ms"]),
        ("Exit code", lambda r: str(r["exit"])),
    ]),
    "web": (1, [
        ("Contender", lambda r: r["contender"]),
        ("req/s", lambda r: "%.0f" % r["rps"]),
        ("p99 ms", lambda r: "%.2f" % r["p99_ms"]),
        ("Events received", lambda r: str(r["events"])),
    ]),
    "web-instructions": (1, [
        ("Contender", lambda r: r["contender"]),
        ("Instructions per request", lambda r: "%.0f" % r["per_request"]),
    ]),
    "metrics": (1, [
        ("Meter provider", lambda r: r["contender"]),
        ("counter.add ns", lambda r: "%.0f" % r["add_ns"]),
        ("histogram.record ns", lambda r: "%.0f" % r["record_ns"]),
    ]),
}


def raw_table(section: str, runs: list[tuple[int, dict]]) -> str:
    keys, columns = RAW_COLUMNS[section]
    rows = []
    for rep, r in runs:
        if r.get("ok"):
            rows.append([str(rep)] + [cell(r) for _, cell in columns])
        else:
            lead = [cell(r) for _, cell in columns[:keys]]
            rows.append([str(rep)] + lead + ["FAILED"] + [""] * (len(columns) - keys - 2) + [r.get("error", "")])
    return md_table(["Rep"] + [h for h, _ in columns], rows)


def md_main(args: argparse.Namespace, table: list[list[str]]) -> tuple[str, str]:
    """(what is measured, results) of the main section."""
    t, s = args.transactions, args.spans
    units = t * (s + 1)
    measured = f"""## What is measured

Each contender runs in its **own process** against the **same loopback sink**
(`benches/sink.py`, one HTTP server that speaks Elastic APM intake v2, OTLP/HTTP
protobuf and the Datadog agent's `/v0.4|/v0.5/traces`). The workload is
{t:,} transactions, each with {s} child spans that do nothing (`pass`), after
{args.warmup} warm-up transactions that are not timed.

* **µs/span** = wall time of the measured loop / {units:,}, where the
  {units:,} units are the {t * s:,} child spans **plus** the {t:,} transactions
  (for OpenTelemetry and ddtrace the transaction is the root span). It is the
  cost paid on the application thread; the time spent in `close()` /
  `shutdown()` after the loop is reported separately (median, seconds).
* **Delivered** = events of the measured loop (transactions + spans, or OTLP /
  Datadog spans) the sink received after the contender's own
  close/shutdown/flush returned and the process exited (the harness then waits up
  to {STRAGGLER_WAIT_S:.0f} s for stragglers). Warm-up events are named
  `warmup*` and counted apart, so the figure is exact. The **worst** of the
  repetitions is shown; "best" is added when runs differ.
* Each contender is run {args.repeat} time(s); contenders are interleaved and the
  order is rotated every repetition so slow drifts in machine load are shared.
  The table shows the median and the minimum µs/span over the repetitions.
* `bare` is the floor: the same loop with a trivial context-manager class.
* The measured loop follows the warm-up without a pause, as in a running
  application: agents may still be shipping warm-up events while it is timed.

"""
    results = f"""## Results

{md_table(HEADERS, table)}

"""
    return measured, results


def md_sustained(args: argparse.Namespace, table: list[list[str]]) -> str:
    n, s, rate = sustained_transactions(args), args.spans, args.sustained_rate
    return f"""## Sustained rate: {rate:,.0f} spans/s to a healthy sink

The issue requires oxapm to deliver everything, with zero drops, at a steady
{rate:,.0f} spans/s to a healthy loopback sink. Here a "span" is a unit as in
the main table: transactions + spans.

* The workload and sink of the main table, with the measured loop **paced**
  (`_workload.py --rate {rate:g}`): transaction *i* is due at
  *t0 + i × {s + 1} / rate*; before each one the loop sleeps until it is due if it
  is ahead, and never sleeps when behind (an agent that cannot keep up runs flat
  out and the achieved rate shows it). {n:,} transactions × {s + 1} units =
  {n * (s + 1):,} units, {args.sustained_seconds:g} s at the target rate.
* **Achieved units/s** = units / wall time of the measured loop.
* **Delivered** as in the main table (worst repetition).
* **oxapm drops** = `client.stats()` read after `close()`: `dropped_queue_full`
  (the export queue was full) / `dropped_buffer_full` (undelivered batches
  outgrew the retry buffer); the largest over the repetitions. The other agents
  keep no such counters: their losses show in Delivered only.
* **CPU, % of one core** = CPU time of the whole process (application thread
  and the agent's own threads) during the measured loop / its wall time. It
  includes the workload itself (see `bare` in the main table).
* {args.sustained_repeat} repetition(s) per contender, interleaved.

{md_table(SUSTAINED_HEADERS, table)}

"""


def md_faults(args: argparse.Namespace, table: list[list[str]]) -> str:
    t, s = args.transactions, args.spans
    env = " ".join("%s=%s" % kv for kv in FAULT_ENV.items())
    return f"""## Backend faults: per-span cost when the backend is down or hanging

The issue requires that with the backend down or hanging, oxapm's cost per span
stays within 1.2× of its cost with a healthy backend.

* The unpaced workload of the main table ({t:,} transactions × {s} spans), with
  the contender sending to one of three backends: **healthy** (the sink),
  **down** (a loopback port nothing listens on: a socket bound to port 0, then
  closed; connections are refused) or **hanging** (a server in `run.py` that
  accepts connections and reads requests but never answers). oxapm-otlp gets the
  same URLs through `OTEL_EXPORTER_OTLP_ENDPOINT`.
* In all three scenarios the contenders get `{env}`: oxapm's
  `close()` then stops trying to deliver after 1 s instead of the default 5 s.
  elastic-apm has no such option (its close waits up to `api_request_time`,
  10 s) and the OpenTelemetry SDK's `shutdown()` waits for its exporter's
  retries.
* **× healthy** = median µs/span of the scenario / median µs/span of the
  healthy scenario, same contender.
* **close() s** = time for `close()` / `shutdown()` to return. One that has
  not returned after {args.close_timeout:g} s is reported **hung**: the
  contender reports its loop timing and exits without waiting further.
* **oxapm drops** as in the sustained table. Events still undelivered when
  close() gives up are not counted there, and delivery is not reported in this
  section (down and hanging backends receive nothing).
* {args.faults_repeat} repetition(s); in each, a contender's three scenarios
  run back to back, and the order is rotated every repetition.

{md_table(FAULT_HEADERS, table)}

"""


def md_startup(args: argparse.Namespace, table: list[list[str]]) -> str:
    program = " ".join(["python"] + PYTHON_PASS[1:])
    return f"""## Startup: `{program}` bare and under each agent's launcher

The issue's target: `oxapm run` costs at most 30 ms over bare `python -c pass`.

* Each command runs `{program}` (the venv's interpreter) in its own process; the
  figure is the wall time from starting the command to its exit, measured by
  `run.py`. The launchers are Python programs themselves, which then run the
  program with their agent loaded by a `sitecustomize` module: two interpreter
  starts, plus the agent's own imports and set-up (and its exit handlers).
* **oxapm run**: `oxapm run -- {program}`, exporting OTLP (`OTEL_TRACES_EXPORTER=otlp`),
  metrics exporter `none` as for opentelemetry-instrument (with metrics on, the collection at exit
  is retried against the closed port until `shutdown_timeout`). The contrib instrumentors installed in the venv (requests, flask, sqlite3, from
  the `test` extra) are looked up from oxapm's cache and hooked, not imported:
  the program imports none of their libraries. oxapm's start imports neither
  `logging` nor `typing` (its loggers import `logging` when they first log).
* **opentelemetry-instrument**: `opentelemetry-instrument {program}` with
  OpenTelemetry's own distro and SDK (`OTEL_PYTHON_DISTRO=distro`,
  `OTEL_PYTHON_CONFIGURATOR=configurator`, `OTEL_TRACES_EXPORTER=otlp` over
  `http/protobuf`, metrics and logs exporters `none`); it imports every
  installed instrumentor, and with it its library, at start.
* **elasticapm-run**: `elasticapm-run {program}` with central config, cloud
  metadata and metrics off.
* Every agent is pointed at a closed loopback port; the program sends nothing.
* **bare python, importing logging** is a reference, not an agent: nearly every
  program imports `logging`, and the other two agents do at start.
* `PYTHONDONTWRITEBYTECODE` is removed from the commands' environment (it is
  set in some shells and containers): without cached bytecode every module
  would be compiled on every start, which measures the compiler, not the
  agents. Each command runs once untimed first, so the bytecode is written.
* {args.startup_repeat} repetitions, interleaved and rotated; the median and
  the minimum are shown. "Over bare python" is the difference of medians.

{md_table(STARTUP_HEADERS, table)}

"""


def md_web(args: argparse.Namespace, table: list[list[str]]) -> str:
    return f"""## Web: a Flask service under load, bare and under each agent

The issue's target: with oxapm, the service keeps at least 97 % of its uninstrumented throughput.

* benches/web/app.py: one Flask endpoint (`/orders/<int:order_id>`) that runs one sqlite query
  and calls another service with requests (a kept-alive session) — benches/web/downstream.py, a
  minimal asyncio server answering at once. No agent is named in the code.
* Served by gunicorn ({WEB_WORKERS} sync workers) started bare, under `oxapm run --`, `elasticapm-run`
  and `opentelemetry-instrument` (OpenTelemetry's own distro and SDK, with the installed flask,
  requests and sqlite3 contrib instrumentations, OTLP/HTTP protobuf). The agents send to the sink,
  with metrics, central config and cloud metadata off; everything else at their defaults (every
  request sampled). Every contender gets as many environment variables, unused ones added: requests
  reads the whole environment on every call, some 25 K instructions per variable.
* wrk on loopback: 1 thread, {WEB_CONNECTIONS} connections, {WEB_WARMUP_SECONDS} s warm-up then {args.web_seconds} s measured,
  everything on the same machine (server, downstream, sink and wrk share it).
* {args.web_repeat} repetitions, interleaved and rotated; medians shown. "Events received" is the fewest
  trace events the sink received in one repetition (warm-up included): it shows the agent did trace.

{md_table(WEB_HEADERS, table)}

"""

def md_web_instructions(args: argparse.Namespace, table: list[list[str]]) -> str:
    first, second = INSTRUCTION_REQUESTS
    return f"""## Web: instructions per request, bare and with oxapm

Wall-clock throughput on this shared machine varies by about ±10 % from run to run; instruction
counts do not, and show what the agent adds to a request.

* benches/web/count_instructions.py: the web section's service (benches/web/app.py, the same
  downstream service), its requests made in-process through Flask's test client (no gunicorn, no
  wrk). With oxapm the agent starts as under `oxapm run`, configured as in the web section,
  exporting to the sink, except that no span's stack trace is captured: callgrind slows the
  process some 50 times, and every span would outlast `span_stack_trace_min_duration` (5 ms).
  Both runs get as many environment variables, as in the web section.
* valgrind's callgrind counts every instruction of the process, the agent's export thread included,
  for {first} and for {second} requests, each run after the same untimed ones: the difference over
  {second - first} requests is the cost of one.
* Counted once for each of the string-hash seeds {", ".join(INSTRUCTION_HASH_SEEDS)} (`PYTHONHASHSEED`,
  the same for both contenders), and averaged: the seed alone moves a request's count by some
  10,000 instructions.

{md_table(INSTRUCTION_HEADERS, table)}

"""


def md_metrics(args: argparse.Namespace, table: list[list[str]]) -> str:
    return f"""## Metrics: the OpenTelemetry metrics API's hot path

The issue's target: `counter.add` through the API costs at most 0.5 µs with oxapm.

* benches/contenders/otel_metrics_bench.py, in its own process per provider: the global meter provider is
  set, `metrics.get_meter("bench")` is asked for a counter and a histogram, then
  `counter.add(1, {{"route": "/x", "code": 200}})` and `histogram.record(12.5, <the same attributes>)`
  run {args.metrics_calls:,} times each (after a tenth as many untimed); the figure is the loop's wall
  time per call, loop included.
* **oxapm**: `oxapm.otel.metrics.MeterProvider` on a `Client` that exports nothing (the engine
  aggregates; nothing is collected during the loop). **opentelemetry-sdk**: its `MeterProvider` with an
  `InMemoryMetricReader` (it aggregates; nothing is exported). **no-op API**: the API's
  `NoOpMeterProvider`, the floor of a call through the API.
* {args.metrics_repeat} repetitions, interleaved and rotated; median and minimum shown.

{md_table(METRICS_HEADERS, table)}

"""


def write_markdown(path: Path, args: argparse.Namespace, info: dict, runs: dict, tables: dict) -> None:
    versions = [(d, dist_version(d)) for d in dict.fromkeys([d for d in CONTENDERS.values() if d] + EXTRA_DISTS)]
    measured, results = md_main(args, tables["main"]) if "main" in tables else ("", "")
    sustained = md_sustained(args, tables["sustained"]) if "sustained" in tables else ""
    faults = md_faults(args, tables["faults"]) if "faults" in tables else ""
    startup = md_startup(args, tables["startup"]) if "startup" in tables else ""
    web = md_web(args, tables["web"]) if "web" in tables else ""
    web += md_web_instructions(args, tables["web-instructions"]) if "web-instructions" in tables else ""
    metrics = md_metrics(args, tables["metrics"]) if "metrics" in tables else ""
    raw = "\n\n".join("### %s\n\n%s" % (section.capitalize(), raw_table(section, section_runs))
                      for section, section_runs in runs.items())

    doc = f"""# Benchmarks

<!-- Generated by benches/run.py; edit the harness, not this file. -->

Side-by-side cost of tracing the same workload with oxapm and with other Python
tracing agents, plus how much of what each agent produced actually arrived;
then oxapm at a sustained rate and with a backend that is down or hanging.
Sections run: {", ".join(runs)}.

{measured}## Machine

* CPUs (`nproc`): {info['nproc']}
* CPU: {info['cpu']}
* Python: {info['python']} ({info['platform']})
* Load average at start: {info['load']}
* Date (UTC): {_dt.datetime.now(_dt.timezone.utc).strftime('%Y-%m-%d %H:%M')}

Versions:

{md_table(["Package", "Version"], [[d, v] for d, v in versions])}

## Command

```
{command_line(args)}
```

(`make bench` installs `benches/requirements.txt` into `.venv`, then runs
`.venv/bin/python benches/run.py`; flags: `--section main,sustained,faults,startup,web,web-instructions,metrics`,
`--transactions`, `--spans`, `--warmup`, `--repeat`, `--only NAME[,NAME]`,
`--sustained-rate`, `--sustained-seconds`, `--sustained-repeat`,
`--faults-repeat`, `--close-timeout`, `--startup-repeat`, `--web-seconds`,
`--web-repeat`, `--metrics-calls`, `--metrics-repeat`, `--out PATH`. The
report holds only the sections that were run.)

{results}{sustained}{faults}{startup}{web}{metrics}## Configuration of each contender

* **oxapm** and **elastic-apm** run literally the same code
  (`benches/contenders/_elastic_style.py`), only the imported module differs:
  `Client(service_name="bench", server_url=<sink>, metrics_interval="0ms",
  breakdown_metrics=False, central_config=False, cloud_provider="none")`, then per
  transaction `client.begin_transaction("bench")`, 10 ×
  `with capture_span(name, span_type="custom"): pass`,
  `client.end_transaction("txn", "success")`; `client.close()` at the end.
  Metrics are off because only traces are counted; breakdown metrics are off
  because with metrics off elastic-apm would still compute them on every span
  and never send them (this makes elastic-apm faster, not slower). Central
  config and cloud-metadata probing are off because the sink is not an APM
  Server and there is no cloud. Everything else (queue sizes, request
  size/time, span compression...) is left at each agent's defaults. The sink
  answers `GET /` with `{{"version": "8.15.0"}}` since elastic-apm asks for
  the server version.
* **oxapm-otlp**: the same code and `Client` options as oxapm but without
  `server_url`; instead the script sets `OTEL_TRACES_EXPORTER=otlp` and
  `OTEL_EXPORTER_OTLP_ENDPOINT=<sink>` in its environment before creating the
  `Client` (oxapm appends `/v1/traces`). With an explicit traces exporter and
  no `server_url` the intake exporter is off, so it exports OTLP/HTTP protobuf
  only. Batching is at oxapm's OTLP defaults (`OTEL_BSP_*`: batches of 512
  spans, 5 s schedule; queue `max_queue_size`).
* **oxapm-compressed** and **elastic-apm-compressed**: the same `Client`
  options as oxapm and elastic-apm, but every span is the same database call
  (`capture_span("span-0", span_type="db", span_subtype="sqlite",
  span_action="query", leaf=True)`), so each agent's span compression (on by
  default, `exact_match` up to 50 ms) sends one composite span per
  transaction. The sink counts a composite as the `composite.count` spans it
  stands for.
* **oxapm-otel-api**: the opentelemetry-sdk contender's workload through the
  OpenTelemetry API (`oxapm.otel.TracerProvider(client).get_tracer("bench")`,
  one root span + 10 children with `start_as_current_span`) on an oxapm
  `Client` configured as oxapm-otlp's, exporting OTLP/HTTP protobuf.
* **opentelemetry-sdk**: `TracerProvider` with a `BatchSpanProcessor` at its
  defaults (queue 2048 spans, batches of 512, 5 s schedule) feeding
  `OTLPSpanExporter` (HTTP/protobuf) to `<sink>/v1/traces`; one root span + 10
  children with `start_as_current_span`; `provider.shutdown()` at the end. The
  default queue drops spans when the application produces them faster than
  the exporter thread drains them -- that shows up as undelivered spans, and is
  what a user running the defaults gets.
* **ddtrace**: `from ddtrace.trace import tracer` with
  `DD_TRACE_AGENT_URL=<sink>`, `DD_SERVICE=bench`; root span + 10 children
  with `tracer.trace(name)`; `tracer.flush()` + `tracer.shutdown()` at the end.
  The trace API version is ddtrace's default (v0.5; the sink decodes v0.4 and
  v0.5). Instrumentation telemetry and remote configuration are disabled
  (`DD_INSTRUMENTATION_TELEMETRY_ENABLED=false`,
  `DD_REMOTE_CONFIGURATION_ENABLED=false`): they are side channels, not
  tracing, and the sink does not implement them. `/info` answers 404, so no
  client-side stats are computed. ddtrace is in the main table only.
* Any `ELASTIC_APM_*`, `OXAPM_*`, `OTEL_*` and `DD_*` variables from the calling
  shell are removed from the contenders' environment.
* The sink stores request bodies and decodes them only when the harness asks for
  counts (after the contender exited), so it uses as little CPU as possible
  while a contender is timed. It still shares the machine with the contender.

## Raw runs

{raw}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc)


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--section", default=",".join(SECTIONS), help="comma-separated subset of: " + ", ".join(SECTIONS))
    p.add_argument("--transactions", type=int, default=5000,
                   help="measured transactions, main and faults sections (default 5000)")
    p.add_argument("--spans", type=int, default=10, help="child spans per transaction (default 10)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up transactions, not timed (default 200)")
    p.add_argument("--repeat", type=int, default=3,
                   help="main section: repetitions per contender; median is reported (default 3)")
    p.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(CONTENDERS))
    p.add_argument("--sustained-rate", type=float, default=50000.0,
                   help="sustained section: target units (transactions + spans) per second (default 50000)")
    p.add_argument("--sustained-seconds", type=float, default=5.0,
                   help="sustained section: length of the measured loop at the target rate (default 5)")
    p.add_argument("--sustained-repeat", type=int, default=1, help="sustained section: repetitions (default 1)")
    p.add_argument("--faults-repeat", type=int, default=3, help="faults section: repetitions (default 3)")
    p.add_argument("--close-timeout", type=float, default=12.0,
                   help="faults section: seconds after which close() is reported hung (default 12)")
    p.add_argument("--startup-repeat", type=int, default=21, help="startup section: runs per command (default 21)")
    p.add_argument("--web-seconds", type=int, default=10, help="web section: measured seconds of load per run (default 10)")
    p.add_argument("--web-repeat", type=int, default=3, help="web section: repetitions (default 3)")
    p.add_argument("--metrics-calls", type=int, default=200_000, help="metrics section: timed calls per loop (default 200000)")
    p.add_argument("--metrics-repeat", type=int, default=3, help="metrics section: repetitions (default 3)")
    p.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"), help="markdown report path")
    p.add_argument("--timeout", type=int, default=600, help="seconds before a contender run is killed")
    args = p.parse_args(argv)
    if args.transactions < 1 or args.spans < 0 or args.warmup < 0 or args.repeat < 1:
        p.error("--transactions and --repeat must be >= 1, --spans and --warmup >= 0")
    if args.sustained_rate <= 0 or args.sustained_seconds <= 0 or args.sustained_repeat < 1 \
            or args.faults_repeat < 1 or args.close_timeout <= 0 or args.startup_repeat < 1 \
            or args.web_seconds < 1 or args.web_repeat < 1 or args.metrics_calls < 1 or args.metrics_repeat < 1:
        p.error("--sustained-rate, --sustained-seconds and --close-timeout must be > 0, "
                "--sustained-repeat, --faults-repeat, --startup-repeat, --web-seconds, --web-repeat, "
                "--metrics-calls and --metrics-repeat >= 1")
    for flag, value, choices in (("--section", args.section, SECTIONS), ("--only", args.only, CONTENDERS)):
        unknown = [n for n in value.split(",") if value and n.strip() not in choices]
        if unknown:
            p.error("unknown %s value(s) %s; choose from %s" % (flag, ", ".join(unknown), ", ".join(choices)))
    return args


def chosen(csv: str, choices) -> list[str]:
    """The names in ``csv`` (all when empty), in the canonical order of ``choices``, once each."""
    names = {n.strip() for n in csv.split(",")} if csv else set(choices)
    return [n for n in choices if n in names]


def main(argv=None) -> int:
    args = parse_args(argv)
    names = chosen(args.only, CONTENDERS)
    section_names = {"main": names, "sustained": [n for n in names if n in SUSTAINED_CONTENDERS],
                     "faults": [n for n in names if n in FAULT_CONTENDERS],
                     "startup": list(STARTUP_COMMANDS),  # launchers, not the contenders of --only
                     "web": list(WEB_CONTENDERS),
                     "web-instructions": list(INSTRUCTION_CONTENDERS),
                     "metrics": list(METRICS_PROVIDERS)}
    sections = [s for s in chosen(args.section, SECTIONS) if section_names[s]]  # --only may empty a section
    if not sections:
        print("nothing to run: --only leaves no contender in the chosen section(s)", file=sys.stderr)
        return 2
    info = machine_info()
    print("machine: %d CPU(s), %s, %s, load %s" % (info["nproc"], info["cpu"], info["python"], info["load"]),
          file=sys.stderr)

    runs: dict[str, list[tuple[int, dict]]] = {}
    sink = Sink()
    try:
        for section in sections:
            runs[section] = SECTION_RUNS[section][0](sink, args, section_names[section])
    finally:
        sink.close()

    tables = {section: SECTION_RUNS[section][1](args, section_runs) for section, section_runs in runs.items()}
    for section, table in tables.items():
        print_table(section.capitalize(), SECTION_RUNS[section][2], table)
    out = Path(args.out)
    write_markdown(out, args, info, runs, tables)
    print("\nwrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
