"""The Worker: consumes deliveries in background threads and runs their handlers.

This module holds the object, its configuration and lifecycle; the steps live beside it:
``_consumer`` (receive and dispatch), ``_pipeline`` (checks before a run), ``_execution``
(inline or in an isolate), ``_staging`` and ``_handover`` (the next task behind the running one),
``_relay`` (whose thread goes on after an isolate call), ``_outcome`` (success, retry, failure,
dead letters, canvas), ``_leases`` (lease renewal, heartbeats, soft limits), ``_revocations``, ``_control``,
``_autoscale``, ``_heartbeat`` and ``_shutdown``.
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._backend import ResultBackend
from .._broker import Broker
from .._events import EventHub, WorkerEvent, WorkerEventType
from .._exceptions import ClosedError
from .._future import Future
from .._middleware import Middleware
from .._options import to_seconds
from .._paired import paired_writes
from .._registry import TaskRegistry
from .._timers import Timers
from ._active import ActiveTask, ActiveTasks
from ._config import (
    ObservabilityConfig,
    RoutingSubscription,
    WorkerAutoscaleConfig,
    WorkerLifecycleConfig,
    WorkerShutdownMode,
)
from ._heartbeat import HeartbeatTransport, NoopHeartbeatTransport
from ._leases import Leases
from ._slots import Slots

if TYPE_CHECKING:
    from ._metrics import WorkerMetrics

log = logging.getLogger("stemnb.worker")

SIGNAL_CHECK_S = 0.2  # how often Worker.wait() on the main thread wakes to let signal handlers run


class WorkerState(str, enum.Enum):
    """A worker's lifecycle state."""

    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Worker:
    """Consumes tasks from ``broker``, runs the handlers of ``registry`` and records results in ``backend``.

    Every parameter of Stem's Worker is accepted (Python names; durations in seconds).
    ``start()`` returns at once; consumption runs in background threads, so a notebook cell is
    never blocked. ``concurrency`` (default: the number of CPUs) bounds every running task,
    inline or isolate. ``shutdown(mode)`` returns a Future that resolves once the worker stopped.

    Raises:
        TypeError: ``broker``/``backend``/``registry`` are not a Broker/ResultBackend/TaskRegistry.
        ValueError: a negative interval or a concurrency/prefetch below 1.
    """

    def __init__(
        self,
        broker: Broker,
        registry: TaskRegistry,
        backend: ResultBackend,
        *,
        enqueuer: Any = None,
        rate_limiter: Any = None,
        middleware: Sequence[Middleware] = (),
        revoke_store: Any = None,
        unique_task_coordinator: Any = None,
        retry_strategy: Any = None,
        queue: str = "default",
        subscription: RoutingSubscription | Sequence[str] | None = None,
        consumer_name: str | None = None,
        concurrency: int | None = None,
        prefetch_multiplier: int = 2,
        prefetch: int | None = None,
        heartbeat_interval: float = 10.0,
        worker_heartbeat_interval: float | None = None,
        heartbeat_transport: HeartbeatTransport | None = None,
        heartbeat_namespace: str = "stem",
        autoscale: WorkerAutoscaleConfig | None = None,
        lifecycle: WorkerLifecycleConfig | None = None,
        observability: ObservabilityConfig | None = None,
        signer: Any = None,
        encoder_registry: Any = None,
        result_encoder: Any = None,
        args_encoder: Any = None,
        additional_encoders: Iterable[Any] = (),
    ) -> None:
        _check_types(broker, registry, backend)
        self.broker = broker
        self.registry = registry
        self.backend = backend
        self.rate_limiter = rate_limiter
        self.middleware: list[Middleware] = list(middleware)
        self.revoke_store = revoke_store
        self.unique_task_coordinator = unique_task_coordinator
        self.retry_strategy = retry_strategy if retry_strategy is not None else _default_retry_strategy()
        self.queue = queue
        self.subscription = RoutingSubscription.resolve(subscription, queue)
        self.consumer_name = consumer_name
        self.worker_id = consumer_name or f"stem-worker-{os.getpid()}-{id(self) & 0xFFFF:04x}"
        self.concurrency = _normalize_concurrency(concurrency)
        self.prefetch_multiplier = max(1, int(prefetch_multiplier))
        self.prefetch = max(1, prefetch if prefetch is not None else self.concurrency * self.prefetch_multiplier)
        self.observability = observability or ObservabilityConfig()
        self.heartbeat_interval = to_seconds("heartbeat_interval", heartbeat_interval) or 0.0
        self.worker_heartbeat_interval = (
            to_seconds("heartbeat interval", self.observability.heartbeat_interval)
            or to_seconds("worker_heartbeat_interval", worker_heartbeat_interval)
            or self.heartbeat_interval
        )
        self.heartbeat_transport = heartbeat_transport or NoopHeartbeatTransport()
        self.namespace = self.observability.namespace or heartbeat_namespace
        self.autoscale_config = _resolve_autoscale(autoscale, self.concurrency)
        self.lifecycle_config = lifecycle or WorkerLifecycleConfig()
        self.signer = signer
        from ._codecs import Codecs

        self.codecs = Codecs(encoder_registry, args_encoder, result_encoder, additional_encoders)
        self.enqueuer = enqueuer if enqueuer is not None else self._default_enqueuer()
        self._paired = paired_writes(broker, backend)  # store a task's status, then settle it
        self.events = EventHub()
        self.state = WorkerState.CREATED
        self.started_at: float | None = None
        self.counters = {
            name: 0
            for name in (
                "received", "started", "succeeded", "failed", "retried", "revoked", "deduplicated",
                "dead_lettered", "signature_invalid", "rate_limited", "rate_limiter_degraded",
                "chords_dispatched", "interrupted",
            )
        }
        self._counter_lock = threading.Lock()
        self._state_lock = threading.RLock()
        max_slots = max(self.concurrency, self.autoscale_config.max_concurrency or self.concurrency)
        initial = self.autoscale_config.min_concurrency if self.autoscale_config.enabled else self.concurrency
        self._max_slots = max_slots
        self._slots = Slots(min(initial, max_slots))
        self._active = ActiveTasks()
        self._leases = Leases(self)
        self._timers: Timers = None  # type: ignore[assignment]  # created by start()
        self._pool: Any = None
        self._pool_lock = threading.Lock()
        self._shutdown_future: Future[None] | None = None
        self._shutdown_mode: WorkerShutdownMode | None = None
        self._escalate = threading.Event()  # set by a HARD request during a shutdown
        self._stopped = threading.Event()  # set once a shutdown has finished (see wait())
        self._settle_failures = 0  # consecutive failures to settle a task (backs off requeues)
        self._autoscaler: Any = None
        self._control_consumer: Any = None
        self._control_stopped = threading.Event()
        self._control_thread: threading.Thread | None = None
        from ._consumer import ConsumerLoop
        from ._isolate_signals import IsolateSignals
        from ._revocations import Revocations
        from ._staging import Staging

        self._revocations = Revocations(self)
        self._staging = Staging(self)
        self._signals = IsolateSignals(self)
        self._consumer = ConsumerLoop(self)
        self.metrics: WorkerMetrics | None = None  # listens first, so it has counted what others hear
        if self.observability.metrics_enabled:
            from ._metrics import WorkerMetrics

            self.metrics = WorkerMetrics(self)

    # -- public surface ---------------------------------------------------------------------
    @property
    def active_concurrency(self) -> int:
        """How many tasks may run at once right now (changes with autoscaling)."""
        return self._slots.limit

    @property
    def primary_queue(self) -> str:
        """The first subscribed queue."""
        return self.subscription.queues[0]

    @property
    def subscription_queues(self) -> list[str]:
        """The queues this worker consumes."""
        return list(self.subscription.queues)

    @property
    def subscription_broadcasts(self) -> list[str]:
        """The broadcast channels this worker consumes."""
        return list(self.subscription.broadcasts)

    @property
    def inflight(self) -> int:
        """How many deliveries the worker holds (received, running or settling)."""
        return len(self._active)

    @property
    def pool(self) -> Any:
        """The worker's :class:`TaskIsolatePool` (None until the first isolate task)."""
        return self._pool

    def start(self) -> Worker:
        """Start consuming in background threads and return at once (idempotent while running).

        Raises ClosedError when the worker was already shut down. When a step of the start fails
        (the broker or the revoke store cannot be reached, say), what had started is stopped
        again, the worker ends stopped, and the step's exception is raised with a note saying so.
        """
        with self._state_lock:
            if self.state is WorkerState.RUNNING:
                return self
            if self.state is not WorkerState.CREATED:
                raise ClosedError(f"worker {self.worker_id} is {self.state.value}; create a new one")
            self.state = WorkerState.RUNNING
            self.started_at = time.time()
        self.emit(WorkerEventType.WORKER_INIT)
        self._timers = Timers(name=f"stemnb-{self.worker_id}-timers")
        try:
            self._start_parts()
        except BaseException as exc:
            self._undo_start(exc)
            raise
        self.emit(WorkerEventType.WORKER_READY)
        return self

    def _start_parts(self) -> None:
        from . import _autoscale, _control, _heartbeat, _shutdown

        self._revocations.start()
        self._consumer.start()
        _control.start(self)
        _heartbeat.start(self)
        _autoscale.start(self)
        _shutdown.install_signal_handlers(self)

    def _undo_start(self, exc: BaseException) -> None:
        """Stop what a failed :meth:`start` had started (a hard shutdown) and note it on ``exc``."""
        log.error("worker %s could not start (%s: %s); stopping what had started", self.worker_id,
                  type(exc).__name__, exc)
        stopped = self.shutdown(WorkerShutdownMode.HARD)
        try:
            stopped.result(timeout=30)
        except Exception:  # noqa: BLE001 - the start's own error is the one to raise
            log.debug("worker %s: stopping after a failed start failed too", self.worker_id, exc_info=True)
        add_note = getattr(exc, "add_note", None)  # Python 3.11+
        if add_note is not None:
            add_note(f"worker {self.worker_id} did not start; it was stopped again and nothing of it runs")

    def shutdown(self, mode: WorkerShutdownMode | str = WorkerShutdownMode.HARD) -> Future[None]:
        """Stop the worker; returns a Future resolved once it stopped.

        WARM waits for running tasks, SOFT asks them to stop and waits up to
        ``lifecycle.soft_grace_period`` before going HARD, HARD requeues every held delivery and
        ends the isolate processes. A second call with HARD escalates a running shutdown.
        """
        from . import _shutdown

        return _shutdown.request(self, WorkerShutdownMode.parse(mode))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker has stopped, however its shutdown was asked for (call, signal,
        control command); return True once it has, False when ``timeout`` seconds pass first.

        A shutdown that failed also ends the wait: ``shutdown().exception()`` tells which. On the
        main thread the wait wakes every ``SIGNAL_CHECK_S`` seconds: Python runs signal handlers
        only there, and a SIGINT/SIGTERM the kernel delivered to another thread would otherwise
        not interrupt the wait, so the worker's signal handlers would never run.
        """
        if threading.current_thread() is not threading.main_thread():
            return self._stopped.wait(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = SIGNAL_CHECK_S if deadline is None else min(SIGNAL_CHECK_S, deadline - time.monotonic())
            if self._stopped.wait(max(left, 0.0)):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def close(self) -> None:
        """Hard shutdown, waiting for it to finish (idempotent; a worker never started just stops)."""
        self.shutdown(WorkerShutdownMode.HARD).result()
        from ._shutdown import uninstall_signal_handlers

        uninstall_signal_handlers(self)

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # control-plane verbs, also usable directly
    def ping(self) -> dict[str, Any]:
        """Return a liveness reply: worker id, primary queue and time."""
        from . import _control

        return _control.ping(self)

    def stats(self) -> dict[str, Any]:
        """Return counters, concurrency, in-flight and queue depths."""
        from . import _control

        return _control.stats(self)

    def inspect(self, include_revoked: bool = False) -> dict[str, Any]:
        """Return the active tasks (and, optionally, the revocations known to this worker)."""
        from . import _control

        return _control.inspect(self, include_revoked)

    def revoke(
        self, task_id: str, *, terminate: bool = False, reason: str = "revoked", expires: float | None = None
    ) -> None:
        """Revoke ``task_id`` (persisted in the revoke store when there is one); ``terminate``
        also stops it while it runs. With ``expires`` (seconds) the revocation lapses after
        that long and is then pruned from the store; without it, it is kept until pruned by hand.

        Raises:
            ValueError: ``expires`` is not a positive number of seconds.
        """
        self._revocations.revoke(task_id, terminate=terminate, reason=reason, expires=expires)

    def pause_queue(self, queue: str) -> None:
        """Stop running tasks from ``queue`` (they wait, re-published with a short back-off)."""
        self._revocations.pause_queue(queue)

    def resume_queue(self, queue: str) -> None:
        """Resume a paused ``queue``."""
        self._revocations.resume_queue(queue)

    def paused_queues(self) -> list[str]:
        """The queues paused for this worker's namespace."""
        return self._revocations.paused_queues()

    # -- internals used by the step modules -------------------------------------------------
    def count(self, name: str) -> None:
        """Increment counter ``name`` (thread-safe)."""
        with self._counter_lock:
            self.counters[name] = self.counters.get(name, 0) + 1

    def emit(
        self,
        type: WorkerEventType,
        task: ActiveTask | None = None,
        *,
        data: Mapping[str, Any] | None = None,
        error: BaseException | None = None,
        progress: float | None = None,
    ) -> None:
        """Emit a :class:`WorkerEvent` of ``type`` (about ``task`` when given) to every listener."""
        if not self.events.wants(type):
            return
        env = task.envelope if task is not None else None
        self.events.emit(
            WorkerEvent(
                type=type,
                worker_id=self.worker_id,
                task_id=env.id if env else None,
                name=env.name if env else None,
                attempt=env.attempt if env else None,
                queue=task.delivery.queue if task else None,
                progress=progress,
                data=dict(data or {}),
                error=error,
                envelope=env,
            )
        )

    _emit = emit

    def _task_heartbeat(self, task: ActiveTask, explicit: bool) -> None:
        if task.settled.is_set():
            return
        self.emit(WorkerEventType.HEARTBEAT, task, data={"explicit": explicit})

    def _task_progress(self, task: ActiveTask, fraction: float, data: Mapping[str, Any] | None) -> None:
        self.emit(WorkerEventType.PROGRESS, task, data=dict(data or {}), progress=fraction)

    def _child_enqueue(self, name: str, args: Any, options: Any, headers: Any, meta: Any, *, many: bool = False) -> Any:
        """Enqueue a running task's child (``many``: one per item of ``args``, returning the ids).
        An enqueuer without ``enqueue_many`` enqueues the items one by one."""
        enqueuer = self.enqueuer
        if enqueuer is None:
            raise RuntimeError("this worker has no enqueuer; pass Worker(enqueuer=Stem(...))")
        if not many:
            return enqueuer.enqueue(name, args, options, headers=headers, meta=meta)
        if hasattr(enqueuer, "enqueue_many"):
            return enqueuer.enqueue_many(name, args, options, headers=headers, meta=meta)
        return [enqueuer.enqueue(name, item, options, headers=headers, meta=meta) for item in args]

    def _default_enqueuer(self) -> Any:
        from .._stem import Stem

        return Stem(
            self.broker,
            self.backend,
            registry=self.registry,
            signer=self.signer,
            unique_task_coordinator=self.unique_task_coordinator,
            codecs=self.codecs,
            middleware=self.middleware,
        )

    def _may_relay(self) -> bool:
        """Whether a pool reader thread may store outcomes and stage tasks for a runner
        (``_relay``): not while middleware or event callbacks, code of the user that may wait
        for another task, run inside those steps."""
        return not self.middleware and not self.events.has_callbacks

    def _ensure_pool(self) -> Any:
        pool = self._pool
        if pool is not None:  # made already: no lock, no import (a call per isolate task)
            return pool
        from .._task_pool import TaskIsolatePool

        with self._pool_lock:
            if self._pool is None:
                if self.state is not WorkerState.RUNNING:
                    raise ClosedError(f"worker {self.worker_id} is {self.state.value}")
                from . import _autoscale

                self._pool = TaskIsolatePool(
                    self._slots.limit,
                    max_tasks_per_isolate=self.lifecycle_config.max_tasks_per_isolate,
                    max_memory_per_isolate=self.lifecycle_config.max_memory_per_isolate_bytes,
                    debug_name=self.worker_id,
                    nice=self.lifecycle_config.isolate_nice,
                )
                _autoscale.watch_pool(self, self._pool)
            return self._pool

    def set_concurrency(self, n: int) -> None:
        """Let ``n`` tasks run at once (and resize the isolate pool to match).

        Raises ValueError unless 1 <= n <= the worker's maximum (``concurrency``, or the
        autoscaler's ``max_concurrency``). Running tasks are never interrupted by a decrease.
        """
        if not isinstance(n, int) or not 1 <= n <= self._max_slots:
            raise ValueError(f"concurrency must be an int from 1 to {self._max_slots}, got {n!r}")
        self._set_concurrency(n)

    def _set_concurrency(self, n: int) -> None:
        n = max(1, min(n, self._max_slots))
        self._slots.set_limit(n)
        pool = self._pool
        if pool is not None and not pool.closed:
            pool.resize(n)

    def __repr__(self) -> str:
        return (
            f"<stemnb.Worker {self.worker_id} {self.state.value} queues={self.subscription_queues} "
            f"concurrency={self.active_concurrency} inflight={self.inflight}>"
        )

    def _repr_html_(self) -> str:
        try:
            from .._html import render_worker
        except ImportError:  # renderer not there: plain text
            return f"<pre>{self!r}</pre>"
        return render_worker(self)


def _check_types(broker: Any, registry: Any, backend: Any) -> None:
    if not isinstance(broker, Broker):
        raise TypeError(f"broker must be a stemnb Broker, got {type(broker).__name__}")
    if not isinstance(registry, TaskRegistry):
        raise TypeError(f"registry must be a TaskRegistry, got {type(registry).__name__}")
    if not isinstance(backend, ResultBackend):
        raise TypeError(f"backend must be a stemnb ResultBackend, got {type(backend).__name__}")


def _normalize_concurrency(concurrency: int | None) -> int:
    if concurrency is None:
        return max(1, os.cpu_count() or 1)
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
    return concurrency


def _resolve_autoscale(config: WorkerAutoscaleConfig | None, concurrency: int) -> WorkerAutoscaleConfig:
    config = config or WorkerAutoscaleConfig.disabled()
    maximum = config.max_concurrency or concurrency
    minimum = min(config.min_concurrency, maximum)
    return config.copy_with(max_concurrency=maximum, min_concurrency=minimum)


def _default_retry_strategy() -> Any:
    from .._retry import ExponentialJitterRetryStrategy

    return ExponentialJitterRetryStrategy()
