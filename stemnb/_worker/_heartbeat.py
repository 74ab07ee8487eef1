"""Worker heartbeats: a periodic liveness record sent to a transport and stored in the backend."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._backend import WorkerHeartbeat
from .._events import WorkerEventType
from ._outage import Outage

if TYPE_CHECKING:
    from ._worker import Worker


class HeartbeatTransport:
    """Where worker heartbeats are published (topic ``stem:heartbeat:<namespace>``)."""

    def publish(self, topic: str, heartbeat: WorkerHeartbeat) -> None:
        """Publish ``heartbeat`` on ``topic``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (idempotent)."""


class NoopHeartbeatTransport(HeartbeatTransport):
    """Drops heartbeats (the default; the backend still stores them)."""

    def publish(self, topic: str, heartbeat: WorkerHeartbeat) -> None:
        return None


class InMemoryHeartbeatTransport(HeartbeatTransport):
    """Delivers heartbeats to in-process listeners: ``listen(callback(topic, heartbeat))``."""

    def __init__(self) -> None:
        self._listeners: list[Callable[[str, WorkerHeartbeat], Any]] = []
        self._lock = threading.Lock()

    def listen(self, callback: Callable[[str, WorkerHeartbeat], Any]) -> Callable[[], None]:
        """Call ``callback(topic, heartbeat)`` for each heartbeat; returns a function that stops it."""
        with self._lock:
            self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def publish(self, topic: str, heartbeat: WorkerHeartbeat) -> None:
        for callback in list(self._listeners):
            callback(topic, heartbeat)


def start(worker: Worker) -> None:
    """Publish a heartbeat now and every ``worker_heartbeat_interval`` seconds."""
    interval = worker.worker_heartbeat_interval
    if interval and interval > 0:
        outage = Outage(worker.worker_id, "storing its heartbeat")
        tick = lambda: outage.attempt(lambda: beat(worker))  # noqa: E731
        worker._timers.call_every(interval, tick, name="worker-heartbeat", first=0)


def beat(worker: Worker) -> WorkerHeartbeat:
    """Build, store and publish one heartbeat; emit a WORKER_HEARTBEAT event. Returns it."""
    heartbeat = build(worker)
    worker.backend.set_worker_heartbeat(heartbeat)  # stored first: whoever hears it can read it back
    worker.heartbeat_transport.publish(f"stem:heartbeat:{worker.namespace}", heartbeat)
    worker.emit(WorkerEventType.WORKER_HEARTBEAT, data=heartbeat.to_dict())
    return heartbeat


def build(worker: Worker) -> WorkerHeartbeat:
    """The heartbeat payload (Stem's fields, snake_case)."""
    active = worker._active.snapshot()
    per_queue: dict[str, int] = {}
    for task in active:
        per_queue[task.delivery.queue] = per_queue.get(task.delivery.queue, 0) + 1
    pool = worker.pool
    now = time.time()
    extras = {
        "host": os.uname().nodename if hasattr(os, "uname") else "",
        "pid": os.getpid(),
        "concurrency": worker.active_concurrency,
        "max_concurrency": worker.autoscale_config.max_concurrency,
        "prefetch": worker.prefetch,
        "autoscale": worker.autoscale_config.enabled,
        "started_at": worker.started_at,
        "uptime": now - (worker.started_at or now),
        "memory_bytes": _rss(),
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "cpu_count": os.cpu_count(),
        **{f"{k}_count": v for k, v in worker.counters.items()},
        "subscriptions": worker.subscription_queues,
    }
    return WorkerHeartbeat(
        worker_id=worker.worker_id,
        namespace=worker.namespace,
        timestamp=now,
        isolate_count=pool.size if pool is not None and not pool.closed else 0,
        inflight=len(active),
        last_lease_renewal=worker._leases.last_renewal,
        queues=per_queue,
        version=_version(),
        extras=extras,
    )


def _rss() -> int | None:
    try:
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:
        return None


def _version() -> str:
    from .. import __version__

    return __version__


class RedisHeartbeatTransport(HeartbeatTransport):
    """Publishes each heartbeat as JSON with Redis ``PUBLISH`` on its topic (Stem's Redis transport).

    ``url`` or an existing ``client``; needs the redis package (``pip install "stemnb[redis]"``).
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, client: Any = None) -> None:
        from .._redis_client import connect

        self._client, self._owns_client = connect(url, client, "RedisHeartbeatTransport")

    def publish(self, topic: str, heartbeat: WorkerHeartbeat) -> None:
        import json

        self._client.publish(topic, json.dumps(heartbeat.to_dict(), separators=(",", ":"), default=str))

    def close(self) -> None:
        if self._owns_client:
            self._owns_client = False
            self._client.close()
