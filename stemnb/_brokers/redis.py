"""The Redis broker: the in-memory broker's semantics, shared by every process that can reach Redis.

Every state change is one Lua script (atomic on the server), see ``_redis_scripts``. Blocked
consumers wait on ``BLPOP`` of per-queue wake lists (publishers push a token) and wake at the
next due time or lease expiry, so an idle consumer costs one blocked connection, not polling.
Broadcasts use Redis pub/sub. Needs ``redis`` (``pip install "stemnb[redis]"``).
"""

from __future__ import annotations

import logging
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
from .._exceptions import ClosedError, EncodingError
from .._json import compact_json, parse_json
from .._redis_client import (  # first: its ImportError names the extra to install
    Commands,
    connect,
    database_of,
)
from . import _redis_scripts as lua
from ._redis_consumer import _RedisConsumer

__all__ = ["RedisBroker", "MALFORMED_TASK_NAME"]

log = logging.getLogger("stemnb.broker")

_QUEUE_PARTS = ("ready", "delayed", "inflight", "env", "info")
MALFORMED_TASK_NAME = "__stem.malformed__"
"""Name of the stand-in envelope under which an undecodable message is dead-lettered."""


def _dumps(envelope: Envelope) -> str:
    try:
        return compact_json(envelope.to_dict())
    except (TypeError, ValueError) as exc:
        raise EncodingError(
            f"task {envelope.id} ({envelope.name}) cannot go through Redis: its args, meta or "
            f"headers are not JSON data ({exc}); encode the args with a payload encoder first"
        ) from exc


def _malformed(queue: str, token: str, text: bytes | None, exc: Exception) -> DeadLetterEntry:
    raw = (text or b"").decode("utf-8", "replace")[:2000]
    envelope = Envelope(MALFORMED_TASK_NAME, {"raw": raw}, id=f"malformed-{token}", queue=queue)
    return DeadLetterEntry(
        envelope, "malformed-envelope", {"error": f"{type(exc).__name__}: {exc}"}
    )


def _entry_to_json(entry: DeadLetterEntry) -> str:
    data: dict[str, Any] = {"envelope": entry.envelope.to_dict(), "reason": entry.reason}
    data.update(meta=entry.meta, dead_at=entry.dead_at)
    return compact_json(data)


def _entry_from_json(text: str | bytes) -> DeadLetterEntry:
    data = parse_json(text)
    envelope = Envelope.from_dict(data["envelope"])
    return DeadLetterEntry(envelope, data["reason"], data.get("meta") or {}, data["dead_at"])


