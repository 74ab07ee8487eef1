"""The result-backend interface: task statuses, groups, chord claims and worker heartbeats.

A :class:`ResultBackend` mirrors Stem's result-backend contract. The worker writes each task's
:class:`TaskStatus` (state, payload, error); producers read it with :meth:`~ResultBackend.get`,
subscribe with :meth:`~ResultBackend.watch`, or block with :meth:`~ResultBackend.wait_for`
(notification-driven, no polling). Entries expire after a TTL. Implementations live in
``stemnb/_backends/``; ``stemnb.testing.backend_contract`` holds their contract suite.
"""

from __future__ import annotations

import abc
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ._exceptions import ClosedError

__all__ = [
    "GroupStatus",
    "ResultBackend",
    "TaskState",
    "TaskStatus",
    "Watch",
    "WorkerHeartbeat",
    "DEFAULT_RESULT_TTL",
    "DEFAULT_GROUP_TTL",
    "DEFAULT_HEARTBEAT_TTL",
]

log = logging.getLogger("stemnb.backend")

DEFAULT_RESULT_TTL = 86_400.0
DEFAULT_GROUP_TTL = 86_400.0
DEFAULT_HEARTBEAT_TTL = 60.0


class TaskState(str, enum.Enum):
    """A task's lifecycle state; ``succeeded``, ``failed`` and ``cancelled`` are terminal."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRIED = "retried"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether no further state follows this one."""
        return self in _TERMINAL

    def __str__(self) -> str:
        return self.value


_TERMINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})
TERMINAL_STATES: frozenset[TaskState] = _TERMINAL


def _check_ttl(ttl: float | None, default: float) -> float:
    """``ttl`` in seconds (``default`` when None); ValueError unless a number > 0."""
    if ttl is None:
        return default
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ValueError(f"ttl must be a number of seconds > 0, got {ttl!r}")
    return float(ttl)


def _check_task_id(task_id: object) -> None:
    if not isinstance(task_id, str) or not task_id:
        raise ValueError(f"task_id must be a non-empty str, got {task_id!r}")


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}")


def _check_expected(expected: object) -> None:
    if isinstance(expected, bool) or not isinstance(expected, int) or expected < 0:
        raise ValueError(f"expected must be an int >= 0, got {expected!r}")


def _coerce_state(state: TaskState | str) -> TaskState:
    if type(state) is TaskState:  # the common case, without the enum lookup
        return state
    try:
        return TaskState(state)
    except ValueError:
        names = ", ".join(s.value for s in TaskState)
        raise ValueError(f"unknown task state {state!r}; expected one of {names}") from None


