"""The Redis server the Redis tests talk to: the one on 127.0.0.1:6379 if it answers, else one started here.

A private ``redis-server`` (no persistence) is started on a free loopback port when no server answers,
and stopped when the test session's interpreter exits. Tests are skipped only if neither the Python
client nor a ``redis-server`` binary is available.
"""

from __future__ import annotations

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

redis = pytest.importorskip("redis")

DEFAULT_URL = os.environ.get("STEMNB_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child before exec: the server gets SIGTERM when the test process ends, however it ends."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


class PrivateServer:
    """A ``redis-server`` of the test's own on a free loopback port: ``kill()`` it (SIGKILL) and
    ``start()`` it again on the same port, as a restarted Redis. Without ``aof_dir`` it keeps
    nothing, so a restart comes back empty; with it, every write is on disk before it is
    acknowledged and a restart reloads them all. Skips the calling test (or module) when the
    binary is not installed."""

    def __init__(self, aof_dir: str | None = None) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed", allow_module_level=True)
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        # with aof_dir: every write is fsynced to an append-only file there, and a restart reloads it
        self.persistence = (
            ["--appendonly", "yes", "--appendfsync", "always", "--dir", aof_dir] if aof_dir else ["--appendonly", "no"]
        )
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", *self.persistence],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 30
        while not _answers(self.url):  # bounded wait for a server we just started
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server on port {self.port} did not start (exit {self.proc.poll()})")
            time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def close(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None


def _start_private_server() -> str:
    if shutil.which("redis-server") is None:
        pytest.skip("no Redis server answers on 127.0.0.1:6379 and redis-server is not installed",
                    allow_module_level=True)
    server = PrivateServer()
    atexit.register(server.close)
    return server.url


REDIS_URL = DEFAULT_URL if _answers(DEFAULT_URL) else _start_private_server()


def drop_namespace(namespace: str) -> None:
    """Delete every key under ``namespace:`` (tests use a fresh namespace each)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{namespace}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()

