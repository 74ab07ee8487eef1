"""``stemnb.Future``: a ``concurrent.futures.Future`` that is also awaitable and can stop running work."""

from __future__ import annotations

import _thread
import collections
import concurrent.futures as cf
import threading
from collections.abc import Callable, Generator
from concurrent.futures._base import CANCELLED, FINISHED, PENDING, RUNNING
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class _Condition(_thread.RLock):  # type: ignore[misc]  # final only in typeshed: C RLock subclasses
    """``threading.Condition`` over an RLock, as one small object: the RLock itself.

    ``threading.Condition`` stores five bound methods per instance, so each future cost eleven
    objects for the garbage collector to trace; with thousands of futures in flight the collector's
    passes were a fifth of the pool's time. As a subclass of the C RLock, ``with`` and
    ``acquire``/``release`` (which ``concurrent.futures``' ``wait()`` and ``as_completed()`` call)
    are the lock's own, run without a Python frame; only ``wait`` and ``notify`` are added.
    """

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: collections.deque | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """Release the lock until notified (or ``timeout`` passes); True if notified."""
        waiter = threading.Lock()
        waiter.acquire()
        if self._waiters is None:
            self._waiters = collections.deque()
        self._waiters.append(waiter)
        saved = self._release_save()  # type: ignore[attr-defined]  # RLock's own, as Condition uses
        notified = False
        try:
            if timeout is None:
                notified = waiter.acquire()
            else:
                notified = waiter.acquire(True, timeout) if timeout > 0 else waiter.acquire(False)
            return notified
        finally:
            self._acquire_restore(saved)  # type: ignore[attr-defined]
            if not notified:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass

    def notify(self, n: int = 1) -> None:
        waiters = self._waiters
        while waiters and n > 0:
            waiters.popleft().release()
            n -= 1

    def notify_all(self) -> None:
        if self._waiters:
            self.notify(len(self._waiters))


class Future(cf.Future, Generic[T]):
    """The result of work running elsewhere: ``.result()`` in a script, ``await`` in a notebook.

    Unlike a plain ``concurrent.futures.Future``, :meth:`cancel` also stops work that is already
    *running*, by ending the process that runs it (other work is not affected). A
    ``KeyboardInterrupt`` while blocked in :meth:`result` cancels this work and the other work
    started by the same notebook cell, then propagates.
    """

    def __init__(self, debug_name: str | None = None) -> None:
        # concurrent.futures.Future.__init__'s fields, with a lighter condition (see _Condition)
        self._condition = _Condition()  # type: ignore[assignment]
        self._state = PENDING
        self._result = None
        self._exception = None
        self._waiter_list: list[Any] | None = None
        self._callback_list: list[Callable[[cf.Future], object]] | None = None
        self.debug_name = debug_name
        self._stop_running: Callable[[], bool] | None = None
        self.origin: Any = None

    # concurrent.futures' two lists, made on first use: most futures only ever meet result(), and
    # two lists fewer per future is a third less for the garbage collector to trace
    @property
    def _waiters(self) -> list[Any]:
        if self._waiter_list is None:
            self._waiter_list = []
        return self._waiter_list

    @_waiters.setter
    def _waiters(self, waiters: list[Any]) -> None:
        self._waiter_list = waiters

    @property
    def _done_callbacks(self) -> list[Callable[[cf.Future], object]]:
        if self._callback_list is None:
            self._callback_list = []
        return self._callback_list

    @_done_callbacks.setter
    def _done_callbacks(self, callbacks: list[Callable[[cf.Future], object]]) -> None:
        self._callback_list = callbacks

    def _invoke_callbacks(self) -> None:
        if self._callback_list:
            super()._invoke_callbacks()  # type: ignore[misc]

    # -- running-work cancellation -------------------------------------------------------------
    def _set_stopper(self, stop: Callable[[], bool] | None) -> None:
        """Install how to stop this work once it runs; ``stop()`` returns whether it stopped it."""
        self._stop_running = stop

    def cancel(self) -> bool:
        """Cancel the work; if it is running, end the process running it. True if cancelled.

        Returns False once the work has finished (or is about to deliver its result).
        """
        with self._condition:
            state = self._state
            if state == FINISHED:
                return False
            if state in (CANCELLED, "CANCELLED_AND_NOTIFIED"):
                return True
            stop = self._stop_running if state == RUNNING else None
            if state == RUNNING and stop is None:
                return False
            if state == PENDING:
                self._state = CANCELLED
                self._condition.notify_all()
        if stop is not None:
            if not stop():
                return False
            with self._condition:
                if self._state != RUNNING:
                    return self._state in (CANCELLED, "CANCELLED_AND_NOTIFIED")
                self._state = CANCELLED
                self._stop_running = None
                self._condition.notify_all()
        self._invoke_callbacks()
        return True

    # -- safe completion (work may finish after a cancel raced it) -------------------------------
    def _settle(self, result: Any = None, exception: BaseException | None = None) -> bool:
        """Set the outcome unless the future is already cancelled or done; True if it was set."""
        with self._condition:
            if self._state not in (PENDING, RUNNING):
                return False
            if exception is not None:
                self._exception = exception
            else:
                self._result = result
            self._state = FINISHED
            self._stop_running = None  # it refers back to this future: drop the cycle with the work
            for waiter in self._waiter_list or ():  # concurrent.futures.wait() / as_completed()
                if exception is not None:
                    waiter.add_exception(self)
                else:
                    waiter.add_result(self)
            self._condition.notify_all()
        self._invoke_callbacks()
        return True

    # -- waiting -------------------------------------------------------------------------------
    def result(self, timeout: float | None = None) -> T:
        """Wait for and return the result; raise the work's exception, TimeoutError or CancelledError."""
        if self._state == FINISHED and self._exception is None:  # FINISHED is final: no lock to take
            return self._result  # type: ignore[return-value]
        try:
            return super().result(timeout)
        except KeyboardInterrupt:
            self._interrupted()
            raise

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            return super().exception(timeout)
        except KeyboardInterrupt:
            self._interrupted()
            raise

    def _interrupted(self) -> None:
        from ._interrupt import cancel_origin

        self.cancel()
        cancel_origin(self.origin)

    def __await__(self) -> Generator[Any, None, T]:
        import asyncio

        return asyncio.wrap_future(self).__await__()

    def __repr__(self) -> str:
        name = f" {self.debug_name!r}" if self.debug_name else ""
        with self._condition:
            state = self._state
        return f"<stemnb.Future{name} state={state.lower()}>"

    def _repr_html_(self) -> str:
        from ._html import render_future

        return render_future(self)
