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


def _start_private_server() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("no Redis server answers on 127.0.0.1:6379 and redis-server is not installed",
                    allow_module_level=True)
    port = _free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    atexit.register(_stop, proc)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 30
    while not _answers(url):  # bounded wait for a server we just started
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"redis-server on port {port} did not start (exit {proc.poll()})")
        time.sleep(0.05)
    return url


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
