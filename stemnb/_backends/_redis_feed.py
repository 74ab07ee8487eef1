"""The Redis backend's live status feed: every status published on its channel, handed to this
process's watchers in order, and the latest one seen of each recent task.

Remembering what the feed saw lets :meth:`StatusFeed.watch` tell a new watcher the task's
current status without asking Redis: a watcher is registered under the same lock the feed
holds while it records a status, so each status is either seen before the registration (then
the newest such one is the current status) or handed to the watcher. Only a task the feed has
not seen (it started after the status was written, or forgot it) costs a ``GET``.

While the feed's connection is lost it hears nothing, so it trusts nothing it saw before. Once
it listens again it reads the status of every watched task (``MGET``) and hands each watcher
what changed meanwhile, before any later message; a watch made meanwhile waits for that read.
Around a reconnect a watcher of every status may see one twice; a terminal watcher is settled once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from .._backend import TERMINAL_STATES, TaskState, TaskStatus, Watch, call_watchers, watch_of
from .._json import parse_json
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

    ``fetch(task_id)`` reads a status from Redis when the feed has not seen the task, and
    ``fetch_many(task_ids)`` the stored JSON of several (None where there is none) after a lost
    connection. A status the feed saw is trusted as current for ``trust`` seconds (a status
    written with a shorter TTL than that may be reported for a while after it expired).
    """

    def __init__(
        self,
        client: Any,
        channel: str,
        fetch: Callable[[str], TaskStatus | None],
        trust: float,
        fetch_many: Callable[[list[str]], list[bytes | None]],
    ) -> None:
        self._client = client
        self._channel = channel
        self._fetch = fetch
        self._fetch_many = fetch_many
        self._trust = trust
        self._synced = True  # the listener has heard every status since it subscribed
        self._unsynced: set[str] = set()  # watched tasks to read again once it listens again
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
            synced = self._synced
            if not synced:  # the read after the reconnect tells it the current status
                self._unsynced.add(task_id)
            seen = self._seen.get(task_id) if current else None
        listener.wake()  # it may be reading in bursts while nobody watched
        watch = watch_of(self._lock, watchers, task_id, callback)
        if current and synced:
            try:
                self._deliver_current(task_id, callback, seen, terminal_only)
            except BaseException:
                watch.close()  # the caller gets the error, not a watch nobody can close
                raise
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
            status: TaskStatus | None = TaskStatus.from_dict(parse_json(seen[1]))
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
                    on_lost=self._lost,
                    on_resubscribed=self._catch_up,
                )
            return self._listener

    def _on_status(self, channel: bytes, data: bytes) -> None:
        task_id, state = status_head(data)
        if task_id is None:  # not written by this backend's set(); decode it whole
            task_id = TaskStatus.from_dict(parse_json(data)).id
        self._file_and_hand_over(task_id, data, _may_be_terminal(state), skip_seen=True)

    def _file_and_hand_over(self, task_id: str, data: bytes, may_be_terminal: bool, skip_seen: bool) -> None:
        """Remember ``data`` as the task's latest status and hand it to its watchers (unless
        ``skip_seen`` and it is the very status the feed holds: the catch-up read handed it over)."""
        with self._lock:
            known = self._seen.get(task_id)
            self._seen[task_id] = (time.monotonic(), data)
            self._seen.move_to_end(task_id)
            if len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
            if skip_seen and known is not None and known[1] == data:
                return
            every = list(self._watchers.get(task_id, ()))
            terminal = list(self._terminal_watchers.get(task_id, ())) if may_be_terminal else []
        if every or terminal:
            status = TaskStatus.from_dict(parse_json(data))
            call_watchers(every + terminal if status.terminal else every, status)

    def _lost(self) -> None:
        """The listener lost its connection: what the feed saw may be out of date from now on."""
        with self._lock:
            self._synced = False
            self._seen.clear()
            self._unsynced = set(self._watchers) | set(self._terminal_watchers)

    def _catch_up(self) -> None:
        """The listener listens again (no later message handled yet): read every watched task's
        status and hand over what it missed. Raises redis errors (the listener tries again)."""
        while True:
            with self._lock:
                task_ids, self._unsynced = sorted(self._unsynced), set()
                if not task_ids:
                    self._synced = True
                    return
            try:
                found = self._fetch_many(task_ids)
            except BaseException:
                with self._lock:
                    self._unsynced.update(task_ids)
                raise
            for task_id, data in zip(task_ids, found, strict=True):
                if data is not None:
                    self._file_and_hand_over(task_id, data, True, skip_seen=False)

    def close(self) -> None:
        """Stop listening and drop every watcher (idempotent)."""
        with self._lock:
            self._watchers.clear()
            self._terminal_watchers.clear()
            self._seen.clear()
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
