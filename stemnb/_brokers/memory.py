"""The in-memory broker: priority queues, delayed delivery, leases and dead letters in one process.

Event-driven: no background thread. Every operation first brings the touched queues up to date
(due delayed envelopes become ready, expired leases are reclaimed for redelivery), and a blocked
consumer sleeps on a condition until a publish, a settle, or the next due/expiry time wakes it.
An idle broker therefore costs no CPU.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Sequence
from typing import Any

from .._broker import (
    DEFAULT_VISIBILITY_TIMEOUT,
    Broker,
    Consumer,
    DeadLetterEntry,
    QueueStatistics,
    consume_args,
)
from .._envelope import Delivery, Envelope
from .._exceptions import ClosedError
from ._memory_parts import _Lease, _MemoryConsumer, _Queue

__all__ = ["InMemoryBroker"]


class InMemoryBroker(Broker):
    """A thread-safe broker held in this process's memory, with priorities and delayed delivery.

    Higher ``priority`` is delivered first, FIFO within a priority; a consumer of several queues
    takes the best envelope across them. Deadlines (``not_before``, lease expiry) are honoured as
    they fall due, without a polling thread. ``delayed_interval`` and ``claim_interval`` (Stem's
    names) cap how long a blocked consumer sleeps before re-checking due envelopes and expired
    leases, a guard against wall-clock jumps; ``default_visibility_timeout`` is the lease length
    for envelopes that set none.
    """

    supports_delayed = True
    supports_priority = True

    def __init__(
        self,
        *,
        delayed_interval: float = 0.2,
        claim_interval: float = 5.0,
        default_visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
    ) -> None:
        for name, value in (
            ("delayed_interval", delayed_interval),
            ("claim_interval", claim_interval),
            ("default_visibility_timeout", default_visibility_timeout),
        ):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} must be a number > 0 seconds, got {value!r}")
        self.delayed_interval = float(delayed_interval)
        self.claim_interval = float(claim_interval)
        self.default_visibility_timeout = float(default_visibility_timeout)
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._queues: dict[str, _Queue] = {}
        self._channels: dict[str, list[_MemoryConsumer]] = {}
        self._seq = itertools.count()
        self._closed = False

    # -- internals (call with the lock held) ----------------------------------------------------
    def _queue(self, name: str) -> _Queue:
        q = self._queues.get(name)
        if q is None:
            q = self._queues[name] = _Queue()
        return q

    def _advance(self, q: _Queue, now: float) -> None:
        while q.delayed and q.delayed[0][0] <= now:
            _, seq, env = heapq.heappop(q.delayed)
            heapq.heappush(q.ready, (-env.priority, seq, env, False))
        while q.leases:
            expires_at, receipt = q.leases[0]
            lease = q.inflight.get(receipt)
            if lease is None or lease.expires_at != expires_at:
                heapq.heappop(q.leases)  # settled or renewed: stale entry
            elif expires_at <= now:
                heapq.heappop(q.leases)
                self._release(q, receipt)
                env = lease.delivery.envelope
                heapq.heappush(q.ready, (-env.priority, next(self._seq), env, True))
            else:
                break

    def _advance_all(self, names: Sequence[str], now: float) -> None:
        for name in names:
            q = self._queues.get(name)
            if q is not None:
                self._advance(q, now)

    def _sleep_for(self, names: Sequence[str], now: float) -> float:
        wait = math.inf
        for name in names:
            q = self._queues.get(name)
            if q is None:
                continue
            if q.delayed:
                wait = min(wait, q.delayed[0][0] - now, self.delayed_interval)
            if q.leases:
                wait = min(wait, q.leases[0][0] - now, self.claim_interval)
        return max(wait, 0.0005)

    def _take(self, consumer: _MemoryConsumer, now: float) -> Delivery | None:
        best: _Queue | None = None
        best_name = ""
        for name in consumer.queues:
            q = self._queues.get(name)
            if q is None:
                continue
            self._advance(q, now)
            if q.ready and (best is None or q.ready[0][:2] < best.ready[0][:2]):
                best, best_name = q, name
        if best is None:
            return None
        _, _, env, redelivered = heapq.heappop(best.ready)
        visibility = env.visibility_timeout or self.default_visibility_timeout
        expires_at = now + visibility
        receipt = f"{env.id}#{next(self._seq)}"
        delivery = Delivery(env, receipt, expires_at, best_name, redelivered=redelivered)
        earliest = best.next_deadline()
        best.inflight[receipt] = _Lease(delivery, consumer, expires_at)
        best.push_lease(expires_at, receipt)
        consumer._unacked += 1
        if expires_at < earliest:  # sleepers must re-arm for the earlier reclaim time
            self._wake_all(best, skip=consumer)
        return delivery

    def _release(self, q: _Queue, receipt: str) -> _Lease | None:
        lease = q.inflight.pop(receipt, None)
        if lease is not None:
            lease.consumer._unacked -= 1
            lease.consumer._cond.notify()
        return lease

    def _wake_one_each(self, q: _Queue) -> None:
        for consumer in q.consumers:
            if consumer.has_capacity:
                consumer._cond.notify()

    def _wake_all(self, q: _Queue, skip: _MemoryConsumer | None = None) -> None:
        for consumer in q.consumers:
            if consumer is not skip:
                consumer._cond.notify_all()

    def _enqueue(self, q: _Queue, env: Envelope, now: float) -> None:
        seq = next(self._seq)
        if env.not_before is not None and env.not_before > now:
            earliest = q.next_deadline()
            heapq.heappush(q.delayed, (env.not_before, seq, env))
            if env.not_before < earliest:
                self._wake_all(q)
        else:
            heapq.heappush(q.ready, (-env.priority, seq, env, False))
            self._wake_one_each(q)

    def _detach(self, consumer: _MemoryConsumer) -> None:
        for name in consumer.queues:
            q = self._queues.get(name)
            if q is not None and consumer in q.consumers:
                q.consumers.remove(consumer)
        for channel in consumer._broadcasts:
            members = self._channels.get(channel, [])
            if consumer in members:
                members.remove(consumer)

    def _settle(self, delivery: Delivery) -> tuple[_Queue, _Lease] | None:
        if not isinstance(delivery, Delivery):
            raise TypeError(f"expected a Delivery, got {type(delivery).__name__}")
        q = self._queues.get(delivery.queue)
        lease = None if q is None else self._release(q, delivery.receipt)
        if q is None or lease is None:
            return None
        self._drained.notify_all()
        return q, lease

    # -- producing ------------------------------------------------------------------------------
    def publish(self, envelope: Envelope, *, queue: str | None = None) -> None:
        if not isinstance(envelope, Envelope):
            raise TypeError(f"publish() expects an Envelope, got {type(envelope).__name__}")
        if queue is not None and queue != envelope.queue:
            envelope = envelope.replace(queue=queue)
        with self._lock:
            if self._closed:
                raise ClosedError("cannot publish: the InMemoryBroker is closed")
            self._enqueue(self._queue(envelope.queue), envelope, time.time())

    def broadcast(self, channel: str, envelope: Envelope) -> int:
        if not isinstance(envelope, Envelope):
            raise TypeError(f"broadcast() expects an Envelope, got {type(envelope).__name__}")
        with self._lock:
            if self._closed:
                raise ClosedError("cannot broadcast: the InMemoryBroker is closed")
            members = list(self._channels.get(channel, ()))
            for consumer in members:
                receipt = f"broadcast#{next(self._seq)}"
                consumer._inbox.append(Delivery(envelope, receipt, None, channel, broadcast=True))
                consumer._cond.notify()
            return len(members)

    # -- consuming ------------------------------------------------------------------------------
    def consume(
        self,
        queues: str | Sequence[str],
        *,
        prefetch: int = 1,
        consumer_name: str | None = None,
        broadcasts: Sequence[str] = (),
    ) -> Consumer:
        names, channels = consume_args(queues, broadcasts, prefetch)
        with self._lock:
            if self._closed:
                raise ClosedError("cannot consume: the InMemoryBroker is closed")
            consumer = _MemoryConsumer(self, names, channels, prefetch, consumer_name)
            for name in names:
                self._queue(name).consumers.append(consumer)
            for channel in channels:
                self._channels.setdefault(channel, []).append(consumer)
            return consumer

    def ack(self, delivery: Delivery) -> bool:
        if isinstance(delivery, Delivery) and delivery.broadcast:
            return True
        with self._lock:
            return self._settle(delivery) is not None

    def nack(self, delivery: Delivery, *, requeue: bool = True) -> bool:
        if isinstance(delivery, Delivery) and delivery.broadcast:
            return True
        with self._lock:
            settled = self._settle(delivery)
            if settled is None:
                return False
            q, lease = settled
            if requeue and not self._closed:
                env = lease.delivery.envelope
                heapq.heappush(q.ready, (-env.priority, next(self._seq), env, True))
                self._wake_one_each(q)
            return True

    def dead_letter(
        self, delivery: Delivery, reason: str, meta: dict[str, Any] | None = None
    ) -> bool:
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"dead_letter() needs a non-empty reason string, got {reason!r}")
        if isinstance(delivery, Delivery) and delivery.broadcast:
            return True
        with self._lock:
            settled = self._settle(delivery)
            if settled is None:
                return False
            q, lease = settled
            env = lease.delivery.envelope
            q.dead.pop(env.id, None)
            q.dead[env.id] = DeadLetterEntry(env, reason, dict(meta or {}), time.time())
            return True

    def extend_lease(self, delivery: Delivery, seconds: float) -> bool:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(f"extend_lease() needs seconds > 0, got {seconds!r}")
        if not isinstance(delivery, Delivery):
            raise TypeError(f"expected a Delivery, got {type(delivery).__name__}")
        if delivery.broadcast:
            return True
        with self._lock:
            q = self._queues.get(delivery.queue)
            lease = None if q is None else q.inflight.get(delivery.receipt)
            if q is None or lease is None:
                return False
            lease.expires_at = delivery.lease_expires_at = time.time() + seconds
            q.push_lease(lease.expires_at, delivery.receipt)
            if q.leases[0][1] == delivery.receipt:  # it may now be the earliest deadline
                self._wake_all(q)
            return True

    # -- inspecting and maintenance -------------------------------------------------------------
    def _counted(self, queue: str) -> _Queue | None:
        q = self._queues.get(queue)
        if q is not None:
            self._advance(q, time.time())
        return q

    def pending_count(self, queue: str) -> int:
        with self._lock:
            q = self._counted(queue)
            return 0 if q is None else len(q.ready)

    def delayed_count(self, queue: str) -> int:
        with self._lock:
            q = self._counted(queue)
            return 0 if q is None else len(q.delayed)

    def inflight_count(self, queue: str) -> int:
        with self._lock:
            q = self._counted(queue)
            return 0 if q is None else len(q.inflight)

    def purge(self, queue: str) -> int:
        with self._lock:
            q = self._queues.get(queue)
            if q is None:
                return 0
            count = len(q.ready) + len(q.delayed)
            q.ready.clear()
            q.delayed.clear()
            self._drained.notify_all()
            return count

    def list_dead_letters(
        self, queue: str, *, limit: int = 50, offset: int = 0
    ) -> list[DeadLetterEntry]:
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}")
        with self._lock:
            q = self._queues.get(queue)
            entries = [] if q is None else list(reversed(q.dead.values()))
        return entries[offset : offset + limit]

    def get_dead_letter(self, queue: str, task_id: str) -> DeadLetterEntry | None:
        with self._lock:
            q = self._queues.get(queue)
            return None if q is None else q.dead.get(task_id)

    def replay_dead_letters(
        self, queue: str, *, limit: int | None = None, delay: float | None = None
    ) -> list[Envelope]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if delay is not None and delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay}")
        with self._lock:
            if self._closed:
                raise ClosedError("cannot replay: the InMemoryBroker is closed")
            q = self._queues.get(queue)
            if q is None:
                return []
            ids = list(q.dead)[: len(q.dead) if limit is None else limit]
            now = time.time()
            replayed = []
            for task_id in ids:
                env = q.dead.pop(task_id).envelope
                if delay:
                    env = env.replace(not_before=now + delay)
                self._enqueue(q, env, now)
                replayed.append(env)
            return replayed

    def dead_letter_count(self, queue: str) -> int:
        with self._lock:
            q = self._queues.get(queue)
            return 0 if q is None else len(q.dead)

    def statistics(self, queue: str) -> QueueStatistics:
        with self._lock:  # one consistent snapshot
            q = self._counted(queue)
            if q is None:
                return QueueStatistics(queue, 0, 0, 0, 0)
            return QueueStatistics(
                queue, len(q.ready), len(q.delayed), len(q.inflight), len(q.dead)
            )

    def purge_dead_letters(self, queue: str) -> int:
        with self._lock:
            q = self._queues.get(queue)
            if q is None:
                return 0
            count = len(q.dead)
            q.dead.clear()
            return count

    def wait_drained(self, queue: str, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                now = time.time()
                q = self._queues.get(queue)
                if q is not None:
                    self._advance(q, now)
                if q is None or not (q.ready or q.delayed or q.inflight):
                    return True
                wait = self._sleep_for((queue,), now)
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    wait = min(wait, remaining)
                self._drained.wait(None if wait == math.inf else wait)

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            consumers = {c for q in self._queues.values() for c in q.consumers}
            consumers.update(c for members in self._channels.values() for c in members)
            for consumer in consumers:
                consumer._closed = True
                self._detach(consumer)
                consumer._cond.notify_all()
            self._drained.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        with self._lock:
            sizes = {n: len(q.ready) + len(q.delayed) for n, q in self._queues.items()}
        state = "closed" if self._closed else "open"
        return f"<InMemoryBroker {state} queues={sizes}>"
