"""The pool's book-keeping records: one per call, one per worker process."""

from __future__ import annotations

import collections
import pickle
import socket
import threading
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

from ._claim import ClaimBoard
from ._future import Future
from ._pool_types import IsolateRecycleReason
from ._process import ChildProcess
from ._serialize import Payload
from ._timers import TimerHandle

if TYPE_CHECKING:
    from ._pool import IsolatePool


class _Call:
    """One call of a pool, from its submission to its outcome.

    Once sent to a worker it is also its future's stopper (``Future.cancel()`` calls it), so a
    call costs no separate callable for the garbage collector to trace.
    """

    __slots__ = ("id", "future", "payload", "timeout", "name", "timer", "origin", "seq", "started",
                 "cancelled", "pinned", "pool", "worker")

    def __init__(self, cid: int, future: Future, payload: Payload, timeout: float | None, name: str,
                 pool: IsolatePool) -> None:
        self.id = cid
        self.future = future
        self.payload = payload
        self.timeout = timeout
        self.name = name
        self.timer: TimerHandle | None = None
        self.origin = future.origin
        self.seq = 0  # its number on the worker it was last sent to
        self.started = False  # set_running_or_notify_cancel() has been called
        self.cancelled = False  # stopped by cancel(): nobody else settles it
        self.pinned = False  # queued behind a given call (see IsolatePool._pin_locked): never stolen
        self.pool = pool
        self.worker: _Worker | None = None  # the worker it was last sent to

    def __call__(self) -> bool:
        """Stop this call (its future's stopper): see ``IsolatePool._stop_call``."""
        assert self.worker is not None, "a call is a stopper only once sent to a worker"
        return self.pool._stop_call(self.worker, self)


class _Worker:
    __slots__ = ("name", "child", "state", "tasks_done", "rss", "inflight", "queued_bytes", "ahead_limit", "started",
                 "stop_reason", "kill_reason", "lent", "released", "send_lock", "thread", "board", "seq", "stolen")

    def __init__(self, name: str) -> None:
        self.name = name
        self.child: ChildProcess | None = None
        self.state = "starting"
        self.tasks_done = 0
        self.rss = 0
        self.inflight: collections.deque[_Call] = collections.deque()  # head runs, the rest wait
        self.queued_bytes = 0  # pickled bytes of the calls in inflight
        self.ahead_limit = 0  # queued_bytes it may hold while busy: half its connection's send buffer
        self.started: float | None = None
        self.stop_reason: IsolateRecycleReason | None = None  # stop after the current call
        self.kill_reason: IsolateRecycleReason | None = None  # we killed it
        self.lent: set[str] = set()  # our argument segments it may still map
        self.released: collections.deque[str] = collections.deque()  # its result segments we dropped
        self.send_lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.board = ClaimBoard.create()
        self.seq = 0
        self.stolen: set[int] = set()  # ids of calls taken back whose "skipped" is still to come

    @property
    def call(self) -> _Call | None:
        """The call this worker runs (or is about to run), if any."""
        return self.inflight[0] if self.inflight else None

    @property
    def pid(self) -> int | None:
        return self.child.pid if self.child else None

    def send(self, msg: tuple) -> None:
        assert self.child is not None and self.child.conn is not None
        data = pickle.dumps(msg, protocol=5)
        with self.send_lock:
            self.child.conn.send_bytes(data)


def send_buffer_bytes(conn: Connection) -> int:
    """The size of the kernel's send buffer of ``conn``'s socket (``SO_SNDBUF``); 8 KiB, the
    smallest common default, if it cannot be read."""
    try:
        sock = socket.socket(fileno=conn.fileno())
    except OSError:
        return 8192
    try:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    except OSError:
        return 8192
    finally:
        sock.detach()  # the connection keeps its descriptor
