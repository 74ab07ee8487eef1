"""Timer threads: a heap of deadlines served by one daemon thread, one-shot and periodic callbacks.

:func:`call_later` uses one process-wide :class:`Timers` (made on first use, and again in a
forked child); a Worker runs its own, so that closing it withdraws everything it scheduled. A
thread waits without wake-ups while nothing is due.

Cancelling is cheap and forgets at once: the handle drops its callback (so a long deadline keeps
nothing the callback refers to alive), and the heap sweeps out cancelled entries once they are
most of it. A worker schedules and cancels lease and heartbeat timers for every task; without
the sweep its heap, and every task it referred to, grew with the tasks of the last 30 s.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable

__all__ = ["SWEEP_MIN", "TimerHandle", "Timers", "call_later"]

log = logging.getLogger("stemnb.timers")

SWEEP_MIN = 64  # cancelled entries a heap may hold before a sweep is worth its O(n)


def _nothing() -> None:
    pass


class TimerHandle:
    """A scheduled callback; :meth:`cancel` stops it (idempotent)."""

    __slots__ = ("callback", "interval", "name", "cancelled", "_owner", "_queued")

    def __init__(self, owner: Timers, callback: Callable[[], object], interval: float | None, name: str) -> None:
        self.callback = callback
        self.interval = interval
        self.name = name
        self.cancelled = False
        self._owner = owner
        self._queued = False  # in the owner's heap

    def cancel(self) -> None:
        """Stop future runs of this callback and drop it. A run already under way finishes."""
        self._owner._cancel(self)


class Timers:
    """A heap of due times served by one daemon thread named ``name``; callbacks must be quick.

    A callback's exception is logged and contained. :meth:`close` stops the thread and withdraws
    every pending callback (idempotent); scheduling on a closed instance returns a cancelled handle.
    """

    def __init__(self, name: str = "stemnb-timers") -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._cancelled = 0  # cancelled handles still in the heap
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay: float, callback: Callable[[], object], name: str = "") -> TimerHandle:
        """Run ``callback`` once after ``delay`` seconds (at once when ``delay`` <= 0)."""
        handle = TimerHandle(self, callback, None, name)
        self._push(time.monotonic() + max(0.0, delay), handle)
        return handle

    def call_every(
        self, interval: float, callback: Callable[[], object], name: str = "", first: float | None = None
    ) -> TimerHandle:
        """Run ``callback`` every ``interval`` seconds (first after ``first``, default ``interval``).

        Raises:
            ValueError: ``interval`` is not > 0.
        """
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        handle = TimerHandle(self, callback, interval, name)
        self._push(time.monotonic() + (interval if first is None else first), handle)
        return handle

    @property
    def pending(self) -> int:
        """How many callbacks are scheduled and not cancelled."""
        with self._cond:
            return len(self._heap) - self._cancelled

    def close(self) -> None:
        """Stop the thread; pending callbacks never run."""
        with self._cond:
            self._closed = True
            for _, _, handle in self._heap:
                handle.cancelled, handle.callback, handle._queued = True, _nothing, False
            self._heap.clear()
            self._cancelled = 0
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _push(self, due: float, handle: TimerHandle) -> None:
        with self._cond:
            if self._closed or handle.cancelled:
                handle.cancelled, handle.callback = True, _nothing
                return
            heapq.heappush(self._heap, (due, next(self._seq), handle))
            handle._queued = True
            if self._heap[0][2] is handle:  # only an earlier first deadline changes the wait
                self._cond.notify_all()

    def _cancel(self, handle: TimerHandle) -> None:
        with self._cond:
            if handle.cancelled:
                return
            handle.cancelled, handle.callback = True, _nothing
            if not handle._queued:  # running now, or a one-shot that ran
                return
            self._cancelled += 1
            if self._cancelled > SWEEP_MIN and 2 * self._cancelled > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, handle = heapq.heappop(self._heap)
                handle._queued = False
                if handle.cancelled:
                    self._cancelled -= 1
                    continue
                callback = handle.callback
            try:
                callback()
            except Exception:
                log.exception("timer %r failed", handle.name or getattr(callback, "__qualname__", callback))
            if handle.interval is not None:
                self._push(time.monotonic() + handle.interval, handle)


_process_timers: Timers | None = None
_pid: int | None = None
_lock = threading.Lock()


def call_later(delay: float, callback: Callable[[], object]) -> TimerHandle:
    """Run ``callback()`` on this process's timer thread after ``delay`` seconds."""
    global _process_timers, _pid
    with _lock:
        if _process_timers is None or _pid != os.getpid():
            _process_timers = Timers()
            _pid = os.getpid()
    return _process_timers.call_later(delay, callback)
