"""Kernel interrupts: the work a cell started stops when that cell is interrupted.

A notebook interrupt sends SIGINT to the whole process group; stemnb's children ignore it, so the
decision is the parent's. Work remembers the cell that submitted it (its :class:`~stemnb._output.Origin`).
When ``KeyboardInterrupt`` reaches a blocking stemnb wait, or a cell ends with
``KeyboardInterrupt`` (an IPython ``post_run_cell`` hook, installed on first use in a kernel),
every unfinished future of that cell is cancelled, which ends the processes running them.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from ._output import Origin

_lock = threading.Lock()
_by_cell: dict[Any, weakref.WeakSet] = {}
_hooked_shells: weakref.WeakSet = weakref.WeakSet()
_last_hooked: weakref.ref | None = None  # the shell hooked last: the common case, checked without a new weakref


def remember(future: Any, origin: Origin) -> None:
    """Record that ``future`` was submitted from ``origin``."""
    future.origin = origin
    cell = origin.cell_id
    if cell is None:
        return
    with _lock:
        futures = _by_cell.get(cell)
        if futures is None:
            futures = _by_cell[cell] = weakref.WeakSet()
        futures.add(future)
    shell = origin.shell
    if shell is not None and (_last_hooked is None or _last_hooked() is not shell) and shell not in _hooked_shells:
        _install_hook(shell)


def cancel_origin(origin: Origin | None) -> int:
    """Cancel every unfinished future submitted from the same cell as ``origin``; return how many."""
    if origin is None or origin.cell_id is None:
        return 0
    return cancel_cell(origin.cell_id)


def cancel_cell(cell_id: Any) -> int:
    with _lock:
        futures = list(_by_cell.pop(cell_id, ()))
    return sum(1 for f in futures if not f.done() and f.cancel())


def _install_hook(shell: Any) -> None:
    global _last_hooked
    with _lock:
        if shell in _hooked_shells:
            return
        _hooked_shells.add(shell)
        _last_hooked = weakref.ref(shell)

    def post_run_cell(result: Any) -> None:
        cell = _current_cell(shell)
        if isinstance(getattr(result, "error_in_exec", None), KeyboardInterrupt):
            cancel_cell(cell)
        else:  # finished cells keep nothing alive here
            with _lock:
                _by_cell.pop(cell, None) if _all_done(cell) else None

    shell.events.register("post_run_cell", post_run_cell)


def _all_done(cell: Any) -> bool:
    return all(f.done() for f in _by_cell.get(cell, ()))


def _current_cell(shell: Any) -> Any:
    try:
        return shell.kernel.get_parent().get("header", {}).get("msg_id")
    except Exception:  # noqa: BLE001
        return None
