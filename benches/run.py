"""Side-by-side benchmark: oxapm vs elastic-apm vs OpenTelemetry SDK vs ddtrace.

Starts one loopback sink (benches/sink.py), then runs every contender in its
own process (benches/contenders/<name>_bench.py) against it, N times,
interleaved, and reports per contender the median/min cost per span and how
many of the events it produced actually reached the sink.  Writes the result
to docs/benchmarks.md.

    .venv/bin/python benches/run.py [--repeat 3] [--only oxapm,elastic-apm]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Optional

BENCHES = Path(__file__).resolve().parent
REPO = BENCHES.parent
CONTENDER_DIR = BENCHES / "contenders"
RESULT_MARKER = "BENCH_RESULT "

# name -> distribution whose version is reported (None: nothing to report).
CONTENDERS = {
    "bare": None,
    "oxapm": "oxapm",
    "elastic-apm": "elastic-apm",
    "opentelemetry-sdk": "opentelemetry-sdk",
    "ddtrace": "ddtrace",
}
# Contenders that ship nothing, so have no delivered figure.
NO_DELIVERY = {"bare"}

# Packages whose versions go in the report (besides the contenders).
EXTRA_DISTS = ["opentelemetry-exporter-otlp-proto-http", "opentelemetry-proto", "protobuf", "msgpack"]

# Agent configuration leaking in from the caller's shell would silently change
# what is measured; every contender sets what it needs explicitly.
SCRUB_ENV_PREFIXES = ("ELASTIC_APM_", "OXAPM_", "OTEL_", "DD_")

STRAGGLER_WAIT_S = 5.0  # max wait for late events after the contender exited
STABLE_S = 1.0  # ...but stop early once the count has not moved for this long


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


# --------------------------------------------------------------------------- running


def contender_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUB_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_one(name: str, sink: Sink, args: argparse.Namespace) -> dict:
    units = args.transactions * (args.spans + 1)
    cmd = [sys.executable, str(script_for(name)), "--sink", sink.url,
           "--transactions", str(args.transactions), "--spans", str(args.spans),
           "--warmup", str(args.warmup)]
    sink.reset()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout,
                              env=contender_env(), cwd=str(REPO))
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

    if name not in NO_DELIVERY:
        counts = sink.wait_delivered(units)
        result["delivered"] = counts["measured_total"]
        result["warmup_delivered"] = counts["warmup_total"]
        result["by_kind"] = counts["measured"]
        result["sink_errors"] = counts["errors"]
    return result


def summarize(name: str, runs: list[dict], units: int) -> dict:
    ok = [r for r in runs if r.get("ok")]
    failed = [r for r in runs if not r.get("ok")]
    row = {"contender": name, "runs": len(runs), "ok_runs": len(ok),
           "errors": sorted({r.get("error", "?") for r in failed})}
    if not ok:
        return row
    us = [r["us_per_span"] for r in ok]
    row.update(
        version=ok[0].get("version", ""),
        us_median=statistics.median(us),
        us_min=min(us),
        close_median=statistics.median(r["close_s"] for r in ok),
    )
    if name not in NO_DELIVERY:
        # Worst run: a delivery figure is only as good as its worst repetition.
        row["delivered"] = min(r["delivered"] for r in ok)
        row["delivered_max"] = max(r["delivered"] for r in ok)
        row["pct"] = 100.0 * row["delivered"] / units if units else 0.0
    return row


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


def table_rows(rows: list[dict], units: int) -> list[list[str]]:
    out = []
    for row in rows:
        if not row["ok_runs"]:
            out.append([row["contender"], "-", "FAILED", "-", "-", "-", "-", "; ".join(row["errors"])])
            continue
        delivered, pct = fmt_delivered(row, units)
        note = ""
        if row["errors"]:
            note = "%d/%d runs failed: %s" % (row["runs"] - row["ok_runs"], row["runs"], "; ".join(row["errors"]))
        out.append([row["contender"], row["version"] or "-", "%.2f" % row["us_median"], "%.2f" % row["us_min"],
                    delivered, pct, "%.2f" % row["close_median"], note])
    return out


HEADERS = ["Contender", "Version", "µs/span (median)", "µs/span (min)", "Delivered (worst run)", "%", "close() s",
           "Notes"]


def print_table(rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(HEADERS)]
    line = "  ".join(h.ljust(w) for h, w in zip(HEADERS, widths))
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
    extra = []
    for flag, default in (("transactions", 5000), ("spans", 10), ("warmup", 200), ("repeat", 3)):
        if getattr(args, flag) != default:
            extra.append("--%s %s" % (flag, getattr(args, flag)))
    if args.only:
        extra.append("--only " + args.only)
    if not extra:
        return "make bench"
    return ".venv/bin/python benches/run.py " + " ".join(extra)


def write_markdown(path: Path, args: argparse.Namespace, info: dict, rows: list[dict],
                   all_runs: list[tuple[int, dict]], units: int) -> None:
    t, s = args.transactions, args.spans
    versions = [(d, dist_version(d)) for d in [d for d in CONTENDERS.values() if d] + EXTRA_DISTS]
    raw = []
    for rep, r in all_runs:
        if r.get("ok"):
            deliv = "n/a" if r["contender"] in NO_DELIVERY else str(r["delivered"])
            warm = "n/a" if r["contender"] in NO_DELIVERY else str(r["warmup_delivered"])
            raw.append([str(rep), r["contender"], "%.2f" % r["us_per_span"], "%.3f" % r["loop_s"],
                        "%.3f" % r["close_s"], deliv, warm])
        else:
            raw.append([str(rep), r["contender"], "FAILED", "", "", "", r.get("error", "")])

    doc = f"""# Benchmarks

