"""The broker interface: queues of task envelopes with leases, dead letters and broadcasts.

A :class:`Broker` mirrors Stem's broker contract. Producers :meth:`~Broker.publish` envelopes;
workers open a :class:`Consumer` with :meth:`~Broker.consume` and block on
:meth:`Consumer.get` in a background thread. Each delivery is leased: it must be settled with
:meth:`~Broker.ack`, :meth:`~Broker.nack` or :meth:`~Broker.dead_letter` before its lease ends, or
the broker redelivers it (:meth:`~Broker.extend_lease` renews the lease). Every implementation is
thread-safe. Implementations live in ``stemnb/_brokers/``; ``stemnb.testing.broker_contract``
holds the suite each one must pass.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._envelope import Delivery, Envelope

__all__ = ["Broker", "Consumer", "DeadLetterEntry", "QueueStatistics", "DEFAULT_VISIBILITY_TIMEOUT"]

DEFAULT_VISIBILITY_TIMEOUT = 30.0
"""Seconds a delivery stays leased when neither the envelope nor the broker says otherwise."""


@dataclass(frozen=True)
class DeadLetterEntry:
    """A dead-lettered envelope with the reason, extra details and when it was dead-lettered."""

    envelope: Envelope
    reason: str
    meta: dict[str, Any] = field(default_factory=dict)
    dead_at: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        """The dead-lettered task's id (the key for :meth:`Broker.get_dead_letter`)."""
        return self.envelope.id


@dataclass(frozen=True)
class QueueStatistics:
    """A snapshot of one queue: envelopes ready, delayed, leased (in flight) and dead-lettered."""

    queue: str
    pending: int
    delayed: int
    inflight: int
    dead_letters: int


class Consumer(abc.ABC):
    """A subscription to one or more queues (and broadcast channels) opened by :meth:`Broker.consume`.

    A consumer holds at most ``prefetch`` unsettled deliveries at a time: :meth:`get` blocks
    while that many are leased and unsettled. It may lease several ahead in one round trip
    (they count as in flight). Closing it stops hand-outs (a blocked :meth:`get` returns
    ``None`` at once) and requeues what it leased ahead, but leaves handed-out deliveries
    leased, so they can still be acked.
    """

    @abc.abstractmethod
    def get(self, timeout: float | None = None) -> Delivery | None:
        """Wait up to ``timeout`` seconds (``None``: forever) for the next delivery.

        Returns:
            The delivery, or ``None`` when the timeout passed or the consumer/broker closed.
        """

    def get_nowait(self) -> Delivery | None:
        """Return the next delivery if one is ready now, else ``None``."""
        return self.get(timeout=0)

    def get_leased(self) -> Delivery | None:
        """Hand out a delivery this consumer already leased ahead, else ``None`` (the default:
        it leases none ahead). Never waits and makes no round trip to the broker (a broker in
        this process may lease a ready envelope here, within the prefetch), so a thread that
        just settled a delivery can take the next one without waking the thread blocked in
        :meth:`get`."""
        return None

    @abc.abstractmethod
    def close(self) -> None:
        """Stop receiving; wakes a blocked :meth:`get`. Idempotent."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """Whether :meth:`close` was called (or the broker closed)."""

    @property
    @abc.abstractmethod
    def queues(self) -> tuple[str, ...]:
        """The queues this consumer takes deliveries from."""

    def __iter__(self) -> Iterator[Delivery]:
        """Yield deliveries until the consumer is closed."""
        while True:
            delivery = self.get()
            if delivery is None:
                if self.closed:
                    return
                continue
            yield delivery

    def __enter__(self) -> Consumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def consume_args(
    queues: str | Sequence[str], broadcasts: str | Sequence[str], prefetch: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Check ``consume()``'s arguments; return the queue names (deduplicated) and channels.

    Raises ValueError for no queue and no channel, an empty or non-str name, or prefetch < 1.
    """
    names = (queues,) if isinstance(queues, str) else tuple(dict.fromkeys(queues))
    channels = (broadcasts,) if isinstance(broadcasts, str) else tuple(broadcasts)
    if not names and not channels:
        raise ValueError("consume() needs at least one queue or broadcast channel")
    if any(not isinstance(n, str) or not n for n in names + channels):
        raise ValueError(f"queue and channel names must be non-empty str, got {names + channels}")
    if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 1:
        raise ValueError(f"prefetch must be an int >= 1, got {prefetch!r}")
    return names, channels


