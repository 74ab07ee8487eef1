"""The Redis lock store and revoke store pass their contract suites against the real server."""

from __future__ import annotations

import threading
import uuid

import pytest
from redis_support import REDIS_URL
from redis_support import drop_namespace as _drop_namespace

from stemnb.testing.store_contract import LockStoreContract, RevokeStoreContract

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis



def _namespace() -> str:
    return f"stemnb-test-{uuid.uuid4().hex[:8]}"


class TestRedisLockStoreContract(LockStoreContract):
    def make_lock_store(self):
        from stemnb import RedisLockStore

        return RedisLockStore(REDIS_URL, namespace=_namespace())

    @pytest.fixture
    def locks(self):
        store = self.make_lock_store()
        try:
            yield store
        finally:
            store.close()
            _drop_namespace(store.namespace)


class TestRedisRevokeStoreContract(RevokeStoreContract):
    def make_revoke_store(self):
        from stemnb import RedisRevokeStore

        return RedisRevokeStore(REDIS_URL, namespace=_namespace())

    @pytest.fixture
    def revokes(self):
        store = self.make_revoke_store()
        try:
            yield store
        finally:
            store.close()
            _drop_namespace(store.namespace)


def test_a_revocation_made_by_one_process_reaches_another_store_live():
    import subprocess
    import sys

    from stemnb import RedisRevokeStore

    namespace = _namespace()
    store = RedisRevokeStore(REDIS_URL, namespace=namespace)
    heard = threading.Event()
    entries = []

    def on_entry(entry):
        entries.append(entry)
        heard.set()

    try:
        with store.watch(on_entry, namespace="stem"):
            code = (
                "from stemnb import RedisRevokeStore, RevokeEntry\n"
                f"s = RedisRevokeStore({REDIS_URL!r}, namespace={namespace!r})\n"
                "s.upsert([RevokeEntry('stem', 'task-1', terminate=True, reason='stop')])\n"
                "s.close()\n"
            )
            done = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
            )
            assert done.returncode == 0, done.stderr
            assert heard.wait(10)
        assert (entries[0].task_id, entries[0].terminate, entries[0].reason) == (
            "task-1",
            True,
            "stop",
        )
        assert store.get("stem", "task-1") == entries[0]
    finally:
        store.close()
        _drop_namespace(namespace)


def test_unique_tasks_are_coordinated_across_lock_store_instances():
    from stemnb import Envelope, RedisLockStore, UniqueTaskCoordinator

    namespace = _namespace()
    a = UniqueTaskCoordinator(RedisLockStore(REDIS_URL, namespace=namespace))
    b = UniqueTaskCoordinator(RedisLockStore(REDIS_URL, namespace=namespace))
    try:
        first = a.acquire(Envelope("report", {"day": 1}))
        second = b.acquire(Envelope("report", {"day": 1}))
        assert first.acquired and not second.acquired
        assert second.existing_id == first.envelope.id
        assert b.release(first.envelope) is True
        assert a.acquire(Envelope("report", {"day": 1})).acquired
    finally:
        a.lock_store.close()
        b.lock_store.close()
        _drop_namespace(namespace)


@pytest.mark.parametrize(
    "name", ["RedisBroker", "RedisResultBackend", "RedisLockStore", "RedisRevokeStore"]
)
def test_redis_parts_refuse_a_client_that_decodes_responses(name):
    import stemnb

    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode_responses=False"):
            getattr(stemnb, name)(client=client)
    finally:
        client.close()


def test_redis_parts_use_a_given_client_and_leave_it_open():
    from stemnb import Envelope, RedisBroker

    client = redis.Redis.from_url(REDIS_URL)
    namespace = _namespace()
    try:
        broker = RedisBroker(client=client, namespace=namespace)
        broker.publish(Envelope("t"))
        broker.close()
        assert client.ping()
    finally:
        _drop_namespace(namespace)
        client.close()
