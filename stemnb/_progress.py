"""``stemnb.progress``: a progress bar over futures or task ids, as a widget in a kernel, else as text.

Futures report through their done-callbacks, task ids through result-backend watches. A
background thread redraws at most a few times a second, so the kernel is never blocked and
thousands of completions cost a handful of redraws.
"""

from __future__ import annotations

import concurrent.futures
import sys
import threading
from collections.abc import Iterable
from typing import IO, Any

from . import _html
from ._dashboard_base import Refresher, close_tree, import_widgets, is_kernel

#: task states (lower-cased enum names or values) that end a task well / badly.
SUCCEEDED_STATES = frozenset({"succeeded", "success", "completed"})
FAILED_STATES = frozenset({"failed", "failure", "cancelled", "revoked", "expired", "dead_lettered",
                           "dead"})


def progress(futures_or_task_ids: Any, *, backend: Any = None, label: str = "",
             interval: float = 0.25, notebook: bool | None = None, wait: bool | None = None,
             file: IO[str] | None = None) -> ProgressBar:
    """Show the progress of futures (any ``concurrent.futures.Future``) or of task ids.

    In a Jupyter kernel (or with ``notebook=True``) this displays an ipywidgets bar that a
    background thread updates; elsewhere it writes a text bar to ``file`` (default stderr) and,
    unless ``wait=False``, blocks until everything has finished. Task ids need ``backend=`` (a
    result backend; its ``watch`` reports each task's terminal state).

    Returns:
        The :class:`ProgressBar`; ``wait()`` blocks until all are done.

    Raises:
        TypeError: an item is neither a Future nor a task id string.
        ValueError: task ids were given without a backend, or ``interval`` is below 0.1 s.
        ImportError: ``notebook=True`` without ipywidgets (with the ``pip install`` hint).
    """
    items = _as_items(futures_or_task_ids)
    use_widget = is_kernel() if notebook is None else notebook
    bar = ProgressBar(items, backend=backend, label=label, interval=interval,
                      widget=use_widget, file=file)
    if use_widget and is_kernel():
        bar.show()
    if wait if wait is not None else not use_widget:
        bar.wait()
    return bar


