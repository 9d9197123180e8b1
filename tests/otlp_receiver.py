"""A real OTLP receiver for end-to-end tests: the ``rotel-agent`` collector from the ``rotel`` PyPI
package, run in the foreground on loopback with a blackhole exporter, printing every span and log
record it receives.

Tests read what it received as text (``output()`` / ``wait_for()``); a span looks like::

    Span #0
        Trace ID       : 652219c43441434b33623777f3ad1d8c
        Parent ID      : 8e653a5544d30946
        ID             : c038a5794e62e64e
        Name           : child-http
        Kind           : SPAN_KIND_INTERNAL
    ...
    Attributes:
         -> http.method: Str(GET)
         -> count: Int(42)
"""

import importlib.util
import os
import shutil
import socket
import subprocess
import sysconfig
import threading
import time
from typing import List, Optional

import pytest

# An override for environments without a wheel: rotel ships cp310-cp313 manylinux_2_34/macOS wheels
# only, but the binary itself does not depend on Python.
AGENT_ENV_OVERRIDE = "OXAPM_TEST_ROTEL_AGENT"
READY_LINE = "Starting Rotel."


def rotel_agent_path() -> Optional[str]:
    """The rotel-agent executable for the current interpreter, or None if rotel is not installed."""
    override = os.environ.get(AGENT_ENV_OVERRIDE)
    if override:
        return override
    # The wheel ships the binary as package data (site-packages/rotel/rotel-agent), not as a script.
    spec = importlib.util.find_spec("rotel")
    for directory in (spec.submodule_search_locations or []) if spec else []:
        candidate = os.path.join(directory, "rotel-agent")
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    path = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    return shutil.which("rotel-agent", path=path)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class RotelReceiver:
    """One rotel-agent process; ``http_endpoint``/``grpc_endpoint`` are set once ``start()`` returns."""

    def __init__(self, agent: str, startup_timeout: float = 10.0):
        self.agent = agent
        self.startup_timeout = startup_timeout
        self.proc = None  # type: Optional[subprocess.Popen]
        self.http_endpoint = ""
        self.grpc_endpoint = ""
        self._lines = []  # type: List[str]
        self._lock = threading.Lock()
        self._reader = None  # type: Optional[threading.Thread]

    def start(self, grpc_port: Optional[int] = None) -> "RotelReceiver":
        """Starts on fresh ports, or with ``grpc_port`` given (a receiver that comes up late)."""
        # Ports come from bind(0) then are released, so another process may grab one first: rotel then
        # exits with "unable to bind"; retry with fresh ports rather than fail the test.
        for _ in range(3):
            if self._try_start(grpc_port):
                return self
            if "unable to bind" not in self.output() or grpc_port is not None:
                break
        code = self.proc.returncode if self.proc else None
        raise RuntimeError(
            "rotel-agent %s; output:\n%s"
            % (
                "exited with code %s" % code
                if code not in (None, -15)  # -15: we terminated it at the deadline
                else "was not ready within %.0fs" % self.startup_timeout,
                self.output() or "(none)",
            )
        )

    def _try_start(self, grpc_port: Optional[int]) -> bool:
        http_port, grpc_port = free_port(), grpc_port or free_port()
        # The binary reads every ROTEL_* variable as a flag; keep the caller's out of our config.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ROTEL_")}
        env["NO_COLOR"] = "1"  # it writes ANSI colours even into a pipe otherwise
        cmd = [
            self.agent, "start",
            "--exporter", "blackhole",
            "--debug-log", "traces",
            "--debug-log", "logs",
            # "basic" only logs span counts; "detailed" prints ids, names, attributes, events.
            "--debug-log-verbosity", "detailed",
            "--otlp-http-endpoint", "127.0.0.1:%d" % http_port,
            "--otlp-grpc-endpoint", "127.0.0.1:%d" % grpc_port,
        ]  # fmt: skip
        with self._lock:
            self._lines = []
        # Foreground (no --daemon), so the process is ours to stop; stderr carries bind errors.
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=env, universal_newlines=True, errors="replace",
        )  # fmt: skip
        # A thread drains the pipe so the agent never blocks on a full pipe buffer.
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        # Ready = the log line it prints only after binding both listeners (a bind failure exits
        # before it), plus both ports accepting; a port check alone could hit a squatter's socket.
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and self.proc.poll() is None:
            if READY_LINE in self.output() and _port_open(http_port) and _port_open(grpc_port):
                self.http_endpoint = "http://127.0.0.1:%d" % http_port
                self.grpc_endpoint = "http://127.0.0.1:%d" % grpc_port
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def _read(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            with self._lock:
                self._lines.append(line)

    def output(self) -> str:
        """Everything the agent printed so far (stdout and stderr)."""
        with self._lock:
            return "".join(self._lines)

    def wait_for(self, text: str, timeout: float = 10.0) -> bool:
        """Polls the output until ``text`` appears; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if text in self.output():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: it shuts down cleanly and exits 0
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.proc.stdout.close()


@pytest.fixture
def rotel():
    """A started RotelReceiver, stopped after the test (startup takes ~10 ms, so per test is cheap)."""
    agent = rotel_agent_path()
    if agent is None:
        # Not a skip: the test extra installs rotel, so a missing binary is a broken environment.
        pytest.fail(
            "rotel-agent not found: pip install rotel (oxapm's test extra), or set %s to the binary"
            % AGENT_ENV_OVERRIDE,
            pytrace=False,
        )
    receiver = RotelReceiver(agent).start()
    try:
        yield receiver
    finally:
        receiver.stop()
