"""Retry delays: Stem's exponential-jitter strategy and per-task retry policies."""

from __future__ import annotations

import random

import pytest

from stemnb import ExponentialJitterRetryStrategy, RemoteError, TaskRetryPolicy


def test_exponential_jitter_first_retry_waits_between_one_and_a_half_and_two_seconds():
    strategy = ExponentialJitterRetryStrategy(rng=random.Random(1))
    delays = [strategy.next_delay(0) for _ in range(500)]
    assert min(delays) >= 1.5 and max(delays) <= 2.0
    assert len(set(delays)) > 50  # jitter is really random


def test_exponential_jitter_doubles_per_attempt_and_caps_at_five_minutes():
    strategy = ExponentialJitterRetryStrategy(rng=random.Random(2))
    for attempt in range(1, 8):
        raw = 2.0 * 2**attempt
        capped = min(raw, 300.0)
        delay = strategy.next_delay(attempt)
        assert capped * 0.75 - 0.001 <= delay <= capped
    assert 225.0 <= strategy.next_delay(1000) <= 300.0


def test_exponential_jitter_matches_stems_integer_millisecond_formula():
    rng_a, rng_b = random.Random(7), random.Random(7)
    strategy = ExponentialJitterRetryStrategy(base=0.2, max_delay=1.0, rng=rng_a)
    for attempt in range(5):
        capped = min(200 * 2**attempt, 1000)
        expected = (capped - rng_b.randint(0, capped // 4)) / 1000
        assert strategy.next_delay(attempt) == expected


def test_exponential_jitter_rejects_bad_configuration_and_attempts():
    with pytest.raises(ValueError, match="base"):
        ExponentialJitterRetryStrategy(base=0)
    with pytest.raises(ValueError, match="max_delay"):
        ExponentialJitterRetryStrategy(max_delay=-1)
    with pytest.raises(ValueError, match="attempt"):
        ExponentialJitterRetryStrategy().next_delay(-1)


def test_retry_policy_without_backoff_uses_the_default_delay_exactly():
    policy = TaskRetryPolicy(default_delay=0.025, jitter=False)
    assert [policy.delay(a) for a in range(4)] == [0.025] * 4


def test_retry_policy_with_backoff_doubles_and_caps():
    policy = TaskRetryPolicy(default_delay=0.1, backoff=True, backoff_max=0.5, jitter=False)
    assert [policy.delay(a) for a in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_retry_policy_with_zero_delay_and_backoff_uses_the_cap():
    policy = TaskRetryPolicy(default_delay=0, backoff=True, backoff_max=3, jitter=False)
    assert policy.delay(2) == 3.0


def test_retry_policy_jitter_subtracts_at_most_a_quarter():
    policy = TaskRetryPolicy(default_delay=1.0, backoff=True)
    rng = random.Random(3)
    delays = [policy.delay(1, rng) for _ in range(300)]
    assert min(delays) >= 1.5 and max(delays) <= 2.0 and len(set(delays)) > 10


def test_retry_policy_dont_auto_retry_for_wins_over_auto_retry_for():
    policy = TaskRetryPolicy(auto_retry_for=[LookupError], dont_auto_retry_for=["KeyError"])
    assert policy.should_retry(IndexError("x"))
    assert not policy.should_retry(KeyError("x"))
    assert not policy.should_retry(ValueError("x"))


def test_retry_policy_with_empty_auto_retry_for_retries_everything():
    assert TaskRetryPolicy().should_retry(RuntimeError("x"))


def test_retry_policy_matches_names_of_errors_that_crossed_a_process():
    policy = TaskRetryPolicy(auto_retry_for=["ConnectionError"])
    assert policy.should_retry(RemoteError("ConnectionError", "reset"))
    assert policy.should_retry(ConnectionResetError())  # subclass by MRO name
    assert not policy.should_retry(RemoteError("ValueError", "bad"))


def test_retry_policy_round_trips_through_a_json_dict():
    policy = TaskRetryPolicy(
        max_retries=3, default_delay=0.5, backoff=True, auto_retry_for=[OSError], jitter=False
    )
    again = TaskRetryPolicy.from_dict(policy.to_dict())
    assert again.to_dict() == policy.to_dict()
    assert again.should_retry(OSError()) and not again.should_retry(ValueError())


def test_retry_policy_rejects_bad_values_with_clear_errors():
    with pytest.raises(ValueError, match="max_retries"):
        TaskRetryPolicy(max_retries=-1)
    with pytest.raises(ValueError, match="default_delay"):
        TaskRetryPolicy(default_delay=-0.1)
    with pytest.raises(TypeError, match="auto_retry_for"):
        TaskRetryPolicy(auto_retry_for=[42])
    with pytest.raises(TypeError, match="unknown retry policy keys"):
        TaskRetryPolicy.from_dict({"retries": 3})
