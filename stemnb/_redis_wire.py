"""Commands and replies straight on a redis-py connection's socket, parsed by its hiredis reader.

redis-py wraps each send and each read in layers of Python: a health check, the server's address
formatted for an error that may never come, a parser that re-reads its state and changes and
restores socket timeouts. For a small command on a local server that was a tenth of the CPU of
enqueueing a task, and as much again for every status a watch feed reads. For a connection whose
socket is a plain one and whose parser is hiredis's (see :func:`direct`), these functions write
and read the socket themselves and let that same reader parse, so redis-py's view of the
connection stays in step. Any other connection (TLS, the pure-Python parser, a health-check
interval, another redis-py layout) goes through redis-py as before.

A failed socket raises :class:`redis.ConnectionError` chained to the ``OSError`` (a kernel
timeout shows as ``BlockingIOError``: see ``_redis_socket.timed_out``), a closed one a
``ConnectionError``; the caller must then drop the connection. An error reply is returned as
its ``ResponseError`` (the connection is still in step); a connection error reply (e.g.
``LOADING``) is raised.
"""

from __future__ import annotations

import socket
from typing import Any

import redis

_HIREDIS_PARSER: Any
try:
    from redis._parsers.hiredis import NOT_ENOUGH_DATA as _MORE
    from redis._parsers.hiredis import _HiredisParser as _HIREDIS_PARSER
except ImportError:  # pragma: no cover - another redis-py layout: every connection is left to redis-py
    _MORE = _HIREDIS_PARSER = None

__all__ = ["direct", "read_reply", "redis_py_reply", "request", "request_many"]


def direct(conn: Any) -> bool:
    """Whether ``conn`` (connected or not) can be written and read here: a plain socket (checked
    at each use), redis-py's hiredis parser, no health checks."""
    return (
        _HIREDIS_PARSER is not None
        and type(getattr(conn, "_parser", None)) is _HIREDIS_PARSER
        and hasattr(conn, "_sock")
        and not getattr(conn, "health_check_interval", 0)
    )


def request(conn: Any, packed: bytes) -> Any:
    """Send ``packed`` (one command in the Redis protocol) on ``conn`` and return its reply.
    Falls back to redis-py for a socket that is not a plain one (``conn`` must be :func:`direct`)."""
    sock = _send(conn, packed)
    return redis_py_reply(conn) if sock is None else _read(conn, sock)


def request_many(conn: Any, packed: bytes, count: int) -> list[Any]:
    """Send ``packed`` (``count`` commands in the Redis protocol) on ``conn`` and return their
    replies in order (``conn`` must be :func:`direct`)."""
    sock = _send(conn, packed)
    if sock is None:
        return [redis_py_reply(conn) for _ in range(count)]
    return [_read(conn, sock) for _ in range(count)]


def _send(conn: Any, packed: bytes) -> socket.socket | None:
    """Write ``packed`` on ``conn``; return the plain socket to read the replies from, or None
    when redis-py sent it (e.g. TLS, or not connected yet: redis-py connects)."""
    sock = conn._sock
    if type(sock) is not socket.socket:
        conn.send_packed_command([packed])
        return None
    try:
        sock.sendall(packed)
    except OSError as exc:
        raise redis.ConnectionError(f"Error while writing to the Redis socket: {exc.args}") from exc
    return sock


def read_reply(conn: Any) -> Any:
    """The next reply (or pub/sub message) on the connected, :func:`direct` ``conn``."""
    sock = conn._sock
    if type(sock) is not socket.socket:
        return redis_py_reply(conn)
    return _read(conn, sock)


def redis_py_reply(conn: Any) -> Any:
    """The next reply on ``conn`` read by redis-py, an error reply returned as on this module's path."""
    try:
        return conn.read_response()
    except redis.ResponseError as exc:  # read whole: the connection is still in step
        return exc


def _read(conn: Any, sock: socket.socket) -> Any:
    parser = conn._parser
    while True:
        reader = parser._reader
        if reader is None:  # disconnected meanwhile (the connection's owner closed it)
            raise redis.ConnectionError("Connection closed by server.")
        reply = reader.gets()
        while reply is _MORE:
            try:
                size = sock.recv_into(parser._buffer)
            except OSError as exc:
                raise redis.ConnectionError(f"Error while reading from the Redis socket: {exc.args}") from exc
            if not size:
                raise redis.ConnectionError("Connection closed by server.")
            reader.feed(parser._buffer, 0, size)
            reply = reader.gets()
        if reply.__class__ is bytes or reply.__class__ is list:
            return reply
        push = getattr(parser, "_hiredis_PushNotificationType", None)
        if push is None or not isinstance(reply, push):
            break
        parser.handle_push_response(reply)  # a RESP3 push between replies: handled as redis-py does
    if isinstance(reply, redis.ConnectionError):
        raise reply
    return reply
