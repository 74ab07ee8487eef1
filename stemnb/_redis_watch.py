"""One Redis pub/sub channel read by a daemon thread: the live feed of the backend's and the
revoke store's watches.

The thread reads a connection of its own with plain blocking reads, each returning every
message already received (one system call per burst of messages). redis-py's
``PubSub.get_message`` made four system calls per read (a readiness poll, a closed-socket probe,
two timeout changes), and a Redis task costs several messages. A client without a plain
connection pool (nothing to copy the connection settings from) falls back to ``PubSub``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ChannelListener"]

_log = logging.getLogger("stemnb.redis")

NAP = 0.002  # seconds an idle listener lets messages gather (see ChannelListener._nap)


class ChannelListener:
    """Subscribes to ``channel`` and calls ``handle(data)`` for each message, in order, on a
    daemon thread named after ``what``.

    The constructor returns once Redis has confirmed the subscription (at most ``timeout``
    seconds), so whatever is published after it returns is seen. A ``handle`` that raises is
    logged and the thread goes on; a connection that fails ends the thread, logged unless
    :meth:`close` (idempotent) cut it. While ``idle()`` is true nobody waits for the messages
    (they are only recorded), so they are read in bursts; call :meth:`wake` when that changes.

    Raises:
        redis.RedisError: the subscription could not be made.
    """

    def __init__(
        self,
        client: Any,
        channel: str,
        handle: Callable[[bytes], None],
        what: str,
        timeout: float = 5.0,
        idle: Callable[[], bool] | None = None,
    ) -> None:
        self._handle = handle
        self._what = what
        self._idle = idle
        self._napping = False
        self._woken = threading.Event()
        self._closed = False
        self._conn: Any = None
        self._pubsub: Any = None
        if _direct(client):
            self._conn = _subscribed_connection(client, channel, timeout)
            target = self._read_direct
        else:
            self._pubsub = _subscribed_pubsub(client, channel, timeout)
            target = self._read_pubsub
        self._thread = threading.Thread(target=target, daemon=True, name=f"stemnb-{what}-watch")
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether messages are still being read (not closed, the connection did not fail)."""
        return not self._closed and self._thread.is_alive()

    def _read_direct(self) -> None:
        conn = self._conn
        buffered = _buffered(conn)
        while not self._closed:
            try:
                reply = conn.read_response()
            except Exception:
                return self._stopped()
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                self._dispatch(reply[2])
            if buffered is not None and self._idle is not None and not buffered():
                self._nap(self._idle)

    def _nap(self, idle: Callable[[], bool]) -> None:
        """While ``idle()`` (nobody waits for a message), let messages gather for up to
        ``NAP`` seconds before the next read: one wake-up per burst instead of per message.
        :meth:`wake` ends a nap at once."""
        self._napping = True  # before asking idle(): a wake() after this cannot be missed
        if idle():
            self._woken.wait(NAP)
        self._napping = False
        self._woken.clear()

    def wake(self) -> None:
        """Read on at once: someone now waits for a message (a no-op unless napping)."""
        if self._napping:
            self._woken.set()

    def _read_pubsub(self) -> None:
        pubsub = self._pubsub
        while not self._closed:
            try:
                message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except Exception:
                return self._stopped()
            if message is not None and message["type"] == "message":
                self._dispatch(message["data"])

    def _dispatch(self, data: bytes) -> None:
        try:
            self._handle(data)
        except Exception:
            _log.exception("%s watch listener could not handle a message", self._what)

    def _stopped(self) -> None:
        if not self._closed:  # close() cuts the connection; anything else is worth a log
            _log.exception("%s watch listener stopped", self._what)

    def close(self) -> None:
        """Unsubscribe by closing the connection; the thread ends (failures are only logged)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._conn is not None:
                self._conn.disconnect()  # shuts the socket down: the blocked read returns
            if self._pubsub is not None:
                self._pubsub.close()
        except Exception:
            _log.debug("closing a watch connection failed", exc_info=True)


def _buffered(conn: Any) -> Callable[[], bool] | None:
    """A test for whether ``conn``'s reply parser holds unread messages (hiredis's), or None
    when it cannot be told (then the listener never naps)."""
    reader = getattr(getattr(conn, "_parser", None), "_reader", None)
    has_data = getattr(reader, "has_data", None)
    return has_data if callable(has_data) else None


def _direct(client: Any) -> bool:
    """Whether a connection like ``client``'s own can be made for the listener."""
    pool = getattr(client, "connection_pool", None)
    return isinstance(getattr(pool, "connection_kwargs", None), dict) and hasattr(
        pool, "connection_class"
    )


def _subscribed_connection(client: Any, channel: str, timeout: float) -> Any:
    """A connection like ``client``'s, subscribed to ``channel``: RESP2, so messages arrive as
    plain replies (RESP3 would route each through redis-py's push handlers), and no read
    timeout (the listener waits for messages; :meth:`ChannelListener.close` ends the wait)."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": None, "protocol": 2}
    conn = pool.connection_class(**kwargs)
    try:
        conn.connect()
        conn.send_command("SUBSCRIBE", channel)
        reply = conn.read_response(timeout=timeout)
    except BaseException:
        conn.disconnect()
        raise
    if not (isinstance(reply, list) and reply and reply[0] == b"subscribe"):
        conn.disconnect()
        raise _redis_error(f"unexpected reply to SUBSCRIBE {channel}: {reply!r}")
    return conn


def _subscribed_pubsub(client: Any, channel: str, timeout: float) -> Any:
    pubsub = client.pubsub()
    pubsub.subscribe(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1.0)
        if message is not None and message["type"] == "subscribe":
            break
    return pubsub


def _redis_error(message: str) -> Exception:
    import redis

    return redis.RedisError(message)
