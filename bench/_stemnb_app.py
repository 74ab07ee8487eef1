"""The stemnb application of the task benchmark's worker program: isolate tasks on Redis.

Its worker runs as ``python -m stemnb worker bench._stemnb_app:registry --broker REDIS_URL
--namespace stemnb-bench-process -c 2`` (the ``stemnb-redis-worker-process`` system), so its task
functions live in an importable module, as Celery's do in ``_celery_app``.
"""

from __future__ import annotations

from typing import Any

import stemnb

from ._taskwork import spin, timed_spin

NAMESPACE = "stemnb-bench-process"

registry = stemnb.TaskRegistry()


def noop(context: Any, args: Any) -> None:
    """Do nothing: measures pure queue overhead."""


def busy_1ms(context: Any, args: Any) -> None:
    """Burn 1 ms of CPU."""
    spin(0.001)


def timed_1ms(context: Any, args: Any) -> list[float]:
    """Burn 1 ms of CPU; return ``[pid, start, end]`` (see bench.gaps)."""
    return timed_spin(0.001)


registry.register("noop", stemnb.TaskHandler(noop, isolate=True))
registry.register("busy_1ms", stemnb.TaskHandler(busy_1ms, isolate=True))
registry.register("timed_1ms", stemnb.TaskHandler(timed_1ms, isolate=True))
