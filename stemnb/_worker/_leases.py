"""Lease renewal for held deliveries, per-task heartbeats and soft time limits."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._events import WorkerEventType
from ._active import ActiveTask
from ._outage import Outage

if TYPE_CHECKING:
    from ._worker import Worker

MAX_RENEWAL_INTERVAL = 30.0


def renewal_interval(lease: float) -> float:
    """Seconds between renewals of a ``lease``-second lease: half of it, at most 30 s.

    Stem clamps to at least 1 s, which lets leases shorter than 2 s expire while the task runs;
    stemnb renews any lease at half its length.
    """
    return max(0.005, min(MAX_RENEWAL_INTERVAL, lease / 2))


class Leases:
    """Keeps every held delivery's lease alive from receipt until it is settled."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self.last_renewal: float | None = None
        self.renewals = 0
        self._outage = Outage(worker.worker_id, "renewing leases")  # renewals all run on the timer thread

    def track(self, task: ActiveTask) -> None:
        """Start renewing ``task``'s lease (no-op for lease-less broadcast deliveries)."""
        expires = task.delivery.lease_expires_at
        if expires is None:
            return
        task.lease_length = max(0.01, expires - time.time())
        self._schedule(task, task.lease_length)

    def extend(self, task: ActiveTask, seconds: float) -> None:
        """Extend ``task``'s lease to ``seconds`` from now and renew at that length from then on."""
        if task.delivery.lease_expires_at is None:
            return
        task.lease_length = seconds
        self._renew(task)
        for handle in [h for h in task.timers if h.name == "lease"]:
            handle.cancel()
            task.timers.remove(handle)
        self._schedule(task, seconds)

    def _schedule(self, task: ActiveTask, lease: float) -> None:
        interval = renewal_interval(lease)
        task.timers.append(
            self._worker._timers.call_every(interval, lambda: self._renew_on_time(task), name="lease")
        )

    def _renew(self, task: ActiveTask) -> None:
        if task.settled.is_set() or task.lease_length is None:
            return
        if self._worker.broker.extend_lease(task.delivery, task.lease_length):
            self.last_renewal = time.time()
            self.renewals += 1

    def _renew_on_time(self, task: ActiveTask) -> None:
        """The renewal timer's callback: a broker that cannot be reached is logged once per
        outage (the next renewal tries again), not with a traceback per task per renewal."""
        self._outage.attempt(lambda: self._renew(task))


def start_task_timers(worker: Worker, task: ActiveTask, soft_limit: float | None) -> None:
    """Start ``task``'s heartbeat timer and its soft-time-limit timer (when set)."""
    if worker.heartbeat_interval and worker.heartbeat_interval > 0:
        task.timers.append(
            worker._timers.call_every(
                worker.heartbeat_interval, lambda: worker._task_heartbeat(task, explicit=False), name="heartbeat"
            )
        )
    if soft_limit:
        task.timers.append(
            worker._timers.call_later(soft_limit, lambda: _soft_limit_hit(worker, task, soft_limit), name="soft")
        )


def _soft_limit_hit(worker: Worker, task: ActiveTask, limit: float) -> None:
    if task.settled.is_set():
        return
    worker._emit(WorkerEventType.TIMEOUT, task, data={"level": "soft", "limit": limit})
