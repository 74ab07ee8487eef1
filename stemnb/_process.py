"""Starting child processes with loky's process machinery, and meeting them on a socket.

Children are fresh interpreters started by loky's fork+exec (so the kernel's threads and memory are
never forked), in the parent's process group, running stemnb's own light bootstrap
(``python -m stemnb._boot``, see ``_boot``) instead of loky's. Each child connects back to a
listening abstract Unix socket of its parent and introduces itself with a token; the parent pairs
the connection with the process it started. All spawning happens on one long-lived thread, so the
children's parent-death signal (``PR_SET_PDEATHSIG``, tied to the spawning *thread*) only fires when
the parent process dies.
"""

from __future__ import annotations

import os
import pickle
import queue
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future as _CFuture
from multiprocessing.connection import Connection
from typing import Any

from ._exceptions import IsolateExitedError
from ._session import current_session

_HANDSHAKE_TIMEOUT = 60.0


class ChildProcess:
    """A started child: its loky process object and, once it has connected, its connection."""

    def __init__(self, process: Any, token: str) -> None:
        self.process = process
        self.token = token
        self.pid: int = process.pid
        self.conn: Connection | None = None

    def kill(self) -> None:
        """Send SIGKILL (ignored if the process is already gone)."""
        try:
            os.kill(self.pid, 9)
        except ProcessLookupError:
            pass

    def join(self, timeout: float | None = None) -> int | None:
        """Wait for the process to end; return its exit code (negative: signal) or None."""
        self.process.join(timeout)
        return self.process.exitcode

    def exit_error(self, what: str) -> IsolateExitedError:
        """The error describing this process's end, after joining it."""
        return IsolateExitedError.for_exit(what, self.pid, self.join(5.0))


class _Listener:
    """The process's listening socket; children connect here and send their token."""

    def __init__(self) -> None:
        self.address = f"\0{current_session().prefix}-{os.getpid()}-{os.urandom(3).hex()}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.address)
        self._sock.listen(64)
        self._lock = threading.Lock()
        self._waiting: dict[str, _CFuture] = {}
        self._handlers: dict[str, Callable[[Connection, Any], None]] = {}
        threading.Thread(target=self._accept_loop, name="stemnb-listener", daemon=True).start()

    def expect(self, token: str) -> _CFuture:
        """A future that resolves with the connection of the child that presents ``token``."""
        fut: _CFuture = _CFuture()
        with self._lock:
            self._waiting[token] = fut
        return fut

    def forget(self, token: str) -> None:
        with self._lock:
            self._waiting.pop(token, None)

    def on_hello(self, kind: str, handler: Callable[[Connection, Any], None]) -> None:
        """Route connections whose hello is ``(kind, info)`` to ``handler(conn, info)``."""
        self._handlers[kind] = handler

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._greet, args=(sock,), daemon=True, name="stemnb-greet").start()

    def _greet(self, sock: socket.socket) -> None:
        conn = Connection(sock.detach())
        try:
            kind, info = pickle.loads(conn.recv_bytes())
        except Exception:
            conn.close()
            return
        if kind == "child":
            with self._lock:
                fut = self._waiting.pop(info, None)
            if fut is None or not fut.set_running_or_notify_cancel():
                conn.close()
            else:
                fut.set_result(conn)
            return
        handler = self._handlers.get(kind)
        if handler is None:
            conn.close()
        else:
            handler(conn, info)


_listener: _Listener | None = None
_listener_pid: int | None = None
_listener_lock = threading.Lock()


def listener() -> _Listener:
    """This process's listener, started on first use."""
    global _listener, _listener_pid
    with _listener_lock:
        if _listener is None or _listener_pid != os.getpid():
            _listener = _Listener()
            _listener_pid = os.getpid()
        return _listener


