"""A resizable counting semaphore: the bound on running tasks (the worker's active concurrency)."""

from __future__ import annotations

import threading
import time


class Slots:
    """At most ``limit`` holders at a time; the limit can change while slots are held.

    Lowering the limit never interrupts holders: new acquisitions wait until ``in_use`` drops
    below the new limit.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._limit = limit
        self._in_use = 0
        self._waiting = 0  # threads blocked in acquire()
        self._cond = threading.Condition()

    @property
    def limit(self) -> int:
        """The current bound."""
        return self._limit

    @property
    def in_use(self) -> int:
        """How many slots are held now."""
        return self._in_use

    def set_limit(self, limit: int) -> None:
        """Change the bound (>= 1); wakes waiters when it grows."""
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        with self._cond:
            self._limit = limit
            self._cond.notify_all()

    def acquire(self, timeout: float | None = None) -> bool:
        """Take a slot, waiting up to ``timeout`` seconds. Returns False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._in_use >= self._limit:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._waiting += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting -= 1
            self._in_use += 1
            return True

    def may_keep(self) -> bool:
        """Whether a holder may keep its slot for another task: not when the limit was lowered
        below the slots now held (the slot must go, so the lower limit takes effect), nor when
        another thread waits for a slot (its task came first)."""
        with self._cond:
            return self._in_use <= self._limit and not self._waiting

    def all_held(self) -> bool:
        """Whether every slot is held and nobody waits for one: no task could start now."""
        with self._cond:
            return self._in_use == self._limit and not self._waiting

    def release(self) -> None:
        """Give a slot back."""
        with self._cond:
            if self._in_use <= 0:
                raise RuntimeError("Slots.release() without a matching acquire()")
            self._in_use -= 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no slot is held. Returns False if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_use == 0, timeout)
