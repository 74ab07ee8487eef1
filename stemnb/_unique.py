"""Unique tasks: a lock store and the coordinator that keeps one live copy of a task per key.

The key of an envelope is the sha256 of a canonical JSON of ``{task, queue, args, headers,
meta}`` (meta without ``stem.``-prefixed keys, headers without signature headers), unless meta
``stem.unique.override`` or ``uniqueKey`` names it. The producer claims the key before
publishing (a duplicate gets the existing task's id back) and the worker releases it when the
task reaches a terminal state.
"""

from __future__ import annotations

import abc
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._envelope import Envelope
from ._exceptions import ClosedError

__all__ = [
    "InMemoryLockStore",
    "Lock",
    "LockStore",
    "UniqueTaskClaim",
    "UniqueTaskCoordinator",
    "UNIQUE_KEY_META",
    "UNIQUE_OWNER_META",
    "UNIQUE_EXPIRES_META",
]

UNIQUE_KEY_META = "stem.unique.key"
UNIQUE_OWNER_META = "stem.unique.owner"
UNIQUE_EXPIRES_META = "stem.unique.expiresAt"
_OVERRIDE_META = ("stem.unique.override", "uniqueKey")
_SIGNATURE_HEADERS = ("stem-signature", "stem-signature-key")


def _check_ttl(ttl: Any) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
        raise ValueError(f"lock ttl must be a number of seconds > 0, got {ttl!r}")
    return float(ttl)


@dataclass
class Lock:
    """A held lock: ``key``, its ``owner`` and when it lapses (wall-clock seconds)."""

    key: str
    owner: str
    expires_at: float
    store: LockStore = field(repr=False, compare=False)

    def renew(self, ttl: float) -> bool:
        """Extend the lock to ``ttl`` seconds from now. ``False`` if it was lost."""
        return self.store.renew(self.key, self.owner, ttl)

    def release(self) -> bool:
        """Release the lock. ``False`` if it was already lost or released."""
        return self.store.release(self.key, self.owner)


class LockStore(abc.ABC):
    """Abstract store of expiring, owned locks (Stem's ``LockStore``). Thread-safe."""

    @abc.abstractmethod
    def acquire(self, key: str, *, ttl: float, owner: str | None = None) -> Lock | None:
        """Take ``key`` for ``ttl`` seconds as ``owner`` (default: a fresh id).

        Returns:
            The lock, or ``None`` when someone else holds the key.

        Raises:
            ValueError: ``ttl`` is not > 0.
        """

    @abc.abstractmethod
    def owner_of(self, key: str) -> str | None:
        """Return who holds ``key`` now, or ``None``."""

    @abc.abstractmethod
    def release(self, key: str, owner: str) -> bool:
        """Release ``key`` if ``owner`` holds it. Returns whether it did."""

    @abc.abstractmethod
    def renew(self, key: str, owner: str, ttl: float) -> bool:
        """Extend ``owner``'s hold on ``key`` to ``ttl`` seconds from now; ``False`` if not held."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release resources. Idempotent."""


