"""Settling a delivery: success, retry, failure and dead letters, revocation, expiry, requeue.

Every path writes the task's status to the backend *before* it acks / dead-letters the delivery
(Stem acked first), and re-publishes a retry copy before settling the original, so a crash in
between can duplicate a task but never lose one.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import TYPE_CHECKING, Any

from .._backend import TaskState, TaskStatus
from .._context import TaskContext, TaskRetryRequest
from .._events import WorkerEventType
from .._exceptions import (
    MalformedEnvelopeError,
    RemoteError,
    SerializationError,
    SignatureError,
    TaskRetryExhaustedError,
    TaskRevokedError,
    UnknownTaskError,
)
from .._middleware import run_hook
from . import _followups, _retries
from ._active import ActiveTask, log_context

if TYPE_CHECKING:
    from ._worker import Worker

IGNORE_RESULT_KEY = "stem.ignoreResult"
log = logging.getLogger("stemnb.worker")


# -- helpers ---------------------------------------------------------------------------------
def error_info(exc: BaseException) -> dict[str, Any]:
    """The backend's error dict: ``type``, ``message`` and ``traceback`` strings."""
    if isinstance(exc, RemoteError):
        return {"type": exc.type_name, "message": exc.message, "traceback": exc.traceback}
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    cause = exc.__cause__
    if cause is not None and hasattr(cause, "tb"):
        tb = f"{tb}\nRemote traceback:\n{cause.tb}"
    return {"type": type(exc).__name__, "message": str(exc), "traceback": tb}


def status_meta(worker: Worker, task: ActiveTask, **extra: Any) -> dict[str, Any]:
    """Meta for every status the worker writes: task name, queue, worker id, encoder id (a new
    dict each time; what it is made from is worked out once per task and handler)."""
    made = task.status_meta
    if made is None or made[0] is not task.handler:
        meta: dict[str, Any] = {"task": task.envelope.name, "queue": task.delivery.queue, "worker": worker.worker_id}
        meta.update(worker.codecs.result_meta(task.handler))
        for key in ("stem.parentTaskId", "stem.rootTaskId", "chordResults"):
            if key in task.envelope.meta:
                meta[key] = task.envelope.meta[key]
        made = task.status_meta = (task.handler, meta)
    meta = made[1].copy()
    if extra:
        meta.update(extra)
    return meta


def _set(worker: Worker, task: ActiveTask, state: TaskState, **kwargs: Any) -> TaskStatus:
    meta = kwargs.pop("meta", None) or status_meta(worker, task)
    return worker.backend.set(task.id, state, meta=meta, attempt=task.envelope.attempt, **kwargs)


def _status(
    worker: Worker,
    task: ActiveTask,
    state: TaskState,
    *,
    payload: Any = None,
    error: dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
) -> TaskStatus:
    """The status to store for ``task`` (meta defaults to :func:`status_meta`)."""
    meta = meta or status_meta(worker, task)
    return TaskStatus(task.id, state, payload, error, meta, task.envelope.attempt)


def _postrun(worker: Worker, task: ActiveTask, state: TaskState) -> None:
    worker.emit(WorkerEventType.POSTRUN, task, data={"state": state.value})


def _context(task: ActiveTask) -> TaskContext:
    env = task.envelope
    return TaskContext(env.id, env.name, env.attempt, env.headers, env.meta, task.delivery.queue, task.control)


def sign(worker: Worker, envelope: Any) -> Any:
    """Re-sign ``envelope`` when the worker has a signer (a retry changes signed fields)."""
    return worker.signer.sign(envelope) if worker.signer is not None else envelope


# -- after a run ------------------------------------------------------------------------------
def success(worker: Worker, task: ActiveTask, result: Any) -> None:
    """Store ``succeeded`` (with the encoded result unless ignored), then ack and run follow-ups."""
    if task.abandoned:
        return
    try:
        status = success_status(worker, task, result)
    except Exception as exc:
        return terminal_failure(worker, task, exc, reason="result-encode-failed")
    succeeded(worker, task, worker._paired.set_then_ack(status, task.delivery), result)


def success_status(worker: Worker, task: ActiveTask, result: Any) -> TaskStatus:
    """The ``succeeded`` status of ``task``: its encoded result, unless results are ignored.

    Raises:
        Exception: the result encoder refused ``result``.
    """
    assert task.handler is not None
    payload = None if _ignores_result(task) else worker.codecs.encode_result(result, task.handler)
    return _status(worker, task, TaskState.SUCCEEDED, payload=payload)


def _ignores_result(task: ActiveTask) -> bool:
    assert task.handler is not None
    return bool(task.envelope.meta.get(IGNORE_RESULT_KEY, task.handler.options.ignore_result))