class ProgressBar:
    """The live progress of a fixed set of futures or task ids (see :func:`progress`)."""

    def __init__(self, items: list[Any], *, backend: Any = None, label: str = "",
                 interval: float = 0.25, widget: bool = False, file: IO[str] | None = None) -> None:
        if interval < 0.1:
            raise ValueError(f"interval must be at least 0.1 s, got {interval!r}")
        task_ids = [i for i in items if isinstance(i, str)]
        duplicates = sorted({t for t in task_ids if task_ids.count(t) > 1})
        if duplicates:
            raise ValueError(f"task id {duplicates[0]!r} is listed more than once")
        if task_ids and backend is None:
            raise ValueError(f"task ids ({task_ids[0]!r}, ...) need backend=<result backend> "
                             "to read their states from")
        self.label = label
        self.total = len(items)
        self.succeeded = 0
        self.failed = 0
        self._backend = backend
        self._pending_ids = set(task_ids)
        self._watches: list[Any] = []
        self._lock = threading.Lock()
        self._finished = threading.Event()
        self._file = file
        self._widgets = self._build_widgets() if widget else None
        self._shown_in: int | None = None
        self._refresher = Refresher(self._tick, interval=interval, name="stemnb-progress")
        for item in items:
            if isinstance(item, concurrent.futures.Future):
                item.add_done_callback(self._future_done)
        for task_id in task_ids:
            self._watch_task(task_id)
        self._refresher.start()

    # -- counting ---------------------------------------------------------------------------
    @property
    def done(self) -> int:
        """How many have finished, well or badly."""
        return self.succeeded + self.failed

    @property
    def finished(self) -> bool:
        """True once every future or task has finished and the bar shows it."""
        return self._finished.is_set()

    def _future_done(self, future: concurrent.futures.Future) -> None:
        ok = not future.cancelled() and future.exception() is None
        with self._lock:
            if ok:
                self.succeeded += 1
            else:
                self.failed += 1
        self._refresher.wake()

    def _watch_task(self, task_id: str) -> None:
        # watch first, then read: a status set in between reaches one of the two
        self._watches.append(self._backend.watch(
            task_id, lambda status, task_id=task_id: self._task_status(task_id, status)))
        self._task_status(task_id, self._backend.get(task_id))

    def _task_status(self, task_id: str, status: Any) -> None:
        outcome = task_outcome(status)
        if outcome is None:
            return
        with self._lock:
            if task_id not in self._pending_ids:
                return  # already counted (the watch and the first read both saw it)
            self._pending_ids.discard(task_id)
            if outcome:
                self.succeeded += 1
            else:
                self.failed += 1
        self._refresher.wake()

    def _tick(self) -> bool:
        complete = self.done >= self.total
        self._draw(final=complete)
        if complete:
            self._finished.set()
            self._close_watches()
        return not complete

    def _close_watches(self) -> None:
        watches, self._watches = self._watches, []
        for watch in watches:
            watch.close()

    # -- drawing ----------------------------------------------------------------------------
    def _build_widgets(self) -> tuple[Any, Any, Any]:
        w = import_widgets()
        bar = w.FloatProgress(value=0, min=0, max=max(self.total, 1), description=self.label or "",
                              bar_style="info", layout=w.Layout(width="60%"))
        text = w.HTML()
        box = w.HBox([bar, text])
        box.add_class("stemnb-progress")
        return box, bar, text

    def _draw(self, *, final: bool) -> None:
        done, failed = self.done, self.failed
        if self._widgets is not None:
            _, bar, text = self._widgets
            bar.value = done if self.total else 1
            if final:
                bar.bar_style = "danger" if failed else "success"
            text.value = _html.progress_html(done, self.total, failed=failed)
            return
        out = self._file if self._file is not None else sys.stderr
        out.write("\r" + _html.progress_text(done, self.total, failed=failed, label=self.label))
        if final:
            out.write("\n")
        out.flush()

    # -- waiting and display ----------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> bool:
        """Block until everything has finished (or ``timeout`` seconds). Returns True if finished."""
        return self._finished.wait(timeout)

    def close(self) -> None:
        """Stop updating (the futures and tasks are unaffected) and close the widgets; idempotent."""
        self._refresher.stop()
        self._close_watches()
        if self._widgets is not None:
            close_tree(self._widgets[0])

    @property
    def widget(self) -> Any:
        """The ``HBox`` (FloatProgress + HTML) shown in a kernel, or None in text mode."""
        return None if self._widgets is None else self._widgets[0]

    def show(self) -> None:
        """Display the bar in the current cell (once per cell: a later bare ``bar`` shows it again)."""
        from IPython.display import display

        display(self._mimebundle(), raw=True)
        self._shown_in = _execution_count()

    def _ipython_display_(self) -> None:
        from IPython.display import display

        if self._shown_in is not None and self._shown_in == _execution_count():
            return  # progress() already showed it in this cell (``bar = progress(...); bar``)
        display(self._mimebundle(), raw=True)

    def _mimebundle(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        if self._widgets is not None:
            data.update(self._widgets[0]._repr_mimebundle_() or {})
        data["text/plain"] = repr(self)
        data["text/html"] = _html.progress_html(self.done, self.total, failed=self.failed,
                                                label=self.label)
        return data

    def __repr__(self) -> str:
        return "<ProgressBar " + _html.progress_text(self.done, self.total, failed=self.failed,
                                                     label=self.label, width=0) + ">"


def task_outcome(status: Any) -> bool | None:
    """Return True/False for a status in a succeeded/failed state, None while it is not terminal."""
    if status is None:
        return None
    state = getattr(status, "state", status)
    word = (getattr(state, "value", None) or getattr(state, "name", None) or str(state))
    word = str(word).lower()
    if word in SUCCEEDED_STATES:
        return True
    if word in FAILED_STATES:
        return False
    return None


def _as_items(obj: Any) -> list[Any]:
    if isinstance(obj, (str, concurrent.futures.Future)):
        obj = [obj]
    if not isinstance(obj, Iterable):
        raise TypeError(f"progress() takes futures or task ids, got {type(obj).__name__}")
    items = list(obj)
    for item in items:
        if not isinstance(item, (str, concurrent.futures.Future)):
            raise TypeError(f"progress() takes concurrent.futures.Future objects or task id "
                            f"strings, got {type(item).__name__}: {item!r}")
    return items


def _execution_count() -> int | None:
    from IPython import get_ipython

    shell = get_ipython()
    return None if shell is None else shell.execution_count

