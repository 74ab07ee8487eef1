"""Shared fixtures: real pools that are always closed, and a check that no segment leaks."""

from __future__ import annotations

import gc
import multiprocessing

import pytest

import stemnb
from stemnb._shm import session_segments


def pytest_configure(config):
    """Give SIGINT Python's own handler if the shell started pytest ignoring it (as a background job
    of a shell without job control does): the interrupt tests send SIGINT to this process and
    expect a KeyboardInterrupt, as the notebook's interrupt button gives a kernel."""
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(session, config, items):
    """Run the real-browser tests last: playwright's sync API drives an event loop on the main
    thread, and no other test should ever run beside it."""
    items.sort(key=lambda item: "tests/browser/" in item.nodeid.replace("\\", "/"))


@pytest.fixture
def pool():
    """A two-process pool, closed after the test; the test fails if it leaks a segment."""
    before = set(session_segments())
    p = stemnb.IsolatePool(2, debug_name="test")
    yield p
    p.close(timeout=30)
    gc.collect()
    leaked = set(session_segments()) - before
    assert not leaked, f"shared-memory segments left behind: {sorted(leaked)}"


@pytest.fixture
def h():
    """A worker harness of real in-memory parts (``worker_support.Harness``), closed after the test."""
    from worker_support import Harness

    harness = Harness()
    yield harness
    harness.close()


@pytest.fixture
def port():
    """A receive port closed after the test."""
    p = stemnb.ReceivePort("test")
    yield p
    p.close()


@pytest.fixture
def redis_client():
    """A plain client (bytes replies) of the Redis server the Redis tests use, closed after the test."""
    import redis
    from redis_support import REDIS_URL

    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def pipe():
    """Both ends of a ``multiprocessing.Pipe()`` (a Unix socket pair), closed after the test."""
    a, b = multiprocessing.Pipe()
    try:
        yield a, b
    finally:
        a.close()
        b.close()
