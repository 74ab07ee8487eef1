"""What every stemnb dashboard shares: kernel detection, lazy ipywidgets, a throttled refresher thread.

Widget *values* may be set from any thread (ipywidgets syncs them through the kernel's comm), so
dashboards refresh from a daemon thread and never block the kernel. Their controls take their
messages on the kernel subshell the frontend picked (see :func:`follow_frontend_subshell`), so a
click acts while another cell blocks. A dashboard whose pool or worker went away shows "closed"
and stops refreshing instead of raising.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from . import _html

INSTALL_HINT = 'pip install "stemnb[notebook]"'


def is_kernel() -> bool:
    """Return True inside a Jupyter kernel (an IPython shell that has a ``kernel``); never imports IPython."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def import_widgets() -> ModuleType:
    """Return the ``ipywidgets`` module. Raises ImportError with the install command when it is missing."""
    try:
        import ipywidgets
    except ImportError as exc:
        raise ImportError(f"stemnb's widgets need ipywidgets: {INSTALL_HINT}") from exc
    return ipywidgets


def close_tree(widget: Any) -> None:
    """Close ``widget`` and every widget below it (their comms go away with them)."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()


def follow_frontend_subshell(widget: Any) -> Any:
    """Have ``widget``'s frontend messages (clicks, typed values), and its children's, handled on the
    kernel subshell the frontend addressed them to; returns ``widget``.

    JupyterLab (4.6 checked) sends widget messages to a subshell thread (``commsOverSubshells``,
    default ``perCommTarget``), but ipykernel 7.4 re-routes an incoming comm message to the subshell
    that last *published* on that comm (``Comm._reply_subshell_for``): for a widget displayed by a
    cell that is the main shell, so its clicks would wait for whatever cell is running. A message
    that names no subshell (the setting ``disabled``, frontends without subshells) still goes to
    the main shell; kernels without this routing are left as they are.
    """
    comm = getattr(widget, "comm", None)
    if comm is not None and callable(getattr(comm, "_reply_subshell_for", None)):
        comm._reply_subshell_for = _subshell_in_header
    for child in getattr(widget, "children", ()):
        follow_frontend_subshell(child)
    return widget


def _subshell_in_header(_data: Any, subshell_id: str | None) -> str | None:
    return subshell_id


class Refresher:
    """A daemon thread that calls ``tick()`` every ``interval`` seconds, and at once on :meth:`wake`.

    Ticks are never closer than ``min_gap`` seconds, however often it is woken (the throttle).
    It stops when ``tick`` returns False, when ``tick`` raises (``on_error`` gets the exception),
    or on :meth:`stop`.
    """

    def __init__(self, tick: Callable[[], bool], *, interval: float, min_gap: float | None = None,
                 on_error: Callable[[BaseException], None] | None = None, name: str = "stemnb-refresh"):
        if interval <= 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self._tick = tick
        self.interval = interval
        self.min_gap = interval if min_gap is None else min_gap
        self._on_error = on_error
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.ticks = 0

    def start(self) -> None:
        """Start the thread (once)."""
        self._thread.start()

    def wake(self) -> None:
        """Ask for a tick now (subject to the throttle)."""
        self._wake.set()

    def stop(self, timeout: float | None = 10.0) -> None:
        """Stop the thread and join it, unless called from the thread itself; idempotent."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            last = time.monotonic()
            try:
                keep_going = self._tick()
            except BaseException as exc:  # shown by the owner, never lost in a thread
                if self._on_error is not None:
                    self._on_error(exc)
                return
            self.ticks += 1
            if not keep_going:
                return
            self._wake.wait(self.interval)
            self._wake.clear()
            gap = last + self.min_gap - time.monotonic()
            if gap > 0:
                self._stop.wait(gap)


