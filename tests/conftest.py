"""Shared fixtures: real pools that are always closed, and a check that no segment leaks."""

from __future__ import annotations

import gc

import pytest

import stemnb
from stemnb._shm import session_segments


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
def port():
    """A receive port closed after the test."""
    p = stemnb.ReceivePort("test")
    yield p
    p.close()
