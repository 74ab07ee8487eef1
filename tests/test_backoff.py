"""The one backoff between attempts to reach a service that went away (``stemnb._backoff``)."""

from __future__ import annotations

from stemnb._backoff import backoff


def test_the_wait_starts_at_50_ms_doubles_per_failure_and_stops_at_2_s():
    assert [backoff(n) for n in range(1, 9)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert backoff(1000) == 2.0


def test_a_count_below_one_waits_as_after_the_first_failure():
    assert backoff(0) == backoff(1) == 0.05
