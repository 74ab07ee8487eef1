"""Paired writes in one Lua script when the Redis broker and result backend share a database.

Each script is the backend's status function, then the broker's publish / ack / dead-letter
function (see ``_brokers._redis_scripts``): Redis runs it atomically, the status first, and a
failing status write aborts the script before the broker step, as the two-call version would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._backend import TaskStatus
from ._backends.redis import SET_STATUS_FN, RedisResultBackend
from ._brokers import _redis_scripts as lua
from ._brokers.redis import RedisBroker
from ._envelope import Delivery, Envelope
from ._paired import PairedWrites

__all__ = ["RedisPairedWrites", "redis_paired_writes"]

PIPELINE_CHUNK = 256  # scripts sent in one round trip by set_then_publish_many

_STATUS_KEYS = 4  # status, index, expiries, channel
_STATUS_ARGS = 4  # status_json, ttl_ms, task_id, updated_at


def _status_then(function: str, name: str) -> str:
    """A script: ``set_status`` on the first keys and args, then broker ``function`` ``name`` on
    the rest; returns what the broker function returns."""
    call = (
        f"set_status(slice(KEYS, 1, {_STATUS_KEYS}), slice(ARGV, 1, {_STATUS_ARGS}))\n"
        f"return {name}(slice(KEYS, {_STATUS_KEYS + 1}, #KEYS), "
        f"slice(ARGV, {_STATUS_ARGS + 1}, #ARGV))\n"
    )
    return lua.SLICE + SET_STATUS_FN + function + call


SET_THEN_PUBLISH = _status_then(lua.PUBLISH_FN, "publish")
SET_THEN_DEAD_LETTER = _status_then(lua.SETTLE_FNS, "dead_letter")

_ACK_KEYS = 5  # ready delayed inflight env info
_ACK_ARGS = 2  # token count


def _ack_script(*, running: bool, take: bool) -> str:
    """A script: a task's status, its ack, then (``running``) another task's ``running`` status,
    then (``take``) a take that refills the prefetch room of the consumer that held the
    delivery, instead of its own thread's next take. Returns the ack's result, or with
    ``take`` {acked, taken, next_due, drained} (see the broker's take function)."""
    k, a = _STATUS_KEYS + _ACK_KEYS, _STATUS_ARGS + _ACK_ARGS
    lines = [
        f"set_status(slice(KEYS, 1, {_STATUS_KEYS}), slice(ARGV, 1, {_STATUS_ARGS}))",
        f"local acked = ack(slice(KEYS, {_STATUS_KEYS + 1}, {k}), slice(ARGV, {_STATUS_ARGS + 1}, {a}))",
    ]
    if running:
        lines.append(
            f"set_status(slice(KEYS, {k + 1}, {k + _STATUS_KEYS}), "
            f"slice(ARGV, {a + 1}, {a + _STATUS_ARGS}))"
        )
        k, a = k + _STATUS_KEYS, a + _STATUS_ARGS
    if take:
        lines.append(f"local t = take(slice(KEYS, {k + 1}, #KEYS), slice(ARGV, {a + 1}, #ARGV))")
        lines.append("return {acked, t[1], t[2], t[3]}")
    else:
        lines.append("return acked")
    functions = lua.SLICE + SET_STATUS_FN + lua.SETTLE_FNS + (lua.TAKE_FN if take else "")
    return functions + "\n".join(lines) + "\n"


def redis_paired_writes(broker: Any, backend: Any) -> RedisPairedWrites | None:
    """Paired writes in one script for ``broker`` and ``backend`` (on one Redis database), or None
    unless both are stemnb's Redis parts with the paired methods as shipped (a subclass that
    overrides one of them gets the two-call version, so its override runs)."""
    if not isinstance(broker, RedisBroker) or not isinstance(backend, RedisResultBackend):
        return None
    kind = type(broker)
    same_broker = all(
        getattr(kind, name) is getattr(RedisBroker, name)
        for name in ("publish", "ack", "dead_letter", "_publish_call", "_dead_letter_call")
    )
    same_backend = all(
        getattr(type(backend), name) is getattr(RedisResultBackend, name)
        for name in ("set", "set_status", "_status_call")
    )
    return RedisPairedWrites(broker, backend) if same_broker and same_backend else None


class RedisPairedWrites(PairedWrites):
    """:class:`PairedWrites` in one round trip each (both parts must be on one Redis database)."""

    fuses_running = True
    broker: RedisBroker
    backend: RedisResultBackend

    def __init__(self, broker: RedisBroker, backend: RedisResultBackend) -> None:
        super().__init__(broker, backend)
        register = broker._client.register_script
        self._set_then_publish = register(SET_THEN_PUBLISH)
        self._set_then_dead_letter = register(SET_THEN_DEAD_LETTER)
        self._ack_scripts = {
            (running, take): register(_ack_script(running=running, take=take))
            for running in (False, True)
            for take in (False, True)
        }

    def _run(self, script: Any, status: TaskStatus, keys: list[str], args: list[Any]) -> Any:
        status_keys, status_args = self.backend._status_call(status, None)
        return self.broker._commands.script(script, status_keys + keys, status_args + args)

    def set_then_publish(self, status: TaskStatus, envelope: Envelope) -> TaskStatus:
        if not isinstance(envelope, Envelope):
            raise TypeError(f"publish() expects an Envelope, got {type(envelope).__name__}")
        self.broker._check_open("publish")
        self._run(self._set_then_publish, status, *self.broker._publish_call(envelope))
        return status

    def set_then_publish_many(self, pairs: Sequence[tuple[TaskStatus, Envelope]]) -> None:
        """One pipelined round trip per :data:`PIPELINE_CHUNK` pairs (each pair one script, in
        order); the scripts of a chunk that fails in Redis may have run in part."""
        if not all(isinstance(envelope, Envelope) for _, envelope in pairs):
            raise TypeError("set_then_publish_many() expects (TaskStatus, Envelope) pairs")
        self.broker._check_open("publish")
        calls = []
        for status, envelope in pairs:
            status_keys, status_args = self.backend._status_call(status, None)
            keys, args = self.broker._publish_call(envelope)
            calls.append((status_keys + keys, status_args + args))
        for start in range(0, len(calls), PIPELINE_CHUNK):
            self.broker._commands.scripts(self._set_then_publish, calls[start : start + PIPELINE_CHUNK])

    def set_then_ack(self, status: TaskStatus, delivery: Delivery) -> TaskStatus:
        if isinstance(delivery, Delivery) and delivery.broadcast:
            return super().set_then_ack(status, delivery)
        return self._ack(status, delivery, None)

    def set_then_ack_then_running(
        self, status: TaskStatus, delivery: Delivery, running: TaskStatus
    ) -> TaskStatus:
        if isinstance(delivery, Delivery) and delivery.broadcast:
            return super().set_then_ack_then_running(status, delivery, running)
        return self._ack(status, delivery, running)

    def _ack(self, status: TaskStatus, delivery: Delivery, running: TaskStatus | None) -> TaskStatus:
        """One script: ``status``, the ack, ``running`` (if given), and a refill of the prefetch
        room of the consumer that held ``delivery`` (if it has room)."""
        broker = self.broker
        keys, args = broker._queue_keys(delivery.queue), broker._settle_args(delivery)
        if running is not None:
            running_keys, running_args = self.backend._status_call(running, None)
            keys, args = keys + running_keys, args + running_args
        consumer = broker._holder(delivery)
        want = consumer._reserve(settling=1) if consumer is not None else 0
        script = self._ack_scripts[(running is not None, want > 0)]
        if consumer is None or want == 0:
            try:
                self._run(script, status, keys, args)
            finally:
                broker._settled(delivery)  # left to its lease if the round trip failed (see RedisBroker._settle)
            return status
        try:
            take_keys, take_args = broker._take_call(consumer, want)
            reply = self._run(script, status, keys + take_keys, args + take_args)
            taken, sleep, drained = broker._taken(consumer, reply[1:], float(take_args[0]))
        except BaseException:
            consumer._unreserve(want)
            raise
        finally:  # its consumer counted it settled in _reserve (if the round trip failed: left to its lease)
            broker._forget_holder(delivery)
        consumer._receive(taken, want, sleep, drained, quiet=True)  # see Consumer.get_leased
        return status

    def set_then_dead_letter(
        self, status: TaskStatus, delivery: Delivery, reason: str, meta: dict[str, Any]
    ) -> TaskStatus:
        if not isinstance(reason, str) or not reason:
            raise ValueError(f"dead_letter() needs a non-empty reason string, got {reason!r}")
        if isinstance(delivery, Delivery) and delivery.broadcast:
            return super().set_then_dead_letter(status, delivery, reason, meta)
        call = self.broker._dead_letter_call(delivery, reason, meta)
        try:
            self._run(self._set_then_dead_letter, status, *call)
        finally:
            self.broker._settled(delivery)
        return status
