"""Rate limits: parsing ``"10/s"``-style specs and the token-bucket limiter stemnb ships.

Semantics (Stem left them open): a :class:`RateSpec` ``N/period`` is a bucket of ``N`` tokens
refilled evenly over ``period``; :meth:`RateLimiter.acquire` spends ``tokens`` (default 1, the
cost of one task run). A full bucket admits a burst of ``N`` at once.
"""

from __future__ import annotations

import abc
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._exceptions import RateLimitSpecError

__all__ = [
    "RateLimitDecision",
    "RateLimiter",
    "RateSpec",
    "TokenBucketRateLimiter",
    "parse_rate",
]

_PERIODS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_SPEC = re.compile(r"(?P<count>[^/]*)/(?P<unit>[^/]*)")


@dataclass(frozen=True)
class RateSpec:
    """A parsed rate: ``tokens`` admitted per ``period`` seconds."""

    tokens: int
    period: float

    @property
    def per_second(self) -> float:
        """The refill rate in tokens per second."""
        return self.tokens / self.period

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(self.period)
        return f"{self.tokens}/{unit}" if unit else f"{self.tokens}/{self.period}s"


def parse_rate(spec: str | RateSpec) -> RateSpec:
    """Parse ``"<count>/<s|m|h>"`` (e.g. ``"10/s"``, ``"100/m"``, ``"1000/h"``) into a :class:`RateSpec`.

    A :class:`RateSpec` passes through unchanged.

    Raises:
        RateLimitSpecError: the string is not exactly that form or the count is not a whole
            number > 0 (Stem silently disabled such limits; stemnb refuses them).
    """
    if isinstance(spec, RateSpec):
        return spec
    if not isinstance(spec, str):
        raise RateLimitSpecError(f"a rate limit must be a string like '10/s', got {spec!r}")
    match = _SPEC.fullmatch(spec)
    if match is None:
        raise RateLimitSpecError(
            f"rate limit {spec!r} is not of the form '<count>/<s|m|h>', e.g. '10/s', '100/m', '1000/h'"
        )
    count, unit = match["count"], match["unit"]
    if unit not in _PERIODS:
        raise RateLimitSpecError(
            f"rate limit {spec!r}: the unit must be 's', 'm' or 'h', got {unit!r}"
        )
    if not count.isascii() or not count.isdigit():
        raise RateLimitSpecError(
            f"rate limit {spec!r}: the count must be a whole number > 0, got {count!r}"
        )
    tokens = int(count)
    if tokens <= 0:
        raise RateLimitSpecError(f"rate limit {spec!r}: the count must be > 0, got {tokens}")
    return RateSpec(tokens, _PERIODS[unit])


@dataclass(frozen=True)
class RateLimitDecision:
    """The answer to :meth:`RateLimiter.acquire`: whether to run now, else how long to wait."""

    allowed: bool
    retry_after: float | None = None
    remaining: float | None = None


class RateLimiter(abc.ABC):
    """Decides whether a keyed action may run now under a rate. Implementations are thread-safe."""

    @abc.abstractmethod
    def acquire(
        self,
        key: str,
        rate: RateSpec | str,
        *,
        tokens: int = 1,
        meta: dict[str, Any] | None = None,
    ) -> RateLimitDecision:
        """Spend ``tokens`` from ``key``'s bucket for ``rate`` if they are there.

        Returns:
            ``allowed=True`` (tokens spent), or ``allowed=False`` with ``retry_after`` seconds
            until enough tokens will be back.

        Raises:
            RateLimitSpecError: ``rate`` cannot be parsed.
            ValueError: ``tokens`` < 1 or more than the rate's bucket ever holds.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release resources (nothing for in-process limiters). Idempotent."""


class _Bucket:
    __slots__ = ("rate", "level", "updated")

    def __init__(self, rate: RateSpec, now: float) -> None:
        self.rate = rate
        self.level = float(rate.tokens)
        self.updated = now

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.level = min(float(self.rate.tokens), self.level + elapsed * self.rate.per_second)
        self.updated = now


class TokenBucketRateLimiter(RateLimiter):
    """An in-process token-bucket limiter, one bucket per key.

    A key's bucket starts full; if a key is used with a different rate its bucket starts over at
    the new rate. Idle full buckets are dropped once more than ``max_idle_keys`` exist, so memory
    stays bounded. ``clock`` (monotonic seconds) can be replaced for tests.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_idle_keys: int = 10_000
    ) -> None:
        self._clock = clock
        self._max_idle_keys = max_idle_keys
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(
        self,
        key: str,
        rate: RateSpec | str,
        *,
        tokens: int = 1,
        meta: dict[str, Any] | None = None,
    ) -> RateLimitDecision:
        spec = parse_rate(rate)
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
            raise ValueError(f"tokens must be an int >= 1, got {tokens!r}")
        if tokens > spec.tokens:
            raise ValueError(f"cannot spend {tokens} tokens at a time under rate {spec}")
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key)
            if bucket is None or bucket.rate != spec:
                self._prune(now)
                bucket = self._buckets[key] = _Bucket(spec, now)
            bucket.refill(now)
            if bucket.level >= tokens:
                bucket.level -= tokens
                return RateLimitDecision(True, None, bucket.level)
            missing = tokens - bucket.level
            return RateLimitDecision(False, missing / spec.per_second, bucket.level)

    def _prune(self, now: float) -> None:
        if len(self._buckets) <= self._max_idle_keys:
            return
        for key in list(self._buckets):
            bucket = self._buckets[key]
            bucket.refill(now)
            if bucket.level >= bucket.rate.tokens:
                del self._buckets[key]

    def __repr__(self) -> str:
        return f"<TokenBucketRateLimiter keys={len(self._buckets)}>"
