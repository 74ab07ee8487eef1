"""The pub/sub listener behind the Redis backend's and revoke store's watches, on the real server."""

from __future__ import annotations

import logging
import queue
import uuid

import pytest
from redis_support import REDIS_URL

from stemnb._redis_watch import ChannelListener

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis


class _PubSubOnly:
    """A client offering only ``pubsub()`` (no connection pool to copy settings from)."""

    def __init__(self, client):
        self._client = client

    def pubsub(self):
        return self._client.pubsub()


def _channel() -> str:
    return f"stemnb-test-{uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("wrap", [lambda c: c, _PubSubOnly], ids=["direct", "pubsub-fallback"])
def test_listener_hands_over_every_message_published_after_it_returns_in_order(redis_client, wrap):
    channel, got = _channel(), queue.Queue()
    listener = ChannelListener(wrap(redis_client), channel, lambda ch, data: got.put(data), "test")
    try:
        for i in range(50):
            redis_client.publish(channel, f"m{i}")
        assert [got.get(timeout=5) for _ in range(50)] == [f"m{i}".encode() for i in range(50)]
    finally:
        listener.close()


def test_listener_survives_a_handler_that_raises_and_logs_it(redis_client, caplog):
    channel, got = _channel(), queue.Queue()

    def handle(ch: bytes, data: bytes) -> None:
        if data == b"bad":
            raise ValueError("cannot handle")
        got.put(data)

    listener = ChannelListener(redis_client, channel, handle, "test")
    try:
        with caplog.at_level(logging.ERROR, logger="stemnb.redis"):
            redis_client.publish(channel, "bad")
            redis_client.publish(channel, "good")
            assert got.get(timeout=5) == b"good"
        assert "could not handle a message" in caplog.text
    finally:
        listener.close()


def test_closing_the_listener_ends_its_thread_without_reporting_a_failure(redis_client, caplog):
    channel = _channel()
    listener = ChannelListener(redis_client, channel, lambda ch, data: None, "test")
    assert redis_client.pubsub_numsub(channel) == [(channel.encode(), 1)]
    with caplog.at_level(logging.ERROR, logger="stemnb.redis"):
        listener.close()
        listener.close()  # idempotent
        listener._thread.join(10)
    assert not listener._thread.is_alive()
    assert "listener stopped" not in caplog.text  # a close is not reported as a failure


def test_an_idle_listener_reads_in_bursts_and_still_hands_over_every_message_in_order(redis_client):
    channel, got = _channel(), queue.Queue()
    listener = ChannelListener(redis_client, channel, lambda ch, data: got.put(data), "test", idle=lambda: True)
    try:
        for i in range(200):
            redis_client.publish(channel, f"m{i}")
            if i % 50 == 0:
                listener.wake()
        assert [got.get(timeout=5) for _ in range(200)] == [f"m{i}".encode() for i in range(200)]
    finally:
        listener.close()


def test_a_user_whose_acl_forbids_naming_connections_still_gets_a_listener(redis_client):
    user, password = f"stemnb-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    redis_client.acl_setuser(user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
                       commands=["+@all", "-client"])
    limited = redis.Redis.from_url(REDIS_URL, username=user, password=password)
    channel, got = _channel(), queue.Queue()
    try:
        with pytest.raises(redis.ResponseError):
            limited.client_setname("refused")
        listener = ChannelListener(limited, channel, lambda ch, data: got.put(data), "test-acl")
        try:
            redis_client.publish(channel, "m")
            assert got.get(timeout=10) == b"m"
        finally:
            listener.close()
    finally:
        limited.close()
        redis_client.acl_deluser(user)
