"""The Redis result backend passes the result-backend contract against the real Redis server."""

from __future__ import annotations

import uuid

import pytest

from stemnb import EncodingError, TaskState
from stemnb.testing.backend_contract import ResultBackendContract

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis

REDIS_URL = "redis://127.0.0.1:6379/0"


def _server_available() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


if not _server_available():
    pytest.skip(f"no Redis server at {REDIS_URL}", allow_module_level=True)


def _drop_namespace(namespace: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{namespace}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _make():
    from stemnb import RedisResultBackend

    return RedisResultBackend(REDIS_URL, namespace=f"stemnb-test-{uuid.uuid4().hex[:8]}")


class TestRedisResultBackendContract(ResultBackendContract):
    def make_backend(self):
        return _make()

    @pytest.fixture
    def backend(self):
        backend = self.make_backend()
        try:
            yield backend
        finally:
            backend.close()
            _drop_namespace(backend.namespace)


def test_redis_backend_refuses_a_payload_that_is_not_json_data():
    backend = _make()
    try:
        with pytest.raises(EncodingError, match="not JSON data"):
            backend.set("t", TaskState.SUCCEEDED, payload={1, 2})
    finally:
        backend.close()
        _drop_namespace(backend.namespace)


def test_redis_backend_statuses_are_shared_between_instances():
    writer = _make()
    reader = type(writer)(REDIS_URL, namespace=writer.namespace)
    try:
        with reader.watch("t", lambda s: None):
            writer.set("t", TaskState.SUCCEEDED, payload=[1, 2])
            status = reader.wait_for("t", timeout=5)
        assert status.payload == [1, 2]
    finally:
        writer.close()
        reader.close()
        _drop_namespace(writer.namespace)
