"""Control calls on an isolate made outside its supervising process, forwarded there.

A call waits for its answer on a bare hub handler together with the supervisor's end, so a
supervisor that dies answers as an ended isolate would. Exit-listener calls of a nested isolate
go to the root's exit registry instead (``_exits``), which outlives every supervisor.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from . import _exits
from ._hub import _owner_pid, hub
from ._isolate import _REGISTRY_METHODS
from ._ports import SendPort
from ._process import open_pidfd, wait_readable
from ._serialize import Payload, dumps, loads


def registry_key(supervisor: SendPort, isolate_id: int) -> str:
    return f"{supervisor._address}#{isolate_id}"


def registry_call(exits: str, supervisor: SendPort, isolate_id: int, method: str, args: tuple) -> Any:
    """Forward an exit-listener call (or ``is_alive``) of a nested isolate to the exit registry."""
    if method == "add_on_exit_listener":
        args = (args[0], dumps(args[1], what="exit response"))
    return _exits.call(exits, _REGISTRY_METHODS[method], registry_key(supervisor, isolate_id), *args)


def remote_call(supervisor: SendPort, isolate_id: int, method: str, args: tuple) -> Any:
    """Forward a control call to the supervising process and return its answer.

    The answer arrives on a bare hub handler, not a ReceivePort: waiting for it is part of the
    caller's event (not a boundary where a pending kill would strike) and is not held by a pause,
    so an isolate can pause or kill itself. A supervisor that is gone has taken its isolates with
    it: the call is answered as for an ended isolate.
    """
    h = hub()
    answer = _Answer()
    port_id = h.register(answer.set)
    try:
        request = dumps((isolate_id, method, args, SendPort(h.address, port_id, "isolate-control-reply")),
                        what="isolate control request")
        reply = answer.wait(_owner_pid(supervisor._address), 60.0) if h.send(
            supervisor._address, supervisor._id, request) else None
    finally:
        h.unregister(port_id)
        answer.close()
    if reply is None:
        from ._isolate_supervisor import handle_ended

        return handle_ended(isolate_id, method, args)
    ok, value = loads(reply, what="isolate control reply")
    if not ok:
        raise value
    return value


class _Answer:
    """The reply to one forwarded call, awaited together with the end of the process that owes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._payload: Payload | None = None
        self._r, self._w = os.pipe()
        self._closed = False

    def set(self, payload: Payload) -> None:
        """Record the reply (a hub handler); later replies and replies after close() are dropped."""
        with self._lock:
            if self._closed or self._payload is not None:
                return
            self._payload = payload
            os.write(self._w, b"\0")

    def wait(self, pid: int | None, timeout: float) -> Payload | None:
        """The reply, or None if process ``pid`` ended first. Raises TimeoutError after ``timeout``."""
        pidfd = open_pidfd(pid) if pid is not None else None
        try:
            fds = [self._r] if pidfd is None else [self._r, pidfd]
            if not wait_readable(fds, timeout):
                raise TimeoutError(f"no answer from the supervising process (pid {pid}) within {timeout}s")
        finally:
            if pidfd is not None:
                os.close(pidfd)
        with self._lock:
            return self._payload

    def close(self) -> None:
        with self._lock:
            self._closed = True
            os.close(self._r)
            os.close(self._w)
