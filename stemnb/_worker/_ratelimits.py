"""Rate limits at run time: the group limit first, then the per-task limit (Stem's order).

Keys: ``"group:" + (group_rate_key or headers[group_rate_key_header] or "global")`` and
``"<task name>:" + (headers["tenant"] or "global")``. Each run spends one token of an ``N/period``
bucket. A denied task is re-published after the limiter's ``retry_after`` with its attempt
unchanged and state ``retried`` (meta ``rateLimited``). When the limiter itself fails,
``group_rate_limiter_failure_mode`` decides for both limits (Stem applied it to the group limit
only): fail open (run, report an ``error`` event) or fail closed (re-publish). The worker uses a
:class:`TokenBucketRateLimiter` when none is given, so a declared limit is always honoured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._events import WorkerEventType
from .._options import RateLimiterFailureMode
from . import _outcome

if TYPE_CHECKING:
    from ._active import ActiveTask
    from ._worker import Worker


def admit(worker: Worker, task: ActiveTask, options: Any) -> bool:
    """Return True when the task may run now; otherwise it was re-published and settled."""
    if options.rate_limit is None and options.group_rate_limit is None:
        return True
    limiter = _limiter(worker)
    env = task.envelope
    if options.group_rate_limit is not None:
        key = "group:" + (options.group_rate_key or env.headers.get(options.group_rate_key_header) or "global")
        if not _check(worker, task, options, limiter, key, options.group_rate_limit, {"groupRateLimited": True, "groupKey": key}):
            return False
    if options.rate_limit is not None:
        key = f"{env.name}:{env.headers.get('tenant') or 'global'}"
        if not _check(worker, task, options, limiter, key, options.rate_limit, {"rateKey": key}):
            return False
    return True


def _check(worker: Worker, task: ActiveTask, options: Any, limiter: Any, key: str, rate: str, extra: dict[str, Any]) -> bool:
    """Ask the limiter about ``key``; apply the failure mode when the limiter itself fails."""
    env = task.envelope
    try:
        decision = limiter.acquire(key, rate, meta={"task": env.name, "id": env.id})
    except Exception as exc:
        if options.group_rate_limiter_failure_mode is RateLimiterFailureMode.FAIL_CLOSED:
            delay = worker.retry_strategy.next_delay(env.attempt, exc)
            meta = {"rateLimiterFailed": True, "retryAfterMs": int(delay * 1000), **extra}
            _outcome.republish_later(worker, task, delay, reason="rate-limiter-failed", state_meta=meta)
            return False
        worker.count("rate_limiter_degraded")
        worker.emit(WorkerEventType.ERROR, task, error=exc, data={"where": "rate-limiter", "degraded": True, "key": key})
        return True
    if not decision.allowed:
        return _deny(worker, task, decision, extra)
    return True


def _deny(worker: Worker, task: ActiveTask, decision: Any, extra: dict[str, Any]) -> bool:
    delay = decision.retry_after
    if delay is None:
        delay = worker.retry_strategy.next_delay(task.envelope.attempt, RuntimeError("rate-limit"))
    worker.count("rate_limited")
    meta = {"rateLimited": True, "retryAfterMs": int(delay * 1000), **extra}
    _outcome.republish_later(worker, task, delay, reason="rate-limited", state_meta=meta)
    return False


def _limiter(worker: Worker) -> Any:
    if worker.rate_limiter is None:
        from .._ratelimit import TokenBucketRateLimiter

        worker.rate_limiter = TokenBucketRateLimiter()
    return worker.rate_limiter
