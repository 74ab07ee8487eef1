"""The wait between attempts to reach a service that went away (Redis restarting, a dropped
connection, a proxy that cut it): 50 ms after the first failure, doubling, at most 2 s."""

from __future__ import annotations

__all__ = ["FIRST", "LONGEST", "backoff"]

FIRST = 0.05  # seconds after the first consecutive failure
LONGEST = 2.0  # the longest wait between attempts


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` consecutive failures (1 or more)."""
    return min(LONGEST, FIRST * 2 ** min(max(failures, 1) - 1, 6))
