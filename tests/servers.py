"""Real database and cache servers for the tests: session fixtures that start PostgreSQL, MariaDB,
Redis or memcached on a free loopback port in a temporary directory the first time a test asks for
one, with a test user who logs in with a password, and stop the server and delete the directory at
the end of the run. ``make test-servers`` installs them (Debian packages); a missing server fails the
tests that need it instead of skipping them."""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

HOST = "127.0.0.1"
USER = "oxapm"
PASSWORD = "oxapm-test-password"
DATABASE = "oxapm_test"
# Generous: on a loaded 2-core machine an initdb or a first start can take many times its usual second.
TIMEOUT = 120.0
INSTALL_HINT = "run `make test-servers` to install the test servers"


class Service:
    """Where a test server listens and how to log in. ``url`` and ``dsn`` are the connection
    strings its client libraries take (None where they take none); ``database`` is Redis's index."""

    def __init__(self, port, user=None, password=None, database=None, url=None, dsn=None):
        self.host = HOST
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.url = url
        self.dsn = dsn

    @property
    def address(self) -> str:
        return "%s:%d" % (self.host, self.port)

    def __repr__(self):
        return "Service(%s, user=%r, database=%r)" % (self.address, self.user, self.database)


def _program(name: str, debian_pattern: str = "") -> str:
    """The path of a server program: on PATH, else the newest match of ``debian_pattern`` (for
    Debian's versioned directories such as /usr/lib/postgresql/15/bin)."""
    matches = sorted(glob.glob(debian_pattern), key=lambda path: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)])
    found = shutil.which(name) or (matches[-1] if matches else None)
    if not found:
        pytest.fail("%s is not installed: %s" % (name, INSTALL_HINT), pytrace=False)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _exchange(port: int, request: bytes, size: int) -> bytes:
    """Sends ``request`` and returns the first ``size`` bytes of the answer (fewer, or b"", when
    the server closes, stalls or is not listening yet)."""
    answer = b""
    try:
        with socket.create_connection((HOST, port), timeout=2.0) as s:
            s.sendall(request)
            while len(answer) < size:
                chunk = s.recv(size - len(answer))
                if not chunk:
                    break
                answer += chunk
    except OSError:
        pass
    return answer


_prctl = getattr(ctypes.CDLL(None), "prctl", None)  # Linux only
_PR_SET_PDEATHSIG = 1


class _Server:
    """One server's temporary directory and process, run as an unprivileged user when the tests run
    as root (PostgreSQL and MariaDB refuse root). Leaving the ``with`` block stops the process and
    deletes the directory; a test run that dies takes its servers with it."""

    def __init__(self, name: str, system_user: str):
        self.name = name
        self.directory = Path(tempfile.mkdtemp(prefix="oxapm-%s-" % name.lower()))
        self.log = self.directory / "server.log"
        self.user = None
        if os.geteuid() == 0:
            try:
                self.user = pwd.getpwnam(system_user)
            except KeyError:
                self.user = pwd.getpwnam("nobody")
            self._own(self.directory)
        self.port = _free_port()
        self.process = None
        self.stop_signal = signal.SIGTERM

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _own(self, path: Path):
        if self.user is not None:
            os.chown(path, self.user.pw_uid, self.user.pw_gid)

    def write(self, name: str, text: str) -> Path:
        """A file in the directory, readable only by the server's user."""
        path = self.directory / name
        path.write_text(text)
        path.chmod(0o600)
        self._own(path)
        return path

    def _as_user(self):
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def run(self, *argv: str):
        """Runs a setup program (initdb and the like) as the server's user, or fails with its output."""
        program = os.path.basename(argv[0])
        try:
            done = subprocess.run(argv, cwd=self.directory, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=TIMEOUT, **self._as_user())
        except subprocess.TimeoutExpired:
            self.fail("could not be set up: %s did not finish within %ds" % (program, TIMEOUT), "")
        if done.returncode != 0:
            self.fail("could not be set up: %s exited with status %d" % (program, done.returncode), done.stdout + done.stderr)

    def start(self, argv, ready, stop_signal=signal.SIGTERM):
        """Starts the server, its output going to the log, and waits until ``ready()``."""
        self.stop_signal = stop_signal

        def die_with_parent():  # runs in the child, after it took the user's identity
            if _prctl is not None:
                _prctl(_PR_SET_PDEATHSIG, stop_signal)

        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(argv, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent, **self._as_user())
        deadline = time.monotonic() + TIMEOUT
        while not ready():
            if self.process.poll() is not None:
                self.fail("exited with status %d" % self.process.returncode, self._log_tail())
            if time.monotonic() > deadline:
                self.fail("did not accept connections within %ds" % TIMEOUT, self._log_tail())
            time.sleep(0.05)

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
        except OSError:
            return ""

    def fail(self, what: str, output: str):
        pytest.fail("%s on port %d %s\n%s" % (self.name, self.port, what, output), pytrace=False)


