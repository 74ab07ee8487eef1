"""The in-memory result backend: statuses, groups, chord claims and heartbeats with TTLs."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._backend import (
    DEFAULT_GROUP_TTL,
    DEFAULT_HEARTBEAT_TTL,
    DEFAULT_RESULT_TTL,
    GroupStatus,
    ResultBackend,
    TaskState,
    TaskStatus,
    Watch,
    WorkerHeartbeat,
    _check_expected,
    _check_page,
    _check_task_id,
    _check_ttl,
    _coerce_state,
    call_watchers,
    watch_of,
)
from .._exceptions import ClosedError

__all__ = ["InMemoryResultBackend"]


@dataclass
class _Group:
    expected: int
    meta: dict[str, Any]
    expires_at: float
    results: dict[str, TaskStatus] = field(default_factory=dict)
    claimed: bool = False

    def snapshot(self, group_id: str) -> GroupStatus:
        return GroupStatus(group_id, self.expected, dict(self.results), dict(self.meta))


class InMemoryResultBackend(ResultBackend):
    """A thread-safe result backend in this process's memory.

    Statuses expire after ``default_ttl`` seconds (1 day), groups after ``group_ttl`` (1 day) and
    worker heartbeats after ``heartbeat_ttl`` (60 s); expired entries read as absent and are
    swept on later writes. ``clock`` (wall-clock seconds) can be replaced for tests. Watch
    callbacks run, in order, on the thread that called :meth:`set` (when a worker stores an
    outcome, once it has settled the delivery too); a callback may call ``set`` again on the
    same thread, but must not wait for another thread's ``set``.
    """

    def __init__(
        self,
        *,
        default_ttl: float = DEFAULT_RESULT_TTL,
        group_ttl: float = DEFAULT_GROUP_TTL,
        heartbeat_ttl: float = DEFAULT_HEARTBEAT_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.default_ttl = _check_ttl(default_ttl, DEFAULT_RESULT_TTL)
        self.group_ttl = _check_ttl(group_ttl, DEFAULT_GROUP_TTL)
        self.heartbeat_ttl = _check_ttl(heartbeat_ttl, DEFAULT_HEARTBEAT_TTL)
        self._clock = clock
        self._lock = threading.Lock()
        self._notify_lock = threading.RLock()  # keeps watcher calls in set() order
        self._held = threading.local()  # calls: watcher calls held back on this thread (_holding_watchers)
        self._statuses: dict[str, tuple[TaskStatus, float]] = {}
        self._watchers: dict[str, list[Callable[[TaskStatus], None]]] = {}
        self._groups: dict[str, _Group] = {}
        self._heartbeats: dict[str, tuple[WorkerHeartbeat, float]] = {}
        self._expiry: list[tuple[float, int, str, str]] = []
        self._seq = itertools.count()
        self._closed = False

    # -- internals (lock held) ------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the InMemoryResultBackend is closed")

    def _schedule(self, expires_at: float, kind: str, key: str) -> None:
        heapq.heappush(self._expiry, (expires_at, next(self._seq), kind, key))
        live = len(self._statuses) + len(self._groups) + len(self._heartbeats)
        if len(self._expiry) > 2 * live + 1024:  # rewrites left stale entries: rebuild
            self._rebuild_expiry()

    def _rebuild_expiry(self) -> None:
        entries = [(exp, next(self._seq), "status", k) for k, (_, exp) in self._statuses.items()]
        entries += [(g.expires_at, next(self._seq), "group", k) for k, g in self._groups.items()]
        entries += [
            (exp, next(self._seq), "heartbeat", k) for k, (_, exp) in self._heartbeats.items()
        ]
        heapq.heapify(entries)
        self._expiry = entries

    def _sweep(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now:
            _, _, kind, key = heapq.heappop(self._expiry)
            if kind == "status":
                entry = self._statuses.get(key)
                if entry is not None and entry[1] <= now:
                    del self._statuses[key]
            elif kind == "group":
                group = self._groups.get(key)
                if group is not None and group.expires_at <= now:
                    del self._groups[key]
            else:
                beat = self._heartbeats.get(key)
                if beat is not None and beat[1] <= now:
                    del self._heartbeats[key]

    def _live_status(self, task_id: str, now: float) -> TaskStatus | None:
        entry = self._statuses.get(task_id)
        return entry[0] if entry is not None and entry[1] > now else None

    def _live_group(self, group_id: str, now: float) -> _Group | None:
        group = self._groups.get(group_id)
        return group if group is not None and group.expires_at > now else None

    # -- task statuses ---------------------------------------------------------------------------
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
        _check_task_id(task_id)
        ttl_s = _check_ttl(ttl, self.default_ttl)
        state = _coerce_state(state)
        with self._notify_lock:
            with self._lock:
                self._check_open()
                now = self._clock()
                status = TaskStatus(task_id, state, payload, error, dict(meta or {}), attempt, now)
                self._statuses[task_id] = (status, now + ttl_s)
                self._schedule(now + ttl_s, "status", task_id)
                self._sweep(now)
                watchers = list(self._watchers.get(task_id, ()))
            held = getattr(self._held, "calls", None)
            if held is not None:
                held.append((watchers, status))
            else:
                call_watchers(watchers, status)
        return status

    @contextlib.contextmanager
    def _holding_watchers(self) -> Iterator[None]:
        """Statuses set on this thread inside the block are stored at once; their watchers are
        called when it ends (in order, also when it raises), and other threads' ``set`` waits
        for that. The worker's paired writes store an outcome and settle its delivery inside
        one, so whoever a terminal status wakes finds the delivery settled, as on Redis, where
        one script does both before the status is published."""
        with self._notify_lock:
            outer = getattr(self._held, "calls", None)
            if outer is not None:  # nested: the outermost block calls them all
                yield
                return
            calls: list[tuple[list[Callable[[TaskStatus], None]], TaskStatus]] = []
            self._held.calls = calls
            try:
                yield
            finally:
                self._held.calls = None
                for watchers, status in calls:
                    call_watchers(watchers, status)

    def get(self, task_id: str) -> TaskStatus | None:
        with self._lock:
            self._check_open()
            return self._live_status(task_id, self._clock())

    def watch(self, task_id: str, callback: Callable[[TaskStatus], None]) -> Watch:
        if not callable(callback):
            raise TypeError(f"watch() needs a callable, got {callback!r}")
        with self._lock:
            self._check_open()
            self._watchers.setdefault(task_id, []).append(callback)
        return watch_of(self._lock, self._watchers, task_id, callback)

    def list_statuses(
        self,
        *,
        state: TaskState | str | None = None,
        task: str | None = None,
        queue: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[TaskStatus]:
        _check_page(limit, offset)
        wanted = None if state is None else _coerce_state(state)
        with self._lock:
            self._check_open()
            now = self._clock()
            found = [s for s, expires in self._statuses.values() if expires > now]
        found = [
            s
            for s in found
            if (wanted is None or s.state is wanted)
            and (task is None or s.meta.get("task") == task)
            and (queue is None or s.meta.get("queue") == queue)
        ]
        found.sort(key=lambda s: s.updated_at, reverse=True)
        return found[offset : offset + limit]

    def expire(self, task_id: str, ttl: float) -> bool:
        ttl_s = _check_ttl(ttl, self.default_ttl)
        with self._lock:
            self._check_open()
            now = self._clock()
            status = self._live_status(task_id, now)
            if status is None:
                return False
            self._statuses[task_id] = (status, now + ttl_s)
            self._schedule(now + ttl_s, "status", task_id)
            return True

    def forget(self, task_id: str) -> bool:
        with self._lock:
            self._check_open()
            live = self._live_status(task_id, self._clock()) is not None
            self._statuses.pop(task_id, None)
            return live

    # -- groups and chords -----------------------------------------------------------------------
    def init_group(
        self,
        group_id: str,
        expected: int,
        *,
        meta: dict[str, Any] | None = None,
        ttl: float | None = None,
        exclusive: bool = False,
    ) -> GroupStatus | None:
        _check_expected(expected)
        ttl_s = _check_ttl(ttl, self.group_ttl)
        with self._lock:
            self._check_open()
            now = self._clock()
            if exclusive and self._live_group(group_id, now) is not None:
                return None
            group = self._groups[group_id] = _Group(expected, dict(meta or {}), now + ttl_s)
            self._schedule(now + ttl_s, "group", group_id)
            self._sweep(now)
            return group.snapshot(group_id)

    def add_group_result(self, group_id: str, status: TaskStatus) -> GroupStatus | None:
        if not isinstance(status, TaskStatus):
            raise TypeError(f"add_group_result() needs a TaskStatus, got {type(status).__name__}")
        with self._lock:
            self._check_open()
            group = self._live_group(group_id, self._clock())
            if group is None:
                return None
            group.results[status.id] = status
            return group.snapshot(group_id)

    def get_group(self, group_id: str) -> GroupStatus | None:
        with self._lock:
            self._check_open()
            group = self._live_group(group_id, self._clock())
            return None if group is None else group.snapshot(group_id)

    def claim_chord(self, group_id: str) -> bool:
        with self._lock:
            self._check_open()
            group = self._live_group(group_id, self._clock())
            if group is None or group.claimed:
                return False
            group.claimed = True
            return True

    # -- worker heartbeats -----------------------------------------------------------------------
    def set_worker_heartbeat(self, heartbeat: WorkerHeartbeat, *, ttl: float | None = None) -> None:
        if not isinstance(heartbeat, WorkerHeartbeat):
            raise TypeError(f"expected a WorkerHeartbeat, got {type(heartbeat).__name__}")
        ttl_s = _check_ttl(ttl, self.heartbeat_ttl)
        with self._lock:
            self._check_open()
            now = self._clock()
            self._heartbeats[heartbeat.worker_id] = (heartbeat, now + ttl_s)
            self._schedule(now + ttl_s, "heartbeat", heartbeat.worker_id)
            self._sweep(now)

    def get_worker_heartbeat(self, worker_id: str) -> WorkerHeartbeat | None:
        with self._lock:
            self._check_open()
            entry = self._heartbeats.get(worker_id)
            return entry[0] if entry is not None and entry[1] > self._clock() else None

    def list_worker_heartbeats(self, namespace: str | None = None) -> list[WorkerHeartbeat]:
        with self._lock:
            self._check_open()
            now = self._clock()
            beats = [hb for hb, expires in self._heartbeats.values() if expires > now]
        beats = [hb for hb in beats if namespace is None or hb.namespace == namespace]
        return sorted(beats, key=lambda hb: hb.worker_id)

    def remove_worker_heartbeat(self, worker_id: str) -> bool:
        with self._lock:
            self._check_open()
            entry = self._heartbeats.pop(worker_id, None)
            return entry is not None and entry[1] > self._clock()

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._watchers.clear()
        self._run_close_hooks()

    @property
    def closed(self) -> bool:
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<InMemoryResultBackend {state} statuses={len(self._statuses)} groups={len(self._groups)}>"
