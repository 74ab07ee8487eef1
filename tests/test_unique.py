"""Lock stores and the unique-task coordinator."""

from __future__ import annotations

import pytest

from stemnb import Envelope, InMemoryLockStore, UniqueTaskCoordinator
from stemnb.testing.store_contract import LockStoreContract


class TestInMemoryLockStoreContract(LockStoreContract):
    def make_lock_store(self) -> InMemoryLockStore:
        return InMemoryLockStore()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _env(**changes):
    fields = {"name": "report", "args": {"day": 1}, "headers": {"tenant": "a"}, "meta": {"m": 1}}
    return Envelope(**{**fields, **changes})


def test_duplicate_enqueue_returns_the_existing_task_id():
    coordinator = UniqueTaskCoordinator(InMemoryLockStore())
    first, second = _env(), _env()
    claim = coordinator.acquire(first)
    assert claim.acquired and claim.envelope.meta["stem.unique.owner"] == first.id
    duplicate = coordinator.acquire(second)
    assert not duplicate.acquired and duplicate.existing_id == first.id
    assert duplicate.key == claim.key


def test_release_on_terminal_state_lets_the_next_enqueue_through():
    coordinator = UniqueTaskCoordinator(InMemoryLockStore())
    claim = coordinator.acquire(_env())
    assert coordinator.release(claim.envelope) is True
    again = coordinator.acquire(_env())
    assert again.acquired
    assert coordinator.release(_env()) is False  # never claimed anything


@pytest.mark.parametrize(
    "change",
    [
        {"name": "other"},
        {"queue": "q2"},
        {"args": {"day": 2}},
        {"headers": {"tenant": "b"}},
        {"meta": {"m": 2}},
    ],
)
def test_unique_key_depends_on_task_queue_args_headers_and_meta(change):
    coordinator = UniqueTaskCoordinator(InMemoryLockStore())
    assert coordinator.unique_key(_env()) != coordinator.unique_key(_env(**change))


def test_unique_key_ignores_stem_meta_ids_and_signature_headers():
    coordinator = UniqueTaskCoordinator(InMemoryLockStore())
    base = coordinator.unique_key(_env())
    assert coordinator.unique_key(_env(meta={"m": 1, "stem.retryPolicy": {}})) == base
    signed = _env(headers={"tenant": "a", "stem-signature": "x", "stem-signature-key": "k"})
    assert coordinator.unique_key(signed) == base
    assert coordinator.unique_key(_env(priority=5, attempt=2)) == base


def test_unique_key_override_from_meta():
    coordinator = UniqueTaskCoordinator(InMemoryLockStore())
    assert coordinator.unique_key(_env(meta={"uniqueKey": "daily"})) == "stem:unique:daily"
    assert coordinator.unique_key(_env(meta={"stem.unique.override": "x"})) == "stem:unique:x"


def test_unique_ttl_defaults_to_five_minutes_and_non_positive_means_thirty_seconds():
    clock = FakeClock()
    store = InMemoryLockStore(clock=clock)
    assert UniqueTaskCoordinator(store).default_ttl == 300.0
    assert UniqueTaskCoordinator(store, default_ttl=0).default_ttl == 30.0
    claim = UniqueTaskCoordinator(store).acquire(_env())
    assert claim.expires_at == clock.now + 300.0
    claim2 = UniqueTaskCoordinator(store).acquire(_env(args={"x": 1}), ttl=0)
    assert claim2.expires_at == clock.now + 30.0
    claim3 = UniqueTaskCoordinator(store).acquire(_env(args={"y": 1}, visibility_timeout=12))
    assert claim3.expires_at == clock.now + 12.0


def test_unique_claim_lapses_when_never_released():
    clock = FakeClock()
    coordinator = UniqueTaskCoordinator(InMemoryLockStore(clock=clock))
    coordinator.acquire(_env(), ttl=10)
    clock.now += 10
    assert coordinator.acquire(_env()).acquired


def test_coordinator_requires_a_lock_store():
    with pytest.raises(TypeError, match="LockStore"):
        UniqueTaskCoordinator(object())


def test_release_by_key_and_owner_and_claim_meta():
    coordinator = UniqueTaskCoordinator(InMemoryLockStore())
    env = _env()
    claim = coordinator.acquire(env)
    assert set(claim.meta) == {"stem.unique.key", "stem.unique.owner", "stem.unique.expiresAt"}
    assert coordinator.release(claim.key, "someone-else") is False
    assert coordinator.release(claim.key, env.id) is True
    assert coordinator.acquire(_env()).acquired
    assert coordinator.acquire(_env()).meta == {}