class Dashboard:
    """Base of the dashboards: a root ``VBox`` (``self.widget``), a title line, an error line, a refresher.

    Subclasses build their widgets in ``_build()`` (returning the children below the title),
    update them in ``_refresh()`` (returning False once their target is closed) and give a
    ``text/plain`` form in ``_text()``.
    """

    kind = "dashboard"

    def __init__(self, *, interval: float = 0.5, start: bool = True) -> None:
        if interval < 0.1:
            raise ValueError(f"interval must be at least 0.1 s (a few updates per second), got {interval!r}")
        self._widgets = import_widgets()
        w = self._widgets
        self._closed = False
        self._target_closed = False
        self._lock = threading.RLock()
        self.title = w.HTML(layout=w.Layout(margin="0 0 4px 0"))
        self.error = w.HTML(layout=w.Layout(display="none"))
        self.error.add_class("stemnb-error")
        self.widget = w.VBox([self.title, *self._build(), self.error])
        self.widget.add_class("stemnb-dashboard")
        self.widget.add_class(f"stemnb-{self.kind}")
        follow_frontend_subshell(self.widget)
        self._refresher = Refresher(self._tick, interval=interval, on_error=self.show_error,
                                    name=f"stemnb-{self.kind}")
        self.refresh()
        if start and not self._target_closed:
            self._refresher.start()

    # -- subclass hooks ---------------------------------------------------------------------
    def _build(self) -> list[Any]:
        raise NotImplementedError

    def _refresh(self) -> bool:
        raise NotImplementedError

    def _text(self) -> str:
        raise NotImplementedError

    def _controls(self) -> list[Any]:
        """Widgets to disable once the target is closed."""
        return []

    # -- lifecycle ----------------------------------------------------------------------------
    def refresh(self) -> None:
        """Update every widget from the target now (the background thread does this on its own)."""
        with self._lock:
            if self._target_closed:
                return
            if not self._refresh():
                self._show_target_closed()

    def wake(self) -> None:
        """Ask the background thread for an update soon (after a button acted or an event came)."""
        refresher = getattr(self, "_refresher", None)  # events may come while __init__ runs
        if refresher is not None:
            refresher.wake()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def target_closed(self) -> bool:
        """True once the pool or worker shown here is closed (the dashboard then stops refreshing)."""
        return self._target_closed

    @property
    def refreshing(self) -> bool:
        """True while the background refresher runs."""
        return self._refresher.alive

    def close(self) -> None:
        """Stop refreshing and close the widgets; idempotent. The pool or worker stays as it is."""
        if self._closed:
            return
        self._closed = True
        self._refresher.stop()
        close_tree(self.widget)

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tick(self) -> bool:
        if self._closed:
            return False
        self.refresh()
        return not self._target_closed

    def _show_target_closed(self) -> None:
        self._target_closed = True
        for control in self._controls():
            control.disabled = True
        self.title.value = self._title_html("closed")
        self._refresher.stop(timeout=0)

    # -- errors and display -------------------------------------------------------------------
    def show_error(self, exc: BaseException) -> None:
        """Show ``exc`` in the dashboard's error line (errors from buttons and refreshes are never lost)."""
        self.error.value = (f'<span style="color: {_html.ERROR}">{_html.escape(type(exc).__name__)}: '
                            f"{_html.escape(exc)}</span>")
        self.error.layout.display = None

    def clear_error(self) -> None:
        """Hide the error line."""
        self.error.value = ""
        self.error.layout.display = "none"

    def _action(self, fn: Callable[[], Any]) -> Callable[[Any], None]:
        """Wrap a button handler: run ``fn``, show its error if any, then refresh soon."""
        def handler(_button: Any = None) -> None:
            try:
                fn()
            except Exception as exc:
                self.show_error(exc)
            else:
                self.clear_error()
            self.wake()
        return handler

    def _title_html(self, state: Any) -> str:
        return (f'<span style="font-family: {_html.FONT}; color: {_html.FG}">'
                f"<b>{_html.escape(self._name())}</b> {_html.state_badge(state)}</span>")

    def _name(self) -> str:
        return type(self).__name__

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data = self.widget._repr_mimebundle_(**kwargs) or {}
        data["text/plain"] = self._text()
        return data

    def __repr__(self) -> str:
        return self._text()
