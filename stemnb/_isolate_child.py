"""The isolate side of ``spawn``: run the entry, obey control messages, report errors, end.

A control thread applies the supervisor's requests (pause, resume, kill, ping, errors-fatal) and
acknowledges each, so a ``pause()`` that has returned is already in force. The main thread runs
``entry(message)``, then this isolate's event loop (``listen`` callbacks) until no receive port
is open.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import pickle
import sys
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

from . import _gate
from ._exceptions import ClosedError
from ._output import ForwardStream
from ._runtime import set_isolate_loop, set_uncaught_handler
from ._serialize import loads

_handle: Any = None
_state: _IsolateState | None = None


class _IsolateState:
    def __init__(self, conn: Connection, errors_fatal: bool, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.errors_fatal = errors_fatal
        self.loop = loop

    def send(self, msg: tuple) -> None:
        data = pickle.dumps(msg, protocol=5)
        with self.lock:
            self.conn.send_bytes(data)

    def output(self, stream: str, text: str) -> None:
        try:
            self.send(("out", stream, text))
        except OSError:
            pass


def current_handle() -> Any:
    """The ``Isolate`` handle of this process if it is a spawned isolate, else None."""
    return _handle


def serve_isolate(conn: Connection, bootstrap: dict[str, Any]) -> None:
    """Run a spawned isolate to its end."""
    global _handle, _state
    from ._isolate import Isolate

    config = bootstrap["config"]
    _handle = Isolate(config["supervisor"], config["id"], os.getpid(), bootstrap["name"], config["pause"],
                      config.get("exits"))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    set_isolate_loop(loop)
    state = _state = _IsolateState(conn, config["errors_fatal"], loop)
    sys.stdout = ForwardStream("stdout", state.output)
    sys.stderr = ForwardStream("stderr", state.output)
    set_uncaught_handler(_uncaught)
    if config["pause"] is not None:
        _gate.pause(config["pause"])
    threading.Thread(target=_control_loop, args=(state,), daemon=True, name="stemnb-control").start()
    _gate.set_in_event(False)  # waiting to start (spawned paused) is between events: kills happen now
    _gate.wait_open()
    _gate.at_boundary()  # work held for the next event (a ping) goes before the entry runs
    _gate.set_in_event(True)
    try:
        entry, message = loads(config["payload"], what="spawn message")
        result = entry(message)
        if inspect.iscoroutine(result):
            loop.run_until_complete(result)
    except BaseException as exc:  # noqa: BLE001 - an uncaught error of the isolate
        _uncaught(exc)
    _run_events(loop)


def _run_events(loop: asyncio.AbstractEventLoop) -> None:
    from ._ports import _open_ports

    done = loop.create_future()

    def finish() -> None:
        if not done.done():
            done.set_result(None)

    def wake() -> None:
        loop.call_soon_threadsafe(finish)

    _open_ports.on_empty = wake
    if _open_ports.count() == 0:
        return
    _gate.set_in_event(False)
    loop.run_until_complete(done)


def _uncaught(exc: BaseException) -> None:
    state = _state
    if state is None:
        return
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    type_name = type(exc).__qualname__
    try:
        state.send(("error", type_name, str(exc), tb))
    except OSError:
        pass
    if state.errors_fatal:
        _die(1)


def _die(code: int = 0) -> None:
    try:
        isolates = sys.modules.get("stemnb._isolate_supervisor")
        if isolates is not None:  # end this isolate's own isolates and tell their exit listeners
            isolates._end_at_exit.close()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _control_loop(state: _IsolateState) -> None:
    from ._isolate import Isolate

    while True:
        try:
            seq, kind, *args = pickle.loads(state.conn.recv_bytes())
        except (EOFError, OSError):
            os._exit(1)  # the supervisor is gone
        if kind == "pause":
            _gate.pause(args[0])
            _call_soon(state, _gate.hold_while_paused)  # async code's timers are events too
        elif kind == "resume":
            _gate.resume(args[0])
            _call_soon(state, _gate.at_boundary)  # an async entry's next boundary is on its loop
        elif kind == "errors_fatal":
            state.errors_fatal = args[0]
        elif kind == "kill":
            _gate.request_kill(_die)
            _call_soon(state, _gate.at_boundary)
        elif kind == "ping":
            port, response, priority = args
            if priority == Isolate.IMMEDIATE:
                port.send(response)
            else:
                _gate.defer(functools.partial(port.send, response))
                _call_soon(state, _gate.at_boundary)
        try:
            state.send(("ack", seq))
        except OSError:
            os._exit(1)


def _call_soon(state: _IsolateState, fn: Any) -> None:
    try:
        state.loop.call_soon_threadsafe(fn)
    except RuntimeError:
        pass


def exit_current(port: Any, message: Any) -> None:
    """``Isolate.exit``: send ``message`` to ``port`` and end this isolate at once."""
    if _state is None:
        raise ClosedError("Isolate.exit() ends a spawned isolate; this process is not one")
    if port is not None:
        port.send(message)
    _die(0)
