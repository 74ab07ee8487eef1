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
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .._events import WorkerEventType
from . import _outcome
from ._pipeline import Run, check, running_status, settle_failed, start

if TYPE_CHECKING:
    from ._active import ActiveTask
    from ._worker import Worker

log = logging.getLogger("stemnb.worker")


def hand_over(worker: Worker, task: ActiveTask, result: Any) -> Run | None:
    """Settle the succeeded ``task`` together with starting the next leased task in its slot.

    Returns that next task's run (``running`` stored, slot held; ``run_handed`` runs it), or
    None when there is none that may run now: then ``task`` is still unsettled and settles as
    usual. Raises what the write raises (the next task is then given back).
    """
    if not worker._paired.fuses_running or task.abandoned or worker._consumer.stopping:
        return None
    if not task.slot_held or not worker._slots.may_keep():  # e.g. the autoscaler scaled down
        return None
    try:
        done = _outcome.success_status(worker, task, result)
    except Exception:
        return None  # the usual path stores the encoding failure
    run = _next_run(worker)
    if run is None:
        return None
    nxt = run.task
    try:
        stored = start(
            worker, run, lambda: worker._paired.set_then_ack_then_running(done, task.delivery, running_status(worker, nxt))
        )
    except BaseException:
        _give_back(worker, nxt)
        raise
    task.slot_held, nxt.slot_held = False, True  # the slot passes to the next task
    try:
        _outcome.succeeded(worker, task, stored, result)
    except Exception as exc:  # stored and acked already: report it, the next task still runs
        log.exception("worker %s: after task %s succeeded", worker.worker_id, task.id)
        worker.emit(WorkerEventType.ERROR, task, error=exc, data={"where": "settle"})
    return run


def _next_run(worker: Worker) -> Run | None:
    """The next leased task that passed its checks, or None (none leased, or it must not run:
    then it was settled and released here)."""
    nxt = worker._consumer.next_ready()
    if nxt is None:
        return None
    try:
        run = check(worker, nxt)
    except BaseException as exc:
        settle_failed(worker, nxt, exc)
        _outcome.release(worker, nxt)
        return None
    if run is None:
        _outcome.release(worker, nxt)
    return run


def _give_back(worker: Worker, task: ActiveTask) -> None:
    try:
        _outcome.requeue_unstarted(worker, [task])  # releases it, whatever happens
    except Exception:  # the broker is unreachable: its lease runs out and it comes back
        log.exception("worker %s: could not requeue task %s", worker.worker_id, task.id)
