"""A task's status write followed by a broker step for the same task, always in that order.

The producer records ``queued`` before it publishes (so a fast worker's ``running`` is never
overwritten by a late ``queued``); the worker stores a task's outcome before it acks or
dead-letters the delivery (so a crash in between can run a task twice but never lose its
result). :func:`paired_writes` gives the plain two-call version for any broker and backend, or,
when both are Redis parts on the same Redis database, one that runs both steps in one script:
one round trip instead of two, the same order, and no broker step if the status write fails.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._backend import ResultBackend, TaskStatus
from ._broker import Broker
from ._envelope import Delivery, Envelope

if TYPE_CHECKING:
    from ._backends.memory import InMemoryResultBackend

__all__ = ["PairedWrites", "paired_writes"]


class PairedWrites:
    """``backend.set_status(status)``, then the broker step, as two calls.

    Each method returns the stored status and raises what the backend or the broker raises;
    when the status write fails, the broker step is not attempted.
    """

    #: Whether :meth:`set_then_ack_then_running` makes one write (then the worker hands a
    #: finished task's slot to the next one with it, see ``_worker._handover``).
    fuses_running = False

    def __init__(self, broker: Broker, backend: ResultBackend) -> None:
        self.broker = broker
        self.backend = backend

    def _together(self) -> contextlib.AbstractContextManager[Any]:
        """The block each pair of writes runs in: nothing here (see InProcessPairedWrites)."""
        return contextlib.nullcontext()

    def set_then_publish(self, status: TaskStatus, envelope: Envelope) -> TaskStatus:
        """Store ``status``, then publish ``envelope`` on ``envelope.queue``."""
        with self._together():
            stored = self.backend.set_status(status)
            self.broker.publish(envelope, queue=envelope.queue)
        return stored

    def set_then_publish_many(self, pairs: Sequence[tuple[TaskStatus, Envelope]]) -> None:
        """:meth:`set_then_publish` for each pair, in order (one round trip per chunk of pairs
        where the parts allow). A failure stops at its pair: the pairs before it are published."""
        for status, envelope in pairs:
            self.set_then_publish(status, envelope)

    def set_then_ack(self, status: TaskStatus, delivery: Delivery) -> TaskStatus:
        """Store ``status``, then ack ``delivery`` (a lost lease is not an error)."""
        with self._together():
            stored = self.backend.set_status(status)
            self.broker.ack(delivery)
        return stored

    def set_then_ack_then_running(
        self, status: TaskStatus, delivery: Delivery, running: TaskStatus
    ) -> TaskStatus:
        """Store ``status``, ack ``delivery``, then store another task's ``running`` status;
        return the first stored status."""
        with self._together():
            stored = self.set_then_ack(status, delivery)
            self.backend.set_status(running)
        return stored

    def set_then_dead_letter(
        self, status: TaskStatus, delivery: Delivery, reason: str, meta: dict[str, Any]
    ) -> TaskStatus:
        """Store ``status``, then dead-letter ``delivery`` with ``reason`` and ``meta``."""
        with self._together():
            stored = self.backend.set_status(status)
            self.broker.dead_letter(delivery, reason, meta)
        return stored


class InProcessPairedWrites(PairedWrites):
    """Paired writes on the in-memory broker and backend: plain calls, each a few microseconds.

    With writes this cheap, settling a finished task and starting the next in its slot from the
    same runner thread (``_worker._handover``) beats freeing the slot for another runner to wake
    and take: the next task starts sooner and no thread hand-off is paid.

    The status's watchers are called once the broker step is done too (as on Redis, where one
    script does both before the status is published): whoever an outcome wakes finds its
    delivery acked or dead-lettered already.
    """

    fuses_running = True
    backend: InMemoryResultBackend

    def _together(self) -> contextlib.AbstractContextManager[Any]:
        return self.backend._holding_watchers()


def paired_writes(broker: Broker, backend: ResultBackend) -> PairedWrites:
    """The paired writes for ``broker`` and ``backend``: one script per pair when both are the
    Redis parts of stemnb on one Redis database, plain calls in one go when both are in memory,
    else two calls."""
    from ._backends.memory import InMemoryResultBackend
    from ._brokers.memory import InMemoryBroker

    if type(broker) is InMemoryBroker and type(backend) is InMemoryResultBackend:
        return InProcessPairedWrites(broker, backend)
    database = _redis_database(broker)
    if database is not None and database == _redis_database(backend):
        from ._redis_paired import redis_paired_writes

        paired = redis_paired_writes(broker, backend)
        if paired is not None:
            return paired
    return PairedWrites(broker, backend)


def _redis_database(part: Any) -> Any:
    """Which Redis database ``part`` keeps its data in, or None (not a Redis part, or unknown)."""
    method = getattr(part, "_redis_database", None)
    return None if method is None else method()
