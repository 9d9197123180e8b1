"""What the cache instrumentation tests share: applying oxapm's own instrumentations of the libraries
under test, the context their spans are exported with, a loopback port nothing listens on, and cache
servers listening on a unix socket."""

import socket

import pytest
import servers

import oxapm
from oxapm.instrumentation import base, control, registry


@pytest.fixture
def instrument(monkeypatch):
    """``instrument(*names)`` applies those registered instrumentations, and no other, the way
    ``oxapm.instrument()`` does (after the client's disable lists); the test's end removes them."""
    monkeypatch.setattr(control, "_active", {})
    monkeypatch.setattr(control, "_waiting", {})
    monkeypatch.setattr(control, "_unsupported", set())
    monkeypatch.setattr(base, "_reported", set())  # each test sees the first failure it causes
    every = registry.entries()

    def apply(*names):
        monkeypatch.setattr(registry, "_entries", {name: every[name] for name in names})
        oxapm.instrument()
        return control.applied()

    yield apply
    oxapm.uninstrument()


def exported_context(subtype, *server):
    """A cache span's context as exported: the cache as db type, the server (a host and port, a
    socket's path, or none) as destination, and the service target the engine infers from them."""
    destination = dict(zip(("address", "port"), server))
    destination["service"] = {"name": "", "resource": subtype, "type": ""}  # the deprecated form, still filled
    return {"db": {"type": subtype}, "destination": destination, "service": {"target": {"type": subtype}}}


def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused."""
    with socket.socket() as s:
        s.bind((servers.HOST, 0))
        return s.getsockname()[1]


def _answers(path: str, request: bytes, prefix: bytes) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(2.0)
            s.connect(path)
            s.sendall(request)
            return s.recv(len(prefix)) == prefix
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_unix_socket():
    """The path of a Redis listening only on a unix socket (no password)."""
    with servers._Server("Redis", "redis") as server:
        path = str(server.directory / "redis.sock")
        options = ["--port", "0", "--unixsocket", path, "--unixsocketperm", "777", "--dir", str(server.directory), "--save", "", "--appendonly", "no"]
        server.start([servers._program("redis-server"), *options], ready=lambda: _answers(path, b"PING\r\n", b"+PONG"))
        yield path


@pytest.fixture(scope="session")
def memcached_unix_socket():
    """The path of a memcached listening only on a unix socket."""
    with servers._Server("memcached", "memcache") as server:
        path = str(server.directory / "memcached.sock")
        server.start([servers._program("memcached"), "-s", path, "-a", "0777", "-m", "64"], ready=lambda: _answers(path, b"version\r\n", b"VERSION "))
        yield path
