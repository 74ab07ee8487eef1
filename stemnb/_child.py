"""What a child process runs first: process hygiene, then its role (pool worker or isolate).

Hygiene: the child dies with its parent (``PR_SET_PDEATHSIG`` plus a check that the parent is
still the one that started it), ignores SIGINT (a notebook interrupt hits the whole process group;
the parent decides what to cancel), and belongs to the parent's session.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Any

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)


def main(bootstrap: dict[str, Any]) -> None:
    """Entry point of every stemnb child process."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # blocked since the fork (see _process)
    _die_with_parent(bootstrap["parent_pid"])
    os.environ["STEMNB_SESSION"] = bootstrap["session"]
    from . import _runtime
    from ._process import connect

    conn = connect(bootstrap["parent_address"], "child", bootstrap["token"])
    _runtime.enter_child(bootstrap)
    try:
        if bootstrap["role"] == "pool":
            from ._worker_loop import serve

            serve(conn, bootstrap["config"])
        else:
            from ._isolate_child import serve_isolate

            serve_isolate(conn, bootstrap)
    finally:
        _runtime.leave_child()
        sys.stdout.flush()
        sys.stderr.flush()
