"""The in-memory broker's parts: per-queue state, leases and the blocking consumer handle."""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._broker import Consumer, DeadLetterEntry
from .._envelope import Delivery, Envelope

if TYPE_CHECKING:
    from .memory import InMemoryBroker


@dataclass
class _Lease:
    delivery: Delivery
    consumer: _MemoryConsumer
    expires_at: float


@dataclass
class _Queue:
    # ready: (-priority, seq, envelope, redelivered); delayed: (not_before, seq, envelope)
    ready: list[tuple[int, int, Envelope, bool]] = field(default_factory=list)
    delayed: list[tuple[float, int, Envelope]] = field(default_factory=list)
    inflight: dict[str, _Lease] = field(default_factory=dict)
    leases: list[tuple[float, str]] = field(default_factory=list)  # lazy: stale entries skipped
    dead: dict[str, DeadLetterEntry] = field(default_factory=dict)  # oldest first
    consumers: list[_MemoryConsumer] = field(default_factory=list)

    def push_lease(self, expires_at: float, receipt: str) -> None:
        heapq.heappush(self.leases, (expires_at, receipt))
        if len(self.leases) > 2 * len(self.inflight) + 1024:  # mostly settled or renewed: rebuild
            self.leases = [(lease.expires_at, r) for r, lease in self.inflight.items()]
            heapq.heapify(self.leases)

    def next_deadline(self) -> float:
        times = [self.delayed[0][0]] if self.delayed else []
        if self.leases:
            times.append(self.leases[0][0])
        return min(times, default=math.inf)


class _MemoryConsumer(Consumer):
    def __init__(
        self,
        broker: InMemoryBroker,
        queues: tuple[str, ...],
        broadcasts: tuple[str, ...],
        prefetch: int,
        name: str | None,
    ) -> None:
        self._broker = broker
        self._queues = queues
        self._broadcasts = broadcasts
        self._prefetch = prefetch
        self.name = name
        self._cond = threading.Condition(broker._lock)
        self._inbox: deque[Delivery] = deque()
        self._unacked = 0
        self._closed = False

    @property
    def queues(self) -> tuple[str, ...]:
        return self._queues

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def has_capacity(self) -> bool:
        return self._unacked < self._prefetch

    def get(self, timeout: float | None = None) -> Delivery | None:
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        broker = self._broker
        with broker._lock:
            while True:
                if self._closed:
                    return None
                if self._inbox:
                    return self._inbox.popleft()
                now = time.time()
                if self.has_capacity:
                    delivery = broker._take(self, now)
                    if delivery is not None:
                        return delivery
                else:
                    broker._advance_all(self._queues, now)
                wait = broker._sleep_for(self._queues, now)
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    wait = min(wait, remaining)
                self._cond.wait(None if wait == math.inf else wait)

    def get_leased(self) -> Delivery | None:
        """A delivery at once, without waiting: one in the inbox, else a ready envelope leased
        now if the prefetch has room (in memory, leasing costs no round trip). A runner that has
        just settled a delivery takes the next one here instead of waiting for the thread
        blocked in :meth:`get` to wake and hand it over."""
        broker = self._broker
        with broker._lock:
            if self._closed:
                return None
            if self._inbox:
                return self._inbox.popleft()
            return broker._take(self, time.time()) if self.has_capacity else None

    def close(self) -> None:
        with self._broker._lock:
            if self._closed:
                return
            self._closed = True
            self._broker._detach(self)
            self._cond.notify_all()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._unacked}/{self._prefetch} unacked"
        return f"<InMemoryBroker consumer {self.name or ''} on {list(self._queues)} {state}>"
