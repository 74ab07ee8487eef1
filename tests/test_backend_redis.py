"""The Redis result backend passes the result-backend contract against the real Redis server."""

from __future__ import annotations

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
