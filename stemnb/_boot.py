"""The first code of every stemnb child process: ``python -m stemnb._boot --pipe FD``.

The parent starts each child with loky's fork+exec (see ``_process``), but not with loky's child
bootstrap: that one imports the whole ``loky`` package (its executor, psutil, json...), about a
third of a child's start-up imports, before any stemnb code runs. This module reads what the
parent wrote on the pipe, prepares the process as loky's ``spawn.prepare`` does for a stemnb child
(``sys.path``, working directory, process name and authkey, the session's resource tracker), then
runs ``_child.main`` with ``multiprocessing``'s exit-code rules. loky is imported later, and only if
the child needs its resource tracker (the first shared-memory segment it creates or unlinks).
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable
from typing import Any


def preparation(name: str, tracker_fd: int) -> dict[str, Any]:
    """What a child needs of its parent's state before running stemnb code (made in the parent)."""
    from multiprocessing import current_process

    try:
        cwd: str | None = os.getcwd()
    except FileNotFoundError:  # deleted under the parent: the child starts in it all the same
        cwd = None
    return {
        "name": name,
        "sys_path": list(sys.path),
        "dir": cwd,
        "authkey": bytes(current_process().authkey),
        "tracker_fd": tracker_fd,
    }


def _prepare(prep: dict[str, Any]) -> None:
    from multiprocessing import current_process

    from ._shm import inherit_tracker

    process = current_process()
    process.name = prep["name"]
    process.authkey = prep["authkey"]
    sys.path[:] = prep["sys_path"]
    if prep["dir"] is not None:
        os.chdir(prep["dir"])
    inherit_tracker(prep["tracker_fd"])
    _stdin_from_devnull()


def _stdin_from_devnull() -> None:
    """As in ``multiprocessing``'s children: the parent's stdin is not this process's to read."""
    try:
        if sys.stdin is not None:
            sys.stdin.close()
        sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - it lives as long as the process
    except (OSError, ValueError):
        pass


def run(entry: Callable[[Any], Any], argument: Any, name: str) -> int:
    """Call ``entry(argument)``; return the exit code ``multiprocessing`` would give the process.

    0 on return, a ``SystemExit``'s code (its text on stderr and 1 if that is not an int), and 1
    with the traceback on stderr for any other exception.
    """
    try:
        entry(argument)
        return 0
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code
        sys.stderr.write(f"{exc.code}\n")
        return 1
    except BaseException:  # noqa: BLE001 - reported like multiprocessing reports it
        import traceback

        sys.stderr.write(f"Process {name}:\n")
        traceback.print_exc()
        return 1
    finally:
        flush_std_streams()


def flush_std_streams() -> None:
    """Flush ``sys.stdout`` and ``sys.stderr``, ignoring a closed or broken stream (as
    ``multiprocessing`` does): its trouble must not stop a process from starting or ending."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001, S110 - a closed stream has nothing left to flush
            pass


def main(argv: list[str]) -> int:
    """Read the parent's pipe (``--pipe FD``), prepare the process, run its stemnb role."""
    fd = int(argv[argv.index("--pipe") + 1])
    with os.fdopen(fd, "rb") as pipe:
        prep, bootstrap = pickle.load(pipe)
    _prepare(prep)
    from ._child import main as child_main

    return run(child_main, bootstrap, prep["name"])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
