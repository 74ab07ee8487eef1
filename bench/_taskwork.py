"""Task bodies shared by every task-queue system: a no-op and 1 ms of CPU work."""

from __future__ import annotations

import os
import time

REDIS_DB = int(os.environ.get("STEMNB_BENCH_REDIS_DB", "13"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
QUEUE = "stemnb-bench"


def spin(seconds: float) -> None:
    """Keep one core busy for ``seconds`` (a CPU-bound task, not a sleep)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def timed_spin(seconds: float) -> list[float]:
    """:func:`spin`, then return ``[pid, start, end]``: the process that ran it and when, by
    ``time.perf_counter()`` (CLOCK_MONOTONIC on Linux, one clock for every process)."""
    start = time.perf_counter()
    spin(seconds)
    return [os.getpid(), start, time.perf_counter()]
