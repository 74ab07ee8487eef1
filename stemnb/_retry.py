"""Retry delays: the worker-wide :class:`RetryStrategy` and the per-task :class:`TaskRetryPolicy`.

Attempts are 0-based: ``attempt`` is the number of the run that just failed, so the first retry
uses attempt 0. Delays are seconds. Formulas follow Stem exactly (reference §6): the default
:class:`ExponentialJitterRetryStrategy` waits ``min(base * 2**attempt, max)`` minus a random
quarter of that, so the first retry waits 1.5-2 s.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._exceptions import RemoteError

__all__ = [
    "ExponentialJitterRetryStrategy",
    "RetryStrategy",
    "TaskRetryPolicy",
    "exception_names",
]

ErrorMatcher = type | str
_RNG = random.Random()
_MAX_EXPONENT = 62  # 2**62 ms is far past any cap; keeps the arithmetic exact


def _to_ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def _quarter_jitter(capped_ms: int, rng: random.Random) -> int:
    return rng.randint(0, capped_ms // 4) if capped_ms > 0 else 0


def _check_seconds(
    name: str, value: Any, *, optional: bool = False, positive: bool = False
) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'} seconds, got {value!r}")


def _check_attempt(attempt: Any) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise ValueError(f"attempt must be an int >= 0, got {attempt!r}")


class RetryStrategy(abc.ABC):
    """Computes how long to wait before retrying a failed task."""

    @abc.abstractmethod
    def next_delay(self, attempt: int, error: BaseException | None = None) -> float:
        """Return the delay in seconds before retrying after run ``attempt`` (0-based) failed."""


class ExponentialJitterRetryStrategy(RetryStrategy):
    """Stem's default: exponential backoff from ``base`` seconds, capped at ``max_delay``, minus
    a random jitter of up to a quarter of the capped value.

    Raises ``ValueError`` for a non-positive ``base`` or ``max_delay``. ``rng`` makes the jitter
    reproducible in tests.
    """

    def __init__(
        self, base: float = 2.0, max_delay: float = 300.0, *, rng: random.Random | None = None
    ) -> None:
        _check_seconds("base", base, positive=True)
        _check_seconds("max_delay", max_delay, positive=True)
        self.base = float(base)
        self.max_delay = float(max_delay)
        self._rng = rng or random.Random()

    def next_delay(self, attempt: int, error: BaseException | None = None) -> float:
        _check_attempt(attempt)
        max_ms = _to_ms(self.max_delay)
        raw = _to_ms(self.base) * 2 ** min(attempt, _MAX_EXPONENT)
        capped = min(raw, max_ms)
        delay = capped - _quarter_jitter(capped, self._rng)
        return min(max(delay, 0), max_ms) / 1000

    def __repr__(self) -> str:
        return f"ExponentialJitterRetryStrategy(base={self.base}, max_delay={self.max_delay})"


def exception_names(error: BaseException) -> set[str]:
    """Return the names ``error`` answers to: each class in its MRO, bare and module-qualified.

    A :class:`stemnb.RemoteError` (an exception that could not travel as itself) also answers to
    its remote ``type_name``.
    """
    names: set[str] = set()
    for cls in type(error).__mro__:
        names.add(cls.__name__)
        names.add(cls.__qualname__)
        names.add(f"{cls.__module__}.{cls.__qualname__}")
    if isinstance(error, RemoteError):
        names.add(error.type_name)
        names.add(error.type_name.rsplit(".", 1)[-1])
    return names


def _matches(error: BaseException, matchers: Iterable[ErrorMatcher]) -> bool:
    names: set[str] | None = None
    for matcher in matchers:
        if isinstance(matcher, type):
            if isinstance(error, matcher):
                return True
            matcher = f"{matcher.__module__}.{matcher.__qualname__}"
        if names is None:
            names = exception_names(error)
        if matcher in names:
            return True
    return False


def _matcher_name(matcher: ErrorMatcher) -> str:
    if isinstance(matcher, type):
        return f"{matcher.__module__}.{matcher.__qualname__}"
    return matcher


def _check_matchers(name: str, value: Any) -> tuple[ErrorMatcher, ...]:
    if isinstance(value, (str, type)):
        value = (value,)
    items = tuple(value)
    for item in items:
        ok = (
            isinstance(item, str)
            and item
            or (isinstance(item, type) and issubclass(item, BaseException))
        )
        if not ok:
            raise TypeError(f"{name} entries must be exception classes or names, got {item!r}")
    return items


@dataclass(frozen=True)
class TaskRetryPolicy:
    """A task's (or one enqueue's) retry rules: how many, how long between, and for which errors.

    ``auto_retry_for`` / ``dont_auto_retry_for`` hold exception classes (matched with
    ``isinstance``) or names (matched against the error's class names, bare or
    module-qualified, so errors that crossed a process boundary still match);
    ``dont_auto_retry_for`` wins and an empty ``auto_retry_for`` retries everything. Raises
    ``ValueError``/``TypeError`` for negative or ill-typed values.
    """

    max_retries: int | None = None
    default_delay: float = 0.0
    backoff: bool = False
    backoff_max: float | None = None
    jitter: bool = True
    auto_retry_for: Sequence[ErrorMatcher] = ()
    dont_auto_retry_for: Sequence[ErrorMatcher] = ()

    def __post_init__(self) -> None:
        if self.max_retries is not None and (
            isinstance(self.max_retries, bool)
            or not isinstance(self.max_retries, int)
            or self.max_retries < 0
        ):
            raise ValueError(f"max_retries must be an int >= 0 or None, got {self.max_retries!r}")
        _check_seconds("default_delay", self.default_delay)
        _check_seconds("backoff_max", self.backoff_max, optional=True)
        object.__setattr__(
            self, "auto_retry_for", _check_matchers("auto_retry_for", self.auto_retry_for)
        )
        object.__setattr__(
            self,
            "dont_auto_retry_for",
            _check_matchers("dont_auto_retry_for", self.dont_auto_retry_for),
        )

    def should_retry(self, error: BaseException) -> bool:
        """Return whether ``error`` may be retried under this policy's filters."""
        if _matches(error, self.dont_auto_retry_for):
            return False
        return not self.auto_retry_for or _matches(error, self.auto_retry_for)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the delay in seconds before retrying after run ``attempt`` (0-based) failed.

        Without ``backoff`` it is ``default_delay``. With it: ``default_delay * 2**attempt``,
        capped at ``backoff_max`` (a zero raw delay becomes the cap), minus up to a quarter as
        jitter when ``jitter`` is on.
        """
        _check_attempt(attempt)
        base_ms = _to_ms(self.default_delay)
        if not self.backoff:
            return base_ms / 1000
        raw: int = base_ms * 2 ** min(attempt, _MAX_EXPONENT)
        cap = raw if self.backoff_max is None else _to_ms(self.backoff_max)
        capped = cap if raw == 0 else min(max(raw, 0), cap)
        if self.jitter:
            capped -= _quarter_jitter(capped, rng or _RNG)
        return max(capped, 0) / 1000

    def to_dict(self) -> dict[str, Any]:
        """Return the policy as JSON-safe data (exception classes become qualified names)."""
        return {
            "max_retries": self.max_retries,
            "default_delay": self.default_delay,
            "backoff": self.backoff,
            "backoff_max": self.backoff_max,
            "jitter": self.jitter,
            "auto_retry_for": [_matcher_name(m) for m in self.auto_retry_for],
            "dont_auto_retry_for": [_matcher_name(m) for m in self.dont_auto_retry_for],
        }

    @classmethod
    def from_dict(cls, data: Any) -> TaskRetryPolicy:
        """Rebuild a policy from :meth:`to_dict` output.

        Raises:
            TypeError: ``data`` is not a dict or has an unknown key; ValueError for bad values.
        """
        if not isinstance(data, dict):
            raise TypeError(f"a retry policy must be a dict, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise TypeError(f"unknown retry policy keys: {sorted(unknown)}")
        return cls(**data)
