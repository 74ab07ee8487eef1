"""Autoscaling by backlog per isolate, with cooldowns (Stem's rules), and pool lifecycle events."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .._events import WorkerEventType

if TYPE_CHECKING:
    from ._worker import Worker


class Autoscaler:
    """Evaluates every ``tick``: scale up by ``scale_up_step`` when ``depth / current >=
    backlog_per_isolate`` (and depth > 0, below max, cooldown over); scale down by
    ``scale_down_step`` once the worker has been idle (no backlog, nothing in flight) for
    ``idle_period`` (above min, cooldown over)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.config = worker.autoscale_config
        self.last_up: float | None = None
        self.last_down: float | None = None
        self.idle_since: float | None = None
        self.depth = 0

    def evaluate(self, now: float | None = None) -> int:
        """Apply the rules once; return the (possibly new) concurrency."""
        now = time.monotonic() if now is None else now
        w, cfg = self.worker, self.config
        self.depth = queue_depth(w, self.depth)
        current = w.active_concurrency
        running = len(w._active.running())
        backlog = self.depth + max(0, len(w._active) - running)
        maximum = cfg.max_concurrency or w.concurrency
        if backlog > 0 and current < maximum and _elapsed(self.last_up, cfg.scale_up_cooldown, now):
            if backlog / current >= cfg.backlog_per_isolate:
                self.last_up = now
                self.idle_since = None
                return self._change(min(maximum, current + cfg.scale_up_step), "backlog", backlog, running)
        if backlog == 0 and running == 0:
            if self.idle_since is None:
                self.idle_since = now
            idle_long = now - self.idle_since >= cfg.idle_period
            if idle_long and current > cfg.min_concurrency and _elapsed(self.last_down, cfg.scale_down_cooldown, now):
                self.last_down = now
                return self._change(max(cfg.min_concurrency, current - cfg.scale_down_step), "idle", backlog, running)
        else:
            self.idle_since = None
        return current

    def _change(self, n: int, reason: str, backlog: int, inflight: int) -> int:
        before = self.worker.active_concurrency
        self.worker._set_concurrency(n)
        self.worker.emit(
            WorkerEventType.SCALED,
            data={"from": before, "to": n, "reason": reason, "backlog": backlog, "inflight": inflight},
        )
        return n


def _elapsed(last: float | None, cooldown: float, now: float) -> bool:
    return last is None or now - last >= cooldown


def queue_depth(worker: Worker, previous: int = 0) -> int:
    """Sum of ready envelopes over the subscribed queues (the previous value if the broker fails)."""
    try:
        return sum(worker.broker.pending_count(q) for q in worker.subscription.queues)
    except Exception:
        return previous


def start(worker: Worker) -> None:
    """Start the autoscaler timer when autoscaling is enabled."""
    if not worker.autoscale_config.enabled:
        return
    scaler = Autoscaler(worker)
    worker._autoscaler = scaler
    worker._timers.call_every(worker.autoscale_config.tick, scaler.evaluate, name="autoscale")


def watch_pool(worker: Worker, pool: Any) -> None:
    """Turn the pool's spawn / dispose / recycle callbacks into worker events."""
    pool.on_spawned(lambda pid: worker.emit(WorkerEventType.CHILD_INIT, data={"pid": pid}))
    pool.on_disposed(lambda pid: worker.emit(WorkerEventType.CHILD_SHUTDOWN, data={"pid": pid}))
    pool.on_recycle(
        lambda ev: worker.emit(
            WorkerEventType.RECYCLED,
            data={
                "reason": ev.reason,
                "pid": ev.pid,
                "tasks_executed": ev.tasks_executed,
                "memory_bytes": ev.memory_bytes,
            },
        )
    )
