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

__all__ = ["direct", "read_reply", "request"]


def direct(conn: Any) -> bool:
    """Whether ``conn`` (connected or not) can be written and read here: a plain socket (checked
    at each use), redis-py's hiredis parser, no health checks."""
    return (
        _HIREDIS_PARSER is not None
        and type(getattr(conn, "_parser", None)) is _HIREDIS_PARSER
        and hasattr(conn, "_sock")
        and not getattr(conn, "health_check_interval", 0)
    )


def request(conn: Any, packed: bytes, count: int = 1) -> Any:
    """Send ``packed`` (``count`` commands in the Redis protocol) on ``conn`` and read the
    replies: the one reply, or with ``count`` > 1 a list of them. Falls back to redis-py for a
    socket that is not a plain one (``conn`` must be :func:`direct`)."""
    sock = conn._sock
    if type(sock) is not socket.socket:  # e.g. TLS, or not connected: redis-py connects
        conn.send_packed_command([packed])
        return _slow(conn) if count == 1 else [_slow(conn) for _ in range(count)]
    try:
        sock.sendall(packed)
    except OSError as exc:
        raise redis.ConnectionError(f"Error while writing to the Redis socket: {exc.args}") from exc
    if count == 1:
        return _read(conn, sock)
    return [_read(conn, sock) for _ in range(count)]


def read_reply(conn: Any) -> Any:
    """The next reply (or pub/sub message) on the connected, :func:`direct` ``conn``."""
    sock = conn._sock
    if type(sock) is not socket.socket:
        return _slow(conn)
    return _read(conn, sock)


def _slow(conn: Any) -> Any:
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
