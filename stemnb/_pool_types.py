"""The records an :class:`~stemnb.IsolatePool` reports: recycle events, statistics, isolate rows."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class IsolateRecycleReason(enum.Enum):
    """Why a pool ended one of its processes."""

    SCALE_DOWN = "scale_down"  #: the pool shrank
    MAX_TASKS = "max_tasks"  #: it ran ``max_tasks_per_isolate`` calls
    MEMORY = "memory"  #: its RSS exceeded ``max_memory_per_isolate``
    SHUTDOWN = "shutdown"  #: the pool closed
    TIME_LIMIT = "time_limit"  #: a call exceeded its time limit
    CANCELLED = "cancelled"  #: its running call was cancelled
    KILLED = "killed"  #: ``kill_isolate`` ended it
    CRASHED = "crashed"  #: it died on its own (segfault, ``os._exit``, OOM, SIGKILL)


@dataclass(frozen=True)
class IsolateRecycleEvent:
    """One process of a pool ended: why, which, after how many calls, at what RSS."""

    reason: IsolateRecycleReason
    pid: int
    tasks_executed: int
    memory_bytes: int | None
    exitcode: int | None = None


@dataclass(frozen=True)
class PoolStatistics:
    """A snapshot of a pool's counters (``IsolatePool.statistics()``)."""

    state: str
    size: int
    starting: int
    idle: int
    busy: int
    queued: int
    submitted: int
    completed: int
    failed: int
    cancelled: int
    recycled: int


@dataclass(frozen=True)
class IsolateInfo:
    """One process of a pool (``IsolatePool.isolates()``)."""

    pid: int | None
    debug_name: str
    state: str
    tasks_done: int
    rss_bytes: int
    current_call: str | None
    call_started: float | None
