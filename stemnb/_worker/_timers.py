"""One background thread running one-shot and periodic callbacks (leases, heartbeats, limits)."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("stemnb.worker")


class TimerHandle:
    """A scheduled callback; ``cancel()`` stops it (idempotent)."""

    __slots__ = ("cancelled", "interval", "callback", "name")

    def __init__(self, callback: Callable[[], object], interval: float | None, name: str) -> None:
        self.callback = callback
        self.interval = interval
        self.cancelled = False
        self.name = name

    def cancel(self) -> None:
        """Stop future runs of this callback."""
        self.cancelled = True


class Timers:
    """A heap of due times served by one daemon thread; callbacks must be quick.

    A callback's exception is logged and contained. ``close()`` stops the thread (idempotent).
    """

    def __init__(self, name: str = "stemnb-timers") -> None:
        self._heap: list[tuple[float, int, TimerHandle]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call_later(self, delay: float, callback: Callable[[], object], name: str = "") -> TimerHandle:
        """Run ``callback`` once after ``delay`` seconds."""
        handle = TimerHandle(callback, None, name)
        self._push(time.monotonic() + max(0.0, delay), handle)
        return handle

    def call_every(
        self, interval: float, callback: Callable[[], object], name: str = "", first: float | None = None
    ) -> TimerHandle:
        """Run ``callback`` every ``interval`` seconds (first after ``first``, default ``interval``)."""
        if interval <= 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        handle = TimerHandle(callback, interval, name)
        self._push(time.monotonic() + (interval if first is None else first), handle)
        return handle

    def close(self) -> None:
        """Stop the thread; pending callbacks never run."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _push(self, due: float, handle: TimerHandle) -> None:
        with self._cond:
            if self._closed:
                handle.cancelled = True
                return
            heapq.heappush(self._heap, (due, next(self._seq), handle))
            if self._heap[0][2] is handle:  # only an earlier first deadline changes the wait
                self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._closed:
                    return
                _, _, handle = heapq.heappop(self._heap)
            if handle.cancelled:
                continue
            try:
                handle.callback()
            except Exception:
                log.exception("worker timer %r failed", handle.name)
            if handle.interval is not None and not handle.cancelled:
                self._push(time.monotonic() + handle.interval, handle)
