"""OTEL_TRACES_EXPORTER=console prints each finished transaction as an indented waterfall."""

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent / "examples" / "shop.py"


def test_the_demo_prints_waterfalls():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ELASTIC_APM_", "OTEL_"))}
    env["OTEL_TRACES_EXPORTER"] = "console"
    out = subprocess.run([sys.executable, str(EXAMPLE)], env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    lines = out.splitlines()
    orders = next(i for i, line in enumerate(lines) if line.startswith("GET /orders · request ·"))
    assert "success · HTTP 2xx · trace " in lines[orders]
    assert lines[orders + 1].startswith("├─ SELECT id, item, quantity FROM orders (db.sqlite.query) · +")
    assert lines[orders + 2].startswith("└─ GET /stock (external.http) · +")
    checkout = next(i for i, line in enumerate(lines) if line.startswith("GET /checkout · request ·"))
    assert "failure · HTTP 5xx" in lines[checkout]
    assert lines[checkout + 1].startswith("└─ compute total (code.custom)") and lines[checkout + 1].endswith("failure")
    assert lines[checkout + 2].startswith("   └─ SELECT item, quantity FROM orders (db.sqlite.query)")
    assert any(line.startswith("error ") and "ZeroDivisionError: division by zero" in line for line in lines)
    # The downstream call continued the caller's trace.
    stock = next(line for line in lines if line.startswith("GET /stock · request ·"))
    assert stock.split("trace ")[1] == lines[orders].split("trace ")[1]
