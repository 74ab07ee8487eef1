"""Task options (per handler) and enqueue options (per call), validated when they are built."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
from collections.abc import Mapping, Sequence
from typing import Any, Union

Seconds = Union[float, int, _dt.timedelta]  # noqa: UP007 - a runtime alias on Python 3.10
"""A duration: seconds as a number, or a :class:`datetime.timedelta`."""


class RateLimiterFailureMode(str, enum.Enum):
    """What the worker does when the group rate limiter itself raises."""

    FAIL_OPEN = "fail_open"
    """Run the task anyway (Stem's default) and report an ``error`` event."""
    FAIL_CLOSED = "fail_closed"
    """Re-publish the task with back-off; the handler does not run."""


class TaskRecoveryPolicy(str, enum.Enum):
    """What a worker does with a redelivered task whose previous run never finished (its worker died)."""

    REPLAY = "replay"
    """Run the same attempt again (the default)."""
    RETRY = "retry"
    """Count the lost run as a failure (TaskInterruptedError): retry with the next attempt, or fail."""


def to_seconds(name: str, value: Seconds | None, *, allow_zero: bool = True) -> float | None:
    """Normalise a duration option to float seconds.

    Returns None for None. Raises ValueError naming the option for a negative (or, unless
    ``allow_zero``, zero) value or one that is not finite (NaN, infinity: None means "none"),
    and TypeError for anything that is not a number or timedelta.
    """
    if value is None:
        return None
    if isinstance(value, _dt.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise TypeError(f"{name} must be seconds (a number) or a timedelta, got {value!r}")
    if not math.isfinite(seconds):
        raise ValueError(f"{name} must be a finite number of seconds (or None for none), got {value!r}")
    if seconds < 0 or (seconds == 0 and not allow_zero):
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return seconds


def check_rate(name: str, spec: str | None) -> str | None:
    """Validate a rate string such as ``"10/s"``; return it unchanged.

    Raises RateLimitSpecError naming the option when the string cannot be parsed (Stem silently
    disabled such limits; stemnb refuses them).
    """
    if spec is None:
        return None
    from ._exceptions import RateLimitSpecError
    from ._ratelimit import parse_rate

    try:
        parse_rate(spec)
    except RateLimitSpecError as exc:
        raise RateLimitSpecError(f"{name}: {exc}") from None
    return spec


def _check_int(name: str, value: int | None, *, minimum: int = 0) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """Per-handler defaults: routing, retries, limits, uniqueness and result handling.

    Durations are seconds (or timedeltas, normalised to seconds). Raises ValueError/TypeError for
    negative or ill-typed values and RateLimitSpecError for an unparseable rate string.
    """

    queue: str = "default"
    max_retries: int = 0
    soft_time_limit: float | None = None
    hard_time_limit: float | None = None
    rate_limit: str | None = None
    group_rate_limit: str | None = None
    group_rate_key: str | None = None
    group_rate_key_header: str = "tenant"
    group_rate_limiter_failure_mode: RateLimiterFailureMode = RateLimiterFailureMode.FAIL_OPEN
    unique: bool = False
    unique_for: float | None = None
    priority: int = 0
    visibility_timeout: float | None = None
    retry_policy: Any = None
    ignore_result: bool = False
    expires: float | None = None
    recovery_policy: TaskRecoveryPolicy = TaskRecoveryPolicy.REPLAY

    def __post_init__(self) -> None:
        object.__setattr__(self, "recovery_policy", TaskRecoveryPolicy(self.recovery_policy))
        if not isinstance(self.queue, str) or not self.queue:
            raise ValueError(f"queue must be a non-empty string, got {self.queue!r}")
        _check_int("max_retries", self.max_retries)
        _check_int("priority", self.priority)
        if self.priority > 9:
            raise ValueError(f"priority must be between 0 and 9, got {self.priority!r}")
        for name in ("soft_time_limit", "hard_time_limit", "unique_for", "visibility_timeout", "expires"):
            allow_zero = name == "expires"
            object.__setattr__(self, name, to_seconds(name, getattr(self, name), allow_zero=allow_zero))
        check_rate("rate_limit", self.rate_limit)
        check_rate("group_rate_limit", self.group_rate_limit)
        object.__setattr__(
            self,
            "group_rate_limiter_failure_mode",
            RateLimiterFailureMode(self.group_rate_limiter_failure_mode),
        )

    def replace(self, **changes: Any) -> TaskOptions:
        """Return a copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    copy_with = replace


@dataclasses.dataclass(frozen=True)
class TaskEnqueueOptions:
    """Per-call overrides of a task's options (Celery's ``apply_async`` keywords).

    ``countdown`` is seconds from now, ``eta`` an absolute datetime or epoch seconds, ``expires``
    seconds from now or an absolute datetime. ``link`` / ``link_error`` are signatures
    (:class:`stemnb.Signature`) enqueued after success / terminal failure.
    """

    task_id: str | None = None
    countdown: float | None = None
    eta: _dt.datetime | float | None = None
    expires: _dt.datetime | float | None = None
    queue: str | None = None
    priority: int | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    max_retries: int | None = None
    retry_policy: Any = None
    ignore_result: bool | None = None
    unique_key: str | None = None
    link: Sequence[Any] = ()
    link_error: Sequence[Any] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "countdown", to_seconds("countdown", self.countdown))
        object.__setattr__(self, "time_limit", to_seconds("time_limit", self.time_limit, allow_zero=False))
        object.__setattr__(
            self, "soft_time_limit", to_seconds("soft_time_limit", self.soft_time_limit, allow_zero=False)
        )
        if isinstance(self.expires, (int, float, _dt.timedelta)) and not isinstance(self.expires, bool):
            object.__setattr__(self, "expires", to_seconds("expires", self.expires))
        _check_int("max_retries", self.max_retries)
        if self.countdown is not None and self.eta is not None:
            raise ValueError("give countdown or eta, not both")
        object.__setattr__(self, "link", tuple(_one_or_many(self.link)))
        object.__setattr__(self, "link_error", tuple(_one_or_many(self.link_error)))

    def replace(self, **changes: Any) -> TaskEnqueueOptions:
        """Return a copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


_ENQUEUE_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(TaskEnqueueOptions))


def _one_or_many(value: Any) -> Sequence[Any]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return value
    return (value,)


def epoch_seconds(value: _dt.datetime | float | int) -> float:
    """Convert an absolute time (aware/naive datetime or epoch seconds) to epoch seconds."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.astimezone()
        return value.timestamp()
    return float(value)


def options_from_mapping(data: Mapping[str, Any]) -> TaskEnqueueOptions:
    """Build enqueue options from a plain mapping (keyword arguments of ``Stem.enqueue``)."""
    unknown = sorted(set(data) - _ENQUEUE_OPTION_NAMES)
    if unknown:
        raise TypeError(f"unknown enqueue option(s): {', '.join(unknown)}")
    return TaskEnqueueOptions(**data)
