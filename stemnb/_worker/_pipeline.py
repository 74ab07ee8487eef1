"""Handling one delivery: the checks before a run (Stem's order), the run, and its outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from .._backend import TaskState, TaskStatus
from .._canvas import Signature
from .._context import TaskRetryRequest
from .._events import WorkerEventType
from .._exceptions import TaskInterruptedError
from .._middleware import run_hook
from .._options import TaskRecoveryPolicy
from . import _execution, _handover, _outcome
from ._active import ActiveTask, log_context
from ._leases import start_task_timers
from ._ratelimits import admit
from ._retries import POLICY_KEY, resolve_policy

if TYPE_CHECKING:
    from ._worker import Worker

log = logging.getLogger("stemnb.worker")
T = TypeVar("T")
Steps = Generator[Any, None, T]  # a chain's step: yields the isolate calls it waits for, returns T

PAUSED_QUEUE_BACKOFF = 0.25
SETTLE_BACKOFF_MAX = 5.0
SLOT_POLL = 0.25  # seconds between checks that the worker still runs while waiting for a slot
EXPIRES_KEY = "stem.expiresAt"
SOFT_LIMIT_KEY = "stem.softTimeLimit"
HARD_LIMIT_KEY = "stem.timeLimit"


@dataclass(frozen=True)
class Run:
    """A task that passed its checks, with its handler and decoded args."""

    task: ActiveTask
    handler: Any
    args: Any


def chain(worker: Worker, task: ActiveTask) -> Steps[None]:
    """A runner's work from ``task`` on: :func:`handle` it, then run each task it hands its slot
    to. A generator that yields each isolate call it waits for (see ``_relay``)."""
    handed = yield from handle(worker, task)
    while handed is not None:  # the task handed its slot to the next one (_handover)
        handed = yield from run_handed(worker, handed)


def handle(worker: Worker, task: ActiveTask) -> Steps[Run | None]:
    """Run every check, then the handler, then settle the delivery; never raises.

    Whatever happens, the delivery ends acked, dead-lettered, re-published or requeued, and the
    task leaves the active set. Returns the next task when this one handed its slot over (see
    ``_handover``): it already counts as started; run it with :func:`run_handed`. A generator,
    like every step of a chain: it yields the isolate call it waits for.
    """
    handed = None
    try:
        if not _wait_for_slot(worker, task):
            if not task.abandoned:
                _outcome.requeue_unstarted(worker, [task])
            return None
        run = check(worker, task)
        if run is not None:
            start(worker, run, lambda: worker.backend.set_status(running_status(worker, task)))
            prerun(worker, run)
            handed = yield from _finish(worker, run)
        worker._settle_failures = 0
    except GeneratorExit:
        raise
    except BaseException as exc:  # the outcome step itself failed: give the delivery back
        settle_failed(worker, task, exc)
    finally:
        _outcome.release(worker, task)
    return handed


def run_handed(worker: Worker, run: Run) -> Steps[Run | None]:
    """Run a task handed a slot by the previous one, then settle it (as :func:`handle`)."""
    handed = None
    try:
        prerun(worker, run)
        handed = yield from _finish(worker, run)
        worker._settle_failures = 0
    except GeneratorExit:
        raise
    except BaseException as exc:
        settle_failed(worker, run.task, exc)
    finally:
        _outcome.release(worker, run.task)
    return handed


def settle_failed(worker: Worker, task: ActiveTask, exc: BaseException) -> None:
    """The outcome step of ``task`` failed: report it, back off, give the delivery back."""
    log.exception("worker %s: settling task %s failed", worker.worker_id, task.id, exc_info=exc)
    worker.emit(WorkerEventType.ERROR, task, error=exc, data={"where": "settle"})
    # back off before handing it back, so an unreachable backend is not hammered in a loop
    worker._settle_failures += 1
    worker._escalate.wait(min(SETTLE_BACKOFF_MAX, 0.05 * 2 ** min(worker._settle_failures, 7)))
    _outcome.requeue_unstarted(worker, [task])  # left to its lease if the broker is unreachable


def _wait_for_slot(worker: Worker, task: ActiveTask) -> bool:
    """Take a concurrency slot for ``task``; False when the worker stops (or dropped the task) first."""
    while True:
        if task.abandoned or worker._consumer.stopping:
            return False
        if worker._slots.acquire(timeout=SLOT_POLL):
            if task.abandoned or worker._consumer.stopping:
                worker._slots.release()
                return False
            task.slot_held = True
            return True


def check(worker: Worker, task: ActiveTask) -> Run | None:
    """The checks before a run, in Stem's order. Returns the run, or None when the task must
    not run now (then its delivery was already settled: dead-lettered, cancelled, ...).

    A task that passed them already (a staged task taken back, see ``_staging``) is only
    checked for a revocation that arrived since.
    """
    if task.abandoned:
        return None
    if task.checked is not None:
        run, task.checked = task.checked, None
        return run if not _revoked(worker, task) else None
    env = task.envelope
    handler = worker.registry.resolve(env.name)
    run_hook(worker.middleware, "on_consume", task.delivery)
    if handler is None:
        _outcome.unregistered(worker, task)
        return None
    task.handler = handler
    if task.delivery.redelivered:
        status = worker.backend.get(env.id)
        if status is not None and status.terminal and status.attempt >= env.attempt:
            _outcome.already_terminal(worker, task, status)
            return None
        if status is not None and status.state is TaskState.RUNNING:
            prior = {"prior_state": status.state.value, "prior_worker": status.meta.get("worker"), "prior_attempt": status.attempt}
            worker.count("interrupted")
            worker.emit(WorkerEventType.INTERRUPTED, task, data=prior)
            if handler.options.recovery_policy is TaskRecoveryPolicy.RETRY:
                lost = TaskInterruptedError(f"task {env.id} was interrupted: its worker {prior['prior_worker']} ended mid-run")
                _outcome.failure(worker, task, lost)
                return None
    problem = _meta_problem(env)
    if problem is not None:
        _outcome.malformed(worker, task, problem)
        return None
    if _revoked(worker, task):
        return None
    if worker.signer is not None:
        problem = _signature_problem(worker, env)
        if problem is not None:
            _outcome.signature_invalid(worker, task, problem)
            return None
    expires = env.meta.get(EXPIRES_KEY)
    if expires is not None and float(expires) <= time.time():
        _outcome.expired(worker, task)
        return None
    if worker._revocations.queue_paused(task.delivery.queue):
        _outcome.republish_later(worker, task, PAUSED_QUEUE_BACKOFF, reason="queue-paused")
        return None
    try:
        args = worker.codecs.decode_args(env, handler)
    except Exception as exc:
        _outcome.undecodable(worker, task, exc)
        return None
    if not admit(worker, task, handler.options):
        return None
    return Run(task, handler, args)


def _revoked(worker: Worker, task: ActiveTask) -> bool:
    """Settle ``task`` as revoked if a revocation names it; True if so."""
    entry = worker._revocations.revocation_for(task.id)
    if entry is None:
        return False
    _outcome.revoked(worker, task, entry.reason or "revoked")
    return True


def begin(worker: Worker, run: Run) -> None:
    """What precedes storing ``running``: the RECEIVED event, the start time, a revocation
    that arrived since the checks, the ``started`` count."""
    task = run.task
    worker.emit(WorkerEventType.RECEIVED, task)
    task.started_at = time.time()
    late = worker._revocations.revocation_for(task.id)
    if late is not None and late.terminate:  # arrived between the check and now
        worker._revocations.terminate_task(task, late.reason or "revoked")
    worker.count("started")


def start(worker: Worker, run: Run, store_running: Callable[[], T]) -> T:
    """Begin ``run`` and store its ``running`` status with ``store_running()`` (returned).

    An isolate task is sent to its process first (see ``_execution.send_ahead``), so the write
    and the start overlap: its handler may begin a round trip before ``running`` is stored, and
    its outcome is always stored after it. If the write fails the call is taken back, and the
    error raised for the caller to give the delivery back.
    """
    begin(worker, run)
    _execution.send_ahead(worker, run.task, run.handler, run.args)
    try:
        return store_running()
    except BaseException:
        _execution.take_back(run.task)
        raise


def running_status(worker: Worker, task: ActiveTask) -> TaskStatus:
    """The ``running`` status of ``task``, stored as its run starts (see :func:`start`)."""
    meta = _outcome.status_meta(worker, task)
    return TaskStatus(task.id, TaskState.RUNNING, meta=meta, attempt=task.envelope.attempt)


def prerun(worker: Worker, run: Run) -> None:
    """What follows storing ``running``: the PRERUN event, the log line, the task's timers."""
    task = run.task
    worker.emit(WorkerEventType.PRERUN, task)
    if log.isEnabledFor(logging.INFO):
        log.info("Task %s started", task.envelope.name, extra=log_context(worker, task))
    start_task_timers(worker, task, soft_limit(task.envelope, run.handler.options))


