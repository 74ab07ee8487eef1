"""``stemnb.spawn`` and the supervisor's side of an isolate.

The process that spawns an isolate *supervises* it: it holds the isolate's control connection,
its pause capabilities and its error listeners, and notices its end however it comes (return,
error, kill, crash). The root process also keeps the exit listeners of the isolates it spawns; a
supervisor that is itself a child keeps them in the root's exit registry (``_exits``), which
outlives it, so the exit port is told exactly once even when the supervisor dies first.
"""

from __future__ import annotations

import itertools
import pickle
import threading
from collections.abc import Callable
from concurrent.futures import Future as _CFuture
from typing import Any

import cloudpickle

from . import _exits
from ._exceptions import CapabilityError, ClosedError, RemoteError
from ._future import Future
from ._hub import hub
from ._isolate import Capability, Isolate
from ._isolate_forward import registry_key
from ._output import Origin, capture_origin
from ._ports import SendPort
from ._process import ChildProcess, start_child, wait_connected
from ._runtime import ensure_started, inherited_exit_registry, report_uncaught, track_closeable
from ._serialize import Payload, dumps, loads

_ids = itertools.count(1)
_supervised: dict[int, _Supervised] = {}
_ended_names: dict[int, str] = {}  # debug names of the isolates that ended, newest last, for error messages
_ENDED_NAMES_MAX = 1024
_supervisor_port: SendPort | None = None
_supervisor_lock = threading.Lock()


class _EndIsolatesAtExit:
    """Kills the isolates this process supervises when it exits, as Dart ends them with main.

    Without it, ``multiprocessing``'s exit hook would wait forever for a still-running isolate.
    """

    def close(self) -> None:
        records = [r for r in list(_supervised.values()) if r.child is not None and r.alive]
        for record in records:
            record.child.kill()  # type: ignore[union-attr]
        for record in records:  # their exit listeners (maybe in other processes) are told first
            if record.thread is not None and record.thread is not threading.current_thread():
                record.thread.join(10.0)


_end_at_exit = _EndIsolatesAtExit()


def _supervisor_send_port() -> SendPort:
    """This process's supervisor port (a hub handler answering forwarded Isolate calls)."""
    global _supervisor_port
    with _supervisor_lock:
        if _supervisor_port is None or _supervisor_port._address != hub().address:
            track_closeable(_end_at_exit)
            h = hub()
            port_id = h.register(_on_supervisor_message)
            _supervisor_port = SendPort(h.address, port_id, "isolate-supervisor")
        return _supervisor_port


def supervised(isolate_id: int) -> _Supervised | None:
    """This process's record of isolate ``isolate_id`` while it lives, else None."""
    return _supervised.get(isolate_id)


def _on_supervisor_message(payload: Payload) -> None:
    isolate_id, method, args, reply = loads(payload, what="isolate control request")
    target = _supervised.get(isolate_id)

    def answer() -> None:
        try:
            if target is None:
                reply.send((True, handle_ended(isolate_id, method, args)))
            else:
                reply.send((True, target.handle(method, args)))
        except Exception as exc:  # noqa: BLE001 - the caller re-raises it
            reply.send((False, exc))

    threading.Thread(target=answer, daemon=True, name="stemnb-isolate-rpc").start()


def handle_ended(isolate_id: int, method: str, args: tuple) -> Any:
    """Answer a request about an isolate whose record is gone (it ended).

    As in Dart: ``is_alive`` is False, ``kill`` and listener removals do nothing, a new exit
    listener gets its response at once; anything else raises ClosedError.
    """
    if method == "is_alive":
        return False
    if method in ("kill", "remove_on_exit_listener", "remove_error_listener", "add_error_listener"):
        return None
    if method == "add_on_exit_listener":
        args[0].send(args[1])
        return None
    name = _ended_names.get(isolate_id)
    what = f"isolate {name!r}" if name is not None else f"isolate #{isolate_id}"
    raise ClosedError(f"{what} has ended; cannot {method} it")


