"""Reading every message already waiting on a connection with one system call.

``multiprocessing.connection.Connection.recv_bytes`` makes two reads per message (length, then
body). Under load many messages wait in the socket at once; :class:`FrameReader` takes them all with
one ``read`` and splits them, so the cost per message falls as the load grows, with no added latency
when there is only one. It reads Connection's own framing (a 4-byte big-endian length, or -1 and an
8-byte length for huge messages), so the other end keeps using ``Connection.send_bytes``.

A reader may *linger*: once it has handed out every message, it polls the connection for a short
while before it sleeps in ``read``, as long as the last message it waited for came within that
while. Waking a sleeping thread costs tens of microseconds (more on a virtual machine, where an
idle CPU is handed back to the host), a large part of a call's round trip; a reader that keeps
getting its next message soon after the last never sleeps, and one whose messages come seldom
sleeps at once. Readers that share a ``gate`` (a lock) linger one at a time: threads of one
process that all polled would take turns at the GIL for nothing.
"""

from __future__ import annotations

import _thread
import mmap
import os
import select
import struct
import time
from multiprocessing.connection import Connection


def _cpus() -> int:
    """The CPUs this process may run on (its affinity; the machine's count where that is unknown)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


LINGER = 300e-6 if _cpus() > 1 else 0.0
"""Seconds a pool process, a pool's reader thread and a port hub's reader poll for their next
message before they sleep: longer than a caller takes to send the next call after a result (tens
of microseconds), short enough that messages that come seldom cost next to nothing. Zero on a
single CPU, where the message awaited can only come once the poller gives the CPU up."""
GATE = _thread.allocate_lock()
"""The gate of this process's reader threads: one of them lingers at a time."""
_CHUNK = 256 * 1024
_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")


class FrameReader:
    """Splits the byte stream of one Connection into its messages.

    Reads go into one buffer kept for the reader's life (a fresh 256 KiB ``bytes`` per read would
    cost an ``mmap``, an ``mremap`` and an ``munmap`` each time). The buffer is an anonymous
    mapping, so only the pages a burst of messages reached take memory, not all 256 KiB. Only
    this reader may read from the connection once it exists (it keeps what it read ahead).
    """

    def __init__(self, conn: Connection, linger: float = 0.0, gate: _thread.LockType | None = None) -> None:
        """``linger``: seconds to poll for the next message before sleeping; ``gate``: a lock
        held while lingering, shared by readers that must not linger at once (see the module)."""
        self._fd = conn.fileno()
        self._area = mmap.mmap(-1, _CHUNK)
        self._view = memoryview(self._area)
        self._start = 0  # the first byte not yet handed out
        self._end = 0  # the end of what was read
        self._linger = linger
        self._poll: select.poll | None = None
        if linger > 0:
            self._poll = select.poll()
            self._poll.register(self._fd, select.POLLIN)
        self._gate = gate
        self._last_wait = 0.0  # seconds the last wait for a message took
        self.caught = 0  # messages that came while lingering, instead of waking this reader

    def read(self) -> list[bytes | bytearray]:
        """Every complete message received so far, waiting for at least one.

        Raises EOFError when the other end has closed the connection, OSError on a broken one.
        """
        while True:
            frames = self._split()
            if frames:
                return frames
            if self._end == _CHUNK:  # a partial message at the end of the buffer: move it to the front
                self._area[:self._end - self._start] = self._area[self._start:self._end]
                self._start, self._end = 0, self._end - self._start
            timed = self._poll is not None and self._end == 0  # waiting for a new message: linger first
            began = time.perf_counter() if timed else 0.0
            if timed and self._last_wait <= self._linger and self._linger_until(began + self._linger):
                self.caught += 1
            n = os.readv(self._fd, [self._view[self._end:]])
            if n == 0:
                raise EOFError("the connection was closed")
            if timed:
                self._last_wait = time.perf_counter() - began
            self._end += n

    def _linger_until(self, deadline: float) -> bool:
        """Poll until the connection has something to read (True) or ``deadline`` passes (False);
        False at once while another reader of the same gate lingers."""
        gate = self._gate
        if gate is not None and not gate.acquire(False):
            return False
        try:
            poll = self._poll.poll  # type: ignore[union-attr]  # set whenever linger is
            while not poll(0):
                if time.perf_counter() >= deadline:
                    return False
                os.sched_yield()  # another thread or process waiting for this CPU goes first
            return True
        finally:
            if gate is not None:
                gate.release()

    def _split(self) -> list[bytes | bytearray]:
        area, pos, end = self._area, self._start, self._end
        frames: list[bytes | bytearray] = []
        while end - pos >= 4:
            (size,) = _SHORT.unpack_from(area, pos)
            head = 4
            if size == -1:
                if end - pos < 12:
                    break
                (size,) = _LONG.unpack_from(area, pos + 4)
                head = 12
            start = pos + head
            if end - start < size:
                if head + size > _CHUNK:  # it can never fit: read the rest straight into its own buffer
                    frames.append(self._read_rest(start, size))
                    pos = end
                break
            frames.append(area[start:start + size])  # slicing a mapping copies into bytes
            pos = start + size
        self._start = pos
        if pos == end:
            self._start = self._end = 0
        return frames

    def _read_rest(self, start: int, size: int) -> bytearray:
        """A large message: read its remainder straight into place instead of chunk by chunk."""
        frame = bytearray(size)
        have = self._end - start
        frame[:have] = self._view[start:self._end]
        view = memoryview(frame)
        while have < size:
            n = os.readv(self._fd, [view[have:]])
            if n == 0:
                raise EOFError("the connection was closed inside a message")
            have += n
        return frame