@pytest.fixture(scope="session")
def postgres():
    """PostgreSQL with the test user (a superuser, password authentication) and database."""
    # Its sibling programs (initdb, pg_isready, psql) are where the real file is, not next to a link.
    bin_dir = os.path.dirname(os.path.realpath(_program("postgres", "/usr/lib/postgresql/*/bin/postgres")))
    with _Server("PostgreSQL", "postgres") as server:
        password_file = server.write("password", PASSWORD)
        data = str(server.directory / "data")
        initdb_options = ["-D", data, "-U", USER, "--pwfile", str(password_file), "-A", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync"]
        server.run(os.path.join(bin_dir, "initdb"), *initdb_options)
        address = ["-h", HOST, "-p", str(server.port)]
        settings = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        is_ready = [os.path.join(bin_dir, "pg_isready"), "-q", "-d", "postgres", "-U", USER, *address]
        server.start(
            [os.path.join(bin_dir, "postgres"), "-D", data, *address, "-k", str(server.directory), *settings],
            ready=lambda: subprocess.run(is_ready).returncode == 0,
            # Fast shutdown: connections the tests left open must not hold up the end of the run.
            stop_signal=signal.SIGINT,
        )
        psql = [os.path.join(bin_dir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-U", USER, *address]
        created = subprocess.run([*psql, "-c", "CREATE DATABASE %s" % DATABASE], env=dict(os.environ, PGPASSWORD=PASSWORD), capture_output=True, text=True, timeout=TIMEOUT)
        if created.returncode != 0:
            server.fail("could not create the test database", created.stdout + created.stderr)
        yield Service(
            server.port,
            USER,
            PASSWORD,
            DATABASE,
            url="postgresql://%s:%s@%s:%d/%s" % (USER, PASSWORD, HOST, server.port, DATABASE),
            dsn="host=%s port=%d dbname=%s user=%s password=%s" % (HOST, server.port, DATABASE, USER, PASSWORD),
        )


@pytest.fixture(scope="session")
def odbc_postgres(postgres):
    """The ``postgres`` server through unixODBC's PostgreSQL driver: ``dsn`` is pyodbc's connection string."""
    import pyodbc

    driver = "PostgreSQL Unicode"
    if driver not in pyodbc.drivers():
        pytest.fail("the ODBC driver %r is not registered (Debian package odbc-postgresql): %s" % (driver, INSTALL_HINT), pytrace=False)
    dsn = "DRIVER={%s};SERVER=%s;PORT=%d;DATABASE=%s;UID=%s;PWD=%s" % (driver, HOST, postgres.port, DATABASE, USER, PASSWORD)
    return Service(postgres.port, USER, PASSWORD, DATABASE, dsn=dsn)


def _mariadb_ready(port: int) -> bool:
    # The server's greeting: a 4-byte packet header, then protocol version 10 (an error packet
    # starts with 0xff instead). MariaDB runs its --init-file before it listens.
    greeting = _exchange(port, b"", 5)
    return len(greeting) == 5 and greeting[4] == 10


@pytest.fixture(scope="session")
def mariadb():
    """MariaDB with the test user (all privileges, from any host) and database."""
    install_db = _program("mariadb-install-db")
    mariadbd = _program("mariadbd", "/usr/sbin/mariadbd")
    with _Server("MariaDB", "mysql") as server:
        data = str(server.directory / "data")
        server.run(install_db, "--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db")
        init = server.write(
            "init.sql",
            "CREATE DATABASE {db};\nCREATE USER '{user}'@'%' IDENTIFIED BY '{password}';\nGRANT ALL ON *.* TO '{user}'@'%';\n".format(db=DATABASE, user=USER, password=PASSWORD),
        )
        options = [
            "--no-defaults",  # first: no /etc/mysql configuration
            "--datadir=" + data,
            "--bind-address=" + HOST,
            "--port=%d" % server.port,
            "--socket=" + str(server.directory / "mysqld.sock"),
            "--pid-file=" + str(server.directory / "mysqld.pid"),
            "--init-file=" + str(init),
            "--skip-name-resolve",
            "--innodb-buffer-pool-size=32M",
            "--innodb-flush-log-at-trx-commit=0",
        ]
        server.start([mariadbd, *options], ready=lambda: _mariadb_ready(server.port))
        yield Service(server.port, USER, PASSWORD, DATABASE, url="mysql://%s:%s@%s:%d/%s" % (USER, PASSWORD, HOST, server.port, DATABASE))


@pytest.fixture(scope="session")
def redis_server():
    """Redis whose only user is the test user (an ACL user with a password); database 0."""
    redis = _program("redis-server")
    with _Server("Redis", "redis") as server:
        acl = ["--user", "default", "off", "--user", USER, "on", ">" + PASSWORD, "~*", "&*", "+@all"]
        options = ["--bind", HOST, "--port", str(server.port), "--dir", str(server.directory), "--save", "", "--appendonly", "no", *acl]
        login = ("AUTH %s %s\r\nPING\r\n" % (USER, PASSWORD)).encode()
        server.start([redis, *options], ready=lambda: _exchange(server.port, login, 12) == b"+OK\r\n+PONG\r\n")
        yield Service(server.port, USER, PASSWORD, 0, url="redis://%s:%s@%s:%d/0" % (USER, PASSWORD, HOST, server.port))


@pytest.fixture(scope="session")
def memcached():
    """memcached over TCP, without authentication (pymemcache and python-memcached have none)."""
    program = _program("memcached")
    with _Server("memcached", "memcache") as server:
        options = ["-l", HOST, "-p", str(server.port), "-U", "0", "-m", "64"]
        server.start([program, *options], ready=lambda: _exchange(server.port, b"version\r\n", 8) == b"VERSION ")
        yield Service(server.port)
