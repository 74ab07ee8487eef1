"""Handling one delivery: the checks before a run (Stem's order), the run, and its outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from .._backend import TaskState
from .._context import TaskRetryRequest
from .._events import WorkerEventType
from .._exceptions import TaskInterruptedError
from .._middleware import run_hook
from .._options import TaskRecoveryPolicy
from . import _outcome
from ._active import ActiveTask, log_context
from ._leases import start_task_timers

if TYPE_CHECKING:
    from ._worker import Worker

log = logging.getLogger("stemnb.worker")

PAUSED_QUEUE_BACKOFF = 0.25
SETTLE_BACKOFF_MAX = 5.0
SLOT_POLL = 0.25  # seconds between checks that the worker still runs while waiting for a slot
EXPIRES_KEY = "stem.expiresAt"
SOFT_LIMIT_KEY = "stem.softTimeLimit"
HARD_LIMIT_KEY = "stem.timeLimit"


def handle(worker: Worker, task: ActiveTask) -> None:
    """Run every check, then the handler, then settle the delivery; never raises.

    Whatever happens, the delivery ends acked, dead-lettered, re-published or requeued, and the
    task leaves the active set.
    """
    try:
        if not _wait_for_slot(worker, task):
            if not task.abandoned:
                _outcome.requeue_unstarted(worker, [task])
            return
        _handle(worker, task)
        worker._settle_failures = 0
    except BaseException as exc:  # the outcome step itself failed: give the delivery back
        log.exception("worker %s: settling task %s failed", worker.worker_id, task.id)
        worker.emit(WorkerEventType.ERROR, task, error=exc, data={"where": "settle"})
        # back off before handing it back, so an unreachable backend is not hammered in a loop
        worker._settle_failures += 1
        worker._escalate.wait(min(SETTLE_BACKOFF_MAX, 0.05 * 2 ** min(worker._settle_failures, 7)))
        try:
            _outcome.requeue_unstarted(worker, [task])
        except Exception:  # the broker is unreachable: its lease runs out and it comes back
            log.exception("worker %s: could not requeue task %s", worker.worker_id, task.id)
    finally:
        _outcome.release(worker, task)


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


def _handle(worker: Worker, task: ActiveTask) -> None:
    if task.abandoned:
        return
    env = task.envelope
    handler = worker.registry.resolve(env.name)
    run_hook(worker.middleware, "on_consume", task.delivery)
    if handler is None:
        return _outcome.unregistered(worker, task)
    task.handler = handler
    if task.delivery.redelivered:
        status = worker.backend.get(env.id)
        if status is not None and status.terminal and status.attempt >= env.attempt:
            return _outcome.already_terminal(worker, task, status)
        if status is not None and status.state is TaskState.RUNNING:
            prior = {"prior_state": status.state.value, "prior_worker": status.meta.get("worker"), "prior_attempt": status.attempt}
            worker.count("interrupted")
            worker.emit(WorkerEventType.INTERRUPTED, task, data=prior)
            if handler.options.recovery_policy is TaskRecoveryPolicy.RETRY:
                lost = TaskInterruptedError(f"task {env.id} was interrupted: its worker {prior['prior_worker']} ended mid-run")
                return _outcome.failure(worker, task, lost)
    problem = _meta_problem(env)
    if problem is not None:
        return _outcome.malformed(worker, task, problem)
    entry = worker._revocations.revocation_for(env.id)
    if entry is not None:
        return _outcome.revoked(worker, task, entry.reason or "revoked")
    if worker.signer is not None:
        problem = _signature_problem(worker, env)
        if problem is not None:
            return _outcome.signature_invalid(worker, task, problem)
    expires = env.meta.get(EXPIRES_KEY)
    if expires is not None and float(expires) <= time.time():
        return _outcome.expired(worker, task)
    if worker._revocations.queue_paused(task.delivery.queue):
        return _outcome.republish_later(worker, task, PAUSED_QUEUE_BACKOFF, reason="queue-paused")
    try:
        args = worker.codecs.decode_args(env, handler)
    except Exception as exc:
        return _outcome.undecodable(worker, task, exc)
    from ._ratelimits import admit

    if not admit(worker, task, handler.options):
        return None
    _run(worker, task, handler, args)
    return None


def _run(worker: Worker, task: ActiveTask, handler: Any, args: Any) -> None:
    env = task.envelope
    worker.emit(WorkerEventType.RECEIVED, task)
    task.started_at = time.time()
    late = worker._revocations.revocation_for(env.id)
    if late is not None and late.terminate:  # arrived between the check and now
        worker._revocations.terminate_task(task, late.reason or "revoked")
    worker.count("started")
    worker.backend.set(env.id, TaskState.RUNNING, meta=_outcome.status_meta(worker, task), attempt=env.attempt)
    worker.emit(WorkerEventType.PRERUN, task)
    if log.isEnabledFor(logging.INFO):
        log.info("Task %s started", env.name, extra=log_context(worker, task))
    start_task_timers(worker, task, soft_limit(env, handler.options))
    from ._execution import execute

    settle: Callable[[], None]
    try:
        result = execute(worker, task, handler, args)
    except TaskRetryRequest as request:
        settle = partial(_outcome.explicit_retry, worker, task, request)
    except BaseException as exc:  # noqa: BLE001 - SystemExit in a task is a task failure too
        settle = partial(_outcome.failure, worker, task, exc)
    else:
        settle = partial(_outcome.success, worker, task, result)
    _outcome.free_slot(worker, task)  # the run is over: storing its outcome overlaps the next run
    settle()


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
        from ._retries import POLICY_KEY, resolve_policy

        if meta.get(POLICY_KEY) is not None:
            resolve_policy(env, None)
        from .._canvas import Signature

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

