"""Redis versions of the lock store and the revoke store, shared by every process of a deployment.

:class:`RedisLockStore` backs :class:`stemnb.UniqueTaskCoordinator` across producers;
:class:`RedisRevokeStore` lets a revocation (or queue pause) made anywhere reach every worker
live, through pub/sub. Needs ``redis`` (``pip install "stemnb[redis]"``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from ._backend import Watch
from ._exceptions import ClosedError
from ._json import parse_json
from ._redis_client import connect
from ._redis_watch import ChannelListener
from ._revoke import RevokeEntry, RevokeStore
from ._unique import Lock, LockStore, _check_ttl

__all__ = ["RedisLockStore", "RedisRevokeStore"]

log = logging.getLogger("stemnb.revoke")

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

# KEYS: hash channel; ARGV: task_id version entry_json -> 1 if applied
_UPSERT = """
local current = redis.call('HGET', KEYS[1], 'v:' .. ARGV[1])
if current and tonumber(current) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'v:' .. ARGV[1], ARGV[2], 'e:' .. ARGV[1], ARGV[3])
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1
"""

# KEYS: hash; ARGV: task_id version -> delete only if that version is still the stored one
_PRUNE = """
if redis.call('HGET', KEYS[1], 'v:' .. ARGV[1]) ~= ARGV[2] then return 0 end
return redis.call('HDEL', KEYS[1], 'v:' .. ARGV[1], 'e:' .. ARGV[1]) > 0 and 1 or 0
"""


class RedisLockStore(LockStore):
    """Expiring, owned locks as Redis keys (``SET NX PX``) under ``namespace``."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "stemnb",
        client: Any = None,
    ) -> None:
        self._client, self._owns_client = connect(url, client, "RedisLockStore")
        self.namespace = namespace
        self._release = self._client.register_script(_RELEASE)
        self._renew = self._client.register_script(_RENEW)
        self._closed = False

    def _key(self, key: str) -> str:
        return f"{self.namespace}:lock:{key}"

    def acquire(self, key: str, *, ttl: float, owner: str | None = None) -> Lock | None:
        ttl = _check_ttl(ttl)
        if self._closed:
            raise ClosedError("the RedisLockStore is closed")
        owner = owner or uuid.uuid4().hex
        if not self._client.set(self._key(key), owner, nx=True, px=max(1, int(ttl * 1000))):
            return None
        return Lock(key, owner, time.time() + ttl, self)

    def owner_of(self, key: str) -> str | None:
        owner = self._client.get(self._key(key))
        return None if owner is None else owner.decode()

    def release(self, key: str, owner: str) -> bool:
        return bool(self._release(keys=[self._key(key)], args=[owner]))

    def renew(self, key: str, owner: str, ttl: float) -> bool:
        ttl = _check_ttl(ttl)
        return bool(self._renew(keys=[self._key(key)], args=[owner, max(1, int(ttl * 1000))]))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self._owns_client:
                self._client.close()


class RedisRevokeStore(RevokeStore):
    """Revocations in Redis hashes (one per revoke namespace); upserts are announced on a
    pub/sub channel that a listener thread (started by the first :meth:`watch`) dispatches."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        namespace: str = "stemnb",
        client: Any = None,
    ) -> None:
        self._client, self._owns_client = connect(url, client, "RedisRevokeStore")
        self.namespace = namespace
        self._upsert = self._client.register_script(_UPSERT)
        self._prune = self._client.register_script(_PRUNE)
        self._watchers: list[tuple[str | None, Callable[[RevokeEntry], None]]] = []
        self._lock = threading.Lock()
        self._listener: ChannelListener | None = None
        self._closed = False

    def _hash(self, namespace: str) -> str:
        return f"{self.namespace}:revoke:{namespace}"

    def _channel(self) -> str:
        return f"{self.namespace}:revoke-events"

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the RedisRevokeStore is closed")

    def upsert(self, entries: Iterable[RevokeEntry]) -> list[RevokeEntry]:
        entries = list(entries)
        for entry in entries:
            if not isinstance(entry, RevokeEntry):
                raise TypeError(f"upsert() takes RevokeEntry objects, got {type(entry).__name__}")
        self._check_open()
        applied = []
        for entry in entries:
            keys = [self._hash(entry.namespace), self._channel()]
            args = [entry.task_id, entry.version, json.dumps(entry.to_dict())]
            if self._upsert(keys=keys, args=args):
                applied.append(entry)
        return applied

    def _entries(self, namespace: str) -> list[RevokeEntry]:
        fields = self._client.hgetall(self._hash(namespace))
        found = [
            RevokeEntry.from_dict(parse_json(v)) for k, v in fields.items() if k.startswith(b"e:")
        ]
        return sorted(found, key=lambda e: (e.version, e.task_id))

    def list(self, namespace: str) -> list[RevokeEntry]:
        self._check_open()
        return self._entries(namespace)

    def get(self, namespace: str, task_id: str) -> RevokeEntry | None:
        self._check_open()
        text = self._client.hget(self._hash(namespace), f"e:{task_id}")
        return None if text is None else RevokeEntry.from_dict(parse_json(text))

    def prune_expired(self, namespace: str, now: float | None = None) -> int:
        self._check_open()
        now = time.time() if now is None else now
        pruned = 0
        for entry in self._entries(namespace):
            if not entry.active(now):
                keys = [self._hash(namespace)]
                pruned += int(self._prune(keys=keys, args=[entry.task_id, entry.version]))
        return pruned

    def watch(
        self, callback: Callable[[RevokeEntry], None], *, namespace: str | None = None
    ) -> Watch:
        if not callable(callback):
            raise TypeError(f"watch() needs a callable, got {callback!r}")
        self._check_open()
        self._ensure_listener()
        item = (namespace, callback)
        with self._lock:
            self._watchers.append(item)

        def cancel() -> None:
            with self._lock:
                if item in self._watchers:
                    self._watchers.remove(item)

        return Watch(cancel)

    def _ensure_listener(self) -> None:
        with self._lock:
            if self._listener is None:
                self._listener = ChannelListener(
                    self._client, self._channel(), self._on_entry, "redis-revoke", on_resubscribed=self._catch_up
                )

    def _on_entry(self, channel: bytes, data: bytes) -> None:
        self._hand_over(RevokeEntry.from_dict(parse_json(data)))

    def _catch_up(self) -> None:
        """After a lost connection: hand every watcher each entry of its namespace again, since
        it may have missed some (versions tell it which it knew). Raises redis errors (the
        listener tries again)."""
        with self._lock:
            wanted = {namespace for namespace, _ in self._watchers}
        if not wanted:
            return
        namespaces = {namespace for namespace in wanted if namespace is not None}
        if None in wanted:
            prefix = self._hash("")
            for key in self._client.scan_iter(match=_glob_escape(prefix) + "*", count=500):
                namespaces.add((key.decode() if isinstance(key, bytes) else key)[len(prefix):])
        for namespace in sorted(namespaces):
            for entry in self._entries(namespace):
                self._hand_over(entry)

    def _hand_over(self, entry: RevokeEntry) -> None:
        with self._lock:
            watchers = [cb for ns, cb in self._watchers if ns is None or ns == entry.namespace]
        for callback in watchers:
            try:
                callback(entry)
            except Exception:
                log.exception("revoke watcher %r failed", callback)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._watchers.clear()
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._owns_client:
            self._client.close()


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis ``MATCH`` pattern."""
    return "".join("\\" + ch if ch in "\\*?[]" else ch for ch in text)
