"""The event gate of this process: pause/resume with capabilities, and "before next event" work.

While any capability pauses the process, no port of it delivers a message (they queue; none is
lost). Work that must happen at the next event boundary (a kill with ``BEFORE_NEXT_EVENT``, a ping
with that priority) waits until user code is between events: blocked in ``receive()``, or the
isolate's event loop is idle.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

_lock = threading.RLock()
_paused: set[Any] = set()
_ports: weakref.WeakSet = weakref.WeakSet()
_deferred: list[Callable[[], None]] = []
_in_event = True  # the main thread is running user code (not waiting for an event)
_kill_pending: Callable[[], None] | None = None
_opened = threading.Event()
_opened.set()


def is_open() -> bool:
    return not _paused


def add_port(port: Any) -> None:
    with _lock:
        _ports.add(port)


def pause(capability: Any) -> None:
    with _lock:
        _paused.add(capability)
        _opened.clear()


def resume(capability: Any) -> bool:
    """Remove one pause; True if the process is now running. Unknown capabilities are ignored."""
    with _lock:
        _paused.discard(capability)
        opened = not _paused
        if opened:
            _opened.set()
        ports = list(_ports) if opened else []
    for port in ports:
        port._gate_opened()
    if opened:
        at_boundary_if_idle()
    return opened


def wait_open() -> None:
    """Block until no capability pauses this process."""
    _opened.wait()


def hold_while_paused() -> None:
    """Block the main thread, as between events, until no capability pauses this process.

    Run as a callback on an isolate's event loop, it keeps timers and task steps of async code
    from running while paused. A pending kill still happens (the thread counts as idle).
    """
    with _lock:
        if not _paused:
            return
        was_in_event = _in_event
    set_in_event(False)
    _opened.wait()
    set_in_event(was_in_event)


def set_in_event(flag: bool) -> None:
    """The main thread enters (True) or leaves (False) user code; leaving runs deferred work."""
    global _in_event
    with _lock:
        _in_event = flag
    if not flag:
        at_boundary_if_idle()


def defer(work: Callable[[], None]) -> None:
    """Run ``work`` at the next event boundary while not paused (now, if idle and running)."""
    with _lock:
        _deferred.append(work)
    at_boundary_if_idle()


def request_kill(kill: Callable[[], None]) -> None:
    """Kill at the next event boundary (paused or not); now, if the main thread is idle."""
    global _kill_pending
    with _lock:
        _kill_pending = kill
        idle = not _in_event
    if idle:
        kill()


def at_boundary_if_idle() -> None:
    with _lock:
        if _in_event:
            return
    at_boundary()


def at_boundary() -> None:
    """Called between events: carry out a pending kill, then deferred work if not paused."""
    with _lock:
        kill = _kill_pending
        work = [] if _paused or kill else list(_deferred)
        if not _paused and not kill:
            _deferred.clear()
    if kill is not None:
        kill()
    for item in work:
        item()