def succeeded(worker: Worker, task: ActiveTask, status: TaskStatus, result: Any) -> None:
    """What follows a stored and acked success: count, log, COMPLETED, follow-ups, POSTRUN."""
    ignore = _ignores_result(task)
    worker.count("succeeded")
    if log.isEnabledFor(logging.INFO):
        log.info("Task %s succeeded", task.envelope.name, extra=log_context(worker, task))
    worker.emit(WorkerEventType.COMPLETED, task, data={"result": None if ignore else result})
    _followups.after_terminal(worker, task, status, succeeded=True, result=result)
    _postrun(worker, task, TaskState.SUCCEEDED)
    return None


def failure(worker: Worker, task: ActiveTask, exc: BaseException) -> None:
    """Retry when the policy allows and retries remain; otherwise fail and dead-letter."""
    if task.abandoned:
        return
    run_hook(worker.middleware, "on_error", _context(task), exc)
    if isinstance(exc, TaskRevokedError) and task.control.terminate.is_set():
        return cancelled(worker, task, task.control.reason or "revoked", error=exc)
    assert task.handler is not None
    if isinstance(exc, SerializationError):  # deterministic: another attempt cannot help
        return terminal_failure(worker, task, exc, reason="not-serializable")
    policy = _retries.resolve_policy(task.envelope, task.handler.options)
    limit = _retries.max_retries(task.envelope, policy)
    allowed = _retries.allows(policy, exc)
    if allowed and task.envelope.attempt < limit:
        delay = _retries.delay(worker, task.envelope.attempt, exc, policy)
        return schedule_retry(worker, task, delay, exc)
    reason = "max-retries-exhausted" if allowed else "not-retryable"
    return terminal_failure(worker, task, exc, reason=reason)


def explicit_retry(worker: Worker, task: ActiveTask, request: TaskRetryRequest) -> None:
    """Honour ``context.retry()``; past the retry limit the task fails and is dead-lettered."""
    if task.abandoned:
        return
    env = task.envelope
    assert task.handler is not None
    policy = request.retry_policy or _retries.resolve_policy(env, task.handler.options)
    limit = request.max_retries if request.max_retries is not None else _retries.max_retries(env, policy)
    if env.attempt >= limit:
        exc = TaskRetryExhaustedError(f"task {env.id} asked to retry after {env.attempt} of {limit} retries")
        run_hook(worker.middleware, "on_error", _context(task), exc)
        return terminal_failure(worker, task, exc, reason="max-retries-exhausted")
    if request.eta is not None:
        delay = max(0.0, request.eta - time.time())
    elif request.countdown is not None:
        delay = request.countdown
    else:
        delay = _retries.delay(worker, env.attempt, request, policy)
    overrides = _retries.request_meta(request, limit)
    return schedule_retry(worker, task, delay, request, meta=overrides, max_retries=limit)


def schedule_retry(
    worker: Worker,
    task: ActiveTask,
    delay: float,
    exc: BaseException,
    *,
    meta: dict[str, Any] | None = None,
    max_retries: int | None = None,
) -> None:
    """Record ``retried``, publish the next attempt ``delay`` seconds out, then ack this one.

    ``retried`` is stored before the next attempt exists: published first, a quick next attempt
    could store its own outcome before this ``retried`` and be overwritten by it.
    """
    env = task.envelope
    changes: dict[str, Any] = {"attempt": env.attempt + 1, "not_before": time.time() + delay}
    if meta:
        changes["meta"] = {**env.meta, **meta}
    if max_retries is not None:
        changes["max_retries"] = max_retries
    error = None if isinstance(exc, TaskRetryRequest) else error_info(exc)
    status_fields = status_meta(worker, task, retry_delay=delay, retryDelayMs=int(delay * 1000))
    worker.backend.set_status(_status(worker, task, TaskState.RETRIED, error=error, meta=status_fields))
    worker.broker.publish(sign(worker, env.replace(**changes)), queue=task.delivery.queue)
    worker.broker.ack(task.delivery)
    worker.count("retried")
    reason = "retry-requested" if isinstance(exc, TaskRetryRequest) else type(exc).__name__
    worker.emit(WorkerEventType.RETRIED, task, error=exc, data={"delay": delay, "reason": reason})
    _postrun(worker, task, TaskState.RETRIED)


def terminal_failure(worker: Worker, task: ActiveTask, exc: BaseException, *, reason: str) -> None:
    """Store ``failed``, dead-letter the delivery with ``reason``, run failure follow-ups."""
    error = error_info(exc)
    status = worker._paired.set_then_dead_letter(
        _status(worker, task, TaskState.FAILED, error=error),
        task.delivery,
        reason,
        {"error": {k: error[k] for k in ("type", "message")}},
    )
    worker.count("failed")
    if log.isEnabledFor(logging.INFO):
        log.info("Task %s failed (%s)", task.envelope.name, reason, extra=log_context(worker, task))
    worker.emit(WorkerEventType.FAILED, task, error=exc, data={"reason": reason})
    worker.count("dead_lettered")
    worker.emit(WorkerEventType.DEAD_LETTERED, task, error=exc, data={"reason": reason, "queue": task.delivery.queue})
    if task.handler is not None:
        _followups.after_terminal(worker, task, status, succeeded=False)
    else:
        _followups.release_unique(worker, task)
    _postrun(worker, task, TaskState.FAILED)