def _finish(worker: Worker, run: Run) -> Steps[Run | None]:
    """Run the handler, then store the outcome and settle; returns the task this one handed its
    slot to, if it did (see ``_handover``)."""
    task = run.task
    staged = worker._staging.stage(run)  # the next task, sent to start the moment this one ends
    settle: Callable[[], None] | None = None
    yield from _execution.awaited(task, run.handler)
    try:
        result = _execution.execute(worker, task, run.handler, run.args)
    except TaskRetryRequest as request:
        settle = partial(_outcome.explicit_retry, worker, task, request)
    except BaseException as exc:  # noqa: BLE001 - SystemExit in a task is a task failure too
        settle = partial(_outcome.failure, worker, task, exc)
    nxt = worker._staging.claim(staged)  # None when another runner took it, or it went back
    if settle is None:
        handed = _handover.hand_over(worker, task, result, nxt)
        if handed is not None:
            return handed
        settle = partial(_outcome.success, worker, task, result)
    if nxt is not None:
        return _handover.hand_on(worker, task, settle, nxt)
    _outcome.free_slot(worker, task)  # the run is over: storing its outcome overlaps the next run
    settle()
    return None


def _meta_problem(env: Any) -> str | None:
    """Why the envelope's ``stem.*`` meta cannot be used (None when it can).

    Checked before anything relies on it, so a bad value dead-letters the task once instead of
    failing every delivery (a poison message).
    """
    meta = env.meta
    for key in (EXPIRES_KEY, SOFT_LIMIT_KEY, HARD_LIMIT_KEY):
        value = meta.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"meta {key!r} must be a number of seconds, got {value!r}"
        if key != EXPIRES_KEY and value <= 0:
            return f"meta {key!r} must be > 0 seconds, got {value!r}"
    try:
        if meta.get(POLICY_KEY) is not None:
            resolve_policy(env, None)
        for key in ("stem.link", "stem.linkError", "stem.chain"):
            for item in meta.get(key) or ():
                Signature.from_dict(item)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        return f"bad task meta: {type(exc).__name__}: {exc}"
    return None


def soft_limit(env: Any, options: Any) -> float | None:
    """The soft time limit in seconds: envelope meta first, then the task options."""
    value = env.meta.get(SOFT_LIMIT_KEY)
    return float(value) if value is not None else options.soft_time_limit


def hard_limit(env: Any, options: Any) -> float | None:
    """The hard time limit in seconds: envelope meta first, then the task options."""
    value = env.meta.get(HARD_LIMIT_KEY)
    return float(value) if value is not None else options.hard_time_limit


def _signature_problem(worker: Worker, env: Any) -> str | None:
    from .._exceptions import SignatureError

    try:
        worker.signer.verify(env)
    except SignatureError as exc:
        return str(exc)
    except Exception as exc:  # e.g. a garbled signature header: still a bad signature
        return f"signature could not be checked: {type(exc).__name__}: {exc}"
    return None

