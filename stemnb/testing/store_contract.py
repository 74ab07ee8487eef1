"""Contract suites for lock stores and revoke stores (ports of Stem's adapter suites).

Subclass :class:`LockStoreContract` (supply ``make_lock_store``) or :class:`RevokeStoreContract`
(supply ``make_revoke_store``) in a ``Test*`` class.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from .._revoke import RevokeEntry, RevokeStore
from .._unique import LockStore
from ._helpers import eventually, unique_name

__all__ = ["LockStoreContract", "RevokeStoreContract"]


class LockStoreContract:
    """Mixin holding the lock-store contract."""

    #: TTL used by the expiry checks, seconds.
    short_ttl: float = 0.2
    wait_timeout: float = 5.0

    def make_lock_store(self) -> LockStore:
        raise NotImplementedError("subclasses of LockStoreContract implement make_lock_store()")

    @pytest.fixture
    def locks(self) -> Iterator[LockStore]:
        store = self.make_lock_store()
        try:
            yield store
        finally:
            store.close()

    def test_acquire_gives_the_key_to_one_owner(self, locks):
        key = unique_name("lock")
        lock = locks.acquire(key, ttl=30, owner="a")
        assert lock is not None and (lock.key, lock.owner) == (key, "a")
        assert locks.owner_of(key) == "a"
        assert locks.acquire(key, ttl=30, owner="b") is None

    def test_concurrent_acquires_admit_exactly_one_owner(self, locks):
        key = unique_name("lock")
        barrier = threading.Barrier(8)
        winners: list[str] = []

        def grab(i: int) -> None:
            barrier.wait()
            if locks.acquire(key, ttl=30, owner=f"o{i}") is not None:
                winners.append(f"o{i}")

        threads = [threading.Thread(target=grab, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(winners) == 1 and locks.owner_of(key) == winners[0]

    def test_release_refuses_a_wrong_owner(self, locks):
        key = unique_name("lock")
        lock = locks.acquire(key, ttl=30, owner="a")
        assert locks.release(key, "b") is False
        assert locks.owner_of(key) == "a"
        assert lock.release() is True
        assert locks.owner_of(key) is None
        assert lock.release() is False

    def test_lock_lapses_after_its_ttl(self, locks):
        key = unique_name("lock")
        locks.acquire(key, ttl=self.short_ttl, owner="a")
        eventually(lambda: locks.owner_of(key) is None, self.wait_timeout)
        assert locks.acquire(key, ttl=30, owner="b") is not None

    def test_renew_extends_on_the_lock_and_on_the_store(self, locks):
        key = unique_name("lock")
        lock = locks.acquire(key, ttl=self.short_ttl, owner="a")
        assert lock.renew(30) is True
        assert locks.renew(key, "a", 30) is True
        deadline = time.time() + self.short_ttl * 2
        eventually(lambda: time.time() > deadline, self.wait_timeout)
        assert locks.owner_of(key) == "a"

    def test_renew_is_refused_for_a_wrong_owner_or_after_expiry(self, locks):
        key = unique_name("lock")
        locks.acquire(key, ttl=self.short_ttl, owner="a")
        assert locks.renew(key, "b", 30) is False
        eventually(lambda: locks.owner_of(key) is None, self.wait_timeout)
        assert locks.renew(key, "a", 30) is False

    def test_acquire_rejects_a_non_positive_ttl(self, locks):
        with pytest.raises(ValueError, match="ttl"):
            locks.acquire(unique_name("lock"), ttl=0)


class RevokeStoreContract:
    """Mixin holding the revoke-store contract."""

    def make_revoke_store(self) -> RevokeStore:
        raise NotImplementedError("subclasses of RevokeStoreContract implement make_revoke_store()")

    @pytest.fixture
    def revokes(self) -> Iterator[RevokeStore]:
        store = self.make_revoke_store()
        try:
            yield store
        finally:
            store.close()

    @pytest.fixture
    def namespace(self) -> str:
        return unique_name("ns")

    def test_upsert_then_list_by_namespace_in_version_order(self, revokes, namespace):
        entries = [RevokeEntry(namespace, f"t{i}", version=10 - i) for i in range(3)]
        assert revokes.upsert(entries) == entries
        assert [e.task_id for e in revokes.list(namespace)] == ["t2", "t1", "t0"]
        assert revokes.list(unique_name("ns")) == []
        assert revokes.get(namespace, "t1") == entries[1]

    def test_stale_versions_are_ignored(self, revokes, namespace):
        revokes.upsert([RevokeEntry(namespace, "t", version=5, reason="new")])
        assert revokes.upsert([RevokeEntry(namespace, "t", version=4, reason="old")]) == []
        assert revokes.upsert([RevokeEntry(namespace, "t", version=5, reason="same")]) == []
        assert revokes.get(namespace, "t").reason == "new"

    def test_a_higher_version_replaces(self, revokes, namespace):
        revokes.upsert([RevokeEntry(namespace, "t", version=1)])
        revokes.upsert([RevokeEntry(namespace, "t", version=2, terminate=True)])
        assert revokes.get(namespace, "t").terminate is True

    def test_prune_expired_is_scoped_to_its_namespace(self, revokes, namespace):
        other = unique_name("ns")
        past = time.time() - 1
        revokes.upsert(
            [
                RevokeEntry(namespace, "gone", expires_at=past),
                RevokeEntry(namespace, "kept"),
                RevokeEntry(other, "gone", expires_at=past),
            ]
        )
        assert revokes.prune_expired(namespace) == 1
        assert [e.task_id for e in revokes.list(namespace)] == ["kept"]
        assert [e.task_id for e in revokes.list(other)] == ["gone"]

    def test_watchers_hear_applied_entries_live(self, revokes, namespace):
        heard: list[RevokeEntry] = []
        got = threading.Event()

        def on_entry(entry: RevokeEntry) -> None:
            heard.append(entry)
            got.set()

        with revokes.watch(on_entry, namespace=namespace):
            revokes.upsert([RevokeEntry(unique_name("ns"), "elsewhere")])
            entry = RevokeEntry(namespace, "t", terminate=True)
            revokes.upsert([entry])
            assert got.wait(5.0)
            revokes.upsert([RevokeEntry(namespace, "t", version=0)])  # stale: not heard
        assert heard == [entry]
