"""The Redis backend's live status feed: every status published on its channel, handed to this
process's watchers in order, and the latest one seen of each recent task.

Remembering what the feed saw lets :meth:`StatusFeed.watch` tell a new watcher the task's
current status without asking Redis: a watcher is registered under the same lock the feed
holds while it records a status, so each status is either seen before the registration (then
the newest such one is the current status) or handed to the watcher. Only a task the feed has
not seen (it started after the status was written, or forgot it) costs a ``GET``.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .._backend import TERMINAL_STATES, TaskState, TaskStatus, Watch, call_watchers, watch_of
from .._redis_watch import ChannelListener

__all__ = ["StatusFeed"]

SEEN_LIMIT = 8192  # tasks whose latest status the feed remembers (the most recent ones)

_ID_PREFIX = b'{"id":'
_STATE_PREFIX = ',"state":"'
_DECODER = json.JSONDecoder()
_NOT_TERMINAL = frozenset(state.value for state in TaskState if state not in TERMINAL_STATES)


def status_head(data: bytes) -> tuple[str | None, str | None]:
    """The task id and state of a published status (its JSON starts with both), each None
    where it cannot be read that way.

    Lets the feed file statuses, and skip those nobody waits for, without decoding them whole.
    """
    if not data.startswith(_ID_PREFIX):
        return None, None
    head = data[: len(_ID_PREFIX) + 512].decode("utf-8", "replace")
    try:
        value, end = _DECODER.raw_decode(head, len(_ID_PREFIX))
    except ValueError:
        return None, None
    if not isinstance(value, str):
        return None, None
    if not head.startswith(_STATE_PREFIX, end):
        return value, None
    start = end + len(_STATE_PREFIX)
    stop = head.find('"', start)
    return value, (head[start:stop] if stop > start else None)


def _may_be_terminal(state: str | None) -> bool:
    """Whether a status whose state reads ``state`` (None: unread) may be terminal."""
    return state not in _NOT_TERMINAL


class StatusFeed:
    """Watchers of task statuses published on ``channel`` (listened to from the first watch).

    ``fetch(task_id)`` reads a status from Redis when the feed has not seen the task. A status
    the feed saw is trusted as current for ``trust`` seconds (a status written with a shorter
    TTL than that may be reported for a while after it expired).
    """

    def __init__(
        self, client: Any, channel: str, fetch: Callable[[str], TaskStatus | None], trust: float
    ) -> None:
        self._client = client
        self._channel = channel
        self._fetch = fetch
        self._trust = trust
        self._watchers: dict[str, list[Callable[[TaskStatus], None]]] = {}
        self._terminal_watchers: dict[str, list[Callable[[TaskStatus], None]]] = {}
        self._seen: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._listener: ChannelListener | None = None

    def watch(
        self,
        task_id: str,
        callback: Callable[[TaskStatus], None],
        *,
        current: bool = False,
        terminal_only: bool = False,
    ) -> Watch:
        """Call ``callback`` with every status of ``task_id`` seen from now on (and first, with
        ``current``, with its current status if it has one); with ``terminal_only``, with
        terminal ones only, and the others are not decoded for it. Raises redis errors when
        the feed cannot subscribe."""
        listener = self._ensure_listener()
        watchers = self._terminal_watchers if terminal_only else self._watchers
        with self._lock:
            watchers.setdefault(task_id, []).append(callback)
            seen = self._seen.get(task_id) if current else None
        listener.wake()  # it may be reading in bursts while nobody watched
        watch = watch_of(self._lock, watchers, task_id, callback)
        if current:
            self._deliver_current(task_id, callback, seen, terminal_only)
        return watch

    def _deliver_current(
        self,
        task_id: str,
        callback: Callable[[TaskStatus], None],
        seen: tuple[float, bytes] | None,
        terminal_only: bool,
    ) -> None:
        listener = self._listener
        trusted = seen is not None and time.monotonic() - seen[0] < self._trust
        if seen is not None and trusted and listener is not None and listener.alive:
            if terminal_only and not _may_be_terminal(status_head(seen[1])[1]):
                return
            status: TaskStatus | None = TaskStatus.from_dict(json.loads(seen[1]))
        else:
            status = self._fetch(task_id)
        if status is not None and (status.terminal or not terminal_only):
            call_watchers([callback], status)

    def forget(self, task_id: str) -> None:
        """Drop what the feed remembers of ``task_id`` (its status was deleted)."""
        with self._lock:
            self._seen.pop(task_id, None)

    def _ensure_listener(self) -> ChannelListener:
        with self._lock:
            if self._listener is None:
                self._listener = ChannelListener(
                    self._client,
                    self._channel,
                    self._on_status,
                    "redis-backend",
                    idle=lambda: not (self._watchers or self._terminal_watchers),  # then statuses are only filed
                )
            return self._listener

    def _on_status(self, data: bytes) -> None:
        task_id, state = status_head(data)
        if task_id is None:  # not written by this backend's set(); decode it whole
            task_id = TaskStatus.from_dict(json.loads(data)).id
        with self._lock:
            self._seen[task_id] = (time.monotonic(), data)
            self._seen.move_to_end(task_id)
            if len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
            every = list(self._watchers.get(task_id, ()))
            terminal = list(self._terminal_watchers.get(task_id, ())) if _may_be_terminal(state) else []
        if every or terminal:
            status = TaskStatus.from_dict(json.loads(data))
            call_watchers(every + terminal if status.terminal else every, status)

    def close(self) -> None:
        """Stop listening and drop every watcher (idempotent)."""
        with self._lock:
            self._watchers.clear()
            self._terminal_watchers.clear()
            self._seen.clear()
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
