"""Reading every message already waiting on a connection with one system call.

``multiprocessing.connection.Connection.recv_bytes`` makes two reads per message (length, then
body). Under load many messages wait in the socket at once; :class:`FrameReader` takes them all with
one ``read`` and splits them, so the cost per message falls as the load grows, with no added latency
when there is only one. It reads Connection's own framing (a 4-byte big-endian length, or -1 and an
8-byte length for huge messages), so the other end keeps using ``Connection.send_bytes``.
"""

from __future__ import annotations

import os
import struct
from multiprocessing.connection import Connection

_CHUNK = 256 * 1024
_SHORT = struct.Struct("!i")
_LONG = struct.Struct("!Q")


class FrameReader:
    """Splits the byte stream of one Connection into its messages.

    Only this reader may read from the connection once it exists (it keeps what it read ahead).
    """

    def __init__(self, conn: Connection) -> None:
        self._fd = conn.fileno()
        self._buf = bytearray()
        self._frames: list[bytes | bytearray] = []

    def read(self) -> list[bytes | bytearray]:
        """Every complete message received so far, waiting for at least one.

        Raises EOFError when the other end has closed the connection, OSError on a broken one.
        """
        while not self._frames:
            data = os.read(self._fd, _CHUNK)
            if not data:
                raise EOFError("the connection was closed")
            self._buf += data
            self._split()
        frames, self._frames = self._frames, []
        return frames

    def _split(self) -> None:
        buf, pos = self._buf, 0
        while len(buf) - pos >= 4:
            (size,) = _SHORT.unpack_from(buf, pos)
            head = 4
            if size == -1:
                if len(buf) - pos < 12:
                    break
                (size,) = _LONG.unpack_from(buf, pos + 4)
                head = 12
            start = pos + head
            if len(buf) - start < size:
                if size > _CHUNK:
                    self._frames.append(self._read_rest(buf, start, size))
                    pos = len(buf)
                break
            self._frames.append(bytes(buf[start:start + size]))
            pos = start + size
        del buf[:pos]

    def _read_rest(self, buf: bytearray, start: int, size: int) -> bytearray:
        """A large message: read its remainder straight into place instead of chunk by chunk."""
        frame = bytearray(size)
        have = len(buf) - start
        frame[:have] = buf[start:]
        view = memoryview(frame)
        while have < size:
            n = os.readv(self._fd, [view[have:]])
            if n == 0:
                raise EOFError("the connection was closed inside a message")
            have += n
        return frame
