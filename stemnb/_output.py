"""Worker output: forwarding ``print()`` from children, and showing it in the right notebook cell.

In a child, ``sys.stdout``/``sys.stderr`` become :class:`ForwardStream` objects that send text to
the parent. In the parent, :func:`capture_origin` remembers, when work is submitted, where its
output belongs (in a Jupyter kernel: the cell's parent message); :meth:`Origin.write` later writes
there from any thread. A token bucket caps the rate so a flood of output cannot freeze the
notebook; what is dropped is counted and reported once it calms down.
"""

from __future__ import annotations

import io
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

_FLUSH_AT = 8192


class ForwardStream(io.TextIOBase):
    """A text stream that hands complete lines (or 8 KiB chunks) to ``send(stream, text)``."""

    def __init__(self, name: str, send: Callable[[str, str], None]) -> None:
        super().__init__()
        self.name = name
        self._send = send
        self._buf: list[str] = []
        self._size = 0
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._buf.append(text)
            self._size += len(text)
            if "\n" not in text and self._size < _FLUSH_AT:
                return len(text)
            chunk = "".join(self._buf)
            self._buf.clear()
            self._size = 0
        self._send(self.name, chunk)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if not self._buf:
                return
            chunk = "".join(self._buf)
            self._buf.clear()
            self._size = 0
        self._send(self.name, chunk)


class RateLimiter:
    """Token bucket over characters: ``rate`` per second, bursts up to ``burst``."""

    def __init__(self, rate: float = 200_000, burst: float = 400_000) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = burst
        self._stamp = time.monotonic()
        self._dropped = 0
        self._lock = threading.Lock()

    def admit(self, n: int) -> tuple[int, int]:
        """How many of ``n`` characters may pass now, and how many were dropped before (reset)."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            allowed = int(min(n, max(self._tokens, 0)))
            self._tokens -= allowed
            self._dropped += n - allowed
            dropped_before = 0
            if allowed and self._dropped and allowed == n:
                dropped_before, self._dropped = self._dropped, 0
            return allowed, dropped_before


_limiter = RateLimiter()


class Origin:
    """Where output of work submitted from one place (a notebook cell, a script) should go."""

    def __init__(self, parent: Any, shell: Any) -> None:
        self.parent = parent
        self.shell = shell
        #: an id of the cell that submitted the work (its message id), or None outside a kernel
        self.cell_id: Any = parent.get("header", {}).get("msg_id") if isinstance(parent, dict) else None

    def write(self, stream: str, text: str) -> None:
        """Write ``text`` to ``stream`` ("stdout"/"stderr") of the originating cell."""
        allowed, dropped = _limiter.admit(len(text))
        target = sys.stderr if stream == "stderr" else sys.stdout
        if dropped:
            self._emit(sys.stderr, f"[stemnb: {dropped:,} characters of worker output dropped]\n")
        if allowed:
            self._emit(target, text[:allowed])

    def _emit(self, target: Any, text: str) -> None:
        setter = getattr(target, "set_thread_parent", None)
        if self.parent is None or setter is None:
            target.write(text)
            return
        # ipykernel >= 7: route this thread's output to the cell that submitted the work
        token = setter(self.parent)
        try:
            target.write(text)
        finally:
            target.reset_thread_parent(token)


_NOWHERE = Origin(None, None)  # outside a kernel every submission has the same origin


class _Seen:
    """What :func:`capture_origin` keeps between calls, so a submission in a loop costs a microsecond
    or two where asking IPython afresh (an import, the shell's ``kernel`` trait) cost five. Shells,
    kernels and origins are held weakly: a shut-down kernel is not kept alive here. Each field is
    replaced whole, so threads reading it meanwhile see one state or the other."""

    get_ipython: Callable[[], Any] | None = None  # IPython's, once IPython is imported
    kernel: tuple[weakref.ref, weakref.ref | None] | None = None  # the last shell seen and its kernel
    origin: weakref.ref[Origin] | None = None  # the origin of the last cell seen


def capture_origin() -> Origin:
    """Remember where output of work submitted now belongs.

    Every submission from one cell gets the same :class:`Origin` (a cell is one parent message)
    while any of its work is remembered.
    """
    shell, kernel = _kernel()
    if kernel is None:
        return _NOWHERE
    try:
        parent = kernel.get_parent()
    except Exception:  # noqa: BLE001
        parent = getattr(shell, "parent_header", None)
    origin = _Seen.origin() if _Seen.origin is not None else None
    if origin is None or origin.parent is not parent or origin.shell is not shell:
        origin = Origin(parent, shell)
        _Seen.origin = weakref.ref(origin)
    return origin


def _kernel() -> tuple[Any, Any]:
    """The IPython shell and its kernel if this process is a Jupyter kernel (without importing
    IPython); else a ``None`` kernel."""
    if _Seen.get_ipython is None:
        if "IPython" not in sys.modules:
            return None, None
        try:
            from IPython import get_ipython
        except Exception:  # noqa: BLE001
            return None, None
        _Seen.get_ipython = get_ipython
    try:
        shell = _Seen.get_ipython()
    except Exception:  # noqa: BLE001
        return None, None
    if shell is None:
        return None, None
    seen = _Seen.kernel
    if seen is None or seen[0]() is not shell:
        kernel = getattr(shell, "kernel", None)  # a terminal IPython has none
        seen = _Seen.kernel = (weakref.ref(shell), weakref.ref(kernel) if kernel is not None else None)
    return shell, seen[1]() if seen[1] is not None else None
