"""A flag with :class:`threading.Event`'s interface whose lock is made only if someone waits.

A worker keeps two such flags per task (settled, asked to terminate) and almost always only sets
and reads them. ``threading.Event()`` builds a ``Condition`` and a lock at once: a tenth of the
worker's own Python per no-op task went on making them.
"""

from __future__ import annotations

import threading

__all__ = ["Flag"]

_MAKING = threading.Lock()  # makes each flag's event once


class Flag:
    """``is_set`` / ``set`` / ``clear`` / ``wait`` as on :class:`threading.Event`."""

    __slots__ = ("_set", "_event")

    def __init__(self) -> None:
        self._set = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        event = self._event
        if event is not None:
            event.set()

    def clear(self) -> None:
        self._set = False
        event = self._event
        if event is not None:
            event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the flag is set (True) or ``timeout`` seconds passed (False)."""
        if self._set:
            return True
        event = self._event
        if event is None:
            with _MAKING:
                event = self._event
                if event is None:
                    event = self._event = threading.Event()
        if self._set:  # set before the event existed: set() found none to set
            event.set()
        return event.wait(timeout)

    def __repr__(self) -> str:
        return f"<Flag {'set' if self._set else 'unset'}>"
