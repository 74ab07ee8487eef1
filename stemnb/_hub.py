"""The port hub: every process's mailbox for port messages, and its outgoing connections.

A :class:`~stemnb.SendPort` is ``(hub address, port id)``. Sending pickles the message in the
sender (one-shot shared-memory segments for large buffers) and writes one frame on a connection
from the sending process straight to the receiving process's hub — never through a third process.
One connection per pair of processes, written under a lock, keeps each sender's messages in order.
A frame for a port that is closed (or a process that is gone) is dropped and its segments freed.
"""

from __future__ import annotations

import itertools
import os
import pickle
import sys
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from . import _shm
from ._frames import GATE, LINGER, FrameReader
from ._process import connect, listener
from ._serialize import Payload, discard
from ._shm import SegmentRef

Handler = Callable[[Payload], None]


class Hub:
    """This process's port registry plus its connections to other hubs."""

    def __init__(self) -> None:
        lst = listener()
        self.address = lst.address
        self._ids = itertools.count(1)
        self._handlers: dict[int, Handler] = {}
        self._out: dict[str, tuple[Connection, threading.Lock]] = {}
        self._lock = threading.Lock()
        lst.on_hello("ports", self._accept)

    # -- local ports ----------------------------------------------------------------------------
    def register(self, handler: Handler) -> int:
        """Register a delivery handler (called on a hub thread); returns the new port id."""
        pid = next(self._ids)
        with self._lock:
            self._handlers[pid] = handler
        return pid

    def unregister(self, port_id: int) -> None:
        with self._lock:
            self._handlers.pop(port_id, None)

    def deliver(self, port_id: int, payload: Payload) -> None:
        with self._lock:
            handler = self._handlers.get(port_id)
        if handler is None:
            discard(payload)  # closed port: the message is dropped, as in Dart
            return
        try:
            handler(payload)
        except Exception:  # noqa: BLE001 - the reading thread must go on with later frames
            print(f"stemnb: a message to port #{port_id} could not be delivered and was dropped:",
                  file=sys.stderr)
            traceback.print_exc()

    # -- incoming connections -------------------------------------------------------------------
    def _accept(self, conn: Connection, info: Any) -> None:
        threading.Thread(target=self._read, args=(conn,), daemon=True, name="stemnb-hub-reader").start()

    def _read(self, conn: Connection) -> None:
        reader = FrameReader(conn, linger=LINGER, gate=GATE)  # awake for a reply that comes soon
        while True:
            try:
                frames = reader.read()
            except (EOFError, OSError):
                conn.close()
                return
            for frame in frames:
                port_id, payload = pickle.loads(frame)
                self.deliver(port_id, payload)

    # -- outgoing -------------------------------------------------------------------------------
    def send(self, address: str, port_id: int, payload: Payload) -> bool:
        """Deliver ``payload`` to port ``port_id`` of the hub at ``address``.

        Returns False if that hub's process is unreachable (gone); the payload is then dropped.
        """
        if address == self.address:
            self.deliver(port_id, payload)
            return True
        payload = _hand_over_payload(payload, _owner_pid(address))
        frame = pickle.dumps((port_id, payload), protocol=5)
        for _attempt in range(2):
            conn, lock = self._connection(address)
            if conn is None:
                break
            try:
                with lock:
                    conn.send_bytes(frame)
                return True
            except OSError:
                self._drop(address, conn)
        discard(payload)  # the receiving process is gone
        return False

    def _connection(self, address: str) -> tuple[Connection | None, threading.Lock]:
        with self._lock:
            entry = self._out.get(address)
        if entry is not None:
            return entry
        try:
            conn = connect(address, "ports", os.getpid())
        except OSError:
            return None, threading.Lock()
        with self._lock:
            entry = self._out.setdefault(address, (conn, threading.Lock()))
        if entry[0] is not conn:
            conn.close()
        return entry

    def _drop(self, address: str, conn: Connection) -> None:
        with self._lock:
            if self._out.get(address, (None,))[0] is conn:
                del self._out[address]
        conn.close()


def _owner_pid(address: str) -> int | None:
    """The pid of the process listening at ``address`` (``\\0stemnb-<session>-<pid>-<hex>``)."""
    parts = address.lstrip("\0").split("-")
    return int(parts[2]) if len(parts) == 4 and parts[2].isdigit() else None


def _hand_over_payload(payload: Payload, owner_pid: int | None) -> Payload:
    """Give the payload's one-shot segments to the receiving process (see :func:`hand_over`)."""
    if owner_pid is None or not any(isinstance(b, SegmentRef) and b.oneshot for b in payload.buffers):
        return payload
    buffers = tuple(SegmentRef(hand_over(b.name, owner_pid), b.nbytes, True)
                    if isinstance(b, SegmentRef) and b.oneshot else b for b in payload.buffers)
    return payload._replace(buffers=buffers)


def hand_over(name: str, owner_pid: int) -> str:
    """Rename segment ``name`` into ``owner_pid``'s namespace and return the new name.

    A segment in flight must outlive its creator: when a process ends, its supervisor sweeps every
    segment named after its pid, which would take a message sent just before ``Isolate.exit``
    with it. After the hand-over the segment is swept with its new owner (if that one dies
    before unlinking it) and stays registered with the session's resource tracker.
    """
    parts = name.split("-", 3)
    if len(parts) != 4 or parts[2] == str(owner_pid):
        return name
    new = f"{parts[0]}-{parts[1]}-{owner_pid}-h{parts[2]}x{parts[3]}"
    try:
        os.rename(os.path.join(_shm.SHM_DIR, name), os.path.join(_shm.SHM_DIR, new))
    except FileNotFoundError:
        return name  # already gone: the receiver reports it when it maps the message
    _shm._tracker_register(new)
    _shm._tracker_unregister(name)
    return new


_hub: Hub | None = None
_hub_pid: int | None = None
_hub_lock = threading.Lock()


def hub() -> Hub:
    """This process's hub, started on first use."""
    global _hub, _hub_pid
    with _hub_lock:
        if _hub is None or _hub_pid != os.getpid():
            _hub = Hub()
            _hub_pid = os.getpid()
        return _hub
