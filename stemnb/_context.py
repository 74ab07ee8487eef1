"""The context a running task sees: its identity, progress/heartbeat signals, retry and child enqueue.

The same :class:`TaskContext` works inline (signals go straight to the worker) and inside an
isolate (signals travel over a stemnb ``SendPort`` to the worker process; ``enqueue`` waits for
the worker's reply on a ``ReceivePort``). Both talk to a :class:`TaskControl`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Mapping
from typing import Any

from ._exceptions import StemnbError, TaskRevokedError
from ._flag import Flag


class TaskRetryRequest(StemnbError):
    """Raised by :meth:`TaskContext.retry` to ask the worker for another attempt.

    Control flow, not an error (like Celery's ``Retry``): let it propagate out of the handler.

    ``countdown`` is seconds from now, ``eta`` epoch seconds; the rest override the task's
    retry policy, retry count and time limits for the next attempt.
    """

    def __init__(
        self,
        countdown: float | None = None,
        eta: float | None = None,
        retry_policy: Any = None,
        max_retries: int | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> None:
        super().__init__("task requested a retry")
        self.countdown = countdown
        self.eta = eta
        self.retry_policy = retry_policy
        self.max_retries = max_retries
        self.time_limit = time_limit
        self.soft_time_limit = soft_time_limit

    def __reduce__(self):  # crosses the process boundary as itself
        return (
            type(self),
            (self.countdown, self.eta, self.retry_policy, self.max_retries, self.time_limit, self.soft_time_limit),
        )


class TaskControl:
    """Where a context's signals go. The worker (inline) and the isolate proxy implement it."""

    def heartbeat(self) -> None:
        """Record liveness."""

    def progress(self, fraction: float, data: Mapping[str, Any] | None) -> None:
        """Report progress."""

    def extend_lease(self, seconds: float) -> None:
        """Extend the delivery's lease by ``seconds``."""

    def enqueue(self, name: str, args: Any, options: Any, headers: Any, meta: Any) -> str:
        """Enqueue a child task; return its id."""
        raise RuntimeError("this task context cannot enqueue (no enqueuer)")

    def enqueue_many(self, name: str, args_list: list[Any], options: Any, headers: Any, meta: Any) -> list[str]:
        """Enqueue one child task per item of ``args_list``; return their ids in order."""
        raise RuntimeError("this task context cannot enqueue (no enqueuer)")

    def revoked(self) -> str | None:
        """Return the reason when the task was asked to terminate, else None."""
        return None


class TaskContext:
    """A running task's view of itself.

    ``id``, ``name``, ``attempt`` (0-based), ``queue``, ``headers`` and ``meta`` describe the
    task. ``heartbeat``, ``progress`` and ``extend_lease`` also check for a terminate-revocation
    and raise :class:`TaskRevokedError` when one arrived (cooperative cancellation).
    """

    def __init__(
        self,
        id: str,
        name: str,
        attempt: int,
        headers: Mapping[str, str],
        meta: Mapping[str, Any],
        queue: str = "default",
        control: TaskControl | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.attempt = attempt
        self.queue = queue
        self.headers = dict(headers)
        self.meta = dict(meta)
        self._control = control or TaskControl()

    def heartbeat(self) -> None:
        """Signal liveness to the worker. Raises TaskRevokedError if termination was requested."""
        self._check_revoked()
        self._control.heartbeat()

    def progress(self, fraction: float, data: Mapping[str, Any] | None = None) -> None:
        """Report progress ``fraction`` in [0, 1] with optional ``data``.

        Raises ValueError for a fraction outside [0, 1] and TaskRevokedError if termination was
        requested.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise ValueError(f"progress fraction must be a number in [0, 1], got {fraction!r}")
        self._check_revoked()
        self._control.progress(float(fraction), dict(data) if data is not None else None)

    def extend_lease(self, seconds: float) -> None:
        """Extend this delivery's broker lease by ``seconds`` (> 0)."""
        if seconds <= 0:
            raise ValueError(f"extend_lease needs a positive number of seconds, got {seconds!r}")
        self._check_revoked()
        self._control.extend_lease(float(seconds))

    def is_revoked(self) -> bool:
        """Whether a terminate-revocation reached this task."""
        return self._control.revoked() is not None

    def retry(
        self,
        countdown: float | None = None,
        eta: _dt.datetime | float | None = None,
        *,
        retry_policy: Any = None,
        max_retries: int | None = None,
        time_limit: float | None = None,
        soft_time_limit: float | None = None,
    ) -> None:
        """Ask for another attempt; never returns (raises TaskRetryRequest).

        When retries are exhausted the task fails and is dead-lettered like any other failure.
        """
        from ._options import to_seconds
        from ._retry import TaskRetryPolicy

        countdown = to_seconds("countdown", countdown)
        time_limit = to_seconds("time_limit", time_limit, allow_zero=False)
        soft_time_limit = to_seconds("soft_time_limit", soft_time_limit, allow_zero=False)
        if max_retries is not None and (not isinstance(max_retries, int) or max_retries < 0):
            raise ValueError(f"max_retries must be an int >= 0, got {max_retries!r}")
        if retry_policy is not None and not isinstance(retry_policy, TaskRetryPolicy):
            retry_policy = TaskRetryPolicy.from_dict(retry_policy)
        if isinstance(eta, _dt.datetime):
            eta = (eta if eta.tzinfo else eta.astimezone()).timestamp()
        elif eta is not None and (isinstance(eta, bool) or not isinstance(eta, (int, float))):
            raise TypeError(f"eta must be a datetime or epoch seconds, got {eta!r}")
        raise TaskRetryRequest(countdown, eta, retry_policy, max_retries, time_limit, soft_time_limit)

    def enqueue(
        self,
        name: str,
        args: Mapping[str, Any] | None = None,
        options: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> str:
        """Enqueue a child task (its meta records this task as parent). Returns the child's id."""
        return self._control.enqueue(name, dict(args or {}), options, dict(headers or {}), self._child_meta(meta))

    def enqueue_many(
        self,
        name: str,
        args_list: Iterable[Mapping[str, Any] | None],
        options: Any = None,
        *,
        headers: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Enqueue child task ``name`` once per item of ``args_list``, as :meth:`Stem.enqueue_many`
        does (every item encoded before any is enqueued; pipelined on Redis). Returns the
        children's ids in order."""
        items = [dict(args or {}) for args in args_list]
        return self._control.enqueue_many(name, items, options, dict(headers or {}), self._child_meta(meta))

    def _child_meta(self, meta: Mapping[str, Any] | None) -> dict[str, Any]:
        """A child task's meta: this task as its parent (and its root's id), then ``meta``."""
        child_meta = {"stem.parentTaskId": self.id, "stem.rootTaskId": self.meta.get("stem.rootTaskId", self.id)}
        child_meta.update(meta or {})
        return child_meta

    def _check_revoked(self) -> None:
        reason = self._control.revoked()
        if reason is not None:
            raise TaskRevokedError(f"task {self.id} was revoked: {reason}")

    def __repr__(self) -> str:
        return f"<TaskContext {self.name} id={self.id} attempt={self.attempt}>"


class InlineControl(TaskControl):
    """Control for an inline task: calls the worker's callbacks directly; revocation via an Event."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink
        self.terminate = Flag()
        self.reason: str | None = None

    def heartbeat(self) -> None:
        self._sink.on_heartbeat()

    def progress(self, fraction: float, data: Mapping[str, Any] | None) -> None:
        self._sink.on_progress(fraction, data)

    def extend_lease(self, seconds: float) -> None:
        self._sink.on_extend_lease(seconds)

    def enqueue(self, name: str, args: Any, options: Any, headers: Any, meta: Any) -> str:
        return self._sink.on_enqueue(name, args, options, headers, meta)

    def enqueue_many(self, name: str, args_list: list[Any], options: Any, headers: Any, meta: Any) -> list[str]:
        return self._sink.on_enqueue(name, args_list, options, headers, meta, many=True)

    def revoked(self) -> str | None:
        return self.reason if self.terminate.is_set() else None

    def request_terminate(self, reason: str) -> None:
        """Make the next heartbeat/progress/extend_lease raise TaskRevokedError."""
        self.reason = reason
        self.terminate.set()

    def detach(self) -> None:
        """The task was settled: later signals go nowhere, and a child enqueue raises RuntimeError.

        Drops the reference to the worker's task, which refers back to this control: without
        the cycle, the task and everything it holds are freed as it ends instead of by the
        garbage collector (a worker otherwise left ~25 objects per task for the collector).
        """
        self._sink = _ENDED


class _Ended:
    """The sink of a settled task's control (see :meth:`InlineControl.detach`)."""

    def on_heartbeat(self) -> None:
        pass

    def on_progress(self, fraction: float, data: Mapping[str, Any] | None) -> None:
        pass

    def on_extend_lease(self, seconds: float) -> None:
        pass

    def on_enqueue(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("this task has ended: its context can no longer enqueue child tasks")


_ENDED = _Ended()
