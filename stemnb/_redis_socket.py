"""Socket settings for the connections :class:`stemnb._redis_client.Commands` owns.

redis-py keeps a socket that has a timeout (its default is 5 s) in Python's timeout mode, where
every send and every receive first calls ``poll()``, and its pool's stale-connection check polls
once more: five system calls per command, each letting go of the GIL. In a process whose worker
threads and producer share the GIL, each release can hand it to another thread and cost a
context switch. On Linux the kernel can keep the same timeout (``SO_RCVTIMEO`` /
``SO_SNDTIMEO``) on a blocking socket: one system call per send and per receive. The stale check
of a TCP connection then reads its TCP state (``TCP_INFO``, which keeps the GIL) instead.

Connections whose socket is not a plain TCP or Unix socket on Linux (TLS, other platforms, a
redis-py that no longer keeps ``_sock``) are left as redis-py made them.
"""

from __future__ import annotations

import _socket
import socket
import struct
import sys
from typing import Any

__all__ = ["is_stale", "prepare", "timed_out"]

_KERNEL_TIMEOUTS = sys.platform.startswith("linux") and struct.calcsize("l") == 8
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_TCP_ESTABLISHED = 1  # tcp_info.tcpi_state, the struct's first byte
_TCP_FAMILIES = (int(socket.AF_INET), int(socket.AF_INET6))


def _plain_socket(conn: Any) -> socket.socket | None:
    sock = getattr(conn, "_sock", None)
    return sock if type(sock) is socket.socket else None


def _family(sock: socket.socket) -> int:
    # the C attribute: socket.socket.family converts it to an enum member on every read
    return int(_socket.socket.family.__get__(sock))


def prepare(conn: Any) -> None:
    """Connect ``conn`` if it is not connected, and put a newly connected plain socket in
    blocking mode with its timeout kept by the kernel.

    Raises:
        redis.RedisError: the connection could not be made.
    """
    if not hasattr(conn, "_sock") or conn._sock is not None:
        return
    conn.connect()
    sock = _plain_socket(conn)
    if sock is None or not _KERNEL_TIMEOUTS:
        return
    timeout = sock.gettimeout()
    if timeout is not None:
        if timeout <= 0:
            return  # a non-blocking socket: leave it so
        seconds = int(timeout)
        interval = struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, interval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, interval)
    sock.settimeout(None)


def is_stale(conn: Any) -> bool:
    """Whether an idle ``conn`` must be reconnected: the server closed it, or data nobody
    asked for waits on it (as redis-py's pool checks on every checkout)."""
    sock = _plain_socket(conn)
    if sock is not None and _TCP_INFO is not None and _family(sock) in _TCP_FAMILIES:
        try:
            return sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 1)[0] != _TCP_ESTABLISHED
        except OSError:
            return True
    try:
        return bool(conn.can_read())
    except Exception:  # the socket failed: reconnect
        return True


def timed_out(exc: BaseException) -> bool:
    """Whether ``exc`` (from a command) is a kernel timeout of a prepared socket: redis-py
    reports those as a ConnectionError caused by ``BlockingIOError``."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, BlockingIOError):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False
