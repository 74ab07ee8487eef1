"""``stemnb.PoolDashboard``: a live ipywidgets view of an :class:`~stemnb.IsolatePool`, with controls.

One row per isolate (name, pid, state, tasks done, RSS, current call with its elapsed time and a
kill button), the queue depth and counters, a throughput sparkline, and buttons to resize and
pause/resume the pool. A background thread refreshes it a few times a second; the buttons act
on the pool directly, on a kernel subshell in JupyterLab, so they work while another cell blocks.
"""

from __future__ import annotations

import collections
import functools
import time
from typing import Any

from . import _html
from ._dashboard_base import Dashboard, follow_frontend_subshell
from ._exceptions import ClosedError

COLUMNS = (("name", "110px"), ("pid", "70px"), ("state", "80px"), ("tasks", "50px"),
           ("RSS", "80px"), ("current call", "220px"))


class PoolDashboard(Dashboard):
    """A live dashboard of ``pool`` (display it as a cell's last expression, or ``display(dash)``).

    Args:
        pool: the :class:`~stemnb.IsolatePool` to show.
        interval: seconds between refreshes (at least 0.1).
        history: how many refreshes the throughput sparkline covers.
        start: start the background refresher (False: call :meth:`refresh` yourself).

    Raises:
        ImportError: ipywidgets is missing (with the ``pip install`` hint).
    """

    kind = "pool-dashboard"

    def __init__(self, pool: Any, *, interval: float = 0.5, history: int = 40,
                 start: bool = True) -> None:
        self.pool = pool
        self._rows: dict[int, _IsolateRow] = {}
        self._rates: collections.deque[float] = collections.deque(maxlen=history)
        self._last_sample: tuple[float, int] | None = None
        self._stats: Any = None
        self._isolates: list[Any] = []
        super().__init__(interval=interval, start=start)

    def _build(self) -> list[Any]:
        w = self._widgets
        self.summary = w.HTML()
        self.summary.add_class("stemnb-pool-summary")
        header = w.HBox([_cell_html(w, f"<b>{name}</b>", width) for name, width in COLUMNS])
        self.rows = w.VBox([])
        self.size_input = w.BoundedIntText(value=getattr(self.pool, "size", 1), min=1, max=4096,
                                           description="size", layout=w.Layout(width="150px"))
        self.resize_button = w.Button(description="resize", tooltip="resize the pool",
                                      icon="arrows-h")
        self.pause_button = w.Button(description="pause", tooltip="stop dispatching queued calls")
        self.resize_button.on_click(self._action(self._resize))
        self.pause_button.on_click(self._action(self._toggle_pause))
        controls = w.HBox([self.size_input, self.resize_button, self.pause_button])
        return [self.summary, header, self.rows, controls]

    def _controls(self) -> list[Any]:
        return [self.size_input, self.resize_button, self.pause_button,
                *(row.kill for row in self._rows.values())]

    # -- actions ------------------------------------------------------------------------------
    def _resize(self) -> None:
        self.pool.resize(int(self.size_input.value))

    def _toggle_pause(self) -> None:
        if self.paused:
            self.pool.resume()
        else:
            self.pool.pause()
        self.refresh()

    def _kill(self, pid: int) -> None:
        self.pool.kill_isolate(pid)

    @property
    def paused(self) -> bool:
        """True while the pool is paused (as of the last refresh)."""
        return _html._state_word(getattr(self._stats, "state", None)) == "paused"

    # -- refresh ------------------------------------------------------------------------------
    def _refresh(self) -> bool:
        if getattr(self.pool, "closed", False):
            return False
        try:
            stats = self.pool.statistics()
            isolates = list(self.pool.isolates())
        except ClosedError:
            return False
        self._stats, self._isolates = stats, isolates
        self._sample_throughput(stats)
        state = _html._state_word(stats.state)
        self.title.value = self._title_html(state)
        self.summary.value = self._summary_html(stats)
        self.pause_button.description = "resume" if state == "paused" else "pause"
        self.pause_button.button_style = "warning" if state == "paused" else ""
        self._update_rows(isolates)
        return True

    def _sample_throughput(self, stats: Any) -> None:
        now, done = time.monotonic(), int(stats.completed) + int(stats.failed)
        if self._last_sample is not None:
            then, before = self._last_sample
            if now > then:
                self._rates.append(max(0, done - before) / (now - then))
        self._last_sample = (now, done)

    def _summary_html(self, stats: Any) -> str:
        counters = " · ".join(f"{f} <b>{_html.escape(getattr(stats, f, '-'))}</b>"
                              for f in _html.POOL_FIELDS)
        rate = self._rates[-1] if self._rates else 0.0
        spark = _html.sparkline(list(self._rates))
        return (f'<div style="font-family: {_html.FONT}; color: {_html.FG_MUTED}">{counters}<br>'
                f'throughput <b style="color: {_html.FG}">{rate:.1f}/s</b> '
                f'<span class="stemnb-sparkline" style="color: {_html.INFO}">{spark}</span></div>')

    def _update_rows(self, isolates: list[Any]) -> None:
        now = time.time()
        seen = set()
        for iso in isolates:
            pid = iso.pid
            seen.add(pid)
            row = self._rows.get(pid)
            if row is None:
                row = self._rows[pid] = _IsolateRow(
                    self._widgets, pid, self._action(functools.partial(self._kill, pid)))
            row.update(iso, now)
        for pid in [p for p in self._rows if p not in seen]:
            self._rows.pop(pid).close()
        self.rows.children = tuple(self._rows[iso.pid].box for iso in isolates)

    def _name(self) -> str:
        name = getattr(self.pool, "debug_name", None)
        return f"IsolatePool {name}" if name else "IsolatePool"

    def _text(self) -> str:
        if self._stats is None:
            return f"<PoolDashboard of {self._name()} (closed)>"
        text = _html.pool_text(self._stats, self._isolates, name=getattr(self.pool, "debug_name", None))
        return text.replace("<IsolatePool", "<PoolDashboard of IsolatePool", 1) + \
            (" (closed)" if self.target_closed else "")


class _IsolateRow:
    """The widgets of one isolate's row: HTML cells and a kill button."""

    def __init__(self, w: Any, pid: int, on_kill: Any) -> None:
        self.cells = [_cell_html(w, "", width) for _, width in COLUMNS]
        self.kill = w.Button(description="kill", tooltip=f"kill isolate {pid} (its call fails)",
                             button_style="danger", layout=w.Layout(width="60px"))
        self.kill.on_click(on_kill)
        self.box = w.HBox([*self.cells, self.kill])
        self.box.add_class("stemnb-isolate-row")
        follow_frontend_subshell(self.box)
        self._values: list[str] = [""] * len(COLUMNS)

    def update(self, iso: Any, now: float) -> None:
        values = [_html.escape(iso.debug_name or "-"), _html.escape(iso.pid),
                  _html.state_badge(iso.state), _html.escape(iso.tasks_done),
                  _html.escape(_html.format_bytes(iso.rss_bytes)),
                  _html.escape(_html.current_call_text(iso, now))]
        for cell, old, new in zip(self.cells, self._values, values, strict=False):
            if old != new:  # only changed cells travel to the browser
                cell.value = new
        self._values = values

    def close(self) -> None:
        for widget in (*self.cells, self.kill, self.box):
            widget.close()


def _cell_html(w: Any, value: str, width: str) -> Any:
    cell = w.HTML(value=value, layout=w.Layout(width=width, margin="0 4px"))
    cell.add_class("stemnb-cell")
    return cell
