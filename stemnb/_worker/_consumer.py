"""The consumer loop: one thread receives deliveries, runner threads handle them within the slots."""

from __future__ import annotations

import collections
import logging
import threading
from typing import TYPE_CHECKING

from .._broker import Consumer
from .._envelope import Delivery
from .._events import WorkerEventType
from . import _pipeline, _relay
from ._active import ActiveTask
from ._outage import Outage

if TYPE_CHECKING:
    from ._worker import Worker

log = logging.getLogger("stemnb.worker")

POLL = 0.25  # seconds a blocked get waits before re-checking that the worker still runs


class ConsumerLoop:
    """Receives deliveries into a local buffer; runner threads take and handle them.

    A runner holds one of the worker's concurrency slots only while its task runs (see
    ``_pipeline``).
    The broker hands out at most ``prefetch`` unsettled deliveries; every held delivery has its
    lease renewed from receipt, so a buffered one does not expire while it waits for a slot.
    """

    def __init__(self, worker: Worker) -> None:
        self._worker = worker
        self._buffer: collections.deque[ActiveTask] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._consumer: Consumer | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        w = self._worker
        self._consumer = w.broker.consume(
            list(w.subscription.queues),
            prefetch=w.prefetch,
            consumer_name=w.worker_id,
            broadcasts=list(w.subscription.broadcasts),
        )
        receiver = threading.Thread(target=self._receive, name=f"stemnb-{w.worker_id}-consume", daemon=True)
        self._threads.append(receiver)
        # twice as many runners as slots: while some tasks run (holding a slot), others do their
        # checks or store their results, so broker and backend round trips overlap the runs.
        # When a finished task can hand its slot to the next (see _handover), its runner goes on
        # with that task itself; spare runners would only take the leased tasks it hands over to.
        runners = w._max_slots if w._paired.fuses_running else 2 * w._max_slots
        for i in range(runners):
            self._threads.append(
                threading.Thread(target=self._run, name=f"stemnb-{w.worker_id}-runner-{i}", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def stop_receiving(self) -> list[ActiveTask]:
        """Stop taking deliveries and wake the runners; return the buffered, not yet started ones."""
        with self._cond:
            self._stopping = True
            left = list(self._buffer)
            self._buffer.clear()
            self._cond.notify_all()
        if self._consumer is not None:
            self._consumer.close()
        return left

    def join(self, timeout: float | None = None) -> None:
        """Wait for the receiver (and idle runners) to end."""
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    def buffered(self) -> int:
        return len(self._buffer)

    def _receive(self) -> None:
        w = self._worker
        consumer = self._consumer
        assert consumer is not None
        outage = Outage(w.worker_id, "consume")
        while not self._stopping:
            try:
                delivery = consumer.get(timeout=POLL)
            except Exception as exc:  # a broker failure must not kill the loop silently
                w.emit(WorkerEventType.ERROR, error=exc, data={"where": "consume"})
                if consumer.closed:
                    return
                wait = outage.failed(exc)
                with self._cond:  # back off instead of spinning on a broken broker
                    self._cond.wait_for(lambda: self._stopping, wait)
                continue
            outage.succeeded()
            if delivery is None:
                if consumer.closed:
                    return
                continue
            task = self._accept(delivery)
            with self._cond:
                if self._stopping:
                    break
                self._buffer.append(task)
                self._cond.notify()
            continue
        else:
            return
        # stopped while holding one delivery: give it back
        from ._outcome import requeue_unstarted

        requeue_unstarted(w, [task])

    @property
    def stopping(self) -> bool:
        """Whether the worker stopped taking deliveries."""
        return self._stopping

    def _run(self) -> None:
        w = self._worker
        while True:
            w._staging.release_one()  # a staged task that has not started runs here instead
            task = self._next()
            if task is None:
                return
            _relay.run_chain(_pipeline.chain(w, task), w._may_relay)

    def _accept(self, delivery: Delivery) -> ActiveTask:
        """Track a delivery from receipt: active, counted, its lease renewed."""
        w = self._worker
        task = ActiveTask(w, delivery)
        w._active.add(task)
        w.count("received")
        w._leases.track(task)
        return task

    def next_ready(self) -> ActiveTask | None:
        """A task to run now without waiting: a buffered one, else one the consumer already
        leased (taken here, without a hop through the receiving thread); None if neither."""
        with self._cond:
            if self._buffer:
                return self._buffer.popleft()
        consumer = self._consumer
        if consumer is not None and not self._stopping:
            delivery = consumer.get_leased()
            if delivery is not None:
                return self._accept(delivery)
        return None

    def put_back(self, task: ActiveTask) -> bool:
        """Put a task in front of the buffer, for the next free runner; False (nothing done)
        once the worker stopped receiving."""
        with self._cond:
            if self._stopping:
                return False
            self._buffer.appendleft(task)
            self._cond.notify()
            return True

    def _next(self) -> ActiveTask | None:
        """The next task: one ready now (:meth:`next_ready`), else wait for one to be buffered."""
        task = self.next_ready()
        if task is not None:
            return task
        with self._cond:
            while not self._buffer:
                if self._stopping:
                    return None
                self._cond.wait()
            return self._buffer.popleft()