class Broker(abc.ABC):
    """Abstract task broker (Stem's ``Broker`` contract). All methods are thread-safe.

    After :meth:`close`, publishing raises :class:`stemnb.ClosedError` and consumers stop.
    """

    #: Whether ``Envelope.not_before`` delays delivery (eta / countdown).
    supports_delayed: bool = False
    #: Whether higher ``Envelope.priority`` is delivered first (FIFO within a priority).
    supports_priority: bool = False

    # -- producing -------------------------------------------------------------------------
    @abc.abstractmethod
    def publish(self, envelope: Envelope, *, queue: str | None = None) -> None:
        """Enqueue ``envelope`` on ``queue`` (default: ``envelope.queue``, which is then set to it).

        Raises:
            ClosedError: the broker is closed.
            TypeError: ``envelope`` is not an :class:`Envelope`.
        """

    @abc.abstractmethod
    def broadcast(self, channel: str, envelope: Envelope) -> int:
        """Send a copy of ``envelope`` to every consumer subscribed to broadcast ``channel`` now.

        Broadcast deliveries carry no lease; settling them is a no-op.

        Returns:
            How many consumers received it.
        """

    # -- consuming -------------------------------------------------------------------------
    @abc.abstractmethod
    def consume(
        self,
        queues: str | Sequence[str],
        *,
        prefetch: int = 1,
        consumer_name: str | None = None,
        broadcasts: Sequence[str] = (),
    ) -> Consumer:
        """Open a consumer on ``queues`` (and broadcast ``channels``) with ``prefetch`` >= 1.

        Raises:
            ValueError: no queue given or ``prefetch`` < 1.
            ClosedError: the broker is closed.
        """

    @abc.abstractmethod
    def ack(self, delivery: Delivery) -> bool:
        """Settle ``delivery`` as done; the envelope leaves the broker.

        Returns:
            ``False`` when the lease was already lost (expired and redelivered, or settled).
        """

    @abc.abstractmethod
    def nack(self, delivery: Delivery, *, requeue: bool = True) -> bool:
        """Settle ``delivery`` as not done: requeue it for redelivery, or drop it.

        Returns:
            ``False`` when the lease was already lost.
        """

    @abc.abstractmethod
    def dead_letter(
        self, delivery: Delivery, reason: str, meta: dict[str, Any] | None = None
    ) -> bool:
        """Settle ``delivery`` by moving its envelope to its queue's dead-letter list.

        Returns:
            ``False`` when the lease was already lost (nothing is recorded then).
        """

    @abc.abstractmethod
    def extend_lease(self, delivery: Delivery, seconds: float) -> bool:
        """Renew ``delivery``'s lease to end ``seconds`` from now (updates ``lease_expires_at``).

        Returns:
            ``False`` when the lease was already lost.

        Raises:
            ValueError: ``seconds`` is not > 0.
        """

    # -- inspecting and maintenance ----------------------------------------------------------
    @abc.abstractmethod
    def pending_count(self, queue: str) -> int:
        """Return how many envelopes on ``queue`` are ready to deliver (due, not leased)."""

    @abc.abstractmethod
    def delayed_count(self, queue: str) -> int:
        """Return how many envelopes on ``queue`` wait for their ``not_before`` time."""

    @abc.abstractmethod
    def inflight_count(self, queue: str) -> int:
        """Return how many deliveries from ``queue`` are leased and not settled."""

    @abc.abstractmethod
    def purge(self, queue: str) -> int:
        """Drop every ready and delayed envelope on ``queue`` (leased ones stay). Returns the count."""

    @abc.abstractmethod
    def list_dead_letters(
        self, queue: str, *, limit: int = 50, offset: int = 0
    ) -> list[DeadLetterEntry]:
        """Return ``queue``'s dead letters, newest first, paged by ``offset`` and ``limit``."""

    @abc.abstractmethod
    def get_dead_letter(self, queue: str, task_id: str) -> DeadLetterEntry | None:
        """Return the dead letter of task ``task_id`` on ``queue``, or ``None``."""

    @abc.abstractmethod
    def replay_dead_letters(
        self, queue: str, *, limit: int | None = None, delay: float | None = None
    ) -> list[Envelope]:
        """Move up to ``limit`` dead letters (oldest first) back onto ``queue``.

        Each envelope keeps its id and attempt; with ``delay`` seconds it is delivered that much
        later. Returns the replayed envelopes.
        """

    @abc.abstractmethod
    def purge_dead_letters(self, queue: str) -> int:
        """Drop every dead letter of ``queue``. Returns the count."""

    def dead_letter_count(self, queue: str) -> int:
        """Return how many dead letters ``queue`` holds (implementations count it cheaply)."""
        return len(self.list_dead_letters(queue, limit=2**31))

    def statistics(self, queue: str) -> QueueStatistics:
        """Return a :class:`QueueStatistics` snapshot of ``queue`` (counts read one by one)."""
        return QueueStatistics(
            queue,
            self.pending_count(queue),
            self.delayed_count(queue),
            self.inflight_count(queue),
            self.dead_letter_count(queue),
        )

    def wait_drained(self, queue: str, timeout: float | None = None) -> bool:
        """Block until ``queue`` has nothing ready, delayed or in flight.

        The base version re-checks the counts every 10 ms; implementations override it with a
        notification. Returns ``False`` if ``timeout`` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if not (
                self.pending_count(queue) or self.delayed_count(queue) or self.inflight_count(queue)
            ):
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None:
        """Close every consumer and refuse further publishing. Idempotent."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
