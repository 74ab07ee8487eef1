"""Handing a finished task's slot straight to the next task, with one write for both.

When a task succeeds and another delivery is already leased (a worker leases up to its prefetch
ahead), the runner checks that next task while it still holds the finished one's slot. If it
may run, one write stores the finished task's ``succeeded``, acks it, refills the prefetch and
stores the next task's ``running`` (Redis runs it as one script, in that order), and the next
task starts in the same slot. That is one round trip per task on the worker's side instead of two
(``running`` before the run, the outcome after it), with the same guarantees: an outcome is
stored before its ack, and ``running`` before the outcome (before the handler starts, for an
inline task; an isolate task is sent to its process as the write goes out, see
``_pipeline.start``). Only paired writes that fuse them (``PairedWrites.fuses_running``) do
this; with others each task writes on its own.

A task staged behind the finished one (see ``_staging``) is the next task here; when no fused
write applies, :func:`hand_on` passes the slot to it after the finished task settled.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._events import WorkerEventType
from . import _execution, _outcome, _pipeline

if TYPE_CHECKING:
    from ._active import ActiveTask
    from ._pipeline import Run
    from ._worker import Worker

log = logging.getLogger("stemnb.worker")


def hand_over(worker: Worker, task: ActiveTask, result: Any, staged: Run | None = None) -> Run | None:
    """Settle the succeeded ``task`` together with starting the next task in its slot: ``staged``
    (see ``_staging``), else the next leased one.

    Returns that next task's run (``running`` stored, slot held, the task after it staged behind
    it where it can be; ``run_handed`` runs it), or None when there is none that may run now:
    then ``task`` is still unsettled and settles as usual (and ``staged`` goes on with
    :func:`hand_on`). Raises what the write raises (the next task is then given back).
    """
    if not worker._paired.fuses_running or task.abandoned or worker._consumer.stopping:
        return None
    if not task.slot_held or not worker._slots.may_keep():  # e.g. the autoscaler scaled down
        return None
    try:
        done = _outcome.success_status(worker, task, result)
    except Exception:
        return None  # the usual path stores the encoding failure
    run = staged or next_run(worker)
    if run is None:
        return None
    nxt = run.task
    try:
        stored = _pipeline.start(
            worker, run, lambda: worker._paired.set_then_ack_then_running(done, task.delivery, _pipeline.running_status(worker, nxt))
        )
    except BaseException:
        _give_back(worker, nxt)
        raise
    task.slot_held, nxt.slot_held = False, True  # the slot passes to the next task
    try:
        worker._staging.stage(run)  # the one after it, first: the next task may end any moment now
        _outcome.succeeded(worker, task, stored, result)
    except Exception as exc:  # stored and acked already: report it, the next task still runs
        log.exception("worker %s: after task %s succeeded", worker.worker_id, task.id)
        worker.emit(WorkerEventType.ERROR, task, error=exc, data={"where": "settle"})
    return run


def hand_on(worker: Worker, task: ActiveTask, settle: Callable[[], None], staged: Run) -> Run | None:
    """Settle ``task`` with ``settle()``, then pass its slot to ``staged``, whose ``running`` is
    stored on its own (``task`` failed, or its success could not be stored with that start).

    Returns ``staged`` (slot held), or None when storing its ``running`` failed: it was then
    given back. Raises what ``settle()`` raises, after giving ``staged`` back.
    """
    nxt = staged.task
    try:
        settle()
    except BaseException:
        _give_back(worker, nxt)
        raise
    try:
        _pipeline.start(worker, staged, lambda: worker.backend.set_status(_pipeline.running_status(worker, nxt)))
    except Exception as exc:  # noqa: BLE001 - reported; the task goes back to the broker
        _pipeline.settle_failed(worker, nxt, exc)
        return None
    task.slot_held, nxt.slot_held = False, True
    return staged


def next_run(worker: Worker) -> Run | None:
    """The next leased task that passed its checks, or None (none leased, or it must not run:
    then it was settled and released here)."""
    nxt = worker._consumer.next_ready()
    if nxt is None:
        return None
    try:
        run = _pipeline.check(worker, nxt)
    except BaseException as exc:
        _pipeline.settle_failed(worker, nxt, exc)
        _outcome.release(worker, nxt)
        return None
    if run is None:
        _outcome.release(worker, nxt)
    return run


def _give_back(worker: Worker, task: ActiveTask) -> None:
    """Requeue ``task``, which was not started here; its call, if sent, is cancelled."""
    _execution.take_back(task)
    _outcome.requeue_unstarted(worker, [task])  # releases it, whatever happens
