"""stemnb._redis_wire: commands and replies on a redis-py connection's socket, against the real server."""

from __future__ import annotations

import uuid

import pytest
from redis_support import REDIS_URL

from stemnb._redis_client import Commands
from stemnb._redis_socket import prepare
from stemnb._redis_wire import direct, read_reply, request, request_many

redis = pytest.importorskip("redis")
hiredis = pytest.importorskip("hiredis")
pytestmark = pytest.mark.redis


def _connection(client, **kwargs):
    pool = client.connection_pool
    conn = pool.connection_class(**{**pool.connection_kwargs, **kwargs})
    prepare(conn)
    return conn


def test_a_plain_connection_with_hiredis_is_used_directly_and_others_are_left_to_redis_py():
    plain = redis.Redis.from_url(REDIS_URL)
    checked = redis.Redis.from_url(REDIS_URL, health_check_interval=30)
    python_parser = redis.Redis.from_url(REDIS_URL, parser_class=redis.connection._RESP2Parser)
    try:
        assert direct(_connection(plain))
        assert not direct(_connection(checked))
        assert not direct(_connection(python_parser))
        commands = Commands(python_parser)
        try:  # a connection left to redis-py works as before
            assert commands.command("ECHO", "through redis-py") == b"through redis-py"
            with pytest.raises(redis.ResponseError):
                commands.command("NO-SUCH-COMMAND")
        finally:
            commands.close()
    finally:
        for client in (plain, checked, python_parser):
            client.close()


def test_replies_come_back_in_order_with_error_replies_in_their_place(redis_client):
    conn = _connection(redis_client)
    key = f"stemnb-test-{uuid.uuid4().hex[:8]}:k"
    try:
        packed = b"".join(hiredis.pack_command(c) for c in (("SET", key, "v"), ("NO-SUCH-COMMAND",), ("GET", key)))
        ok, error, value = request_many(conn, packed, 3)
        assert (ok, value) == (b"OK", b"v")
        assert isinstance(error, redis.ResponseError)
        assert request(conn, hiredis.pack_command(("DEL", key))) == 1  # still in step
    finally:
        conn.disconnect()


def test_a_reply_larger_than_the_read_buffer_is_read_whole(redis_client):
    conn = _connection(redis_client)
    key = f"stemnb-test-{uuid.uuid4().hex[:8]}:big"
    big = b"x" * (3 * 1024 * 1024 + 7)
    try:
        assert request(conn, hiredis.pack_command(("SET", key, big))) == b"OK"
        assert request(conn, hiredis.pack_command(("GET", key))) == big
    finally:
        request(conn, hiredis.pack_command(("DEL", key)))
        conn.disconnect()


def test_messages_of_a_subscription_are_read_one_by_one_in_order(redis_client):
    conn = _connection(redis_client, protocol=2)  # as the watch listeners subscribe: plain replies
    channel = f"stemnb-test-{uuid.uuid4().hex[:8]}"
    try:
        assert request(conn, hiredis.pack_command(("SUBSCRIBE", channel)))[0] == b"subscribe"
        for n in range(3):
            redis_client.publish(channel, f"m{n}")
        assert [read_reply(conn) for _ in range(3)] == [[b"message", channel.encode(), f"m{n}".encode()] for n in range(3)]
    finally:
        conn.disconnect()


def test_a_connection_the_server_closed_raises_a_connection_error(redis_client):
    conn = _connection(redis_client)
    try:
        name = f"stemnb-test-{uuid.uuid4().hex[:8]}"
        assert request(conn, hiredis.pack_command(("CLIENT", "SETNAME", name))) == b"OK"
        killed = [c for c in redis_client.client_list() if c.get("name") == name]
        redis_client.client_kill(killed[0]["addr"])
        with pytest.raises(redis.ConnectionError):
            request(conn, hiredis.pack_command(("PING",)))
    finally:
        conn.disconnect()
