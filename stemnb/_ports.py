"""``ReceivePort``, ``RawReceivePort`` and ``SendPort``: Dart's ports, across processes.

A ``ReceivePort`` lives in the process that created it; its ``send_port`` can be pickled into any
message or call argument and used from any process of the session. Messages are copies (pickled
by the sender); one sender's messages to one port arrive in order; a message to a closed port is
dropped. A port is consumed one way at a time: blocking ``receive()``/iteration, ``async for``, or
``listen(callback)``.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures as cf
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from . import _gate
from ._exceptions import ClosedError
from ._future import Future
from ._hub import hub
from ._plain import register_plain_type
from ._serialize import Payload, discard, dumps, loads


@register_plain_type
class SendPort:
    """Sends messages to a :class:`ReceivePort`, from any process of the session.

    Equal (and hashing equal) to every other ``SendPort`` of the same receive port.
    """

    __slots__ = ("_address", "_id", "debug_name")

    def __init__(self, address: str, port_id: int, debug_name: str | None = None) -> None:
        self._address = address
        self._id = port_id
        self.debug_name = debug_name

    def send(self, message: Any) -> None:
        """Send a copy of ``message``. Raises SerializationError if it cannot be pickled."""
        payload = dumps(message, what="message")
        hub().send(self._address, self._id, payload)

    def __reduce__(self) -> tuple:
        return (SendPort, (self._address, self._id, self.debug_name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SendPort) and (self._address, self._id) == (other._address, other._id)

    def __hash__(self) -> int:
        return hash((self._address, self._id))

    def __repr__(self) -> str:
        name = f" {self.debug_name!r}" if self.debug_name else ""
        return f"<stemnb.SendPort{name} #{self._id}>"


class ReceivePort:
    """A mailbox in this process; give its :attr:`send_port` to whoever should write to it.

    Close it when done: an isolate stays alive while it has open receive ports, as in Dart.
    """

    def __init__(self, debug_name: str | None = None) -> None:
        self.debug_name = debug_name
        self._cond = threading.Condition()
        self._queue: collections.deque[Payload] = collections.deque()
        self._waiters: collections.deque[cf.Future] = collections.deque()
        self._callback: Callable[[Any], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_scheduled = False
        self._closed = False
        self._hub = hub()
        self._id = self._hub.register(self._deliver)
        self.send_port = SendPort(self._hub.address, self._id, debug_name)
        _gate.add_port(self)
        _open_ports.add(self)

    # -- delivery (hub threads) -----------------------------------------------------------------
    def _deliver(self, payload: Payload) -> None:
        with self._cond:
            if self._closed:
                discard(payload)
                return
            self._queue.append(payload)
            self._cond.notify_all()
        self._dispatch()

    def _gate_opened(self) -> None:
        with self._cond:
            self._cond.notify_all()
        self._dispatch()

    def _dispatch(self) -> None:
        if self._callback is not None:
            self._schedule_drain()
            return
        while True:
            with self._cond:
                if not (self._waiters and self._queue and _gate.is_open()):
                    return
                waiter, payload = self._waiters.popleft(), self._queue.popleft()
            _resolve(waiter, payload)

    # -- blocking consumption -------------------------------------------------------------------
    def receive(self, timeout: float | None = None) -> Any:
        """Wait for the next message and return it.

        Raises TimeoutError after ``timeout`` seconds, ClosedError once the port is closed and
        empty, SerializationError if the message cannot be unpickled here.
        """
        self._check_unlistened()
        deadline = None if timeout is None else time.monotonic() + timeout
        _idle(True)
        try:
            with self._cond:
                while not (self._queue and _gate.is_open()):
                    if self._closed:
                        raise ClosedError(f"{self!r} is closed")
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"no message on {self!r} within {timeout}s")
                    self._cond.wait(remaining)
                payload = self._queue.popleft()
        finally:
            _idle(False)
        return loads(payload, what="message")

    def __iter__(self) -> Iterator[Any]:
        """Yield messages until the port is closed."""
        while True:
            try:
                yield self.receive()
            except ClosedError:
                return

    # -- asynchronous consumption ---------------------------------------------------------------
    def _next(self) -> cf.Future:
        self._check_unlistened()
        fut: cf.Future = cf.Future()
        with self._cond:
            if self._closed and not self._queue:
                fut.set_exception(ClosedError(f"{self!r} is closed"))
                return fut
            self._waiters.append(fut)
        self._dispatch()
        return fut

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            return await asyncio.wrap_future(self._next())
        except ClosedError:
            raise StopAsyncIteration from None

    def first(self) -> Future:
        """A Future of the next message; the port closes once it has arrived (Dart's ``first``)."""
        out: Future = Future(debug_name=f"first of {self!r}")
        out.set_running_or_notify_cancel()
        inner = self._next()

        def done(f: cf.Future) -> None:
            self.close()
            out._settle(exception=f.exception()) if f.exception() else out._settle(f.result())

        inner.add_done_callback(done)
        return out

    # -- callbacks --------------------------------------------------------------------------------
    def listen(self, callback: Callable[[Any], None]) -> ReceivePort:
        """Call ``callback(message)`` for every message, on the owner's event loop.

        The loop is the one running in this thread (a notebook kernel's), else this isolate's,
        else a stemnb event thread. Raises RuntimeError if the port is already listened to.
        """
        with self._cond:
            if self._callback is not None:
                raise RuntimeError(f"{self!r} is already being listened to")
            self._callback = callback
            self._loop = _owner_loop()
        self._schedule_drain()
        return self

    def _schedule_drain(self) -> None:
        with self._cond:
            if self._drain_scheduled or self._loop is None or not self._queue:
                return
            self._drain_scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain_one)
        except RuntimeError:  # the loop is closed: nobody will consume these
            self._drain_scheduled = False

    def _drain_one(self) -> None:
        from ._runtime import report_uncaught

        with self._cond:
            self._drain_scheduled = False
            if self._closed or not self._queue or not _gate.is_open():
                return
            payload = self._queue.popleft()
            callback = self._callback
        _gate.at_boundary()
        _idle(False)
        try:
            callback(loads(payload, what="message"))  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001 - an uncaught error of this isolate
            report_uncaught(exc, f"listener of {self!r}")
        finally:
            _idle(True)
        self._schedule_drain()

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the port: queued messages are dropped, later ones too (idempotent)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            dropped, self._queue = list(self._queue), collections.deque()
            waiters, self._waiters = list(self._waiters), collections.deque()
            self._cond.notify_all()
        self._hub.unregister(self._id)
        for payload in dropped:
            discard(payload)
        for waiter in waiters:
            if waiter.set_running_or_notify_cancel():
                waiter.set_exception(ClosedError(f"{self!r} is closed"))
        _open_ports.discard(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> ReceivePort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_unlistened(self) -> None:
        if self._callback is not None:
            raise RuntimeError(f"{self!r} is listened to; it cannot also be read")

    def __repr__(self) -> str:
        name = f" {self.debug_name!r}" if self.debug_name else ""
        state = " closed" if self._closed else ""
        return f"<stemnb.ReceivePort{name} #{self._id}{state}>"

    def __reduce__(self) -> tuple:
        raise TypeError(f"{self!r} cannot be sent; send its send_port instead")


class RawReceivePort(ReceivePort):
    """A receive port whose ``handler`` is called for every message (Dart's ``RawReceivePort``)."""

    def __init__(self, handler: Callable[[Any], None] | None = None, debug_name: str | None = None) -> None:
        super().__init__(debug_name)
        self._handler = handler
        self.listen(self._call_handler)

    @property
    def handler(self) -> Callable[[Any], None] | None:
        return self._handler

    @handler.setter
    def handler(self, handler: Callable[[Any], None]) -> None:
        self._handler = handler

    def _call_handler(self, message: Any) -> None:
        if self._handler is not None:
            self._handler(message)


def _resolve(waiter: cf.Future, payload: Payload) -> None:
    if not waiter.set_running_or_notify_cancel():
        discard(payload)
        return
    try:
        waiter.set_result(loads(payload, what="message"))
    except Exception as exc:  # noqa: BLE001
        waiter.set_exception(exc)


def _idle(idle: bool) -> None:
    if threading.current_thread() is threading.main_thread():
        _gate.set_in_event(not idle)


class _OpenPorts:
    """Counts open receive ports; an isolate ends when its entry is done and none is open."""

    def __init__(self) -> None:
        self._ports: set[int] = set()
        self.cond = threading.Condition()
        self.on_empty: Callable[[], None] | None = None

    def add(self, port: ReceivePort) -> None:
        with self.cond:
            self._ports.add(id(port))

    def discard(self, port: ReceivePort) -> None:
        with self.cond:
            self._ports.discard(id(port))
            self.cond.notify_all()
            empty = not self._ports
        if empty and self.on_empty is not None:
            self.on_empty()

    def count(self) -> int:
        with self.cond:
            return len(self._ports)


_open_ports = _OpenPorts()
_events_loop: asyncio.AbstractEventLoop | None = None
_events_lock = threading.Lock()


def _owner_loop() -> asyncio.AbstractEventLoop:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        pass
    from ._runtime import isolate_loop

    loop = isolate_loop()
    if loop is not None:
        return loop
    return _stemnb_events_loop()


def _stemnb_events_loop() -> asyncio.AbstractEventLoop:
    global _events_loop
    with _events_lock:
        if _events_loop is None:
            _events_loop = asyncio.new_event_loop()
            threading.Thread(target=_events_loop.run_forever, name="stemnb-events", daemon=True).start()
        return _events_loop
