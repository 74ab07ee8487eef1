"""Redis pub/sub channels read by a daemon thread: the live feed of the backend's and the revoke
store's watches, and a consumer's broadcasts.

The thread reads a connection of its own with plain blocking reads, each returning every
message already received (one system call per burst of messages). redis-py's
``PubSub.get_message`` made four system calls per read (a readiness poll, a closed-socket probe,
two timeout changes), and a Redis task costs several messages. A client without a plain
connection pool (nothing to copy the connection settings from) falls back to ``PubSub``.

A connection that fails (the server restarted, an idle proxy or ``CLIENT KILL`` cut it, TCP
keep-alive found the peer gone) is made again, with a backoff, until :meth:`ChannelListener.close`.
Pub/sub keeps nothing for a subscriber that is away, so the owner is told twice: ``on_lost`` when
the connection failed and ``on_resubscribed`` once it listens again, before any later message is
handed over. The owner then reads from Redis whatever it may have missed.
"""

from __future__ import annotations

import functools
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from ._backoff import backoff
from ._redis_wire import direct, read_reply

__all__ = ["ChannelListener"]

_log = logging.getLogger("stemnb.redis")

NAP = 0.002  # seconds an idle listener lets messages gather (see ChannelListener._nap)
KEEPALIVE = {"idle": 30, "interval": 10, "count": 3}  # a silent dead peer is found within ~60 s


class ChannelListener:
    """Subscribes to ``channels`` (a name or several) and calls ``handle(channel, data)`` for
    each message, in order, on a daemon thread named after ``what``.

    The constructor returns once Redis has confirmed the subscription (at most ``timeout``
    seconds), so whatever is published after it returns is seen. A ``handle`` that raises is
    logged and the thread goes on. A failed connection is logged and made again (see the
    module docstring); ``on_resubscribed`` runs on the listener's thread, and a Redis error
    there counts as another failed connection. While ``idle()`` is true nobody waits for the
    messages (they are only recorded), so they are read in bursts; call :meth:`wake` when
    that changes. :meth:`close` (idempotent) ends the thread and waits for it.

    Raises:
        redis.RedisError: the first subscription could not be made.
    """

    def __init__(
        self,
        client: Any,
        channels: str | Sequence[str],
        handle: Callable[[bytes, bytes], None],
        what: str,
        timeout: float = 5.0,
        idle: Callable[[], bool] | None = None,
        on_lost: Callable[[], None] | None = None,
        on_resubscribed: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._channels = [channels] if isinstance(channels, str) else list(channels)
        self._handle = handle
        self._what = what
        self._timeout = timeout
        self._idle = idle
        self._on_lost = on_lost
        self._on_resubscribed = on_resubscribed
        self._napping = False
        self._woken = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self.reconnects = 0  # how many times the connection was made again
        self._session: Any = self._subscribe()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"stemnb-{what}-watch")
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the listener is listening or making its connection again (not closed)."""
        return not self._closed and self._thread.is_alive()

    # -- the connection ---------------------------------------------------------------------
    def _subscribe(self) -> Any:
        """A new subscribed session: a plain connection, or a ``PubSub`` (fallback)."""
        if _direct(self._client):
            return _subscribed_connection(self._client, self._channels, self._timeout, self._what)
        return _subscribed_pubsub(self._client, self._channels, self._timeout)

    def _run(self) -> None:
        session = self._session
        while session is not None:
            try:
                self._read(session)
                return  # closed
            except Exception as exc:  # noqa: BLE001 - any failure of the read is a lost connection
                if self._closed:
                    return
                _log.warning("%s watch listener lost its connection (%s); listening again", self._what, exc)
                _log.debug("the failed read", exc_info=True)
            _disconnect(session)
            self._call(self._on_lost, "on_lost")
            session = self._resubscribe()

    def _resubscribe(self) -> Any:
        """Listen again, waiting ``stemnb._backoff.backoff`` between attempts; None once closed."""
        failures, lost_at = 0, time.monotonic()
        while True:
            failures += 1
            self._woken.wait(backoff(failures))
            self._woken.clear()
            if self._closed:
                return None
            try:
                session = self._subscribe()
            except Exception:  # noqa: BLE001 - Redis is still away: wait and try again
                _log.debug("%s watch listener could not listen again yet", self._what, exc_info=True)
                continue
            with self._lock:
                if self._closed:
                    _disconnect(session)
                    return None
                self._session = session
            try:
                if self._on_resubscribed is not None:
                    self._on_resubscribed()
            except Exception as exc:  # noqa: BLE001 - the owner could not catch up: listen again later
                _log.warning("%s watch listener could not catch up (%s); listening again", self._what, exc)
                _log.debug("the failed catch-up", exc_info=True)
                _disconnect(session)
                continue
            self.reconnects += 1
            _log.warning(
                "%s watch listener is listening again after %.1f s", self._what, time.monotonic() - lost_at
            )
            return session

    def _read(self, session: Any) -> None:
        """Hand over messages until closed (returns) or the connection fails (raises)."""
        if isinstance(session, _Direct):
            self._read_direct(session.conn)
        else:
            self._read_pubsub(session)

    def _read_direct(self, conn: Any) -> None:
        buffered = _buffered(conn)
        read = functools.partial(read_reply, conn) if direct(conn) else conn.read_response
        while not self._closed:
            reply = read()
            if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                self._dispatch(reply[1], reply[2])
            elif isinstance(reply, Exception):  # an error reply (read_reply returns it): a failed read
                raise reply
            if buffered is not None and self._idle is not None and not buffered():
                self._nap(self._idle)

    def _read_pubsub(self, pubsub: Any) -> None:
        while not self._closed:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None and message["type"] == "message":
                self._dispatch(message["channel"], message["data"])

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

    def _dispatch(self, channel: Any, data: bytes) -> None:
        try:
            self._handle(channel if isinstance(channel, bytes) else str(channel).encode(), data)
        except Exception:
            _log.exception("%s watch listener could not handle a message", self._what)

    def _call(self, callback: Callable[[], None] | None, name: str) -> None:
        if callback is None:
            return
        try:
            callback()
        except Exception:
            _log.exception("%s watch listener: %s failed", self._what, name)

    def close(self) -> None:
        """Unsubscribe by closing the connection and wait for the thread to end (idempotent;
        failures are only logged)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            session = self._session
        self._woken.set()
        _disconnect(session)  # a blocked read returns at once
        if threading.current_thread() is not self._thread:
            self._thread.join(5.0)


