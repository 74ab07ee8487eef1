"""One timer thread per process: a heap of deadlines, no wake-ups while nothing is scheduled."""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable


class TimerHandle:
    """A scheduled callback; :meth:`cancel` prevents it from running (idempotent)."""

    __slots__ = ("deadline", "callback", "cancelled")

    def __init__(self, deadline: float, callback: Callable[[], None]) -> None:
        self.deadline = deadline
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True
        self.callback = _nothing  # a long deadline must not keep what the callback refers to alive


def _nothing() -> None:
    pass


class _TimerThread:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        threading.Thread(target=self._loop, name="stemnb-timers", daemon=True).start()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(time.monotonic() + delay, callback)
        with self._cond:
            heapq.heappush(self._heap, (handle.deadline, next(self._seq), handle))
            if self._heap[0][2] is handle:  # only an earlier first deadline changes the wait
                self._cond.notify()
        return handle

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    self._cond.wait()
                deadline, _, handle = self._heap[0]
                delay = deadline - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            if not handle.cancelled:
                try:
                    handle.callback()
                except Exception:  # noqa: BLE001 - a timer callback must not kill the thread
                    import traceback

                    traceback.print_exc()


_thread: _TimerThread | None = None
_pid: int | None = None
_lock = threading.Lock()


def call_later(delay: float, callback: Callable[[], None]) -> TimerHandle:
    """Run ``callback()`` on the timer thread after ``delay`` seconds."""
    global _thread, _pid
    with _lock:
        if _thread is None or _pid != os.getpid():
            _thread = _TimerThread()
            _pid = os.getpid()
    return _thread.call_later(delay, callback)
