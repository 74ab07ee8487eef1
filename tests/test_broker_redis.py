"""The Redis broker passes the broker contract against the real Redis server on this machine."""

from __future__ import annotations

import uuid

import pytest

from stemnb.testing.broker_contract import BrokerContract

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


class TestRedisBrokerContract(BrokerContract):
    def make_broker(self):
        from stemnb import RedisBroker

        return RedisBroker(REDIS_URL, namespace=f"stemnb-test-{uuid.uuid4().hex[:8]}")

    @pytest.fixture
    def broker(self):
        broker = self.make_broker()
        try:
            yield broker
        finally:
            broker.close()
            _drop_namespace(broker.namespace)