@dataclass(frozen=True)
class TaskStatus:
    """A task's latest recorded status.

    ``error`` (failures only) is a dict with ``type``, ``message`` and ``traceback`` strings;
    ``payload`` is the encoded result; ``attempt`` is 0-based; ``updated_at`` is wall-clock seconds.
    By convention the worker puts the task's name and queue in ``meta["task"]`` and ``meta["queue"]``.
    """

    id: str
    state: TaskState
    payload: Any = None
    error: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    attempt: int = 0
    updated_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", _coerce_state(self.state))

    @property
    def terminal(self) -> bool:
        """Whether the state is terminal."""
        return self.state.terminal

    def to_dict(self) -> dict[str, Any]:
        """Return the status as JSON-safe data (given a JSON-safe payload and meta)."""
        return {
            "id": self.id,
            "state": self.state.value,
            "payload": self.payload,
            "error": self.error,
            "meta": self.meta,
            "attempt": self.attempt,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskStatus:
        """Rebuild a status from :meth:`to_dict` output. Raises ``ValueError`` on a bad state."""
        return cls(
            id=data["id"],
            state=data["state"],
            payload=data.get("payload"),
            error=data.get("error"),
            meta=dict(data.get("meta") or {}),
            attempt=int(data.get("attempt", 0)),
            updated_at=float(data.get("updated_at", time.time())),
        )


@dataclass(frozen=True)
class GroupStatus:
    """A group's expected member count, the members' statuses so far (by task id) and its meta."""

    id: str
    expected: int
    results: dict[str, TaskStatus] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def completed(self) -> int:
        """How many members reached a terminal state."""
        return sum(1 for s in self.results.values() if s.terminal)

    @property
    def is_complete(self) -> bool:
        """Whether every expected member is terminal."""
        return self.completed >= self.expected

    @property
    def succeeded(self) -> bool:
        """Whether every expected member succeeded."""
        done = [s for s in self.results.values() if s.state is TaskState.SUCCEEDED]
        return len(done) >= self.expected


@dataclass(frozen=True)
class WorkerHeartbeat:
    """A worker's periodic liveness record (Stem's ``WorkerHeartbeat``)."""

    worker_id: str
    namespace: str = "stem"
    timestamp: float = field(default_factory=time.time)
    isolate_count: int = 0
    inflight: int = 0
    last_lease_renewal: float | None = None
    queues: dict[str, int] = field(default_factory=dict)
    version: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the heartbeat as JSON-safe data."""
        return {
            "worker_id": self.worker_id,
            "namespace": self.namespace,
            "timestamp": self.timestamp,
            "isolate_count": self.isolate_count,
            "inflight": self.inflight,
            "last_lease_renewal": self.last_lease_renewal,
            "queues": dict(self.queues),
            "version": self.version,
            "extras": dict(self.extras),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerHeartbeat:
        """Rebuild a heartbeat from :meth:`to_dict` output."""
        return cls(**data)


class Watch:
    """A subscription returned by :meth:`ResultBackend.watch`; :meth:`close` ends it (idempotent)."""

    __slots__ = ("_cancel",)

    def __init__(self, cancel: Callable[[], None]) -> None:
        self._cancel: Callable[[], None] | None = cancel

    def close(self) -> None:
        """Stop delivering updates to the callback."""
        cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()

    @property
    def closed(self) -> bool:
        return self._cancel is None

    def __enter__(self) -> Watch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def watch_of(lock: Any, watchers: dict[str, list[Callable[[TaskStatus], None]]], task_id: str,
             callback: Callable[[TaskStatus], None]) -> Watch:
    """The Watch for ``callback`` registered in ``watchers[task_id]``: closing it removes that entry under ``lock``."""
    return Watch(_Unwatch(lock, watchers, task_id, callback))


class _Unwatch:
    """Removes one watcher (see :func:`watch_of`): one object where a closure took six, for a
    producer that holds a watch per task it waits for (see ``_task_wait``)."""

    __slots__ = ("lock", "watchers", "task_id", "callback")

    def __init__(self, lock: Any, watchers: dict[str, list[Callable[[TaskStatus], None]]], task_id: str,
                 callback: Callable[[TaskStatus], None]) -> None:
        self.lock, self.watchers, self.task_id, self.callback = lock, watchers, task_id, callback

    def __call__(self) -> None:
        with self.lock:
            callbacks = self.watchers.get(self.task_id)
            if callbacks and self.callback in callbacks:
                callbacks.remove(self.callback)
                if not callbacks:
                    del self.watchers[self.task_id]


_CLOSE_HOOKS_LOCK = threading.Lock()  # guards every backend's when_closed() callbacks


class _TerminalOnly:
    """A watcher that passes terminal statuses on to ``callback`` (see :meth:`ResultBackend.watch_terminal`)."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[TaskStatus], None]) -> None:
        self.callback = callback

    def __call__(self, status: TaskStatus) -> None:
        if status.terminal:
            self.callback(status)


class _CloseHookKey:
    """A :meth:`ResultBackend.when_closed` registration's key; calling it drops the registration."""

    __slots__ = ("backend",)

    def __init__(self, backend: ResultBackend) -> None:
        self.backend = backend

    def __call__(self) -> None:
        with _CLOSE_HOOKS_LOCK:
            hooks = self.backend.__dict__.get("_close_hooks")
            if hooks:
                hooks.pop(self, None)


def _call_logged(callback: Callable[[], object]) -> None:
    try:
        callback()
    except Exception:
        log.exception("result backend close callback %r failed", callback)


def call_watchers(callbacks: Iterable[Callable[[TaskStatus], None]], status: TaskStatus) -> None:
    """Call each watcher with ``status``; a failing callback is logged and the rest still run."""
    for callback in callbacks:
        try:
            callback(status)
        except Exception:
            log.exception("task status watcher %r failed", callback)


class ResultBackend(abc.ABC):
    """Abstract result backend (Stem's ``ResultBackend`` contract). All methods are thread-safe."""

    # -- task statuses ---------------------------------------------------------------------
    @abc.abstractmethod
    def set(
        self,
        task_id: str,
        state: TaskState | str,
        *,
        payload: Any = None,
        error: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        attempt: int = 0,
        ttl: float | None = None,
    ) -> TaskStatus:
        """Record task ``task_id``'s status, replacing the previous one entirely.

        Overwriting therefore clears an earlier ``error``. The status expires ``ttl`` seconds
        later (default: the backend's result TTL). Watchers of the task are notified.

        Returns:
            The stored status.

        Raises:
            ValueError: ``state`` is not a task state or ``ttl`` is not > 0.
        """

    def set_status(self, status: TaskStatus, *, ttl: float | None = None) -> TaskStatus:
        """Record ``status`` (same as :meth:`set` with its fields)."""
        return self.set(
            status.id,
            status.state,
            payload=status.payload,
            error=status.error,
            meta=status.meta,
            attempt=status.attempt,
            ttl=ttl,
        )

    @abc.abstractmethod
    def get(self, task_id: str) -> TaskStatus | None:
        """Return task ``task_id``'s latest status, or ``None`` when unknown or expired."""

    @abc.abstractmethod
    def watch(self, task_id: str, callback: Callable[[TaskStatus], None]) -> Watch:
        """Call ``callback(status)`` on every later :meth:`set` of ``task_id``, in order.

        Callbacks run on the thread that calls :meth:`set` (in-memory) or on the backend's
        listener thread (networked); keep them short. A failing callback is logged.
        """

    def watch_status(self, task_id: str, callback: Callable[[TaskStatus], None]) -> Watch:
        """Like :meth:`watch`, and also call ``callback`` with the task's current status (when
        it has one), so no status is missed however the call and the writes interleave.

        The current status is delivered on the calling thread, before this returns; when it
        races with a write, the watch may deliver it again, or a newer one first. Waiting for
        a terminal (or any given) state is unaffected.
        """
        watch = self.watch(task_id, callback)
        current = self.get(task_id)
        if current is not None:
            callback(current)
        return watch

    def watch_terminal(self, task_id: str, callback: Callable[[TaskStatus], None]) -> Watch:
        """Like :meth:`watch_status`, but call ``callback`` only with terminal statuses (the
        current one included): all that waiting for a result needs. A backend may then skip
        decoding the others (the Redis backend does)."""
        return self.watch_status(task_id, _TerminalOnly(callback))

    def wait_for(
        self,
        task_id: str,
        states: TaskState | str | Iterable[TaskState | str] = TERMINAL_STATES,
        timeout: float | None = None,
    ) -> TaskStatus | None:
        """Block until task ``task_id`` is in one of ``states`` (default: any terminal state).

        Waits on a :meth:`watch` notification, not by polling. Returns the matching status, or
        ``None`` when ``timeout`` seconds passed first. Raises ClosedError when the backend
        is closed first.
        """
        if isinstance(states, (str, TaskState)):
            states = (states,)
        wanted = frozenset(_coerce_state(s) for s in states)
        found: list[TaskStatus] = []
        event = threading.Event()

        def on_status(status: TaskStatus) -> None:
            if status.state in wanted and not event.is_set():
                found.append(status)
                event.set()

        watch = self.watch_terminal if wanted <= TERMINAL_STATES else self.watch_status
        with self.when_closed(event.set), watch(task_id, on_status):
            if not event.wait(timeout):
                return None
        if not found:
            raise ClosedError(f"the result backend was closed while waiting for task {task_id}")
        return found[0]

    @abc.abstractmethod
    def list_statuses(
        self,
        *,
        state: TaskState | str | None = None,
        task: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TaskStatus]:
        """Return stored statuses, most recently updated first, filtered by state and by
        ``meta["task"]`` / ``meta["queue"]``, paged by ``offset`` and ``limit``."""

    @abc.abstractmethod
    def expire(self, task_id: str, ttl: float) -> bool:
        """Make task ``task_id``'s status expire ``ttl`` seconds from now. ``False`` if unknown."""

    @abc.abstractmethod
    def forget(self, task_id: str) -> bool:
        """Delete task ``task_id``'s status now. Returns whether it existed."""

    # -- groups and chords -----------------------------------------------------------------
    @abc.abstractmethod
    def init_group(
        self,
        group_id: str,
        expected: int,
        *,
        meta: dict[str, Any] | None = None,
        ttl: float | None = None,
        exclusive: bool = False,
    ) -> GroupStatus | None:
        """Create (or reset, dropping results and any chord claim) group ``group_id``.

        With ``exclusive``, a group that exists already is left as it is and ``None`` is
        returned: of callers racing to create one group, exactly one gets it.

        Raises:
            ValueError: ``expected`` < 0 or ``ttl`` not > 0.
        """

    @abc.abstractmethod
    def add_group_result(self, group_id: str, status: TaskStatus) -> GroupStatus | None:
        """Record member ``status`` (keyed by ``status.id``) in the group.

        Returns:
            The updated group, or ``None`` when the group is unknown or expired.
        """

    @abc.abstractmethod
    def get_group(self, group_id: str) -> GroupStatus | None:
        """Return group ``group_id``, or ``None`` when unknown or expired."""

    @abc.abstractmethod
    def claim_chord(self, group_id: str) -> bool:
        """Claim the right to dispatch the group's chord callback.

        Returns:
            ``True`` for exactly one caller per group (until :meth:`init_group` resets it);
            ``False`` for everyone else and for unknown groups.
        """

    # -- worker heartbeats -----------------------------------------------------------------
    @abc.abstractmethod
    def set_worker_heartbeat(self, heartbeat: WorkerHeartbeat, *, ttl: float | None = None) -> None:
        """Store ``heartbeat`` under its worker id for ``ttl`` seconds (default: heartbeat TTL)."""

    @abc.abstractmethod
    def get_worker_heartbeat(self, worker_id: str) -> WorkerHeartbeat | None:
        """Return worker ``worker_id``'s last heartbeat, or ``None`` when unknown or expired."""

    @abc.abstractmethod
    def list_worker_heartbeats(self, namespace: str | None = None) -> list[WorkerHeartbeat]:
        """Return every live heartbeat (optionally of one namespace), by worker id."""

    @abc.abstractmethod
    def remove_worker_heartbeat(self, worker_id: str) -> bool:
        """Drop worker ``worker_id``'s heartbeat (a worker that stopped); True if there was one."""

    # -- lifecycle -------------------------------------------------------------------------
    @abc.abstractmethod
    def close(self) -> None:
        """Release resources and end every watch. Idempotent. Implementations call
        :meth:`_run_close_hooks` once they are closed, so that waits end."""

    def when_closed(self, callback: Callable[[], object]) -> Watch:
        """Call ``callback()`` once this backend is closed (at once when it is already), so a
        wait for a status can end with an error instead of waiting for good. Closing the
        returned Watch cancels it. A failing callback is logged."""
        with _CLOSE_HOOKS_LOCK:
            hooks = self.__dict__.setdefault("_close_hooks", {})
            if hooks is not None:
                key = _CloseHookKey(self)
                hooks[key] = callback
                return Watch(key)
        _call_logged(callback)
        return Watch(lambda: None)

    def _run_close_hooks(self) -> None:
        """Run every :meth:`when_closed` callback once (idempotent); later ones run at once."""
        with _CLOSE_HOOKS_LOCK:
            hooks = self.__dict__.get("_close_hooks")
            self.__dict__["_close_hooks"] = None
        for callback in (hooks or {}).values():
            _call_logged(callback)

    def __enter__(self) -> ResultBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
