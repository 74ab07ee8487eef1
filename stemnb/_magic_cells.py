"""The isolate side of the ``%stem`` magics: run a cell's source in an isolate.

Kept apart from ``_magics`` so that isolates import neither IPython nor ipywidgets: these
functions travel to the isolate by reference and only need the standard library and stemnb.
"""

from __future__ import annotations

import linecache
from collections.abc import Iterator
from typing import Any

CELL_NAME = "__stem__"


def exec_cell(source: str, pushed: dict[str, Any], pull: list[str], filename: str) -> dict[str, Any]:
    """Execute ``source`` with the ``pushed`` variables as globals; return the ``pull`` names' values.

    Raises:
        NameError: a name in ``pull`` is not defined once the cell has run.
        Exception: whatever the cell raises, unchanged.
    """
    namespace: dict[str, Any] = {"__name__": CELL_NAME, **pushed}
    _remember_source(source, filename)
    exec(compile(source, filename, "exec"), namespace)
    missing = [name for name in pull if name not in namespace]
    if missing:
        raise NameError(f"--pull names {', '.join(missing)} are not defined when the cell ends; "
                        "assign them in the cell or drop them from --pull")
    return {name: namespace[name] for name in pull}


def _remember_source(source: str, filename: str) -> None:
    # tracebacks show the cell's lines, as they do for notebook cells
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)


class Inbox:
    """The ``inbox`` a ``%%stem spawn`` cell reads: the messages ``%stem send NAME EXPR`` sends.

    ``for msg in inbox`` or ``inbox.receive(timeout)``; each message taken is acknowledged to the
    notebook so that ``%stem ps`` can show how many are still queued.
    """

    def __init__(self, port: Any, status: Any) -> None:
        self._port = port
        self._status = status

    @property
    def send_port(self) -> Any:
        """The SendPort of this inbox."""
        return self._port.send_port

    def receive(self, timeout: float | None = None) -> Any:
        """Return the next message, waiting up to ``timeout`` seconds (as ``ReceivePort.receive``)."""
        message = self._port.receive(timeout=timeout)
        self._status.send(("ack",))
        return message

    def __iter__(self) -> Iterator[Any]:
        for message in self._port:
            self._status.send(("ack",))
            yield message

    def close(self) -> None:
        """Close the inbox; a ``for`` loop over it ends."""
        self._port.close()


def spawned_cell(message: tuple[str, dict[str, Any], str, Any]) -> None:
    """Entry point of a ``%%stem spawn`` isolate: announce an inbox, then run the cell's source.

    ``message`` is ``(source, pushed variables, filename, status SendPort)``; the status port
    first gets ``("inbox", SendPort)``, then one ``("ack",)`` per message the cell takes.
    """
    from ._ports import ReceivePort

    source, pushed, filename, status = message
    port = ReceivePort(debug_name="inbox")
    status.send(("inbox", port.send_port))
    namespace: dict[str, Any] = {"__name__": CELL_NAME, "inbox": Inbox(port, status), **pushed}
    _remember_source(source, filename)
    exec(compile(source, filename, "exec"), namespace)
