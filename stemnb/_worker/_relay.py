"""Relaying: the thread that reads an isolate task's result goes on with the runner's work.

A runner's work is a chain of tasks (each hands its slot to the next, see ``_handover``), written
as a generator (``_pipeline.chain``) that yields the future of each isolate call it waits for.
Without relaying, the runner thread blocks on that future: the pool's reader thread reads the
result, wakes the runner, and the runner first has to get a core and the GIL back before it can
store the outcome and start the next task. With it, the reader thread that settles the future
steps the chain on itself (store the outcome, take and stage the next task) up to the next call
it waits for, and goes back to reading; the runner thread sleeps until the chain ends.

That saves a thread wake-up per task and, more, the wait for it: while a notebook's process is
busy (the producer enqueueing, the status feed), the woken runner waited a median 0.3 ms for the
GIL, a good part of the 1 ms the isolate had before the staged task behind it ended.

The chain is only stepped on where it is safe: in a pool reader thread settling results outside
every pool lock (``stemnb._pool_lives.take_settling``). A future settled anywhere else (a
cancel, a hard time limit, a process that died, a shutdown) wakes the runner thread, which steps
the chain as before, and so does every call while the worker runs code of its user inside a step
(middleware, event callbacks: see ``run_chain``). Only one thread steps a chain at a time: the
one that got the callback of the future the chain waits for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from concurrent.futures import Future

from .._pool_lives import take_settling

Chain = Generator[Future, None, None]


class _Relay:
    """Steps one chain: in the runner thread, and on from the reader threads that settle its calls."""

    __slots__ = ("_chain", "_may_relay", "_resume", "_over", "_error")

    def __init__(self, chain: Chain, may_relay: Callable[[], bool]) -> None:
        self._chain = chain
        self._may_relay = may_relay
        self._resume = threading.Event()
        self._over = False
        self._error: BaseException | None = None

    def run(self) -> None:
        """Step the chain until it ends; returns in the runner thread once it did (anywhere)."""
        future = self._step()
        while future is not None:
            self._resume.clear()
            future.add_done_callback(self._on_done)
            self._resume.wait()
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._over:
                return
            future = self._step()

    def _step(self) -> Future | None:
        """Run the chain to the next future it waits for; None once it ended."""
        try:
            return next(self._chain)
        except StopIteration:
            return None

    def _on_done(self, future: Future) -> None:
        if not take_settling() or not self._may_relay():  # the runner thread itself, a cancel, a timer,
            self._resume.set()  # a dying process; or user code may run in the step (see run_chain)
            return
        try:
            nxt = self._step()
        except BaseException as exc:  # noqa: BLE001 - a bug in the chain: raised in the runner thread
            self._error = exc
            self._resume.set()
            return
        if nxt is None:
            self._over = True
            self._resume.set()
        else:  # one already done runs the callback at once, here, and it wakes the runner thread
            nxt.add_done_callback(self._on_done)


def run_chain(chain: Chain, may_relay: Callable[[], bool] = lambda: True) -> None:
    """Run ``chain`` (see the module's docstring); returns once it has ended. What the chain
    raises is raised here, in the calling (runner) thread.

    ``may_relay()``, asked at each step, says whether a reader thread may step it on: a worker
    says no while it has middleware or event callbacks, code of its user that runs inside a
    step and might wait for another task, whose result the reader it holds would have to read.
    """
    _Relay(chain, may_relay).run()
