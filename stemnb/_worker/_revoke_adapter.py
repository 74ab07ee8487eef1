"""The few revoke-store calls the worker makes, in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._revoke import RevokeEntry, RevokeStore


def subscribe(store: RevokeStore, namespace: str, callback: Callable[[RevokeEntry], None]) -> Any:
    """Call ``callback`` for every entry later applied in ``namespace``; returns the watch."""
    return store.watch(callback, namespace=namespace)


def unsubscribe(watch: Any) -> None:
    watch.close()


def load(store: RevokeStore, namespace: str) -> list[RevokeEntry]:
    """Every entry of ``namespace`` now."""
    return store.list(namespace)


def upsert(
    store: RevokeStore, namespace: str, task_id: str, terminate: bool, reason: str, version: int, requested_by: str,
    expires_at: float | None = None,
) -> RevokeEntry:
    """Persist one entry (a "resume" expires at once, lifting an earlier pause); return it."""
    import time

    if reason == "resume":
        expires_at = time.time()
    entry = RevokeEntry(
        namespace, task_id, version=version, terminate=terminate, reason=reason,
        requested_by=requested_by, expires_at=expires_at,
    )
    store.upsert([entry])
    return entry