class _Direct:
    """A plain subscribed connection (see :func:`_subscribed_connection`)."""

    __slots__ = ("conn",)

    def __init__(self, conn: Any) -> None:
        self.conn = conn


def _disconnect(session: Any) -> None:
    try:
        if isinstance(session, _Direct):
            session.conn.disconnect()  # shuts the socket down: a blocked read returns
        elif session is not None:
            session.close()
    except Exception:  # noqa: BLE001 - the connection is gone either way
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


def _keepalive_options() -> dict[int, int]:
    """TCP keep-alive timings where the platform names them (Linux does), else the system's."""
    names = {"idle": "TCP_KEEPIDLE", "interval": "TCP_KEEPINTVL", "count": "TCP_KEEPCNT"}
    return {getattr(socket, names[k]): v for k, v in KEEPALIVE.items() if hasattr(socket, names[k])}


def _subscribed_connection(client: Any, channels: list[str], timeout: float, what: str) -> _Direct:
    """A connection like ``client``'s, subscribed to ``channels``: RESP2, so messages arrive as
    plain replies (RESP3 would route each through redis-py's push handlers), no read timeout
    (the listener waits for messages; :meth:`ChannelListener.close` ends the wait), TCP
    keep-alive (a peer that vanished without closing is noticed), and a client name that
    ``CLIENT LIST`` shows."""
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "socket_timeout": None, "protocol": 2, "client_name": f"stemnb-{what}"}
    if "path" not in kwargs:  # TCP, not a Unix socket
        kwargs.update(socket_keepalive=True, socket_keepalive_options=_keepalive_options())
    conn = pool.connection_class(**kwargs)
    try:
        try:
            conn.connect()
        except _response_error() as exc:  # a user whose ACL forbids CLIENT SETNAME: listen unnamed
            conn.disconnect()
            _log.debug("could not name the %s watch connection (%s)", what, exc)
            kwargs.pop("client_name")
            conn = pool.connection_class(**kwargs)
            conn.connect()
        conn.send_command("SUBSCRIBE", *channels)
        for channel in channels:
            reply = conn.read_response(timeout=timeout)
            if not (isinstance(reply, list) and reply and reply[0] == b"subscribe"):
                raise _redis_error(f"unexpected reply to SUBSCRIBE {channel}: {reply!r}")
    except BaseException:
        conn.disconnect()
        raise
    return _Direct(conn)


def _subscribed_pubsub(client: Any, channels: list[str], timeout: float) -> Any:
    pubsub = client.pubsub()
    try:
        pubsub.subscribe(*channels)
        confirmed, deadline = 0, time.monotonic() + timeout
        while confirmed < len(channels) and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=1.0)
            if message is not None and message["type"] == "subscribe":
                confirmed += 1
    except BaseException:
        pubsub.close()
        raise
    return pubsub


def _response_error() -> type[Exception]:
    import redis

    return redis.ResponseError


def _redis_error(message: str) -> Exception:
    import redis

    return redis.RedisError(message)
