"""The exit registry: exit listeners of nested isolates, kept where they outlive any supervisor.

An isolate spawned by a child process (an isolate, a pool worker) is supervised by that child. If
the child dies abruptly (SIGKILL, ``os._exit``, a crash), its isolates die with it
(``PR_SET_PDEATHSIG``) and nothing there is left to tell their exit listeners. So a supervisor that
was itself started by stemnb keeps no exit listeners: it registers them with the *registry* of the
process at the top of its tree (the session's root), over one connection per supervisor process,
and reports each end there. The registry alone sends the responses: when the supervisor reports
the end, or, once the supervisor's connection breaks, when the isolate's process is gone (watched
through a pidfd, so a reused pid cannot fool it). One sender deciding once per isolate: every
listener is told exactly once, whoever dies first.
"""

from __future__ import annotations

import os
import pickle
import threading
from multiprocessing.connection import Connection
from typing import Any

from ._exceptions import ClosedError
from ._hub import _hand_over_payload, _owner_pid, hub
from ._ports import SendPort
from ._process import connect, listener, open_pidfd, wait_readable
from ._serialize import Payload, discard

Listener = tuple[SendPort, Payload]


class _Entry:
    """One live isolate's exit listeners, and its process once it has started."""

    __slots__ = ("listeners", "pid", "pidfd")

    def __init__(self, listeners: list[Listener]) -> None:
        self.listeners = listeners
        self.pid: int | None = None
        self.pidfd: int | None = None


class _Registry:
    """The registry's state: one entry per registered isolate that has not been answered yet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}

    def serve(self, conn: Connection, info: Any) -> None:
        """Answer one process's requests; when it is gone, answer for the isolates it supervised."""
        owned: set[str] = set()
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                break
            try:
                reply = (True, self.handle(pickle.loads(data), owned))
            except Exception as exc:  # noqa: BLE001 - the caller re-raises it
                reply = (False, exc)
            try:
                conn.send_bytes(pickle.dumps(reply, protocol=5))
            except OSError:
                break
        conn.close()
        self._take_over(owned)

    def handle(self, request: tuple, owned: set[str]) -> Any:
        """Apply one request; ``owned`` collects the isolates registered through this connection."""
        op, key, *args = request
        if op == "register":
            with self._lock:
                self._entries[key] = _Entry(list(args[0]))
            owned.add(key)
        elif op == "started":
            self._started(key, args[0])
        elif op in ("ended", "forget"):
            owned.discard(key)
            self._finish(key, answer=op == "ended")
        elif op == "add":
            self._add(key, *args)
        elif op == "remove":
            self._remove(key, args[0])
        elif op == "is_alive":
            with self._lock:
                return key in self._entries
        else:
            raise ValueError(f"unknown exit registry request {op!r}")
        return None

    def _started(self, key: str, pid: int) -> None:
        pidfd = open_pidfd(pid)  # the supervisor waits for this answer before it can reap ``pid``
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.pid, entry.pidfd, pidfd = pid, pidfd, None
        if pidfd is not None:
            os.close(pidfd)

    def _add(self, key: str, port: SendPort, payload: Payload) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                entry.listeners.append((port, payload))
                return
        _answer(port, payload)  # already ended: Dart sends the response at once

    def _remove(self, key: str, port: SendPort) -> None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return
            dropped = [p for p in entry.listeners if p[0] == port]
            entry.listeners = [p for p in entry.listeners if p[0] != port]
        for _port, payload in dropped:
            discard(payload)

    def _finish(self, key: str, answer: bool) -> None:
        """Remove the entry and, with ``answer``, tell its listeners (at most once: only one caller pops it)."""
        with self._lock:
            entry = self._entries.pop(key, None)
        if entry is None:
            return
        if entry.pidfd is not None:
            os.close(entry.pidfd)
        for port, payload in entry.listeners:
            if answer:
                _answer(port, payload)
            else:
                discard(payload)

    def _take_over(self, owned: set[str]) -> None:
        """The supervisor is gone: its isolates die with it; answer each once its process has ended."""
        from ._shm import sweep_pid

        for key in owned:
            with self._lock:
                entry = self._entries.get(key)
            if entry is None:
                continue
            if entry.pidfd is not None:
                wait_readable([entry.pidfd])  # readable once the process has exited
            if entry.pid is not None:
                sweep_pid(entry.pid)  # its supervisor would have, before telling anyone
            self._finish(key, answer=True)


def _answer(port: SendPort, payload: Payload) -> None:
    from ._runtime import report_uncaught

    try:
        hub().send(port._address, port._id, payload)
    except Exception as exc:  # noqa: BLE001 - one bad listener must not silence the others
        report_uncaught(exc, "an isolate's exit listener")


_registry = _Registry()
serve = _registry.serve  # the root's listener routes each supervisor's "exits" hello here (see _process)


class _Client:
    """This process's connection to a registry: one request, one reply, under a lock."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._conn: Connection | None = None
        self._lock = threading.Lock()

    def call(self, request: tuple) -> Any:
        try:
            with self._lock:
                if self._conn is None:
                    self._conn = connect(self.address, "exits", os.getpid())
                self._conn.send_bytes(pickle.dumps(request, protocol=5))
                ok, value = pickle.loads(self._conn.recv_bytes())
        except (EOFError, OSError):
            raise ClosedError("the session's root process, which keeps exit listeners, is gone") from None
        if not ok:
            raise value
        return value


_clients: dict[str, _Client] = {}
_clients_lock = threading.Lock()


def call(address: str, op: str, key: str, *args: Any) -> Any:
    """Send one request to the registry at ``address`` and return its answer.

    Requests: ``register(listeners)``, ``started(pid)``, ``ended()``, ``forget()`` (from the
    supervisor), and ``add(port, payload)``, ``remove(port)``, ``is_alive()`` (from any handle).
    Raises ClosedError if the registry's process is gone.
    """
    if address == listener().address:  # the registry is this process (a handle used in the root)
        return _registry.handle((op, key, *args), set())
    args = tuple(_handed_over(a, address) for a in args)
    with _clients_lock:
        client = _clients.get(address)
        if client is None:
            client = _clients[address] = _Client(address)
    return client.call((op, key, *args))


def _handed_over(arg: Any, address: str) -> Any:
    """Give the shared-memory segments of a payload (an exit response) to the registry's process."""
    if isinstance(arg, Payload):
        return _hand_over_payload(arg, _owner_pid(address))
    if isinstance(arg, list):
        return [(port, _handed_over(payload, address)) for port, payload in arg]
    return arg