def cancelled(
    worker: Worker, task: ActiveTask, reason: str, *, error: BaseException | None = None, **meta: Any
) -> None:
    """Store ``cancelled``, ack, and emit REVOKED."""
    exc = error or TaskRevokedError(f"task {task.id} was revoked: {reason}")
    meta = status_meta(worker, task, reason=reason, **meta)
    status = worker._paired.set_then_ack(
        _status(worker, task, TaskState.CANCELLED, error=error_info(exc), meta=meta), task.delivery
    )
    worker.count("revoked")
    worker.emit(WorkerEventType.REVOKED, task, error=exc, data={"reason": reason, **meta})
    _followups.after_terminal(worker, task, status, succeeded=False, links=False)
    _postrun(worker, task, TaskState.CANCELLED)


# -- before a run -----------------------------------------------------------------------------
def unregistered(worker: Worker, task: ActiveTask) -> None:
    exc = UnknownTaskError(f"no task handler registered under {task.envelope.name!r}")
    terminal_failure(worker, task, exc, reason="unregistered-task")


def signature_invalid(worker: Worker, task: ActiveTask, problem: str) -> None:
    worker.count("signature_invalid")
    terminal_failure(worker, task, SignatureError(problem), reason="signature-invalid")


def malformed(worker: Worker, task: ActiveTask, problem: str) -> None:
    """Dead-letter a task whose envelope meta cannot be used (reason ``malformed-envelope``)."""
    terminal_failure(worker, task, MalformedEnvelopeError(f"task {task.id}: {problem}"), reason="malformed-envelope")


def undecodable(worker: Worker, task: ActiveTask, exc: BaseException) -> None:
    terminal_failure(worker, task, exc, reason="args-decode-failed")


def revoked(worker: Worker, task: ActiveTask, reason: str) -> None:
    cancelled(worker, task, reason, revoked=True)


def expired(worker: Worker, task: ActiveTask) -> None:
    exc = TaskRevokedError(f"task {task.id} expired before it ran")
    cancelled(worker, task, "expired", error=exc, expired=True)


def already_terminal(worker: Worker, task: ActiveTask, status: TaskStatus) -> None:
    """A redelivered task whose terminal state is already stored: ack without running it again."""
    worker.broker.ack(task.delivery)
    worker.count("deduplicated")


def republish_later(worker: Worker, task: ActiveTask, delay: float, *, reason: str, state_meta: dict[str, Any] | None = None) -> None:
    """Publish the same attempt ``delay`` seconds out, then ack (queue paused, rate limited).

    A ``retried`` status is stored first, for the reason :func:`schedule_retry` gives.
    """
    env = task.envelope
    if state_meta is not None:
        _set(worker, task, TaskState.RETRIED, meta=status_meta(worker, task, **state_meta))
    worker.broker.publish(sign(worker, env.replace(not_before=time.time() + delay)), queue=task.delivery.queue)
    if state_meta is not None:
        worker.emit(WorkerEventType.RETRIED, task, data={"delay": delay, "reason": reason, **state_meta})
    worker.broker.ack(task.delivery)


def requeue_unstarted(worker: Worker, tasks: list[ActiveTask]) -> None:
    """Give deliveries back to the broker for redelivery and stop tracking them. A delivery the
    broker cannot take back (unreachable, closed) is left to its lease, which brings it back
    later: logged, never raised, so the rest are still given back and released."""
    for task in tasks:
        task.abandoned = True
        try:
            worker.broker.nack(task.delivery, requeue=True)
        except Exception:  # noqa: BLE001 - see the docstring
            log.warning("worker %s: could not requeue task %s; its lease will bring it back",
                        worker.worker_id, task.id, exc_info=True)
        finally:
            release(worker, task)


def free_slot(worker: Worker, task: ActiveTask) -> None:
    """Give back the task's concurrency slot, unless an inline run outlived its hard limit (it
    keeps the slot until its thread returns, see :func:`release`)."""
    if task.slot_held and task.lingering is None:
        task.slot_held = False
        worker._slots.release()


def release(worker: Worker, task: ActiveTask) -> None:
    """Stop the task's timers and forget it (after waiting for an inline run past its limit);
    its context's signals go nowhere from now on."""
    task.settled.set()
    task.cancel_timers()
    lingering = task.lingering
    if lingering is not None:
        task.lingering = None
        lingering.join()
    if task.slot_held:
        task.slot_held = False
        worker._slots.release()
    worker._active.remove(task)
    task.control.detach()