class InMemoryLockStore(LockStore):
    """A lock store in this process's memory. ``clock`` (wall-clock seconds) is replaceable."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._locks: dict[str, tuple[str, float]] = {}
        self._mutex = threading.Lock()
        self._closed = False

    def _holder(self, key: str, now: float) -> str | None:
        held = self._locks.get(key)
        if held is None or held[1] <= now:
            self._locks.pop(key, None)
            return None
        return held[0]

    def acquire(self, key: str, *, ttl: float, owner: str | None = None) -> Lock | None:
        ttl = _check_ttl(ttl)
        owner = owner or uuid.uuid4().hex
        with self._mutex:
            if self._closed:
                raise ClosedError("the InMemoryLockStore is closed")
            now = self._clock()
            if self._holder(key, now) is not None:
                return None
            self._locks[key] = (owner, now + ttl)
            return Lock(key, owner, now + ttl, self)

    def owner_of(self, key: str) -> str | None:
        with self._mutex:
            return self._holder(key, self._clock())

    def release(self, key: str, owner: str) -> bool:
        with self._mutex:
            if self._holder(key, self._clock()) != owner:
                return False
            del self._locks[key]
            return True

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        ttl = _check_ttl(ttl)
        with self._mutex:
            now = self._clock()
            if self._holder(key, now) != owner:
                return False
            self._locks[key] = (owner, now + ttl)
            return True

    def close(self) -> None:
        with self._mutex:
            self._closed = True


@dataclass(frozen=True)
class UniqueTaskClaim:
    """The outcome of :meth:`UniqueTaskCoordinator.acquire`.

    ``acquired``: this envelope now owns ``key`` and ``envelope`` carries the ``stem.unique.*``
    meta to publish. Otherwise ``existing_id`` is the id of the task holding the key.
    """

    acquired: bool
    key: str
    envelope: Envelope
    existing_id: str | None = None
    expires_at: float | None = None

    @property
    def meta(self) -> dict[str, Any]:
        """The ``stem.unique.*`` meta entries of an acquired claim (empty otherwise)."""
        if not self.acquired:
            return {}
        keys = (UNIQUE_KEY_META, UNIQUE_OWNER_META, UNIQUE_EXPIRES_META)
        return {k: self.envelope.meta[k] for k in keys}


class UniqueTaskCoordinator:
    """Keeps at most one live task per uniqueness key, over a :class:`LockStore`.

    ``default_ttl`` (5 min; 0 or less means 30 s) bounds how long a key stays held if the worker
    never releases it.
    """

    def __init__(
        self,
        lock_store: LockStore,
        *,
        default_ttl: float = 300.0,
        namespace: str = "stem:unique",
    ) -> None:
        if not isinstance(lock_store, LockStore):
            raise TypeError(f"expected a LockStore, got {type(lock_store).__name__}")
        self.lock_store = lock_store
        self.default_ttl = float(default_ttl) if default_ttl > 0 else 30.0
        self.namespace = namespace

    def unique_key(self, envelope: Envelope) -> str:
        """Return ``envelope``'s uniqueness key (namespaced)."""
        for name in _OVERRIDE_META:
            override = envelope.meta.get(name)
            if isinstance(override, str) and override:
                return f"{self.namespace}:{override}"
        body = {
            "task": envelope.name,
            "queue": envelope.queue,
            "args": envelope.args,
            "headers": {k: v for k, v in envelope.headers.items() if k not in _SIGNATURE_HEADERS},
            "meta": {k: v for k, v in envelope.meta.items() if not k.startswith("stem.")},
        }
        text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=repr)
        return f"{self.namespace}:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"

    def acquire(self, envelope: Envelope, *, ttl: float | None = None) -> UniqueTaskClaim:
        """Claim ``envelope``'s key for ``ttl`` seconds (default: its visibility timeout, then
        ``default_ttl``; 0 or less means 30 s), owned by the envelope's id.

        Returns:
            A claim; when a live task already holds the key, ``acquired`` is ``False`` and
            ``existing_id`` is that task's id.
        """
        key = self.unique_key(envelope)
        seconds = ttl if ttl is not None else envelope.visibility_timeout or self.default_ttl
        seconds = seconds if seconds > 0 else 30.0
        while True:
            lock = self.lock_store.acquire(key, ttl=seconds, owner=envelope.id)
            if lock is not None:
                meta = {
                    **envelope.meta,
                    UNIQUE_KEY_META: key,
                    UNIQUE_OWNER_META: envelope.id,
                    UNIQUE_EXPIRES_META: lock.expires_at,
                }
                return UniqueTaskClaim(
                    True, key, envelope.replace(meta=meta), None, lock.expires_at
                )
            holder = self.lock_store.owner_of(key)
            if holder is not None:  # else it lapsed in between: try again
                return UniqueTaskClaim(False, key, envelope, holder)

    def release(self, envelope_or_key: Envelope | str, owner: str | None = None) -> bool:
        """Release a claimed key: pass the claimed envelope (its ``stem.unique.*`` meta names
        key and owner), or the key and the owner (the owning task's id).

        Returns:
            ``False`` when nothing was claimed or the key is no longer held by that owner.
        """
        if isinstance(envelope_or_key, Envelope):
            key = envelope_or_key.meta.get(UNIQUE_KEY_META)
            owner = envelope_or_key.meta.get(UNIQUE_OWNER_META)
        else:
            key = envelope_or_key
        if not isinstance(key, str) or not isinstance(owner, str):
            return False
        return self.lock_store.release(key, owner)
