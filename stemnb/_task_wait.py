"""One wait for a task's terminal status (:meth:`Stem.wait_for_task`), held in one small object.

A producer waits for thousands of tasks at once, each wait alive until its task ends, long enough
for the garbage collector to promote everything it holds. Built from closures, a wait held 36
objects the collector traces (a lambda each for the close hook, the timer, the watch and the
done callback, their cells and tuples), and 1,000 waits at once were enough to set off a full
collection of the producer's process: 11-27 ms with every thread stopped, a worker's too when it
shares the process. This object's bound methods are the callbacks instead: 18 objects.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._backend import ResultBackend, TaskStatus, Watch
from ._exceptions import ClosedError
from ._future import Future
from ._timers import TimerHandle, call_later

__all__ = ["TaskWait"]


class TaskWait:
    """Settles ``future`` with ``task_id``'s terminal status as ``decode(status)`` makes it (an
    exception it raises settles the future instead), with TimeoutError after ``timeout`` seconds,
    or with ClosedError once ``backend`` is closed; whichever comes first wins, and then every
    other way is withdrawn. Cancelling the future withdraws them all.

    Raises what ``backend.watch_terminal`` raises (nothing is left registered then).
    """

    __slots__ = ("future", "task_id", "_decode", "_timeout", "_closed_watch", "_timer", "_status_watch")

    def __init__(self, backend: ResultBackend, task_id: str, timeout: float | None,
                 decode: Callable[[TaskStatus], TaskStatus]) -> None:
        self.future: Future[TaskStatus] = Future(debug_name=f"task {task_id}")
        self.task_id = task_id
        self._decode = decode
        self._timeout = timeout
        self._status_watch: Watch | None = None
        self._timer: TimerHandle | None = None
        self._closed_watch: Watch | None = backend.when_closed(self._on_closed)
        if timeout is not None:
            self._timer = call_later(timeout, self._timed_out)
        try:  # settles at once if the task is terminal already
            self._status_watch = backend.watch_terminal(task_id, self._on_status)
        except BaseException:
            self._withdraw()
            raise
        self.future.add_done_callback(self._on_done)

    def _on_status(self, status: TaskStatus) -> None:
        try:
            self.future._settle(self._decode(status))
        except Exception as exc:  # undecodable payload
            self.future._settle(exception=exc)

    def _on_closed(self) -> None:
        self.future._settle(exception=ClosedError(f"the result backend was closed while waiting for task {self.task_id}"))

    def _timed_out(self) -> None:
        self.future._settle(exception=TimeoutError(f"task {self.task_id} did not finish within {self._timeout:g} s"))

    def _on_done(self, _future: Any) -> None:
        self._withdraw()

    def _withdraw(self) -> None:
        closed, timer, status = self._closed_watch, self._timer, self._status_watch
        self._closed_watch = self._timer = self._status_watch = None
        for watch in (closed, status):
            if watch is not None:
                watch.close()
        if timer is not None:
            timer.cancel()