<!-- Generated by benches/run.py; edit the harness, not this file. -->

Side-by-side cost of tracing the same workload with oxapm and with other Python
tracing agents, plus how much of what each agent produced actually arrived.

## What is measured

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

## Machine

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
`.venv/bin/python benches/run.py`; flags: `--transactions`, `--spans`,
`--warmup`, `--repeat`, `--only NAME[,NAME]`, `--out PATH`.)

## Results

{md_table(HEADERS, table_rows(rows, units))}

## Configuration of each contender

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
  client-side stats are computed.
* Any `ELASTIC_APM_*`, `OXAPM_*`, `OTEL_*` and `DD_*` variables from the calling
  shell are removed from the contenders' environment.
* The sink stores request bodies and decodes them only when the harness asks for
  counts (after the contender exited), so it uses as little CPU as possible
  while a contender is timed. It still shares the machine with the contender.

## Raw runs

{md_table(["Rep", "Contender", "µs/span", "loop s", "close s", "Delivered", "Warm-up delivered"], raw)}
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc)


# --------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--transactions", type=int, default=5000, help="measured transactions (default 5000)")
    p.add_argument("--spans", type=int, default=10, help="child spans per transaction (default 10)")
    p.add_argument("--warmup", type=int, default=200, help="warm-up transactions, not timed (default 200)")
    p.add_argument("--repeat", type=int, default=3, help="repetitions per contender; median is reported (default 3)")
    p.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(CONTENDERS))
    p.add_argument("--out", default=str(REPO / "docs" / "benchmarks.md"), help="markdown report path")
    p.add_argument("--timeout", type=int, default=600, help="seconds before a contender run is killed")
    args = p.parse_args(argv)
    if args.transactions < 1 or args.spans < 0 or args.warmup < 0 or args.repeat < 1:
        p.error("--transactions and --repeat must be >= 1, --spans and --warmup >= 0")
    if args.only:
        unknown = [n for n in args.only.split(",") if n.strip() not in CONTENDERS]
        if unknown:
            p.error("unknown contender(s) %s; choose from %s" % (", ".join(unknown), ", ".join(CONTENDERS)))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(CONTENDERS)
    names = [n for n in CONTENDERS if n in names]  # canonical order, no duplicates
    units = args.transactions * (args.spans + 1)
    info = machine_info()
    print("machine: %d CPU(s), %s, %s, load %s" % (info["nproc"], info["cpu"], info["python"], info["load"]),
          file=sys.stderr)

    sink = Sink()
    all_runs: list[tuple[int, dict]] = []
    try:
        for rep in range(args.repeat):
            k = rep % len(names)
            for name in names[k:] + names[:k]:  # rotate the order every repetition
                r = run_one(name, sink, args)
                all_runs.append((rep + 1, r))
                if r.get("ok"):
                    extra = "" if name in NO_DELIVERY else ", delivered %d/%d, warm-up %d" % (
                        r["delivered"], units, r["warmup_delivered"])
                    if r.get("sink_errors"):
                        extra += ", sink errors: %s" % r["sink_errors"][:3]
                    print("[%d/%d] %-18s %8.2f µs/span%s" % (rep + 1, args.repeat, name, r["us_per_span"], extra),
                          file=sys.stderr)
                else:
                    print("[%d/%d] %-18s FAILED: %s" % (rep + 1, args.repeat, name, r.get("error")),
                          file=sys.stderr)
    finally:
        sink.close()

    rows = [summarize(n, [r for _, r in all_runs if r["contender"] == n], units) for n in names]
    print()
    print_table(table_rows(rows, units))
    out = Path(args.out)
    write_markdown(out, args, info, rows, all_runs, units)
    print("\nwrote %s" % out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
