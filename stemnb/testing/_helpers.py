"""Waiting helpers shared by the contract suites and offered to users' tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from .._broker import Broker

T = TypeVar("T")

__all__ = ["eventually", "join", "unique_name"]


def join(broker: Broker, queue: str = "default", timeout: float | None = 10.0) -> None:
    """Block until ``queue`` on ``broker`` has nothing ready, delayed or in flight (dramatiq's join).

    Raises:
        TimeoutError: ``timeout`` seconds passed first; the message gives the queue's counts.
    """
    if broker.wait_drained(queue, timeout):
        return
    raise TimeoutError(
        f"queue {queue!r} was not drained within {timeout} s: "
        f"{broker.pending_count(queue)} ready, {broker.delayed_count(queue)} delayed, "
        f"{broker.inflight_count(queue)} in flight"
    )


def eventually(check: Callable[[], T], timeout: float = 5.0, interval: float = 0.01) -> T:
    """Call ``check`` until it returns something truthy and return that (polling with a deadline).

    For conditions nothing notifies about, such as a TTL passing in an external store.

    Raises:
        TimeoutError: ``check`` stayed falsy for ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"{getattr(check, '__name__', check)!s} still false after {timeout} s"
            )
        time.sleep(interval)


def unique_name(prefix: str = "contract") -> str:
    """Return a fresh queue/key name, so suites can share one external server."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