class _Supervised:
    """The supervisor's record of one isolate."""

    def __init__(self, isolate_id: int, name: str, errors_fatal: bool, origin: Origin,
                 exits: str | None = None) -> None:
        self.id = isolate_id
        self.name = name
        self.errors_fatal = errors_fatal
        self.origin = origin
        self.child: ChildProcess | None = None
        self.lock = threading.Condition()
        self.capabilities: set[Capability] = set()
        self.error_listeners: list[SendPort] = []
        self.exit_listeners: list[tuple[SendPort, Any]] = []  # kept here only without a registry
        self.exits = exits  # the exit registry that keeps the exit listeners instead, if any
        self.alive = True
        self.killed = False  # killed IMMEDIATE: its process is being ended, it applies nothing more
        self.exitcode: int | None = None
        self.acks = 0
        self.sent = 0
        self.send_lock = threading.Lock()
        self.ready: _CFuture = _CFuture()
        self.thread: threading.Thread | None = None  # runs serve(), then tells the exit listeners

    # -- requests from handles ------------------------------------------------------------------
    def handle(self, method: str, args: tuple) -> Any:
        if method == "is_alive":
            return self.alive
        if method == "add_on_exit_listener":
            return self._add_exit_listener(*args)
        if method == "remove_on_exit_listener":
            with self.lock:
                self.exit_listeners = [(p, r) for p, r in self.exit_listeners if p != args[0]]
            return None
        if method == "add_error_listener":
            with self.lock:
                self.error_listeners.append(args[0])
            return None
        if method == "remove_error_listener":
            with self.lock:
                if args[0] in self.error_listeners:
                    self.error_listeners.remove(args[0])
            return None
        if method == "kill":
            return self._kill(args[0])
        self._check_alive(method)
        if method == "pause":
            with self.lock:
                self.capabilities.add(args[0])
            return self._control(("pause", args[0]))
        if method == "resume":
            with self.lock:
                if args[0] not in self.capabilities:
                    raise CapabilityError(f"{args[0]!r} does not pause isolate {self.name!r}")
                self.capabilities.discard(args[0])
            return self._control(("resume", args[0]))
        if method == "set_errors_fatal":
            self.errors_fatal = args[0]
            return self._control(("errors_fatal", args[0]))
        if method == "ping":
            return self._control(("ping", *args))
        raise ValueError(f"unknown isolate request {method!r}")

    def _check_alive(self, method: str) -> None:
        if not self.alive:
            raise ClosedError(f"isolate {self.name!r} has ended; cannot {method} it")
        if self.killed:
            raise ClosedError(f"isolate {self.name!r} was killed; cannot {method} it")

    def _add_exit_listener(self, port: SendPort, response: Any) -> None:
        with self.lock:
            if self.alive:
                self.exit_listeners.append((port, response))
                return
        port.send(response)  # already dead: Dart sends the response at once

    def _kill(self, priority: str) -> None:
        if not self.alive:
            return
        if priority == Isolate.IMMEDIATE:
            self.killed = True
            self.child.kill()  # type: ignore[union-attr]
        else:
            try:
                self._control(("kill",), wait=False)
            except ClosedError:
                pass

    def _control(self, msg: tuple, wait: bool = True) -> None:
        """Send a control message; with ``wait``, return once the isolate has applied it."""
        with self.send_lock:
            self.sent += 1
            seq = self.sent
            try:  # cloudpickle: a ping response may be a lambda, as in any message
                self.child.conn.send_bytes(cloudpickle.dumps((seq, *msg), protocol=5))  # type: ignore[union-attr]
            except OSError:
                raise ClosedError(f"isolate {self.name!r} has ended") from None
        if wait:
            with self.lock:
                if not self.lock.wait_for(lambda: self.acks >= seq or not self.alive, timeout=60):
                    raise TimeoutError(f"isolate {self.name!r} did not answer {msg[0]!r} within 60s")
                if self.acks < seq:  # it ended first: what was asked never happened
                    raise ClosedError(f"isolate {self.name!r} ended before it could {msg[0]}")

    # -- the isolate's messages -----------------------------------------------------------------
    def serve(self) -> None:
        conn = self.child.conn  # type: ignore[union-attr]
        assert conn is not None, "serve() runs once the isolate has connected"
        while True:
            try:
                msg = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                break
            try:
                self._handle_message(msg)
            except Exception as exc:  # noqa: BLE001 - this thread must live until the isolate ends
                from ._runtime import report_uncaught

                report_uncaught(exc, f"supervisor of isolate {self.name!r}")
        self._ended()

    def tell_registry(self, op: str, *args: Any) -> None:
        """Send ``op`` about this isolate to its exit registry (see :func:`stemnb._exits.call`)."""
        assert self.exits is not None, "only a supervisor with an exit registry tells it"
        _exits.call(self.exits, op, registry_key(_supervisor_send_port(), self.id), *args)

    def _handle_message(self, msg: tuple) -> None:
        kind = msg[0]
        if kind == "ack":
            with self.lock:
                self.acks = msg[1]
                self.lock.notify_all()
        elif kind == "out":
            self.origin.write(msg[1], msg[2])
        elif kind == "error":
            self._report_error(*msg[1:])

    def _report_error(self, type_name: str, message: str, tb: str) -> None:
        with self.lock:
            listeners = list(self.error_listeners)
        err = RemoteError(type_name, message, tb)
        for port in listeners:
            port.send([f"{type_name}: {message}" if message else type_name, tb, err])

    def _ended(self) -> None:
        from ._shm import sweep_pid

        self.exitcode = self.child.join(10.0)  # type: ignore[union-attr]
        sweep_pid(self.child.pid)  # type: ignore[union-attr]  # before telling anyone it has ended
        with self.lock:
            self.alive = False
            listeners, self.exit_listeners = self.exit_listeners, []
            self.lock.notify_all()
        if self.exits is not None:
            try:
                self.tell_registry("ended")  # the registry tells the exit listeners
            except ClosedError:
                pass  # the root is gone: so is every listener's process
        for port, response in listeners:
            try:
                port.send(response)
            except Exception as exc:  # noqa: BLE001 - one bad listener must not silence the others
                report_uncaught(exc, f"exit listener of isolate {self.name!r}")
        _supervised.pop(self.id, None)
        _ended_names[self.id] = self.name
        if len(_ended_names) > _ENDED_NAMES_MAX:
            del _ended_names[next(iter(_ended_names))]


