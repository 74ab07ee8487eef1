"""The Redis result backend passes the result-backend contract against the real Redis server."""

from __future__ import annotations

import threading
import uuid

import pytest
from redis_support import REDIS_URL
from redis_support import drop_namespace as _drop_namespace

from stemnb import EncodingError, TaskState
from stemnb.testing.backend_contract import ResultBackendContract

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis



def _make():
    from stemnb import RedisResultBackend

    return RedisResultBackend(REDIS_URL, namespace=f"stemnb-test-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def backend():
    """A Redis result backend in a namespace of its own, closed and dropped after the test."""
    backend = _make()
    try:
        yield backend
    finally:
        backend.close()
        _drop_namespace(backend.namespace)


class TestRedisResultBackendContract(ResultBackendContract):
    """The contract's tests, each with this module's ``backend`` fixture."""

    def make_backend(self):
        return _make()

    @pytest.fixture
    def backend(self, backend):
        return backend


def test_redis_backend_refuses_a_payload_that_is_not_json_data(backend):
    with pytest.raises(EncodingError, match="not JSON data"):
        backend.set("t", TaskState.SUCCEEDED, payload={1, 2})


def test_redis_backend_statuses_are_shared_between_instances(backend):
    reader = type(backend)(REDIS_URL, namespace=backend.namespace)
    try:
        with reader.watch("t", lambda s: None):
            backend.set("t", TaskState.SUCCEEDED, payload=[1, 2])
            status = reader.wait_for("t", timeout=5)
        assert status.payload == [1, 2]
    finally:
        reader.close()


def test_watch_status_of_a_task_the_feed_has_seen_reads_nothing_from_redis(backend):
    class Counting(type(backend)):
        gets: list[str] = []

        def get(self, task_id):
            self.gets.append(task_id)
            return super().get(task_id)

    reader = Counting(REDIS_URL, namespace=backend.namespace)
    try:
        filed = threading.Event()  # the feed files a status before it calls the watchers
        with reader.watch("seen", lambda status: filed.set()):
            backend.set("seen", TaskState.SUCCEEDED, payload=1)
            assert filed.wait(5)
        reader.gets.clear()
        current = []
        with reader.watch_status("seen", current.append):
            pass
        assert [s.payload for s in current] == [1] and reader.gets == []
        with reader.watch_status("never-seen", current.append):
            pass
        assert reader.gets == ["never-seen"]
    finally:
        reader.close()


def test_watch_status_after_forget_asks_redis_again(backend):
    filed = threading.Event()
    with backend.watch("gone", lambda status: filed.set()):
        backend.set("gone", TaskState.SUCCEEDED)
        assert filed.wait(5)
    assert backend.forget("gone")
    current = []
    with backend.watch_status("gone", current.append):
        pass
    assert current == []


def _gone(client, key, expiries, member, timeout=10.0):
    """Wait (polling Redis, bounded) until ``key`` has expired and Redis's clock is past ``member``'s
    score in the ``expiries`` set; True once both hold.

    Both, because the two can differ by a millisecond: Redis expires a key written by a script
    from the script's start time, while the index scores it from ``TIME`` read a little later.
    """
    import time

    score = client.zscore(expiries, member)
    deadline = time.monotonic() + timeout
    while client.exists(key) or (score is not None and _redis_ms(client) <= score):
        if time.monotonic() > deadline:
            return False
    return True


def _redis_ms(client) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def test_the_status_index_keeps_only_live_statuses_however_many_tasks_ran(backend):
    client = redis.Redis.from_url(REDIS_URL)
    index, expiries = f"{backend.namespace}:tasks", f"{backend.namespace}:task-expiries"
    for i in range(50):
        backend.set(f"old-{i}", TaskState.SUCCEEDED, ttl=0.001)
    assert _gone(client, f"{backend.namespace}:task:old-49", expiries, "old-49")
    backend.set("new", TaskState.QUEUED)  # each write drops the entries that expired before it
    assert [m.decode() for m in client.zrange(index, 0, -1)] == ["new"]
    assert [m.decode() for m in client.zrange(expiries, 0, -1)] == ["new"]
    assert [s.id for s in backend.list_statuses()] == ["new"]


def test_each_status_write_drops_at_most_64_expired_index_entries(backend):
    client = redis.Redis.from_url(REDIS_URL)
    index, expiries = f"{backend.namespace}:tasks", f"{backend.namespace}:task-expiries"
    stale = {f"old-{i}": 1 for i in range(100)}  # expired long ago (ms since the epoch)
    client.zadd(index, stale)
    client.zadd(expiries, stale)
    backend.set("new", TaskState.QUEUED)
    assert client.zcard(index) == client.zcard(expiries) == 100 - 64 + 1
    backend.set("newer", TaskState.QUEUED)
    assert [m.decode() for m in client.zrange(index, 0, -1)] == ["new", "newer"]
    assert sorted(m.decode() for m in client.zrange(expiries, 0, -1)) == ["new", "newer"]


def test_list_statuses_reads_only_the_pages_it_needs_newest_first(backend, monkeypatch):
    reads = []

    class CountingClient:
        def __init__(self, client):
            self._client = client

        def mget(self, keys):
            reads.append(len(keys))
            return self._client.mget(keys)

        def __getattr__(self, name):
            return getattr(self._client, name)

    for i in range(1200):
        backend.set(f"t{i:04d}", TaskState.SUCCEEDED if i % 2 else TaskState.FAILED, meta={"task": "x"})
    monkeypatch.setattr(backend, "_client", CountingClient(backend._client))
    newest = backend.list_statuses(limit=10)
    assert [s.id for s in newest] == [f"t{i:04d}" for i in range(1199, 1189, -1)]
    assert reads == [500]  # one page of the index, not all 1,200 statuses
    failed = backend.list_statuses(state="failed", limit=3, offset=1)
    assert [s.id for s in failed] == ["t1196", "t1194", "t1192"]
    assert backend.list_statuses(task="y") == [] and reads[-3:] == [500, 500, 200]  # a miss reads all


def test_expire_moves_the_status_s_index_entry_with_its_ttl(backend):
    client = redis.Redis.from_url(REDIS_URL)
    index = f"{backend.namespace}:task-expiries"
    backend.set("t", TaskState.SUCCEEDED, ttl=1.0)
    before = client.zscore(index, "t")
    assert backend.expire("t", 3600) is True
    assert client.zscore(index, "t") >= before + 3_500_000  # ms: kept as long as the status
    assert backend.expire("missing", 10) is False
    assert client.zscore(index, "missing") is None


def test_the_heartbeat_index_keeps_only_live_workers(backend):
    from stemnb import WorkerHeartbeat

    client = redis.Redis.from_url(REDIS_URL)
    backend.set_worker_heartbeat(WorkerHeartbeat(worker_id="gone", namespace="n"), ttl=0.001)
    assert _gone(client, f"{backend.namespace}:hb:gone", f"{backend.namespace}:hb-index", "gone")
    backend.set_worker_heartbeat(WorkerHeartbeat(worker_id="live", namespace="n"))
    assert [m.decode() for m in client.zrange(f"{backend.namespace}:hb-index", 0, -1)] == ["live"]
    assert [hb.worker_id for hb in backend.list_worker_heartbeats()] == ["live"]


def test_a_published_status_reads_its_id_and_state_without_being_decoded():
    import json

    from stemnb._backend import TaskStatus
    from stemnb._backends._redis_feed import status_head

    text = json.dumps(TaskStatus("t-1", TaskState.RUNNING, meta={"x": 1}).to_dict(), separators=(",", ":"))
    assert status_head(text.encode()) == ("t-1", "running")
    assert status_head(b'{"id":"t-2","payload":1,"state":"running"}') == ("t-2", None)  # not set()'s order
    assert status_head(b'{"state":"running","id":"t-3"}') == (None, None)
    assert status_head(b'{"id":7,"state":"running"}') == (None, None)
    for task_id in ("plain-id", 'with "quotes"', "back\\slash", "caf\u00e9 \u2713", ""):
        for state in TaskState:
            stored = json.dumps(TaskStatus(task_id, state).to_dict(), separators=(",", ":")).encode()
            assert status_head(stored) == (task_id, state.value), stored
    assert status_head(b'{"id":"unterminated') == (None, None)
    assert status_head(b'{"id":"t-4","state":"') == ("t-4", None)


def test_a_terminal_only_watch_decodes_no_status_that_is_not_terminal(backend, monkeypatch):
    from stemnb._backend import TaskStatus
    from stemnb._backends import _redis_feed

    decoded: list[str] = []

    class Counting(TaskStatus):
        @classmethod
        def from_dict(cls, data):
            decoded.append(data["state"])
            return TaskStatus.from_dict(data)

    monkeypatch.setattr(_redis_feed, "TaskStatus", Counting)
    done = threading.Event()
    seen = []
    backend.set("job", TaskState.QUEUED)
    with backend.watch_terminal("job", lambda status: (seen.append(status.state), done.set())):
        for state in ("running", "retried", "running", "succeeded"):
            backend.set("job", state)
        assert done.wait(5)
    assert seen == [TaskState.SUCCEEDED]
    assert decoded == ["succeeded"]  # the queued one was read back from Redis, not decoded by the feed
