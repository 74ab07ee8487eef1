"""TaskOptions / TaskEnqueueOptions: Stem's defaults and clear errors for bad values."""

from __future__ import annotations

import datetime as dt

import pytest

import stemnb
from stemnb import RateLimiterFailureMode, TaskEnqueueOptions, TaskOptions


def test_task_options_have_stems_defaults():
    o = TaskOptions()
    assert (o.queue, o.max_retries, o.priority, o.unique, o.ignore_result) == ("default", 0, 0, False, False)
    assert o.group_rate_key_header == "tenant"
    assert o.group_rate_limiter_failure_mode is RateLimiterFailureMode.FAIL_OPEN


@pytest.mark.parametrize("field", ["soft_time_limit", "hard_time_limit", "unique_for", "visibility_timeout"])
def test_negative_or_zero_limits_are_refused_naming_the_option(field):
    with pytest.raises(ValueError, match=field):
        TaskOptions(**{field: -1})
    with pytest.raises(ValueError, match=field):
        TaskOptions(**{field: 0})


@pytest.mark.parametrize("field", ["soft_time_limit", "hard_time_limit", "unique_for", "visibility_timeout", "expires"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_durations_that_are_not_finite_are_refused_naming_the_option(field, value):
    with pytest.raises(ValueError, match=f"{field} must be a finite number of seconds"):
        TaskOptions(**{field: value})


@pytest.mark.parametrize("field", ["countdown", "time_limit", "soft_time_limit", "expires"])
def test_enqueue_durations_that_are_not_finite_are_refused_naming_the_option(field):
    with pytest.raises(ValueError, match=field):
        TaskEnqueueOptions(**{field: float("nan")})


def test_timedeltas_become_seconds():
    assert TaskOptions(hard_time_limit=dt.timedelta(milliseconds=1500)).hard_time_limit == 1.5


@pytest.mark.parametrize("spec", ["10/min", "1.5/s", "10/d", " 10/s", "0/s", "ten/s", ""])
def test_bad_rate_strings_are_refused(spec):
    with pytest.raises(stemnb.RateLimitSpecError, match="rate_limit"):
        TaskOptions(rate_limit=spec)


@pytest.mark.parametrize("spec", ["10/s", "100/m", "1000/h"])
def test_good_rate_strings_are_kept(spec):
    assert TaskOptions(rate_limit=spec, group_rate_limit=spec).rate_limit == spec


def test_bad_counts_and_priorities_are_refused():
    with pytest.raises(ValueError, match="max_retries"):
        TaskOptions(max_retries=-1)
    with pytest.raises(TypeError, match="max_retries"):
        TaskOptions(max_retries=1.5)
    with pytest.raises(ValueError, match="priority"):
        TaskOptions(priority=10)
    with pytest.raises(ValueError, match="queue"):
        TaskOptions(queue="")
    with pytest.raises(ValueError):
        TaskOptions(group_rate_limiter_failure_mode="sometimes")


def test_replace_validates_again():
    with pytest.raises(ValueError):
        TaskOptions().replace(hard_time_limit=-2)
    assert TaskOptions().copy_with(queue="io").queue == "io"


def test_enqueue_options_validate_and_normalise():
    assert TaskEnqueueOptions(countdown=dt.timedelta(seconds=2)).countdown == 2.0
    with pytest.raises(ValueError, match="countdown or eta"):
        TaskEnqueueOptions(countdown=1, eta=5.0)
    with pytest.raises(ValueError, match="time_limit"):
        TaskEnqueueOptions(time_limit=0)
    assert TaskEnqueueOptions(link="after").link == ("after",)
