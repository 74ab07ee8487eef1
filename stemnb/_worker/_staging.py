"""Staging: the next task waits in the process of a running isolate task, to start as it ends.

Without staging, an isolate that finished a task idles until the worker has read the result,
taken and checked the next delivery and sent it: a few hundred µs of the worker's threads, and
more when the isolates keep the cores busy (each woken thread first waits for a core). With it,
when every slot is held, the runner of an isolate task that has just been sent checks the next
leased task and sends it *behind* the running one (``TaskIsolatePool.execute(behind=...)``): the
process starts it the moment the first returns, and the runner hands its slot over to it
(``_pipeline._finish``). The isolates stay busy while the worker stores outcomes.

What staging keeps as it was:
- ``concurrency`` bounds the running handlers: a staged task starts only when the one ahead of
  it has ended, in the same process, and the slot passes from one to the other.
- A staged task passed its checks (registry, revocation, signature, expiry, rate limit) when it
  was sent. A revocation that arrives before it starts takes it back, and it never runs; one
  with terminate that arrives once it started stops it, as one that arrives as a task starts.
- A task never waits behind a long one while a slot is free: a runner about to wait for work
  first takes back a staged task that has not started (:meth:`Staging.release_one`) and runs it.
- Shutdown takes back every staged task that has not started and requeues it; one that started
  runs on (or is terminated, in a soft shutdown) like the running tasks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from . import _execution, _handover, _outcome

if TYPE_CHECKING:
    from ._active import ActiveTask
    from ._pipeline import Run
    from ._worker import Worker


class Staging:
    """The worker's staged tasks: sent behind a running task, not yet handed its slot."""

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._lock = threading.Lock()
        self._runs: dict[ActiveTask, Run] = {}  # oldest first

    def stage(self, run: Run) -> Run | None:
        """Send the next leased task to start right after ``run`` (an isolate task just sent)
        in its process; return its run, or None when nothing was staged.

        Only when every slot is held (else the next task starts on its own) and nobody waits
        for one. A run with a task staged behind it already gets that one again, while staged.
        A next task that cannot be sent that way (an inline task, one that an ``on_execute``
        middleware wraps, or one the process of ``run`` cannot take because ``run`` ended
        already or the process is to be recycled) is put back in front of the buffer, checked.
        """
        worker = self._worker
        task = run.task
        prior = task.staged
        if prior is not None:  # staged behind it already (see _handover): that one, while staged
            with self._lock:
                if prior.task in self._runs:
                    return prior
            task.staged = None
        if task.future is None or task.future.done() or not task.slot_held or worker._consumer.stopping:
            return None  # (a task done already hands its slot over at once)
        if not worker._slots.all_held():
            return None
        pool = worker._pool
        if pool is None or not pool.may_stage_behind(task.future):  # e.g. its result is being read
            return None  # (without taking the next task from the buffer, only to put it back)
        nxt = _handover.next_run(worker)
        if nxt is None:
            return None
        _execution.send_ahead(worker, nxt.task, nxt.handler, nxt.args, behind=task.future)
        if nxt.task.future is None or nxt.task.future.cancelled():  # not sent: the first free runner takes it
            nxt.task.future = None
            self._put_back(nxt.task, nxt)
            return None
        with self._lock:
            self._runs[nxt.task] = nxt
        task.staged = nxt
        if not worker._slots.all_held():  # a slot was freed meanwhile: let its runner take it
            self.release_one()
        return nxt

    def claim(self, staged: Run | None) -> Run | None:
        """The runner that staged ``staged`` takes it as its task ends. Returns it, or None when
        another runner took it back, a hard shutdown gave it back (it is released here), or the
        worker stops and it had not started (it is requeued here)."""
        if staged is None:
            return None
        task = staged.task
        with self._lock:
            if self._runs.pop(task, None) is None:
                return None
        if task.abandoned:
            _outcome.release(self._worker, task)
            return None
        if self._worker._consumer.stopping and self._withdraw(task):
            _outcome.requeue_unstarted(self._worker, [task])
            return None
        return staged

    def release_one(self) -> None:
        """Take back the oldest staged task that has not started, and put it in front of the
        buffer (checked already), for a runner with a free slot."""
        self._release(lambda task: True)

    def take_back(self, task_id: str) -> None:
        """Take back staged task ``task_id`` if it has not started (it was revoked: it is put in
        front of the buffer, where its run finds the revocation)."""
        self._release(lambda task: task.id == task_id)

    def _release(self, which: Callable[[ActiveTask], bool]) -> None:
        with self._lock:
            taken = next(((t, r) for t, r in self._runs.items() if which(t) and self._withdraw(t)), None)
            if taken is None:
                return
            del self._runs[taken[0]]
        self._put_back(*taken)

    def withdraw_all(self) -> list[ActiveTask]:
        """Take back every staged task that has not started (for a shutdown); return them."""
        with self._lock:
            taken = [t for t in list(self._runs) if self._withdraw(t)]
            for task in taken:
                del self._runs[task]
        return taken

    def started(self) -> list[ActiveTask]:
        """The staged tasks not yet handed their slot (after :meth:`withdraw_all`: those running)."""
        with self._lock:
            return list(self._runs)

    def _withdraw(self, task: ActiveTask) -> bool:
        pool = self._worker._pool
        if pool is None or task.future is None or not pool.withdraw(task.future):
            return False
        task.future = None  # it is sent again when it starts
        return True

    def _put_back(self, task: ActiveTask, run: Run) -> None:
        task.checked = run
        if not self._worker._consumer.put_back(task):  # the worker stops: back to the broker
            task.checked = None
            _outcome.requeue_unstarted(self._worker, [task])
