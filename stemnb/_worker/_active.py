"""Book-keeping for deliveries a worker holds: received, running, and their timers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .._context import InlineControl
from .._envelope import Delivery
from .._flag import Flag

if TYPE_CHECKING:
    from .._registry import TaskHandler
    from .._timers import TimerHandle
    from ._worker import Worker


class ActiveTask:
    """One delivery held by the worker, from receipt until it is settled.

    Also the sink of an inline task's context signals (heartbeat, progress, lease, enqueue).
    """

    def __init__(self, worker: Worker, delivery: Delivery) -> None:
        self.worker = worker
        self.delivery = delivery
        self.envelope = delivery.envelope
        self.received_at = time.time()
        self.started_at: float | None = None
        self.handler: TaskHandler | None = None
        self.status_meta: tuple[Any, dict[str, Any]] | None = None  # (handler, meta): see _outcome.status_meta
        self.control = InlineControl(self)
        self.future: Any = None  # the pool call's future, for isolate tasks
        self.checked: Any = None  # its _pipeline.Run once its checks passed, until it is started
        self.staged: Any = None  # the _pipeline.Run staged behind this task (see _staging)
        self.remote_port: Any = None  # the isolate's control SendPort, once it announced it
        self.timers: list[TimerHandle] = []
        self.lease_length: float | None = None
        self.settled = Flag()
        self.revoke_reason: str | None = None
        self.slot_held = False  # holds one of the worker's concurrency slots
        self.abandoned = False  # a hard shutdown requeued it: write nothing more
        self.lingering: threading.Thread | None = None  # an inline run that outlived its hard limit

    @property
    def id(self) -> str:
        return self.envelope.id

    @property
    def running(self) -> bool:
        return self.started_at is not None

    def cancel_timers(self) -> None:
        """Stop this task's heartbeat, soft-limit and lease timers."""
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()

    # -- context signals (inline, or relayed from an isolate) ---------------------------
    def on_heartbeat(self) -> None:
        self.worker._task_heartbeat(self, explicit=True)

    def on_progress(self, fraction: float, data: Mapping[str, Any] | None) -> None:
        self.worker._task_progress(self, fraction, data)

    def on_extend_lease(self, seconds: float) -> None:
        self.worker._leases.extend(self, seconds)

    def on_enqueue(self, name: str, args: Any, options: Any, headers: Any, meta: Any, *, many: bool = False) -> Any:
        return self.worker._child_enqueue(name, args, options, headers, meta, many=many)

    def describe(self) -> dict[str, Any]:
        """A JSON-safe summary for stats / inspect."""
        return {
            "id": self.id,
            "task": self.envelope.name,
            "queue": self.delivery.queue,
            "attempt": self.envelope.attempt,
            "received_at": self.received_at,
            "started_at": self.started_at,
            "isolate": bool(self.handler and self.handler.isolate),
        }


class ActiveTasks:
    """Thread-safe map of task id -> :class:`ActiveTask`, with a wait for "none left"."""

    def __init__(self) -> None:
        self._tasks: dict[str, ActiveTask] = {}
        self._cond = threading.Condition()

    def add(self, task: ActiveTask) -> None:
        with self._cond:
            self._tasks[task.delivery.receipt] = task

    def remove(self, task: ActiveTask) -> None:
        with self._cond:
            if self._tasks.get(task.delivery.receipt) is task:
                del self._tasks[task.delivery.receipt]
            self._cond.notify_all()

    def by_task_id(self, task_id: str) -> list[ActiveTask]:
        with self._cond:
            return [t for t in self._tasks.values() if t.id == task_id]

    def snapshot(self) -> list[ActiveTask]:
        with self._cond:
            return list(self._tasks.values())

    def running(self) -> list[ActiveTask]:
        return [t for t in self.snapshot() if t.running]

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[ActiveTask]:
        return iter(self.snapshot())

    def wait_empty(self, timeout: float | None = None, stop: threading.Event | None = None) -> bool:
        """Block until no delivery is held (or ``stop`` is set, see :meth:`notify`).

        Returns False if ``timeout`` passed (or ``stop`` was set) first.
        """
        with self._cond:
            self._cond.wait_for(lambda: not self._tasks or (stop is not None and stop.is_set()), timeout)
            return not self._tasks

    def notify(self) -> None:
        """Wake :meth:`wait_empty` callers so they re-check their ``stop`` event."""
        with self._cond:
            self._cond.notify_all()


def log_context(worker: Worker, task: ActiveTask) -> dict[str, Any]:
    """Structured fields for the task's log records; ``stem.workflow.<x>`` meta becomes ``workflow<X>``."""
    env = task.envelope
    fields: dict[str, Any] = {"task": env.name, "task_id": env.id, "attempt": env.attempt, "worker_id": worker.worker_id}
    for key, value in env.meta.items():
        if key.startswith("stem.workflow.") and len(key) > len("stem.workflow."):
            rest = key[len("stem.workflow."):]
            fields["workflow" + rest[0].upper() + rest[1:]] = value
    return fields
