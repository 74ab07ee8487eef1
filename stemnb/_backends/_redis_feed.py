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

from .._backend import TaskStatus, Watch, call_watchers, watch_of
from .._redis_watch import ChannelListener

__all__ = ["StatusFeed"]

SEEN_LIMIT = 8192  # tasks whose latest status the feed remembers (the most recent ones)

_ID_PREFIX = b'{"id":'
_DECODER = json.JSONDecoder()


def status_id(data: bytes) -> str | None:
    """The task id of a published status (its JSON starts with the id), or None if unreadable.

    Lets the feed file and skip statuses without decoding them whole.
    """
    if not data.startswith(_ID_PREFIX):
        return None
    try:
        value, _ = _DECODER.raw_decode(data[: len(_ID_PREFIX) + 512].decode("utf-8", "replace"), 6)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


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
        self._seen: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._listener: ChannelListener | None = None

    def watch(
        self, task_id: str, callback: Callable[[TaskStatus], None], *, current: bool = False
    ) -> Watch:
        """Call ``callback`` with every status of ``task_id`` seen from now on (and first, with
        ``current``, with its current status if it has one). Raises redis errors when the feed
        cannot subscribe."""
        listener = self._ensure_listener()
        with self._lock:
            self._watchers.setdefault(task_id, []).append(callback)
            seen = self._seen.get(task_id) if current else None
        listener.wake()  # it may be reading in bursts while nobody watched
        watch = watch_of(self._lock, self._watchers, task_id, callback)
        if current:
            self._deliver_current(task_id, callback, seen)
        return watch

    def _deliver_current(
        self, task_id: str, callback: Callable[[TaskStatus], None], seen: tuple[float, bytes] | None
    ) -> None:
        listener = self._listener
        trusted = seen is not None and time.monotonic() - seen[0] < self._trust
        if seen is not None and trusted and listener is not None and listener.alive:
            status: TaskStatus | None = TaskStatus.from_dict(json.loads(seen[1]))
        else:
            status = self._fetch(task_id)
        if status is not None:
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
                    idle=lambda: not self._watchers,  # then statuses are only filed
                )
            return self._listener

    def _on_status(self, data: bytes) -> None:
        task_id = status_id(data)
        if task_id is None:  # not written by this backend's set(); decode it whole
            task_id = TaskStatus.from_dict(json.loads(data)).id
        with self._lock:
            self._seen[task_id] = (time.monotonic(), data)
            self._seen.move_to_end(task_id)
            if len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)
            callbacks = self._watchers.get(task_id)
            callbacks = list(callbacks) if callbacks else None
        if callbacks:
            call_watchers(callbacks, TaskStatus.from_dict(json.loads(data)))

    def close(self) -> None:
        """Stop listening and drop every watcher (idempotent)."""
        with self._lock:
            self._watchers.clear()
            self._seen.clear()
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