def spawn(entry: Callable[[Any], Any], message: Any, *, paused: bool = False, errors_are_fatal: bool = True,
          on_exit: SendPort | None = None, on_error: SendPort | None = None,
          debug_name: str | None = None) -> Future:
    """Start a long-lived isolate running ``entry(message)`` (sync or ``async``); Dart's ``Isolate.spawn``.

    Returns a :class:`~stemnb.Future` of the :class:`Isolate`, resolved once the isolate runs
    (with ``paused=True``, before ``entry`` starts: resume ``isolate.pause_capability``). The
    isolate lives until ``entry`` has returned and it has no open receive port, or it is killed.

    Raises:
        TypeError: ``entry`` is not callable, or ``on_exit``/``on_error`` is not a SendPort.
        SerializationError: ``entry`` or ``message`` cannot be pickled.
    """
    if not callable(entry):
        raise TypeError(f"entry must be callable, not {type(entry).__name__}")
    for label, port in (("on_exit", on_exit), ("on_error", on_error)):
        if port is not None and not isinstance(port, SendPort):
            raise TypeError(f"{label} must be a stemnb.SendPort, not {type(port).__name__}")
    ensure_started()
    payload = dumps((entry, message), what="spawn message")
    isolate_id = next(_ids)
    name = debug_name or f"{getattr(entry, '__name__', 'isolate')}-{isolate_id}"
    exits = inherited_exit_registry()  # None in the root: it answers its own exit listeners
    record = _Supervised(isolate_id, name, errors_are_fatal, capture_origin(), exits)
    if on_error is not None:
        record.error_listeners.append(on_error)
    if on_exit is not None:
        record.exit_listeners.append((on_exit, None))
    cap = Capability() if paused else None
    if cap is not None:
        record.capabilities.add(cap)
    supervisor = _supervisor_send_port()
    future: Future = Future(debug_name=f"spawn {name}")
    future.set_running_or_notify_cancel()
    config = {"payload": payload, "errors_fatal": errors_are_fatal, "pause": cap, "id": isolate_id,
              "supervisor": supervisor, "exits": exits}

    def start() -> None:
        try:
            _start_supervised(record, config, name)
        except BaseException as exc:  # noqa: BLE001
            record.alive = False
            future._settle(exception=exc)
            return
        future._settle(Isolate(supervisor, isolate_id, record.child.pid, name, cap, exits))  # type: ignore[union-attr]
        record.serve()

    record.thread = threading.Thread(target=start, daemon=True, name=f"stemnb-supervise-{name}")
    record.thread.start()
    return future


def _start_supervised(record: _Supervised, config: dict[str, Any], name: str) -> None:
    """Start the isolate's process and wait for it to connect; raise if it cannot start.

    With an exit registry, its exit listeners move there before the process exists, and the
    registry learns the pid before this process could reap it (so its pidfd is the right process).
    """
    if record.exits is not None:
        record.tell_registry("register", [(port, dumps(response, what="exit response"))
                                          for port, response in record.exit_listeners])
        record.exit_listeners = []
    try:
        record.child = start_child("isolate", config, name=name).result()
        _supervised[record.id] = record
        if record.exits is not None:  # before wait_connected(), which may reap the process
            record.tell_registry("started", record.child.pid)
        wait_connected(record.child)
    except BaseException:
        if record.exits is not None:
            _forget(record)
        raise


def _forget(record: _Supervised) -> None:
    """Drop a never-started isolate's registry entry; its exit listeners are not told (no isolate ran)."""
    try:
        record.tell_registry("forget")
    except ClosedError:
        pass
