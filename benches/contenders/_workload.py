"""Shared driver for the contender scripts.

A contender script only knows how to set its agent up and how to run ONE
transaction; this module owns argument parsing, warm-up, timing, pacing and
the result line, so every contender is timed by exactly the same code.

Contract with ``benches/run.py``: the script prints exactly one line starting
with ``BENCH_RESULT `` followed by JSON on stdout, and exits 0 on success.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from importlib import metadata
from typing import Callable, Optional, Sequence, Tuple, Union

RESULT_MARKER = "BENCH_RESULT "

# Warm-up names start with "warmup": the sink counts those apart (see sink.py).
WARMUP_TXN = "warmup"
MEASURED_TXN = "txn"

TransactionFn = Callable[[str, Sequence[str]], None]
CloseFn = Callable[[], None]
StatsFn = Callable[[], dict]
# setup() returns (transaction, close) or (transaction, close, stats): stats()
# is the agent's own export counters (oxapm only), read after close().
Setup = Callable[[str], Union[Tuple[TransactionFn, CloseFn], Tuple[TransactionFn, CloseFn, StatsFn]]]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--sink", default=os.environ.get("BENCH_SINK_URL", "http://127.0.0.1:8200"),
                   help="base URL of benches/sink.py")
    p.add_argument("--transactions", type=int, default=5000)
    p.add_argument("--spans", type=int, default=10, help="child spans per transaction")
    p.add_argument("--warmup", type=int, default=200, help="warm-up transactions (not timed)")
    p.add_argument("--rate", type=float, default=0.0,
                   help="pace the measured loop at this many units (transactions + spans) per second; "
                        "0 = as fast as possible")
    p.add_argument("--close-timeout", type=float, default=0.0,
                   help="report close() as hung after this many seconds and exit; 0 = wait for it")
    return p.parse_args(argv)


def _emit(payload: dict) -> None:
    sys.stdout.write(RESULT_MARKER + json.dumps(payload) + "\n")
    sys.stdout.flush()


def run_loop(transaction: TransactionFn, span_names: Sequence[str], n: int, rate: float) -> None:
    """``n`` measured transactions, unpaced or on a fixed schedule of ``rate`` units/s."""
    if not rate:
        for _ in range(n):
            transaction(MEASURED_TXN, span_names)
        return
    # The schedule is absolute (transaction i is due at t0 + i * step), so an
    # oversleep is caught up on the next transactions; when behind, no sleep.
    step = (len(span_names) + 1) / rate
    sleep, now = time.sleep, time.perf_counter
    t0 = now()
    for i in range(n):
        ahead = t0 + i * step - now()
        if ahead > 0:
            sleep(ahead)
        transaction(MEASURED_TXN, span_names)


def close_within(close: CloseFn, timeout: float) -> bool:
    """Runs ``close()``; with a timeout, in a thread so that an agent stuck on a
    hanging backend cannot hang the run. Returns False if it did not return in time."""
    if not timeout:
        close()
        return True
    errors = []

    def run() -> None:
        try:
            close()
        except BaseException as exc:  # re-raised in the caller, as an inline close() would
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    if errors:
        raise errors[0]
    return not worker.is_alive()


def main(name: str, setup: Setup, dist: Optional[str] = None) -> None:
    """Run warm-up + measured loop + close for one contender and print the result.

    ``setup(sink_url)`` returns ``(transaction, close[, stats])`` where
    ``transaction(txn_name, span_names)`` performs one transaction with one
    child span per name, ``close()`` flushes/shuts the agent down and the
    optional ``stats()`` returns the agent's export counters.
    """
    args = parse_args()
    result = {"contender": name, "ok": False, "transactions": args.transactions,
              "spans": args.spans, "warmup": args.warmup, "rate": args.rate,
              "units": args.transactions * (args.spans + 1)}
    stage = "setup"
    try:
        # Names built once, outside the timed loop: string formatting is not what we measure.
        measured_spans = ["span-%d" % i for i in range(args.spans)]
        warmup_spans = ["warmup-span-%d" % i for i in range(args.spans)]

        t0 = time.perf_counter()
        transaction, close, *hooks = setup(args.sink)
        stats = hooks[0] if hooks else None
        result["setup_s"] = time.perf_counter() - t0
        if dist:
            try:
                result["version"] = metadata.version(dist)
            except metadata.PackageNotFoundError:  # e.g. an uninstalled dev checkout on sys.path
                result["version"] = "unknown"

        stage = "warmup"
        t0 = time.perf_counter()
        for _ in range(args.warmup):
            transaction(WARMUP_TXN, warmup_spans)
        result["warmup_s"] = time.perf_counter() - t0

        stage = "loop"
        gc.collect()  # start every contender's timed loop with the same clean heap
        cpu0, t0 = time.process_time(), time.perf_counter()
        run_loop(transaction, measured_spans, args.transactions, args.rate)
        loop_s = time.perf_counter() - t0
        # Whole-process CPU: the application thread plus the agent's own threads.
        result["cpu_s"] = time.process_time() - cpu0
        result["loop_s"] = loop_s
        result["us_per_span"] = loop_s / result["units"] * 1e6 if result["units"] else 0.0

        stage = "close"
        t0 = time.perf_counter()
        closed = close_within(close, args.close_timeout)
        result["close_s"] = time.perf_counter() - t0
        result["close_hung"] = not closed
        if stats:
            result["agent_stats"] = stats()
        result["ok"] = True
        if not closed:
            _emit(result)
            os._exit(0)  # the agent's atexit hook would wait on the same hung close()
    except BaseException as exc:  # report, never hang the harness on a half-dead agent
        result["stage"] = stage
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
        _emit(result)
        sys.stderr.flush()
        os._exit(1)  # skip atexit hooks of an agent that just failed
    _emit(result)