class RedisBroker(Broker):
    """A broker in Redis (``url``, or an existing ``client``), shared across processes.

    Keys live under ``namespace``. Same semantics as :class:`stemnb.InMemoryBroker`: priority
    0-9 (higher first, FIFO within), delayed delivery, leases of ``default_visibility_timeout``
    seconds with reclaim, dead letters, broadcasts. ``claim_interval`` caps how long a blocked
    consumer sleeps before re-checking due envelopes and expired leases.
    """

    supports_delayed = True
    supports_priority = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "stemnb",
        default_visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT,
        claim_interval: float = 5.0,
        client: Any = None,
    ) -> None:
        if not default_visibility_timeout > 0 or not claim_interval > 0:
            raise ValueError("default_visibility_timeout and claim_interval must be > 0 seconds")
        self._client, self._owns_client = connect(url, client, "RedisBroker")
        self.namespace = namespace
        self.default_visibility_timeout = float(default_visibility_timeout)
        self.claim_interval = float(claim_interval)
        self._scripts: dict[str, Any] = {
            name: self._client.register_script(getattr(lua, name))
            for name in ("PUBLISH", "TAKE", "COUNTS", "ACK", "NACK", "DEAD_LETTER", "EXTEND")
            + ("PURGE", "REPLAY_ONE")
        }
        self._commands = Commands(self._client)
        self._consumers: set[_RedisConsumer] = set()
        self._keys: dict[tuple[str, tuple[str, ...]], list[str]] = {}
        self._holders: dict[tuple[str, str], _RedisConsumer] = {}
        self._lock = threading.Lock()
        self._closed = False

    # -- keys and helpers -----------------------------------------------------------------------
    def _key(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    def _queue_keys(self, queue: str, *extra: str) -> list[str]:
        """The keys of ``queue``'s parts (ready delayed inflight env info, then ``extra``)."""
        cached = self._keys.get((queue, extra))
        if cached is None:  # made once per queue and part list: they are on every hot path
            cached = [self._key("q", queue, part) for part in (*_QUEUE_PARTS, *extra)]
            if len(self._keys) >= 4096:  # many one-off queue names: start over
                self._keys.clear()
            self._keys[(queue, extra)] = cached
        return list(cached)

    def _publish_keys(self, queue: str) -> list[str]:
        ready, delayed, _, env, info, wake = self._queue_keys(queue, "wake")
        return [ready, delayed, env, info, wake, self._key("seq")]

    def _redis_database(self) -> tuple[Any, ...] | None:
        return database_of(self._client)

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise ClosedError(f"cannot {what}: the RedisBroker is closed")

    def _take(self, consumer: _RedisConsumer, want: int) -> tuple[list[Delivery], float, bool]:
        """Lease up to ``want`` of the best ready envelopes of the consumer's queues in one
        round trip; see :meth:`_taken` for what it returns."""
        keys, args = self._take_call(consumer, want)
        return self._taken(consumer, self._run("TAKE", keys, args), float(args[0]))

    def _take_call(self, consumer: _RedisConsumer, want: int) -> tuple[list[str], list[Any]]:
        """The take function's keys and arguments: ``want`` envelopes for ``consumer``, now."""
        keys = [k for q in consumer.queues for k in self._queue_keys(q, "wake")]
        args = [repr(time.time()), repr(self.default_visibility_timeout), len(consumer.queues), want]
        return keys, args

    def _taken(
        self, consumer: _RedisConsumer, reply: Any, now: float
    ) -> tuple[list[Delivery], float, bool]:
        """The deliveries of a take function's ``reply`` (made at ``now``), held by ``consumer``;
        undecodable ones are dead-lettered (reason ``malformed-envelope``).

        Returns the deliveries, how long the consumer may block on its wake lists before it must
        look again (next due envelope or lease expiry, at most ``claim_interval``), and whether
        the queues were left with nothing ready (then a wake token is the only reason to look).
        """
        taken, next_due, drained = reply
        deliveries = []
        for index, token, count, expires, text in taken:
            queue, token = consumer.queues[int(index)], token.decode()
            try:
                envelope = Envelope.from_dict(parse_json(text))
            except (ValueError, TypeError, KeyError) as exc:
                self._dead_letter_raw(queue, token, count, _malformed(queue, token, text, exc))
                continue
            receipt = f"{token}:{count}"
            redelivered = int(count) > 1
            deliveries.append(Delivery(envelope, receipt, float(expires), queue, redelivered))
        with self._lock:
            for delivery in deliveries:
                self._holders[(delivery.queue, delivery.receipt)] = consumer
        sleep = self.claim_interval
        if next_due:
            sleep = min(sleep, float(next_due) - now)
        return deliveries, max(sleep, 0.001), bool(drained)

    def _run(self, script: str, keys: list[str], args: list[Any]) -> Any:
        return self._commands.script(self._scripts[script], keys, args)

    def _dead_letter_raw(self, queue: str, token: str, count: Any, entry: DeadLetterEntry) -> None:
        keys = self._queue_keys(queue, "wake", "dead", "deadenv")
        args = [token, count, entry.envelope.id, _entry_to_json(entry), repr(entry.dead_at)]
        self._run("DEAD_LETTER", keys, args)
        log.warning(
            "dead-lettered an undecodable message on queue %r: %s", queue, entry.meta["error"]
        )

    def _settle(self, script: str, delivery: Delivery, keys: list[str], args: list[Any]) -> bool:
        """Run a settle script. The delivery stops counting against its consumer's prefetch even
        when the round trip fails: it is left to its lease, and a consumer that waited for the
        settle would otherwise wait for good (Redis restarted, say, with the delivery gone)."""
        try:
            return bool(self._run(script, keys, args))
        finally:
            self._settled(delivery)

    def _settle_args(self, delivery: Delivery, *extra_args: Any) -> list[Any]:
        """The settle scripts' arguments: the receipt's token and delivery count, then ``extra_args``.

        Raises:
            TypeError: ``delivery`` is not a Delivery.
        """
        if not isinstance(delivery, Delivery):
            raise TypeError(f"expected a Delivery, got {type(delivery).__name__}")
        token, _, count = delivery.receipt.partition(":")
        return [token, count, *extra_args]

    def _settled(self, delivery: Delivery) -> None:
        """Forget who holds ``delivery`` (its consumer may then lease another)."""
        consumer = self._forget_holder(delivery)
        if consumer is not None:
            consumer._settled()

    def _forget_holder(self, delivery: Delivery) -> _RedisConsumer | None:
        with self._lock:
            return self._holders.pop((delivery.queue, delivery.receipt), None)

    def _holder(self, delivery: Delivery) -> _RedisConsumer | None:
        """The open consumer of this broker that holds ``delivery``, if any."""
        if not isinstance(delivery, Delivery):
            return None
        with self._lock:
            return self._holders.get((delivery.queue, delivery.receipt))

    def _forget_consumer(self, consumer: _RedisConsumer) -> None:
        with self._lock:
            self._consumers.discard(consumer)

    # -- producing ------------------------------------------------------------------------------
    def publish(self, envelope: Envelope, *, queue: str | None = None) -> None:
        if not isinstance(envelope, Envelope):
            raise TypeError(f"publish() expects an Envelope, got {type(envelope).__name__}")
        self._check_open("publish")
        if queue is not None and queue != envelope.queue:
            envelope = envelope.replace(queue=queue)
        self._run("PUBLISH", *self._publish_call(envelope))

    def _publish_call(self, envelope: Envelope) -> tuple[list[str], list[Any]]:
        """The PUBLISH script's keys and arguments for ``envelope`` (on ``envelope.queue``).

        Raises:
            EncodingError: the envelope is not JSON data.
        """
        return self._publish_keys(envelope.queue), self._publish_args(envelope)

    def _publish_args(self, envelope: Envelope) -> list[Any]:
        nb = "" if envelope.not_before is None else repr(envelope.not_before)
        vt = "" if envelope.visibility_timeout is None else repr(envelope.visibility_timeout)
        return [_dumps(envelope), envelope.priority, nb, repr(time.time()), vt]

    def broadcast(self, channel: str, envelope: Envelope) -> int:
        if not isinstance(envelope, Envelope):
            raise TypeError(f"broadcast() expects an Envelope, got {type(envelope).__name__}")
        self._check_open("broadcast")
        return int(self._client.publish(self._key("bc", channel), _dumps(envelope)))

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
        self._check_open("consume")
        consumer = _RedisConsumer(self, names, channels, prefetch, consumer_name)
        with self._lock:
            self._consumers.add(consumer)
        return consumer

    def ack(self, delivery: Delivery) -> bool:
        if isinstance(delivery, Delivery) and delivery.broadcast:
            return True
        return self._settle("ACK", delivery, self._queue_keys(delivery.queue), self._settle_args(delivery))

    def nack(self, delivery: Delivery, *, requeue: bool = True) -> bool:
        if isinstance(delivery, Delivery) and delivery.broadcast:
            return True
        args = self._settle_args(delivery, "1" if requeue else "0")
        return self._settle("NACK", delivery, self._queue_keys(delivery.queue, "wake"), args)

    def dead_letter(
        self, delivery: Delivery, reason: str, meta: dict[str, Any] | None = None
    ) -> bool:
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"dead_letter() needs a non-empty reason string, got {reason!r}")
        if isinstance(delivery, Delivery) and delivery.broadcast:
            return True
        return self._settle("DEAD_LETTER", delivery, *self._dead_letter_call(delivery, reason, meta))

    def _dead_letter_call(
        self, delivery: Delivery, reason: str, meta: dict[str, Any] | None
    ) -> tuple[list[str], list[Any]]:
        """The DEAD_LETTER script's keys and arguments (the entry is dated now)."""
        now = time.time()
        entry = DeadLetterEntry(delivery.envelope, reason, dict(meta or {}), now)
        args = self._settle_args(delivery, delivery.envelope.id, _entry_to_json(entry), repr(now))
        return self._queue_keys(delivery.queue, "wake", "dead", "deadenv"), args

    def extend_lease(self, delivery: Delivery, seconds: float) -> bool:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise ValueError(f"extend_lease() needs seconds > 0, got {seconds!r}")
        if not isinstance(delivery, Delivery):
            raise TypeError(f"expected a Delivery, got {type(delivery).__name__}")
        if delivery.broadcast:
            return True
        token, _, count = delivery.receipt.partition(":")
        expires = time.time() + seconds
        keys = self._queue_keys(delivery.queue)
        if not self._run("EXTEND", keys, [token, count, f"{expires:.6f}"]):
            return False
        delivery.lease_expires_at = expires
        return True

    # -- inspecting and maintenance -------------------------------------------------------------
    def _counts(self, queue: str) -> list[int]:
        return self._scripts["COUNTS"](keys=self._queue_keys(queue), args=[repr(time.time())])

    def pending_count(self, queue: str) -> int:
        return int(self._counts(queue)[0])

    def delayed_count(self, queue: str) -> int:
        return int(self._counts(queue)[1])

    def inflight_count(self, queue: str) -> int:
        return int(self._counts(queue)[2])

    def purge(self, queue: str) -> int:
        ready, delayed, _, env, info = self._queue_keys(queue)
        return int(self._scripts["PURGE"](keys=[ready, delayed, env, info]))

    def list_dead_letters(
        self, queue: str, *, limit: int = 50, offset: int = 0
    ) -> list[DeadLetterEntry]:
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}")
        if limit == 0:
            return []
        ids = self._client.zrevrange(self._key("q", queue, "dead"), offset, offset + limit - 1)
        if not ids:
            return []
        texts = self._client.hmget(self._key("q", queue, "deadenv"), ids)
        return [_entry_from_json(t) for t in texts if t is not None]

    def get_dead_letter(self, queue: str, task_id: str) -> DeadLetterEntry | None:
        text = self._client.hget(self._key("q", queue, "deadenv"), task_id)
        return None if text is None else _entry_from_json(text)

    def replay_dead_letters(
        self, queue: str, *, limit: int | None = None, delay: float | None = None
    ) -> list[Envelope]:
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        if delay is not None and delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {delay}")
        self._check_open("replay")
        end = -1 if limit is None else limit - 1
        if end == -1 and limit == 0:
            return []
        dead, deadenv = self._key("q", queue, "dead"), self._key("q", queue, "deadenv")
        replayed = []
        for raw_id in self._client.zrange(dead, 0, end):
            entry = self.get_dead_letter(queue, raw_id.decode())
            if entry is None:
                continue
            env = entry.envelope
            if delay:
                env = env.replace(not_before=time.time() + delay)
            keys = [dead, deadenv, *self._publish_keys(queue)]
            if self._scripts["REPLAY_ONE"](keys=keys, args=[env.id, *self._publish_args(env)]):
                replayed.append(env)
        return replayed

    def dead_letter_count(self, queue: str) -> int:
        return int(self._client.zcard(self._key("q", queue, "dead")))

    def statistics(self, queue: str) -> QueueStatistics:
        pending, delayed, inflight = self._counts(queue)
        return QueueStatistics(queue, pending, delayed, inflight, self.dead_letter_count(queue))

    def purge_dead_letters(self, queue: str) -> int:
        dead, deadenv = self._key("q", queue, "dead"), self._key("q", queue, "deadenv")
        pipe = self._client.pipeline()
        pipe.zcard(dead)
        pipe.delete(dead, deadenv)
        return int(pipe.execute()[0])

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            consumers = list(self._consumers)
        for consumer in consumers:
            consumer.close()
        self._commands.close()
        if self._owns_client:
            self._client.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<RedisBroker {state} namespace={self.namespace!r}>"
