"""Revocations: which tasks must not run (or must stop), kept in a store workers listen to live.

A :class:`RevokeEntry` is versioned: a store keeps, per (namespace, task id), the entry with the
highest version and ignores stale ones, so concurrent revokers converge. To lift a revocation
(for example to resume a paused queue), upsert a newer version that has already expired;
:meth:`RevokeEntry.active` then reads ``False``. :meth:`RevokeStore.watch` tells a running
worker about every applied entry at once, so revocations reach it live, not only at start-up.
"""

from __future__ import annotations

import abc
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from ._backend import Watch
from ._exceptions import ClosedError

__all__ = ["InMemoryRevokeStore", "RevokeEntry", "RevokeStore", "QUEUE_PAUSE_PREFIX", "now_version"]

log = logging.getLogger("stemnb.revoke")

QUEUE_PAUSE_PREFIX = "__stem.queue.pause__:"
"""Task-id prefix of the entries that pause a queue (Stem's convention): ``prefix + queue``."""


def now_version() -> int:
    """Return a fresh version: the current UTC time in microseconds (Stem's choice)."""
    return time.time_ns() // 1000


@dataclass(frozen=True)
class RevokeEntry:
    """One revocation: task ``task_id`` in ``namespace`` is revoked (and stopped if ``terminate``).

    ``version`` orders competing entries (higher wins); ``expires_at`` (wall-clock seconds) ends
    the revocation. Raises ``ValueError`` for an empty namespace or task id or a negative version.
    """

    namespace: str
    task_id: str
    version: int = field(default_factory=now_version)
    terminate: bool = False
    reason: str | None = None
    requested_by: str | None = None
    expires_at: float | None = None

    def __post_init__(self) -> None:
        for name in ("namespace", "task_id"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"RevokeEntry.{name} must be a non-empty str, got {value!r}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 0:
            raise ValueError(f"RevokeEntry.version must be an int >= 0, got {self.version!r}")

    def active(self, now: float | None = None) -> bool:
        """Whether the revocation is in force at ``now`` (default: the current time)."""
        return self.expires_at is None or self.expires_at > (time.time() if now is None else now)

    def to_dict(self) -> dict[str, Any]:
        """Return the entry as JSON-safe data."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RevokeEntry:
        """Rebuild an entry from :meth:`to_dict` output."""
        return cls(**data)


class RevokeStore(abc.ABC):
    """Abstract store of revocations. All methods are thread-safe."""

    @abc.abstractmethod
    def upsert(self, entries: Iterable[RevokeEntry]) -> list[RevokeEntry]:
        """Store each entry unless one with an equal or higher version is already stored.

        Returns:
            The entries that were applied (watchers hear about exactly these).
        """

    @abc.abstractmethod
    def list(self, namespace: str) -> list[RevokeEntry]:
        """Return ``namespace``'s entries (including expired ones not yet pruned), by version."""

    @abc.abstractmethod
    def get(self, namespace: str, task_id: str) -> RevokeEntry | None:
        """Return the stored entry for ``task_id`` in ``namespace``, or ``None``."""

    @abc.abstractmethod
    def prune_expired(self, namespace: str, now: float | None = None) -> int:
        """Delete ``namespace``'s entries that expired by ``now``. Returns how many."""

    @abc.abstractmethod
    def watch(
        self, callback: Callable[[RevokeEntry], None], *, namespace: str | None = None
    ) -> Watch:
        """Call ``callback(entry)`` for every entry applied from now on (optionally one namespace).

        A store whose notifications can be interrupted (Redis's) hands every entry over again
        once it hears them again, so a watcher may get an entry twice: its version tells.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Release resources and end every watch. Idempotent."""

    def __enter__(self) -> RevokeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InMemoryRevokeStore(RevokeStore):
    """A revoke store in this process's memory; watchers run on the upserting thread."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], RevokeEntry] = {}
        self._watchers: list[tuple[str | None, Callable[[RevokeEntry], None]]] = []
        self._lock = threading.Lock()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the InMemoryRevokeStore is closed")

    def upsert(self, entries: Iterable[RevokeEntry]) -> list[RevokeEntry]:
        entries = list(entries)
        for entry in entries:
            if not isinstance(entry, RevokeEntry):
                raise TypeError(f"upsert() takes RevokeEntry objects, got {type(entry).__name__}")
        applied = []
        with self._lock:
            self._check_open()
            for entry in entries:
                key = (entry.namespace, entry.task_id)
                current = self._entries.get(key)
                if current is None or entry.version > current.version:
                    self._entries[key] = entry
                    applied.append(entry)
            watchers = list(self._watchers)
        for entry in applied:
            for namespace, callback in watchers:
                if namespace is None or namespace == entry.namespace:
                    try:
                        callback(entry)
                    except Exception:
                        log.exception("revoke watcher %r failed", callback)
        return applied

    def list(self, namespace: str) -> list[RevokeEntry]:
        with self._lock:
            self._check_open()
            found = [e for (ns, _), e in self._entries.items() if ns == namespace]
        return sorted(found, key=lambda e: (e.version, e.task_id))

    def get(self, namespace: str, task_id: str) -> RevokeEntry | None:
        with self._lock:
            self._check_open()
            return self._entries.get((namespace, task_id))

    def prune_expired(self, namespace: str, now: float | None = None) -> int:
        now = time.time() if now is None else now
        with self._lock:
            self._check_open()
            doomed = [
                key
                for key, entry in self._entries.items()
                if key[0] == namespace and not entry.active(now)
            ]
            for key in doomed:
                del self._entries[key]
            return len(doomed)

    def watch(
        self, callback: Callable[[RevokeEntry], None], *, namespace: str | None = None
    ) -> Watch:
        if not callable(callback):
            raise TypeError(f"watch() needs a callable, got {callback!r}")
        item = (namespace, callback)
        with self._lock:
            self._check_open()
            self._watchers.append(item)

        def cancel() -> None:
            with self._lock:
                if item in self._watchers:
                    self._watchers.remove(item)

        return Watch(cancel)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._watchers.clear()

    def __repr__(self) -> str:
        return f"<InMemoryRevokeStore entries={len(self._entries)}>"
