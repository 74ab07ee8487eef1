"""Sending a small message on a stream socket without letting go of the GIL.

CPython lets go of the GIL around every socket send, even one the kernel completes at once (a
task's call to its isolate, or its result back, never waits). :func:`send_now` makes one
non-blocking ``send(2)`` through ctypes' ``PyDLL``, which keeps the GIL; a send the kernel cannot
complete at once comes back to the caller, which sends the rest the usual way (and so gets the
usual errors). The pool's calls and results use it (``_frames.send_frame``).

Redis commands keep CPython's usual send on purpose. Keeping the GIL there too saved 5-10 % of
the CPU of a notebook process running a worker, yet lowered its task throughput by 5-7 % (nine
alternating benchmark runs each): a producer's send that lets go of the GIL is also the point
where the worker's threads get their turn, and with fewer of them the worker starves while the
producer enqueues.

Linux only; elsewhere :func:`send_now` sends nothing and every send is the usual one.
"""

from __future__ import annotations

import socket
import sys
from typing import Any

__all__ = ["send_now"]

_send: Any = None  # libc's send(2), called with the GIL held; False where unavailable
_FLAGS = getattr(socket, "MSG_DONTWAIT", 0) | getattr(socket, "MSG_NOSIGNAL", 0)


def _load() -> Any:
    global _send
    if _send is None:
        _send = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                send = ctypes.PyDLL(None).send  # PyDLL: the call keeps the GIL
                send.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int)
                send.restype = ctypes.c_ssize_t
                _send = send
            except (ImportError, OSError, AttributeError):  # pragma: no cover - no ctypes or libc
                pass
    return _send


def send_now(fd: int, data: bytes) -> int:
    """Send what the kernel takes at once of ``data`` on stream socket ``fd``, keeping the GIL.

    Returns how many leading bytes were sent: ``len(data)``, fewer (the socket's buffer is
    full), or 0 (it would block, the socket failed, or this platform has no such send). The
    caller sends the rest with its blocking send, which raises whatever error there is.
    """
    send = _send if _send is not None else _load()
    if not send or not data:
        return 0
    sent = send(fd, data, len(data), _FLAGS)
    return sent if sent > 0 else 0
