"""The Redis broker's consumer handle: blocks on wake lists, holds broadcast deliveries."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from typing import TYPE_CHECKING

import redis as _redis

from .._broker import Consumer
from .._envelope import Delivery, Envelope
from .._json import parse_json
from .._redis_watch import ChannelListener

if TYPE_CHECKING:
    from .redis import RedisBroker

log = logging.getLogger("stemnb.broker")

_MAX_BATCH = 32  # envelopes leased per round trip, within the consumer's prefetch


class _RedisConsumer(Consumer):
    def __init__(
        self,
        broker: RedisBroker,
        queues: tuple[str, ...],
        channels: tuple[str, ...],
        prefetch: int,
        name: str | None,
    ) -> None:
        self._broker = broker
        self._queues = queues
        self._prefetch = prefetch
        self.name = name
        self._private_wake = broker._key("consumer", uuid.uuid4().hex, "wake")
        self._wake_keys = [broker._key("q", q, "wake") for q in queues] + [self._private_wake]
        self._cond = threading.Condition()
        self._unacked = 0
        self._reserved = 0  # room promised to takes in flight (see _reserve)
        self._blocking = False  # the consumer's thread waits in BLPOP on the wake lists
        self._inbox: deque[Delivery] = deque()
        # after a take that left the queues with nothing ready: look again only once woken (or
        # at this monotonic time, the next due envelope or lease expiry), which saves a round trip
        self._idle_until: float | None = None
        self._closed = False
        self._listener: ChannelListener | None = None
        self._prefix = broker._key("bc", "").encode()
        if channels:
            self._listener = ChannelListener(
                broker._client, [broker._key("bc", c) for c in channels], self._on_broadcast, "redis-broadcast"
            )

    def _on_broadcast(self, channel: bytes, data: bytes) -> None:
        """File a broadcast in the inbox and wake a blocked :meth:`get`. Broadcasts sent while
        the listener's connection was lost are not seen (pub/sub keeps nothing)."""
        if self._closed:
            return
        try:
            envelope = Envelope.from_dict(parse_json(data))
        except (ValueError, TypeError, KeyError):
            log.warning("dropped a malformed broadcast message", exc_info=True)
            return
        name = channel[len(self._prefix):].decode() if channel.startswith(self._prefix) else channel.decode()
        receipt = f"broadcast#{uuid.uuid4().hex}"
        with self._cond:
            self._inbox.append(Delivery(envelope, receipt, None, name, broadcast=True))
            self._cond.notify_all()
        try:
            self._broker._client.rpush(self._private_wake, "b")
        except Exception:  # noqa: BLE001 - closed meanwhile, or Redis is away: a blocked get() wakes by itself
            log.debug("could not wake the consumer for a broadcast", exc_info=True)

    @property
    def queues(self) -> tuple[str, ...]:
        return self._queues

    @property
    def closed(self) -> bool:
        return self._closed

    def _settled(self) -> None:
        with self._cond:
            self._unacked -= 1
            self._cond.notify_all()

    def _reserve(self, settling: int = 0) -> int:
        """Reserve room for a take: how many deliveries to lease (0: none, the prefetch is full
        or the consumer closed). ``settling`` held deliveries are being settled in the same
        round trip: they stop counting against the prefetch at once.

        Every reservation ends in :meth:`_receive`, or in :meth:`_unreserve` when the round
        trip failed.
        """
        with self._cond:
            if self._closed or not self._queues:
                return 0
            self._unacked -= settling
            room = self._prefetch - self._unacked - self._reserved
            want = max(0, min(room, _MAX_BATCH))
            self._reserved += want
            if want == 0:
                self._unacked += settling  # nothing reserved: the caller settles as usual
            return want

    def _unreserve(self, reserved: int) -> None:
        """Give back a reservation whose round trip failed. Deliveries it was settling stay
        counted settled: a failed settle leaves them to their leases (see RedisBroker._settle)."""
        with self._cond:
            self._reserved -= reserved
            self._cond.notify_all()

    def _receive(
        self, taken: list[Delivery], reserved: int, sleep: float, drained: bool, *, quiet: bool = False
    ) -> None:
        """Hold ``taken``, leased against ``reserved`` room. When the queues were left empty,
        block on the wake lists (for at most ``sleep`` seconds) before looking again.

        ``quiet``: another thread's take (a settle that refilled the prefetch), whose caller
        takes ``taken`` with :meth:`get_leased` itself; a thread waiting in :meth:`get` is woken
        only if room is left, and its idle state is left alone (only its own take may set it: a
        wake token it took since could otherwise be overruled by this older news).
        """
        if not quiet and (drained or not taken):
            self._idle_until = time.monotonic() + sleep
        with self._cond:
            self._reserved -= reserved
            self._unacked += len(taken)
            closed = self._closed
            if not closed:
                self._inbox.extend(taken)
            if not quiet or closed or self._unacked + self._reserved < self._prefetch:
                self._cond.notify_all()
            wake = bool(taken) and self._blocking and not closed and not quiet
        if closed:
            self._requeue(taken)
        elif wake:  # the consumer's own thread waits in BLPOP: have it look at its inbox
            self._broker._client.rpush(self._private_wake, "r")

    def get_leased(self) -> Delivery | None:
        with self._cond:
            return self._inbox.popleft() if self._inbox else None

    def _remaining(self, deadline: float | None, cap: float) -> float:
        return cap if deadline is None else min(cap, deadline - time.monotonic())

    def get(self, timeout: float | None = None) -> Delivery | None:
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        try:
            return self._get(deadline)
        except Exception:
            # close() cuts the connection a blocked call uses; redis-py then raises anything
            # from ConnectionError to AttributeError. Only a closed consumer swallows it.
            if self._closed or self._broker.closed:
                return None
            raise

    def _get(self, deadline: float | None) -> Delivery | None:
        broker = self._broker
        while not self._closed:
            with self._cond:
                if self._inbox:
                    return self._inbox.popleft()
                full = self._unacked + self._reserved >= self._prefetch
                if self._queues and full:  # wait for a settle (or a broadcast) locally
                    wait = self._remaining(deadline, 5.0)
                    if wait <= 0:
                        return None
                    self._cond.wait(wait)
                    continue
            keys = [self._private_wake]
            wait = 5.0
            if self._queues and self._idle_until is None:
                self._take()
                continue
            if self._queues and self._idle_until is not None:
                keys, wait = self._wake_keys, self._idle_until - time.monotonic()
                if wait <= 0:  # an envelope or a lease is due: look again
                    self._idle_until = None
                    continue
            limit = self._remaining(deadline, wait)
            if limit <= 0:
                return None
            self._blocking = True
            try:
                woken = broker._client.blpop(keys, timeout=max(limit, 0.01))
            finally:
                self._blocking = False
            if woken or limit >= wait:
                self._idle_until = None  # woken, or due: look again
        return None

    def _take(self) -> None:
        """Lease a batch into the inbox; when nothing was ready, ``_idle_until`` says until when
        to block on the wake lists."""
        want = self._reserve()
        if want == 0:
            return
        try:
            taken, sleep, drained = self._broker._take(self, want)
        except BaseException:
            self._unreserve(want)
            raise
        self._receive(taken, want, sleep, drained)

    def _requeue(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:  # leased in a batch but never handed out
            try:
                self._broker.nack(delivery, requeue=True)
            except Exception:
                log.debug(
                    "could not requeue %s; its lease will expire", delivery.receipt, exc_info=True
                )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._cond:
            unsent = [d for d in self._inbox if not d.broadcast]
            self._inbox.clear()
            self._cond.notify_all()
        self._requeue(unsent)
        try:
            self._broker._client.rpush(self._private_wake, "x")
            self._broker._client.expire(self._private_wake, 60)
        except _redis.RedisError:
            pass  # the broker's connection is gone; a blocked get() ends at its next wake
        if self._listener is not None:
            self._listener.close()  # ends its thread and its connection before returning
        self._broker._forget_consumer(self)
