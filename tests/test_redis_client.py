"""The Redis parts' command path (``stemnb._redis_client.Commands``) against the real Redis server."""

from __future__ import annotations

import threading
import uuid

import pytest
from redis_support import REDIS_URL

from stemnb._redis_client import Commands

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis


@pytest.fixture
def commands(redis_client):
    commands = Commands(redis_client)
    yield commands
    commands.close()


def _key() -> str:
    return f"stemnb-test-{uuid.uuid4().hex[:8]}:k"


def test_commands_run_a_script_redis_has_not_cached_yet(redis_client, commands):
    # a fresh script text: its sha is unknown to the server, so the first EVALSHA gets NOSCRIPT
    script = redis_client.register_script(f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1]}}")
    assert commands.script(script, ["k"], ["v"]) == [b"k", b"v"]
    assert commands.script(script, ["k2"], [7]) == [b"k2", b"7"]


def test_commands_return_raw_replies_and_raise_reply_errors_on_a_usable_connection(redis_client, commands):
    key = _key()
    try:
        assert commands.command("GET", key) is None
        redis_client.set(key, b"x")
        assert commands.command("GET", key) == b"x"
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            commands.command("LPUSH", key, "y")
        assert commands.command("GET", key) == b"x"  # the same connection is still in step
    finally:
        redis_client.delete(key)


def test_a_command_larger_than_the_sockets_buffers_is_sent_whole(redis_client, commands):
    # more than one send: the kernel takes it in parts
    key, value = _key(), bytes(range(256)) * (128 << 10)  # 32 MiB
    try:
        assert commands.command("SET", key, value) in (b"OK", True)
        assert commands.command("STRLEN", key) == len(value)
        assert redis_client.get(key) == value
        assert commands.script(redis_client.register_script("return #ARGV[1]"), [], [value]) == len(value)
    finally:
        redis_client.delete(key)


def test_scripts_sent_in_one_write_get_every_reply_in_order(redis_client, commands):
    key = _key()
    append = redis_client.register_script("return redis.call('APPEND', KEYS[1], ARGV[1])")
    try:
        assert commands.scripts(append, [([key], [c]) for c in "abcdefgh"]) == list(range(1, 9))
        assert redis_client.get(key) == b"abcdefgh"
    finally:
        redis_client.delete(key)


def test_commands_reconnect_after_the_server_drops_their_connection(redis_client, commands):
    connection_id = commands.command("CLIENT", "ID")
    assert redis_client.client_kill_filter(_id=connection_id) == 1
    assert commands.command("PING") in (b"PONG", "PONG", True)
    assert commands.command("CLIENT", "ID") != connection_id


def test_commands_open_no_more_connections_than_threads_calling_at_once(commands):
    barrier = threading.Barrier(3)
    ids: list[int] = []

    def call() -> None:
        barrier.wait()
        for _ in range(20):
            ids.append(commands.command("CLIENT", "ID"))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 60
    assert 1 <= len(set(ids)) <= 3


def test_commands_close_disconnects_and_a_later_call_reconnects(redis_client, commands):
    first = commands.command("CLIENT", "ID")
    commands.close()
    commands.close()  # idempotent
    listed = {c["id"] for c in redis_client.client_list()}
    assert str(first) not in listed and first not in listed
    assert commands.command("CLIENT", "ID") != first


def test_commands_keep_the_clients_socket_timeout_and_reconnect_after_it():
    redis_client = redis.Redis.from_url(REDIS_URL, socket_timeout=0.2)
    commands = Commands(redis_client)
    try:
        assert commands.command("PING") in (b"PONG", "PONG", True)
        with pytest.raises(redis.TimeoutError):
            commands.command("BLPOP", _key(), 0)  # the server never answers: the client gives up
        assert commands.command("PING") in (b"PONG", "PONG", True)
    finally:
        commands.close()
        redis_client.close()
