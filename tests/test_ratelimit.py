"""Rate-limit parsing and the shipped token-bucket limiter."""

from __future__ import annotations

import threading

import pytest

from stemnb import RateLimitSpecError, TokenBucketRateLimiter, parse_rate
from stemnb._ratelimit import RateSpec


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("spec", "tokens", "period"),
    [("10/s", 10, 1.0), ("100/m", 100, 60.0), ("1000/h", 1000, 3600.0)],
)
def test_parse_rate_reads_counts_per_second_minute_and_hour(spec, tokens, period):
    assert parse_rate(spec) == RateSpec(tokens, period)
    assert str(parse_rate(spec)) == spec


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("10/min", "unit"),
        ("10/d", "unit"),
        ("1.5/s", "whole number"),
        ("-1/s", "whole number"),
        ("0/s", "> 0"),
        ("10 / s", "unit"),
        ("ten/s", "whole number"),
        ("10", "form"),
        ("", "form"),
        ("1/s/2", "form"),
    ],
)
def test_parse_rate_refuses_bad_strings_naming_the_problem(spec, reason):
    with pytest.raises(RateLimitSpecError, match=reason) as info:
        parse_rate(spec)
    assert repr(spec) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_rate_refuses_non_strings():
    with pytest.raises(RateLimitSpecError, match="string"):
        parse_rate(10)


def test_token_bucket_admits_a_burst_then_says_when_to_retry():
    clock = FakeClock()
    limiter = TokenBucketRateLimiter(clock=clock)
    assert all(limiter.acquire("k", "2/s").allowed for _ in range(2))
    denied = limiter.acquire("k", "2/s")
    assert not denied.allowed and denied.retry_after == pytest.approx(0.5)
    clock.now += 0.5
    assert limiter.acquire("k", "2/s").allowed


def test_token_bucket_keeps_keys_apart():
    limiter = TokenBucketRateLimiter(clock=FakeClock())
    assert limiter.acquire("a", "1/m").allowed
    assert not limiter.acquire("a", "1/m").allowed
    assert limiter.acquire("b", "1/m").allowed


def test_token_bucket_spends_the_given_token_cost():
    clock = FakeClock()
    limiter = TokenBucketRateLimiter(clock=clock)
    assert limiter.acquire("k", "10/s", tokens=7).allowed
    decision = limiter.acquire("k", "10/s", tokens=5)
    assert not decision.allowed and decision.retry_after == pytest.approx(0.2)


def test_token_bucket_rejects_bad_token_counts_and_rates():
    limiter = TokenBucketRateLimiter()
    with pytest.raises(ValueError, match="tokens"):
        limiter.acquire("k", "10/s", tokens=0)
    with pytest.raises(ValueError, match="cannot spend 11"):
        limiter.acquire("k", "10/s", tokens=11)
    with pytest.raises(RateLimitSpecError):
        limiter.acquire("k", "10/x")


def test_token_bucket_admits_exactly_the_bucket_size_across_threads():
    limiter = TokenBucketRateLimiter(clock=FakeClock())  # frozen clock: no refill
    allowed = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def hammer():
        barrier.wait()
        for _ in range(50):
            decision = limiter.acquire("shared", "100/h")
            with lock:
                allowed.append(decision.allowed)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 100


def test_token_bucket_drops_idle_full_buckets_beyond_the_key_limit():
    clock = FakeClock()
    limiter = TokenBucketRateLimiter(clock=clock, max_idle_keys=10)
    for i in range(30):
        limiter.acquire(f"k{i}", "1/s")
    clock.now += 5
    limiter.acquire("fresh", "1/s")
    assert len(limiter._buckets) <= 11
    assert not limiter.acquire("fresh", "1/s").allowed
