"""Shared driver for the contender scripts.

A contender script only knows how to set its agent up and how to run ONE
transaction; this module owns argument parsing, warm-up, timing and the
result line, so every contender is timed by exactly the same code.

Contract with ``benches/run.py``: the script prints exactly one line starting
with ``BENCH_RESULT `` followed by JSON on stdout, and exits 0 on success.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from importlib import metadata
from typing import Callable, Optional, Sequence, Tuple

RESULT_MARKER = "BENCH_RESULT "

# Warm-up names start with "warmup": the sink counts those apart (see sink.py).
WARMUP_TXN = "warmup"
MEASURED_TXN = "txn"

TransactionFn = Callable[[str, Sequence[str]], None]
CloseFn = Callable[[], None]
Setup = Callable[[str], Tuple[TransactionFn, CloseFn]]


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--sink", default=os.environ.get("BENCH_SINK_URL", "http://127.0.0.1:8200"),
                   help="base URL of benches/sink.py")
    p.add_argument("--transactions", type=int, default=5000)
    p.add_argument("--spans", type=int, default=10, help="child spans per transaction")
    p.add_argument("--warmup", type=int, default=200, help="warm-up transactions (not timed)")
    return p.parse_args(argv)


def _emit(payload: dict) -> None:
    sys.stdout.write(RESULT_MARKER + json.dumps(payload) + "\n")
    sys.stdout.flush()


def main(name: str, setup: Setup, dist: Optional[str] = None) -> None:
    """Run warm-up + measured loop + close for one contender and print the result.

    ``setup(sink_url)`` returns ``(transaction, close)`` where
    ``transaction(txn_name, span_names)`` performs one transaction with one
    child span per name, and ``close()`` flushes/shuts the agent down.
    """
    args = parse_args()
    result = {"contender": name, "ok": False, "transactions": args.transactions,
              "spans": args.spans, "warmup": args.warmup,
              "units": args.transactions * (args.spans + 1)}
    stage = "setup"
    try:
        # Names built once, outside the timed loop: string formatting is not what we measure.
        measured_spans = ["span-%d" % i for i in range(args.spans)]
        warmup_spans = ["warmup-span-%d" % i for i in range(args.spans)]

        t0 = time.perf_counter()
        transaction, close = setup(args.sink)
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
        n = args.transactions
        t0 = time.perf_counter()
        for _ in range(n):
            transaction(MEASURED_TXN, measured_spans)
        loop_s = time.perf_counter() - t0
        result["loop_s"] = loop_s
        result["us_per_span"] = loop_s / result["units"] * 1e6 if result["units"] else 0.0

        stage = "close"
        t0 = time.perf_counter()
        close()
        result["close_s"] = time.perf_counter() - t0
        result["ok"] = True
    except BaseException as exc:  # report, never hang the harness on a half-dead agent
        result["stage"] = stage
        result["error"] = "%s: %s" % (type(exc).__name__, exc)
        _emit(result)
        sys.stderr.flush()
        os._exit(1)  # skip atexit hooks of an agent that just failed
    _emit(result)
