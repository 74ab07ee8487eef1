"""The one place the Redis-backed parts get their client from, and how they send commands.

:class:`Commands` sends the hot-path commands (scripts, GET) on connections of its own, taken
from a small free list instead of the client's pool: the pool's bookkeeping on every command
(fork check, lock, metrics, events) cost about as much CPU as the command itself, and a worker
sharing its process with the producer is bound by that CPU. Their sockets make one system call
per send and per receive (see ``_redis_socket``), and commands and replies go straight through
them, parsed by the connection's own hiredis reader (see ``_redis_wire``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

try:
    import redis as _redis
except ImportError:  # pragma: no cover - depends on the environment
    raise ImportError(
        'the Redis parts of stemnb need the redis package: pip install "stemnb[redis]"'
    ) from None

from ._redis_socket import is_stale, prepare, timed_out  # noqa: E402 - after the redis check
from ._redis_wire import direct, redis_py_reply, request, request_many  # noqa: E402

_hiredis: Any
try:
    import hiredis as _hiredis
except ImportError:  # pragma: no cover - the redis extra installs it
    _hiredis = None

__all__ = ["Commands", "connect", "database_of"]


def connect(url: str, client: Any, what: str) -> tuple[Any, bool]:
    """Return ``(client, owned)``: ``client`` if given, else a new one for ``url`` (owned).

    Raises:
        ValueError: the given client decodes responses to str; ``what`` needs bytes.
    """
    if client is None:
        return _redis.Redis.from_url(url), True
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", {})
    if kwargs.get("decode_responses"):
        raise ValueError(f"{what} needs a redis client with decode_responses=False")
    return client, False


_SERVER_KWARGS = ("host", "port", "path", "db", "username")


def database_of(client: Any) -> tuple[Any, ...] | None:
    """An identity of the Redis database ``client`` talks to: equal for two clients on the same
    server and database number, None when it cannot be told (no plain host/port or socket
    path, e.g. a Sentinel or cluster client)."""
    kwargs = getattr(getattr(client, "connection_pool", None), "connection_kwargs", None)
    if not isinstance(kwargs, dict) or not (kwargs.get("host") or kwargs.get("path")):
        return None
    return tuple(kwargs.get(name) for name in _SERVER_KWARGS)


class Commands:
    """Runs commands for one Redis part on connections configured like ``client``'s own.

    Each call borrows an idle connection (or opens one), so there are at most as many as
    threads ever called at once. Errors and retries are the client's: its retry policy applies,
    a failed connection is dropped and reopened on next use, and a reply error leaves the
    connection usable. Clients with a client-side cache go through the client unchanged.
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        pool = getattr(client, "connection_pool", None)
        direct = pool is not None and getattr(pool, "cache", None) is None
        self._pool = pool if direct else None
        encoding = getattr(pool, "connection_kwargs", {}).get("encoding", "utf-8")
        self._pack = _hiredis is not None and encoding.lower() in ("utf-8", "utf8")
        self._idle: list[Any] = []
        self._every: list[Any] = []
        self._lock = threading.Lock()

    def script(self, script: Any, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run a registered ``script`` (``client.register_script``); return its reply.

        Raises:
            redis.RedisError: the script failed, or Redis could not be reached.
        """
        if self._pool is None:
            return script(keys=keys, args=args)
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            return self._run(command)
        except _redis.exceptions.NoScriptError:  # Redis lost its script cache (restart, flush)
            self._client.script_load(script.script)
            return self._run(command)

    def scripts(self, script: Any, calls: Sequence[tuple[Sequence[Any], Sequence[Any]]]) -> list[Any]:
        """Run ``script`` once per ``(keys, args)`` of ``calls``, pipelined: every call is sent
        at once and the replies read in order. Returns the replies.

        Raises:
            redis.RedisError: a call failed (the first such error, once every reply was read:
                the others ran), or Redis could not be reached.
        """
        if self._pool is None:
            return [script(keys=keys, args=args) for keys, args in calls]
        commands = [("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in calls]
        replies = self._run_many(commands)
        if any(isinstance(r, _redis.exceptions.NoScriptError) for r in replies):
            self._client.script_load(script.script)  # lost its script cache: none of them ran
            replies = self._run_many(commands)
        errors = [r for r in replies if isinstance(r, _redis.ResponseError)]
        if errors:
            raise errors[0]
        return replies

    def command(self, *args: Any) -> Any:
        """Run one command (``"GET", key``) and return its reply without response callbacks.

        Raises:
            redis.RedisError: the command failed, or Redis could not be reached.
        """
        if self._pool is None:
            return self._client.execute_command(*args)
        return self._run(args)

    def _run(self, args: tuple[Any, ...]) -> Any:
        return self._on_connection(lambda conn: _send(conn, args, self._pack))

    def _run_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        """Send ``commands`` in one write and read every reply; a reply error is returned in
        its place (the connection stays in step), a connection error raised."""
        return self._on_connection(lambda conn: _send_many(conn, commands, self._pack))

    def _on_connection(self, send: Callable[[Any], Any]) -> Any:
        """``send(conn)`` on a borrowed connection, under the client's retry policy; a connection
        that may hold unread replies is dropped, and a socket timeout raised as a TimeoutError."""
        conn = self._borrow()
        try:
            prepare(conn)
            return conn.retry.call_with_retry(lambda: send(conn), lambda _error: conn.disconnect())
        except _redis.ResponseError:
            raise  # the reply was read whole: the connection is still in step
        except BaseException as exc:
            conn.disconnect()  # a reply may be left unread: reconnect on next use
            if isinstance(exc, _redis.ConnectionError) and timed_out(exc):
                raise _redis.TimeoutError(f"Timeout talking to Redis: {exc}") from exc
            raise
        finally:
            self._idle.append(conn)

    def _borrow(self) -> Any:
        try:
            conn = self._idle.pop()  # atomic: list.pop and list.append need no lock of ours
        except IndexError:
            conn = None
        if conn is not None:
            if is_stale(conn):  # the server closed it: reconnect, as the client's pool would
                conn.disconnect()
            return conn
        assert self._pool is not None
        conn = self._pool.connection_class(**self._pool.connection_kwargs)
        conn._stemnb_direct = direct(conn)  # written and read by _redis_wire, or by redis-py
        with self._lock:
            self._every.append(conn)
        return conn

    def close(self) -> None:
        """Disconnect every connection opened so far (idempotent; later calls reconnect)."""
        with self._lock:
            every = list(self._every)
        for conn in every:
            try:
                conn.disconnect()
            except Exception:  # pragma: no cover - a socket that will not close is gone anyway
                pass


def _send(conn: Any, args: tuple[Any, ...], pack: bool) -> Any:
    packed = _pack(args) if pack else None
    if packed is None:
        conn.send_command(*args)
        return conn.read_response()
    if not conn._stemnb_direct:
        conn.send_packed_command(packed)
        return conn.read_response()
    reply = request(conn, packed[0])
    if isinstance(reply, _redis.ResponseError):
        raise reply
    return reply


def _send_many(conn: Any, commands: list[tuple[Any, ...]], pack: bool) -> list[Any]:
    """Every reply in order, an error reply in its place (the connection stays in step)."""
    packed = [_pack(args) if pack else None for args in commands]
    if all(p is not None for p in packed):
        joined = b"".join(p[0] for p in packed)  # type: ignore[index]
        if conn._stemnb_direct:
            return request_many(conn, joined, len(commands))
        conn.send_packed_command([joined])
    else:
        conn.send_packed_command(conn.pack_commands(commands))
    return [redis_py_reply(conn) for _ in commands]


def _pack(args: tuple[Any, ...]) -> list[bytes] | None:
    """``args`` in the Redis protocol, packed by hiredis in one call (redis-py's packer copies
    and checks every argument first; text is UTF-8 either way), or None for arguments hiredis
    refuses."""
    try:
        return [_hiredis.pack_command(args)]
    except TypeError:  # e.g. a memoryview: redis-py converts it
        return None
