"""Revocation entries and the in-memory revoke store (contract plus live notification)."""

from __future__ import annotations

import time

import pytest

from stemnb import ClosedError, InMemoryRevokeStore, RevokeEntry
from stemnb.testing.store_contract import RevokeStoreContract


class TestInMemoryRevokeStoreContract(RevokeStoreContract):
    def make_revoke_store(self) -> InMemoryRevokeStore:
        return InMemoryRevokeStore()


def test_revoke_entry_versions_default_to_increasing_utc_microseconds():
    first = RevokeEntry("stem", "a")
    second = RevokeEntry("stem", "a")
    assert second.version >= first.version > 1_600_000_000_000_000


def test_revoke_entry_is_active_until_it_expires():
    entry = RevokeEntry("stem", "t", expires_at=time.time() + 60)
    assert entry.active() and not entry.active(now=entry.expires_at)
    assert RevokeEntry("stem", "t").active()


def test_lifting_a_revocation_is_a_newer_already_expired_entry():
    store = InMemoryRevokeStore()
    store.upsert([RevokeEntry("stem", "__stem.queue.pause__:q", version=1)])
    store.upsert([RevokeEntry("stem", "__stem.queue.pause__:q", version=2, expires_at=time.time())])
    assert not store.get("stem", "__stem.queue.pause__:q").active()


def test_revoke_entry_round_trips_through_a_dict():
    entry = RevokeEntry("ns", "t", 7, True, "why", "me", 12.5)
    assert RevokeEntry.from_dict(entry.to_dict()) == entry


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"namespace": ""}, "namespace"), ({"task_id": 3}, "task_id"), ({"version": -1}, "version")],
)
def test_revoke_entry_rejects_bad_fields(kwargs, message):
    fields = {"namespace": "ns", "task_id": "t", **kwargs}
    with pytest.raises(ValueError, match=message):
        RevokeEntry(**fields)


def test_revoke_store_contains_a_failing_watcher_and_rejects_non_entries(caplog):
    store = InMemoryRevokeStore()
    heard = []
    store.watch(lambda e: 1 / 0)
    store.watch(heard.append)
    store.upsert([RevokeEntry("ns", "t")])
    assert len(heard) == 1 and "revoke watcher" in caplog.text
    with pytest.raises(TypeError, match="RevokeEntry"):
        store.upsert([{"task_id": "t"}])


def test_closed_revoke_store_refuses_use():
    store = InMemoryRevokeStore()
    store.close()
    store.close()
    with pytest.raises(ClosedError):
        store.upsert([RevokeEntry("ns", "t")])
