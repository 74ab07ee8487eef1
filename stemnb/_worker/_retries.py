"""Retry decisions: which policy applies, how many retries, whether an error retries, the delay.

Precedence (Stem's): the per-enqueue policy in meta ``stem.retryPolicy``, then the handler's
``TaskOptions.retry_policy``, then the worker's ``retry_strategy`` for the delay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._context import TaskRetryRequest
from .._retry import TaskRetryPolicy

if TYPE_CHECKING:
    from ._worker import Worker

POLICY_KEY = "stem.retryPolicy"


def resolve_policy(envelope: Any, options: Any) -> TaskRetryPolicy | None:
    """The policy for this run: the envelope's (from enqueue options), else the handler's."""
    data = envelope.meta.get(POLICY_KEY)
    if data is not None:
        return data if isinstance(data, TaskRetryPolicy) else TaskRetryPolicy.from_dict(data)
    return options.retry_policy


def max_retries(envelope: Any, policy: TaskRetryPolicy | None) -> int:
    """How many retries the task gets: the policy's ``max_retries`` if set, else the envelope's."""
    if policy is not None and policy.max_retries is not None:
        return policy.max_retries
    return envelope.max_retries


def allows(policy: TaskRetryPolicy | None, error: BaseException) -> bool:
    """Whether the policy's auto_retry_for / dont_auto_retry_for filters let ``error`` retry."""
    return True if policy is None else policy.should_retry(error)


def delay(worker: Worker, attempt: int, error: BaseException, policy: TaskRetryPolicy | None) -> float:
    """Seconds before the next attempt after run ``attempt`` failed with ``error``."""
    if policy is not None:
        return policy.delay(attempt)
    return worker.retry_strategy.next_delay(attempt, error)


def request_meta(request: TaskRetryRequest, limit: int) -> dict[str, Any]:
    """Envelope meta carrying a ``context.retry()`` call's overrides to the next attempt."""
    meta: dict[str, Any] = {}
    if request.retry_policy is not None:
        policy = request.retry_policy
        meta[POLICY_KEY] = policy.to_dict() if isinstance(policy, TaskRetryPolicy) else policy
    if request.time_limit is not None:
        meta["stem.timeLimit"] = request.time_limit
    if request.soft_time_limit is not None:
        meta["stem.softTimeLimit"] = request.soft_time_limit
    return meta
