"""The CPU priority of pool processes: a little below the process that drives them.

When the cores are saturated by calls, the process that feeds them (a notebook's kernel, a task
worker with its threads, a producer) has to get a core the moment it wakes: to read a result,
store it and send the next call. At the same priority as the pool it waits its turn behind
processes that spin, and the pool then sits idle waiting for it. Measured with 1 ms tasks on
two cores (``bench.gaps``), the isolates were busy 58-62 % of the time at the same priority and
62-70 % at a lower one, and the task worker ran a tenth faster (docs/performance.md). The notebook
also keeps answering while its pool computes.

A pool process adds ``nice`` to its niceness when it starts (``os.nice``), so it stays that far
below whoever started it, nested pools included. On Linux with session autogroups or per-user
or per-container CPU cgroups (systemd, Kubernetes) that only orders the user's own processes;
elsewhere the pool also yields to other programs' processes by that much. ``nice=0`` keeps the
caller's priority.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["DEFAULT_NICE", "check_nice", "lower_priority"]

DEFAULT_NICE = 5
"""How far below its caller a pool process runs by default (niceness steps: 5 is a third of the
weight when it competes for a core)."""


def check_nice(nice: Any) -> int:
    """``nice`` if it is an int from 0 to 19.

    Raises:
        TypeError: not an int.
        ValueError: outside 0-19 (a negative one would need privileges to raise a priority).
    """
    if isinstance(nice, bool) or not isinstance(nice, int):
        raise TypeError(f"nice must be an int from 0 to 19, got {nice!r}")
    if not 0 <= nice <= 19:
        raise ValueError(f"nice must be from 0 to 19 (how far below its caller a pool process runs), got {nice}")
    return nice


def lower_priority(nice: int) -> None:
    """Lower this process's CPU priority by ``nice`` steps (nothing where the platform cannot)."""
    if nice and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:  # pragma: no cover - a platform or sandbox that refuses: run at the caller's
            pass
