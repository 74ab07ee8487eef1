"""Revocations and queue pauses as one worker sees them, kept live from the revoke store.

Stem loaded the store only at start; stemnb subscribes to the store's change notifications, so
a revocation (or a queue pause) made anywhere reaches a running worker at once. A terminate
revocation of a running task asks it to stop cooperatively (its next heartbeat / progress /
extend_lease raises TaskRevokedError, inline or in an isolate); an isolate task that has not
stopped after ``lifecycle.force_shutdown_after`` seconds is stopped by ending its process.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .._options import to_seconds

if TYPE_CHECKING:
    from ._active import ActiveTask
    from ._worker import Worker

log = logging.getLogger("stemnb.worker")

PAUSE_PREFIX = "__stem.queue.pause__:"
PRUNE_INTERVAL = 60.0


@dataclasses.dataclass(frozen=True)
class LocalRevocation:
    """What the worker remembers about one revoked task id."""

    task_id: str
    terminate: bool
    reason: str | None
    version: int
    expires_at: float | None = None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class Revocations:
    """The worker's view of revocations and paused queues, applied live."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self._entries: dict[str, LocalRevocation] = {}
        self._paused: dict[str, int] = {}  # queue -> version of the pause entry
        self._resumed: dict[str, int] = {}
        self._lock = threading.Lock()
        self._subscription: Any = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Load the store's entries for the namespace and subscribe to its changes."""
        self.worker._timers.call_every(PRUNE_INTERVAL, self.prune, name="revocation-prune")
        store = self.worker.revoke_store
        if store is None:
            return
        from . import _revoke_adapter as adapter

        self._subscription = adapter.subscribe(store, self.worker.namespace, self.apply)
        for entry in adapter.load(store, self.worker.namespace):
            self.apply(entry)

    def stop(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            from . import _revoke_adapter as adapter

            adapter.unsubscribe(subscription)

    # -- changes ----------------------------------------------------------------------------
    def revoke(self, task_id: str, *, terminate: bool = False, reason: str = "revoked", persist: bool = True,
               expires: float | None = None) -> None:
        """Revoke ``task_id`` here and, when ``persist``, in the store (reaching other workers);
        for ``expires`` seconds when given (ValueError unless a finite number > 0, TypeError
        unless a number or timedelta)."""
        seconds = to_seconds("revoke() expires", expires, allow_zero=False)
        expires_at = None if seconds is None else time.time() + seconds
        self._change(task_id, terminate=terminate, reason=reason, persist=persist, expires_at=expires_at)

    def pause_queue(self, queue: str) -> None:
        self._change(PAUSE_PREFIX + queue, terminate=False, reason="pause", persist=True)

    def resume_queue(self, queue: str) -> None:
        self._change(PAUSE_PREFIX + queue, terminate=False, reason="resume", persist=True)

    def _change(self, task_id: str, *, terminate: bool, reason: str, persist: bool,
                expires_at: float | None = None) -> None:
        version = time.time_ns() // 1000
        store = self.worker.revoke_store
        if persist and store is not None:
            from . import _revoke_adapter as adapter

            self.apply(adapter.upsert(store, self.worker.namespace, task_id, terminate, reason, version,
                                      self.worker.worker_id, expires_at))
        else:
            self.apply(LocalRevocation(task_id, terminate, reason, version, expires_at))

    def apply(self, entry: Any) -> None:
        """Apply one entry (from the store or local); stale versions are ignored."""
        local = _local(entry)
        if local.task_id.startswith(PAUSE_PREFIX):
            return self._apply_pause(local)
        with self._lock:
            known = self._entries.get(local.task_id)
            if known is not None and known.version >= local.version:
                return None
            self._entries[local.task_id] = local
        self.worker._staging.take_back(local.task_id)  # a staged task that has not started: checked again
        if local.terminate:
            for task in self.worker._active.by_task_id(local.task_id):
                if task.running:
                    self.terminate_task(task, local.reason or "revoked")
        return None

    def _apply_pause(self, local: LocalRevocation) -> None:
        queue = local.task_id[len(PAUSE_PREFIX):]
        with self._lock:
            latest = max(self._paused.get(queue, -1), self._resumed.get(queue, -1))
            if local.version <= latest:
                return
            if local.reason == "pause" and not local.expired(time.time()):
                self._paused[queue] = local.version
                self._resumed.pop(queue, None)
            else:
                self._resumed[queue] = local.version
                self._paused.pop(queue, None)

    def prune(self, now: float | None = None) -> int:
        """Forget expired revocations, here and in the store (best effort); return how many
        were forgotten here."""
        now = time.time() if now is None else now
        with self._lock:
            gone = [k for k, e in self._entries.items() if e.expired(now)]
            for key in gone:
                del self._entries[key]
        store = self.worker.revoke_store
        if store is not None and gone:
            try:
                store.prune_expired(self.worker.namespace, now)
            except Exception:  # noqa: BLE001 - the next prune tries again
                log.debug("worker %s: could not prune the revoke store", self.worker.worker_id, exc_info=True)
        return len(gone)

    # -- queries ----------------------------------------------------------------------------
    def revocation_for(self, task_id: str) -> LocalRevocation | None:
        entry = self._entries.get(task_id)
        if entry is None or entry.expired(time.time()):
            return None
        return entry

    def queue_paused(self, queue: str) -> bool:
        return queue in self._paused

    def paused_queues(self) -> list[str]:
        return sorted(self._paused)

    def describe(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(e) for e in self._entries.values()]

    # -- stopping running tasks -------------------------------------------------------------
    def terminate_task(self, task: ActiveTask, reason: str) -> None:
        """Ask ``task`` to stop; an isolate task is ended after ``force_shutdown_after``."""
        task.control.request_terminate(reason)
        task.revoke_reason = reason
        port = task.remote_port
        if port is not None:
            try:
                port.send(("terminate", task.id, reason))
            except Exception:
                pass
        if task.handler is not None and task.handler.isolate:
            self.schedule_kill(task)

    def schedule_kill(self, task: ActiveTask) -> None:
        """End ``task``'s process unless it stopped within ``force_shutdown_after`` seconds."""
        grace = self.worker.lifecycle_config.force_shutdown_after
        task.timers.append(self.worker._timers.call_later(grace, lambda: self.stop_isolate_task(task), name="terminate"))

    def stop_isolate_task(self, task: ActiveTask) -> None:
        """End the process running ``task`` (its pool call is cancelled)."""
        future = task.future
        if future is not None and not task.settled.is_set():
            future.cancel()


def _local(entry: Any) -> LocalRevocation:
    if isinstance(entry, LocalRevocation):
        return entry
    return LocalRevocation(
        task_id=entry.task_id,
        terminate=bool(entry.terminate),
        reason=entry.reason,
        version=int(entry.version),
        expires_at=getattr(entry, "expires_at", None),
    )
