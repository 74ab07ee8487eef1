"""Shared helpers for the worker tests: a harness of real in-memory parts and an event recorder."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import stemnb
from stemnb import (
    InMemoryBroker,
    InMemoryResultBackend,
    Stem,
    TaskRegistry,
    Worker,
    WorkerEventType,
)

FAST_LIFECYCLE = stemnb.WorkerLifecycleConfig(install_signal_handlers=False, soft_grace_period=5.0, force_shutdown_after=0.5)


class Recorder:
    """Records every event of a worker; ``wait_for`` blocks until a matching event arrived."""

    def __init__(self, worker: Worker) -> None:
        self.events: list[stemnb.WorkerEvent] = []
        self._cond = threading.Condition()
        worker.events._listen(self._on, None, quick=True)  # never waits: the worker may relay (see _relay)

    def _on(self, event: stemnb.WorkerEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def wait_for(
        self,
        type: WorkerEventType,
        task_id: str | None = None,
        where: Callable[[stemnb.WorkerEvent], bool] | None = None,
        timeout: float = 10.0,
        count: int = 1,
    ) -> list[stemnb.WorkerEvent]:
        def matching() -> list[stemnb.WorkerEvent]:
            return [
                e for e in self.events
                if e.type is type and (task_id is None or e.task_id == task_id) and (where is None or where(e))
            ]

        with self._cond:
            if not self._cond.wait_for(lambda: len(matching()) >= count, timeout):
                seen = [(e.type.value, e.task_id) for e in self.events][-20:]
                raise AssertionError(f"no {count} x {type.value} event for {task_id} within {timeout}s; last: {seen}")
            return matching()

    def of(self, type: WorkerEventType, task_id: str | None = None) -> list[stemnb.WorkerEvent]:
        with self._cond:
            return [e for e in self.events if e.type is type and (task_id is None or e.task_id == task_id)]


class Harness:
    """A broker, backend, registry and producer; ``worker()`` starts workers shut down at the end."""

    def __init__(self) -> None:
        self.broker = InMemoryBroker(delayed_interval=0.005, claim_interval=0.02)
        self.backend = InMemoryResultBackend()
        self.registry = TaskRegistry()
        self.stem = Stem(self.broker, self.backend, registry=self.registry)
        self.workers: list[Worker] = []

    def worker(self, start: bool = True, **kwargs: Any) -> tuple[Worker, Recorder]:
        kwargs.setdefault("concurrency", 1)
        kwargs.setdefault("prefetch_multiplier", 1)
        kwargs.setdefault("lifecycle", FAST_LIFECYCLE)
        kwargs.setdefault("enqueuer", self.stem)
        kwargs.setdefault("retry_strategy", stemnb.ExponentialJitterRetryStrategy(base=0.01, max_delay=0.05))
        worker = Worker(self.broker, self.registry, self.backend, **kwargs)
        recorder = Recorder(worker)
        self.workers.append(worker)
        if start:
            worker.start()
        return worker, recorder

    def wait(self, task_id: str, timeout: float = 10.0) -> stemnb.TaskStatus:
        return self.stem.wait_for_task(task_id, timeout).result()

    def dead_letters(self, queue: str = "default") -> list[Any]:
        return self.broker.list_dead_letters(queue)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.broker.close()
        self.backend.close()