def connect(address: str, kind: str, info: Any) -> Connection:
    """Connect to the listener at ``address`` and say hello as ``(kind, info)``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()  # the listener's process is gone: leave no descriptor behind
        raise
    conn = Connection(sock.detach())
    conn.send_bytes(pickle.dumps((kind, info)))
    return conn


# --------------------------------------------------------------------------- spawning
_spawn_queue: queue.SimpleQueue = queue.SimpleQueue()
_spawner: threading.Thread | None = None
_spawner_pid: int | None = None


def _spawn_loop() -> None:
    # Children inherit this thread's signal mask across fork and exec: with SIGINT blocked, a
    # notebook interrupt (sent to the whole process group) that lands while a child is still
    # starting stays pending until the child has set SIGINT to ignored (_child.main), instead of
    # printing a KeyboardInterrupt traceback from the middle of its imports.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    while True:
        job, fut = _spawn_queue.get()
        if not fut.set_running_or_notify_cancel():
            continue
        try:
            fut.set_result(job())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiter
            fut.set_exception(exc)


def _on_spawner(job: Callable[[], Any]) -> _CFuture:
    global _spawner, _spawner_pid
    with _listener_lock:
        if _spawner is None or _spawner_pid != os.getpid():
            _spawner = threading.Thread(target=_spawn_loop, name="stemnb-spawner", daemon=True)
            _spawner.start()
            _spawner_pid = os.getpid()
    fut: _CFuture = _CFuture()
    _spawn_queue.put((job, fut))
    return fut


def _process_class() -> type:
    """loky's Process, started with loky's fork+exec but running stemnb's own child bootstrap.

    * The child runs ``python -m stemnb._boot``, which prepares the process as loky's bootstrap
      would (see ``_boot``) without importing the ``loky`` package: a third fewer imports before
      a pool process can take its first call.
    * What the child needs is pickled by plain ``pickle`` (the bootstrap is plain data): no
      ``multiprocessing`` resource tracker is started for it, as loky's preparation does.
    * A closed or broken ``sys.stdout`` cannot stop a start: loky flushes the standard streams
      first and lets any error escape, so a notebook whose ``sys.stdout`` was closed or replaced
      would never get a process again. The flush is kept; its errors are ignored (as
      ``multiprocessing`` does).
    """
    from ._boot import flush_std_streams
    from ._loky import loky_imports

    with loky_imports:
        from loky.backend.popen_loky_posix import Popen
        from loky.backend.process import LokyProcess

    class _Popen(Popen):
        def __init__(self, process_obj: Any) -> None:
            flush_std_streams()
            self.returncode = None
            self._fds: list[int] = []
            self._launch(process_obj)

        def _launch(self, process_obj: Any) -> None:
            _launch_boot(self, process_obj)

    class _Process(LokyProcess):
        @staticmethod
        def _Popen(process_obj: Any) -> _Popen:
            return _Popen(process_obj)

    return _Process


def _launch_boot(popen: Any, process_obj: Any) -> None:
    """loky's ``Popen._launch``, with ``stemnb._boot`` as the child's program (see :func:`_process_class`).

    The child inherits the read end of a pipe carrying its preparation and bootstrap, the write
    end of another (``popen.sentinel`` reads end-of-file once the child is gone), and the
    resource tracker's pipe.
    """
    from multiprocessing import util

    from ._boot import preparation
    from ._loky import loky_imports
    from ._shm import _resource_tracker

    with loky_imports:
        from loky.backend.fork_exec import fork_exec
        from loky.backend.reduction import _mk_inheritable

    tracker_fd = _resource_tracker()._resource_tracker.getfd()
    data = pickle.dumps((preparation(process_obj.name, tracker_fd), process_obj._args[0]), protocol=5)
    parent_r, child_w = os.pipe()
    child_r, parent_w = os.pipe()
    with os.fdopen(parent_w, "wb") as pipe:
        try:
            cmd = [sys.executable, "-m", "stemnb._boot", "--process-name", str(process_obj.name),
                   "--pipe", str(_mk_inheritable(child_r))]
            _mk_inheritable(child_w)
            _mk_inheritable(tracker_fd)
            popen._fds += [child_r, child_w, tracker_fd]
            popen.pid = fork_exec(cmd, popen._fds, env=process_obj.env)
            popen.sentinel = parent_r
        finally:
            util.Finalize(popen, os.close, (parent_r,))
            os.close(child_r)
            os.close(child_w)
        pipe.write(data)


def start_child(role: str, config: dict[str, Any], *, name: str | None = None,
                env: dict[str, str] | None = None) -> _CFuture:
    """Start a child running ``role`` with ``config``; returns a future of its ChildProcess.

    ``env`` adds to (or overrides) the environment the child inherits. The future resolves once
    the process has started (not yet connected); use :func:`wait_connected` for its connection.
    """
    lst = listener()
    token = os.urandom(8).hex()
    hello = lst.expect(token)
    bootstrap = {
        "exits": exit_registry_address(),
        "role": role,
        "token": token,
        "parent_address": lst.address,
        "parent_pid": os.getpid(),
        "session": current_session().id,
        "config": config,
        "name": name,
    }

    def job() -> ChildProcess:
        proc = _process_class()(args=(bootstrap,), name=name or role, env=env)  # its child runs _child.main
        proc.start()
        child = ChildProcess(proc, token)
        child.hello = hello  # type: ignore[attr-defined]
        return child

    return _on_spawner(job)


def exit_registry_address() -> str:
    """The exit registry a child started here reports to (see ``_exits``): the one this process
    was given, else this process's own, served on its listener (``_exits`` is imported only when a
    supervisor connects)."""
    from ._runtime import inherited_exit_registry

    inherited = inherited_exit_registry()
    if inherited is not None:
        return inherited
    lst = listener()
    lst.on_hello("exits", _serve_exit_registry)
    return lst.address


def _serve_exit_registry(conn: Connection, info: Any) -> None:
    from ._exits import serve

    serve(conn, info)


def wait_readable(fds: list[int], timeout: float | None = None) -> bool:
    """Wait until one of ``fds`` is readable (a pidfd: its process has ended); False on timeout.

    ``poll`` rather than ``select``: a process with many files open gets descriptors above
    1024, which ``select`` refuses.
    """
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


def open_pidfd(pid: int) -> int | None:
    """A pidfd of process ``pid`` (readable once it has ended), or None without pidfds or if it is reaped.

    A pidfd stays bound to its process, so a pid reused after the process was reaped cannot fool it.
    """
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def wait_connected(child: ChildProcess, timeout: float = _HANDSHAKE_TIMEOUT) -> Connection:
    """Wait for ``child`` to connect back; raise IsolateExitedError if it died first."""
    import time
    from concurrent.futures import TimeoutError as _Timeout

    hello: _CFuture = child.hello  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        try:
            child.conn = hello.result(timeout=0.05)  # wakes at once when the child says hello
            return child.conn
        except _Timeout:
            pass
        if child.process.exitcode is not None or not child.process.is_alive():
            listener().forget(child.token)
            raise child.exit_error("process")
        if time.monotonic() > deadline:
            child.kill()
            listener().forget(child.token)
            raise IsolateExitedError(f"process (pid {child.pid}) did not connect within {timeout}s", pid=child.pid)
