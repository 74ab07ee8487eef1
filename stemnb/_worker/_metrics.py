"""The worker's metrics: Stem's task counters, durations and gauges, fed by the worker's events.

Opt-in (``ObservabilityConfig(metrics=True)`` or ``metrics_port=...``): the worker builds events
only when something listens, so a worker without metrics pays nothing. Counters and histograms
move as events arrive; gauges that are cheap to read (in-flight tasks, concurrency, isolates)
are read when a snapshot is taken; queue depths are sampled on the worker heartbeat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._events import _STOP, WorkerEvent, WorkerEventType
from .._exceptions import ClosedError
from .._metrics import MetricsRegistry, MetricsSnapshot

if TYPE_CHECKING:
    from .._metrics_http import MetricsServer
    from ._worker import Worker

log = logging.getLogger("stemnb.metrics")

TASK = ("task", "queue")
RATE_LIMIT_REASONS = frozenset({"rate-limited", "rate-limiter-failed"})
"""RETRIED events with these reasons re-publish the same attempt later: not retries."""


class WorkerMetrics:
    """Metrics of one :class:`Worker` (``worker.metrics``), named after Stem's (``stem.tasks.started``
    becomes ``stem_tasks_started_total``).

    ``statistics()`` returns a frozen :class:`MetricsSnapshot`, ``prometheus_text()`` the
    Prometheus text format, ``serve(port)`` an HTTP endpoint for scraping. Add your own metrics
    to ``registry``. Closes with the worker: the endpoint stops when the worker's events end.
    """

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self.registry = MetricsRegistry()
        self._server: MetricsServer | None = None
        self._closed = False
        self._running: dict[tuple[str | None, int | None], float] = {}  # (task id, attempt) -> monotonic start
        # handlers pass label values in the order TASK (+ outcome) declares them: the fast path
        self._define()
        self.registry.on_collect(self._collect)
        self._handlers: dict[WorkerEventType, Callable[[WorkerEvent], None]] = {
            WorkerEventType.RECEIVED: self._count(self.received),
            WorkerEventType.PRERUN: self._on_prerun,
            WorkerEventType.COMPLETED: self._count(self.succeeded),
            WorkerEventType.FAILED: self._on_failed,
            WorkerEventType.RETRIED: self._on_retried,
            WorkerEventType.REVOKED: self._count(self.revoked),
            WorkerEventType.DEAD_LETTERED: self._on_dead_lettered,
            WorkerEventType.TIMEOUT: self._count(self.soft_timeouts),
            WorkerEventType.INTERRUPTED: self._count(self.interrupted),
            WorkerEventType.POSTRUN: self._on_postrun,
            WorkerEventType.ERROR: self._on_error,
            WorkerEventType.RECYCLED: self._on_recycled,
            WorkerEventType.WORKER_HEARTBEAT: self._on_heartbeat,
        }
        config = worker.observability
        if config.metrics_port is not None:
            self.serve(config.metrics_port, config.metrics_host)
        worker.events._add(self._sink)  # a raw sink: it also sees the hub close, to stop the server

    def _define(self) -> None:
        r = self.registry
        self.received = r.counter("stem_tasks_received_total", "Tasks that passed the worker's checks and were handed to their handler (the received signal).", TASK)
        self.started = r.counter("stem_tasks_started_total", "Tasks whose handler started (one per attempt).", TASK)
        self.succeeded = r.counter("stem_tasks_succeeded_total", "Task attempts that succeeded.", TASK)
        self.failed = r.counter("stem_tasks_failed_total", "Tasks that failed for good, by reason (each is also dead-lettered).", (*TASK, "reason"))
        self.retried = r.counter("stem_tasks_retried_total", "Task attempts that failed or asked to retry and were scheduled again.", TASK)
        self.revoked = r.counter("stem_tasks_revoked_total", "Tasks revoked or expired (stored as cancelled).", TASK)
        self.dead_lettered = r.counter("stem_tasks_dead_lettered_total", "Deliveries moved to the dead-letter queue, by reason.", (*TASK, "reason"))
        self.rate_limited = r.counter("stem_tasks_rate_limited_total", "Deliveries put back for later by a rate limit.", TASK)
        self.soft_timeouts = r.counter("stem_tasks_soft_timeouts_total", "Tasks that ran past their soft time limit.", TASK)
        self.interrupted = r.counter("stem_tasks_interrupted_total", "Redelivered tasks whose previous run never finished.", TASK)
        self.errors = r.counter("stem_worker_errors_total", "Errors inside the worker itself, by where they happened.", ("where",))
        self.recycled = r.counter("stem_isolates_recycled_total", "Isolate processes replaced, by reason.", ("reason",))
        self.duration = r.histogram("stem_task_duration_seconds", "Seconds from a task's start to its outcome, by outcome.", (*TASK, "outcome"))
        self.latency = r.histogram("stem_task_latency_seconds", "Seconds from when a task was due (enqueued, or its eta) to its start.", TASK)
        self.inflight = r.gauge("stem_worker_inflight", "Deliveries the worker holds (received, running or settling).")
        self.concurrency = r.gauge("stem_worker_concurrency", "How many tasks may run at once.")
        self.isolates = r.gauge("stem_worker_isolates", "Live isolate processes in the worker's pool.")
        self.queue_depth = r.gauge("stem_queue_depth", "Ready envelopes per subscribed queue, sampled on the worker heartbeat.", ("queue",))

    # -- reading --------------------------------------------------------------------------------
    def statistics(self) -> MetricsSnapshot:
        """A frozen snapshot of every metric (gauges read now)."""
        return self.registry.statistics()

    def prometheus_text(self) -> str:
        """Every metric in the Prometheus text exposition format 0.0.4."""
        return self.registry.prometheus_text()

    @property
    def server(self) -> MetricsServer | None:
        """The HTTP endpoint, once ``serve()`` ran (or ``metrics_port`` was configured)."""
        return self._server

    def serve(self, port: int = 0, host: str = "127.0.0.1") -> MetricsServer:
        """Serve ``prometheus_text()`` at ``http://host:port/metrics`` on a daemon thread; returns
        the :class:`MetricsServer` (``port=0`` picks a free port: read ``server.port``).

        Returns the running server if there is one. Raises OSError when the address is taken and
        ClosedError once the worker's events ended.
        """
        if self._closed:
            raise ClosedError("the worker's metrics are closed (the worker stopped)")
        if self._server is None or self._server.closed:
            from .._metrics_http import MetricsServer

            self._server = MetricsServer(self.prometheus_text, port, host)
        return self._server

    def sample_queue_depths(self) -> dict[str, int]:
        """Read the broker's ready count for each subscribed queue into ``stem_queue_depth``.

        Runs on each worker heartbeat. Returns the depths read; a queue whose count the broker
        cannot give keeps its previous value (the failure is logged).
        """
        worker = self._worker
        depths: dict[str, int] = {}
        for queue in worker.subscription.queues:
            try:
                depths[queue] = int(worker.broker.pending_count(queue))
            except Exception:
                log.debug("worker %s: pending count of %s failed", worker.worker_id, queue, exc_info=True)
                continue
            self.queue_depth.set(depths[queue], queue=queue)
        return depths

    def close(self) -> None:
        """Stop listening to the worker and stop the HTTP endpoint (idempotent)."""
        self._closed = True
        self._worker.events._remove(self._sink)
        self._running.clear()
        server, self._server = self._server, None
        if server is not None:
            server.close()

    # -- feeding --------------------------------------------------------------------------------
    def _sink(self, item: Any) -> None:
        if item is _STOP:
            self.close()
            return
        handler = self._handlers.get(item.type)
        if handler is not None:
            handler(item)

    @staticmethod
    def _count(counter: Any) -> Callable[[WorkerEvent], None]:
        def on(event: WorkerEvent) -> None:
            counter._add((str(event.name), str(event.queue)), 1.0)

        return on

    def _on_prerun(self, event: WorkerEvent) -> None:
        self._running[(event.task_id, event.attempt)] = time.monotonic()
        key = (str(event.name), str(event.queue))
        self.started._add(key, 1.0)
        env = event.envelope
        if env is not None:
            due = max(env.enqueued_at, env.not_before or 0.0)
            self.latency._observe(key, max(0.0, event.timestamp - due))

    def _on_postrun(self, event: WorkerEvent) -> None:
        began = self._running.pop((event.task_id, event.attempt), None)
        if began is not None:  # tasks settled before they ran (revoked, unregistered) have no duration
            outcome = str(event.data.get("state", "unknown"))
            self.duration._observe((str(event.name), str(event.queue), outcome), time.monotonic() - began)

    def _on_failed(self, event: WorkerEvent) -> None:
        self.failed.inc(task=event.name, queue=event.queue, reason=event.data.get("reason", "unknown"))

    def _on_dead_lettered(self, event: WorkerEvent) -> None:
        self.dead_lettered.inc(task=event.name, queue=event.queue, reason=event.data.get("reason", "unknown"))

    def _on_retried(self, event: WorkerEvent) -> None:
        counter = self.rate_limited if event.data.get("reason") in RATE_LIMIT_REASONS else self.retried
        counter._add((str(event.name), str(event.queue)), 1.0)

    def _on_heartbeat(self, event: WorkerEvent) -> None:
        self.sample_queue_depths()

    def _on_error(self, event: WorkerEvent) -> None:
        self.errors.inc(where=event.data.get("where", "unknown"))

    def _on_recycled(self, event: WorkerEvent) -> None:
        self.recycled.inc(reason=getattr(event.data.get("reason"), "value", event.data.get("reason")))

    def _collect(self) -> None:
        worker = self._worker
        self.inflight.set(worker.inflight)
        self.concurrency.set(worker.active_concurrency)
        pool = worker.pool
        self.isolates.set(pool.size if pool is not None and not pool.closed else 0)

    def __repr__(self) -> str:
        where = f" serving {self._server.url}" if self._server is not None else ""
        return f"<stemnb.WorkerMetrics of {self._worker.worker_id}{where}>"
