"""Task envelopes (what a broker carries) and deliveries (one leased receipt of an envelope).

An :class:`Envelope` is immutable: change one with :meth:`Envelope.replace`. Its ``to_dict`` /
``from_dict`` pair round-trips through JSON, so any broker (in-memory, Redis) can carry it.
Times are wall-clock seconds since the epoch (``time.time()``), because they travel between
processes and machines.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._exceptions import MalformedEnvelopeError

__all__ = ["Delivery", "Envelope", "new_task_id", "MIN_PRIORITY", "MAX_PRIORITY"]

MIN_PRIORITY = 0
MAX_PRIORITY = 9


def new_task_id() -> str:
    """Return a new task id: a UUID version 7 string (time-ordered, as Stem uses)."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version 7
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # RFC 4122 variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    h = f"{value:032x}"  # as str(uuid.UUID(int=value)), without building the UUID
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _check_str(name: str, value: Any, *, empty_ok: bool = False) -> None:
    if not isinstance(value, str):
        raise MalformedEnvelopeError(f"envelope {name} must be a str, got {type(value).__name__}")
    if not value and not empty_ok:
        raise MalformedEnvelopeError(f"envelope {name} must not be empty")


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedEnvelopeError(f"envelope {name} must be an int, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
        raise MalformedEnvelopeError(f"envelope {name} must be {bound}, got {value}")


def _check_time(name: str, value: Any, *, optional: bool, positive: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MalformedEnvelopeError(f"envelope {name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise MalformedEnvelopeError(f"envelope {name} must be > 0 seconds, got {value}")


def _well_formed(env: Envelope) -> bool:
    """Whether ``env``'s scalar fields are valid, judged by exact types only (a subclass of
    ``str`` or ``int``, which may be valid too, goes to the full checks)."""
    name, task_id, queue, enqueued_at = env.name, env.id, env.queue, env.enqueued_at
    priority, attempt, max_retries = env.priority, env.attempt, env.max_retries
    not_before, visibility = env.not_before, env.visibility_timeout
    return (
        type(name) is str and name != "" and type(task_id) is str and task_id != ""
        and type(queue) is str and queue != ""
        and type(priority) is int and MIN_PRIORITY <= priority <= MAX_PRIORITY
        and type(attempt) is int and attempt >= 0 and type(max_retries) is int and max_retries >= 0
        and _finite(enqueued_at) and (not_before is None or _finite(not_before))
        and (visibility is None or (_finite(visibility) and visibility > 0))
    )


def _finite(value: Any) -> bool:
    kind = type(value)
    return (kind is float or kind is int) and math.isfinite(value)


def _str_keyed_copy(name: str, value: Any) -> dict[str, Any]:
    """A copy of the mapping ``value`` (envelope field ``name``), whose keys must be str."""
    if type(value) is dict:
        copy = value.copy()
    elif isinstance(value, Mapping):
        copy = dict(value)
    else:
        raise MalformedEnvelopeError(f"envelope {name} must be a dict, got {type(value).__name__}")
    if not all(type(key) is str for key in copy):
        bad = [key for key in copy if not isinstance(key, str)]
        if bad:
            raise MalformedEnvelopeError(f"envelope {name} keys must be str, got {bad[0]!r}")
    return copy


@dataclass(frozen=True, eq=True)
class Envelope:
    """One task message: the task's name, its (already encoded) args and routing data.

    Construction validates every field and raises :class:`stemnb.MalformedEnvelopeError` naming the
    bad one. ``args``, ``headers`` and ``meta`` are copied, so later changes to the caller's dicts do
    not leak in. ``attempt`` is 0-based; ``not_before`` (eta) delays delivery; a
    ``visibility_timeout`` of ``None`` means the broker's default lease.
    """

    name: str
    args: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_task_id)
    headers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    queue: str = "default"
    priority: int = 0
    attempt: int = 0
    max_retries: int = 0
    enqueued_at: float = field(default_factory=time.time)
    not_before: float | None = None
    visibility_timeout: float | None = None

    def __post_init__(self) -> None:
        if not _well_formed(self):  # the common envelope passes in one look; else name the problem
            self._check_fields()
        for name in ("args", "headers", "meta"):
            object.__setattr__(self, name, _str_keyed_copy(name, getattr(self, name)))
        if not all(type(value) is str for value in self.headers.values()):
            for key, value in self.headers.items():
                if not isinstance(value, str):
                    raise MalformedEnvelopeError(
                        f"envelope headers must map str to str, got {key!r}: {value!r}"
                    )

    def _check_fields(self) -> None:
        """Raise MalformedEnvelopeError naming the first invalid scalar field."""
        _check_str("name", self.name)
        _check_str("id", self.id)
        _check_str("queue", self.queue)
        _check_int("priority", self.priority, MIN_PRIORITY, MAX_PRIORITY)
        _check_int("attempt", self.attempt, 0)
        _check_int("max_retries", self.max_retries, 0)
        _check_time("enqueued_at", self.enqueued_at, optional=False)
        _check_time("not_before", self.not_before, optional=True)
        _check_time("visibility_timeout", self.visibility_timeout, optional=True, positive=True)

    def __hash__(self) -> int:  # equal envelopes share an id; the dict fields are unhashable
        return hash(self.id)

    def replace(self, **changes: Any) -> Envelope:
        """Return a copy with ``changes`` applied (validated like a new envelope).

        Raises:
            MalformedEnvelopeError: a changed field is invalid.
            TypeError: a keyword is not an envelope field.
        """
        return dataclasses.replace(self, **changes)

    def is_due(self, now: float | None = None) -> bool:
        """Return whether the envelope may be delivered at ``now`` (default: the current time)."""
        return self.not_before is None or self.not_before <= (time.time() if now is None else now)

    def to_dict(self) -> dict[str, Any]:
        """Return the envelope as a dict of JSON-safe values (given JSON-safe args and meta)."""
        return {
            "id": self.id,
            "name": self.name,
            "args": dict(self.args),
            "headers": dict(self.headers),
            "meta": dict(self.meta),
            "queue": self.queue,
            "priority": self.priority,
            "attempt": self.attempt,
            "max_retries": self.max_retries,
            "enqueued_at": self.enqueued_at,
            "not_before": self.not_before,
            "visibility_timeout": self.visibility_timeout,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        """Build an envelope from :meth:`to_dict` output.

        Missing optional fields take their defaults; unknown keys are ignored (forward compatible).

        Raises:
            MalformedEnvelopeError: ``data`` is not a dict, lacks ``name``/``id``, or a field is invalid.
        """
        if not isinstance(data, Mapping):
            raise MalformedEnvelopeError(f"an envelope must be a dict, got {type(data).__name__}")
        for required in ("id", "name"):
            if required not in data:
                raise MalformedEnvelopeError(f"envelope dict has no {required!r} field")
        kwargs = {k: v for k, v in data.items() if k in _ENVELOPE_FIELDS and v is not None}
        for optional in ("not_before", "visibility_timeout"):
            if optional in data:
                kwargs[optional] = data[optional]
        return cls(**kwargs)


_ENVELOPE_FIELDS = frozenset(f.name for f in dataclasses.fields(Envelope))


@dataclass
class Delivery:
    """One receipt of an envelope by a consumer, holding a lease until acked, nacked or expired.

    ``receipt`` identifies this delivery to the broker (a redelivery gets a new one);
    ``lease_expires_at`` is wall-clock seconds (``None`` for broadcast deliveries, which carry no
    lease); ``queue`` is the queue (or broadcast channel) it came from. The broker updates
    ``lease_expires_at`` when the lease is extended.
    """

    envelope: Envelope
    receipt: str
    lease_expires_at: float | None
    queue: str
    redelivered: bool = False
    broadcast: bool = False

    @property
    def task_id(self) -> str:
        """The envelope's task id."""
        return self.envelope.id
