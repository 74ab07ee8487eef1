"""``stemnb.WorkerDashboard``: a live ipywidgets view of a task :class:`~stemnb.Worker`, with controls.

Queues with their depths and a pause/resume button each; in-flight tasks with a progress bar
(from ``context.progress``) and a revoke button each; a table of recent events (completed,
retried, failed, revoked, dead-lettered, with error text); counters; the autoscaler's state; and
controls to scale and to shut the worker down. Events arrive through ``worker.events``; a
background thread redraws a few times a second.
"""

from __future__ import annotations

import collections
import functools
import threading
import time
from typing import Any

from . import _html
from ._dashboard_base import Dashboard, follow_frontend_subshell

#: the event types the "recent events" table lists.
LISTED_EVENTS = ("completed", "retried", "failed", "revoked", "dead_lettered", "timeout", "error")
EVENT_HEADERS = ("time", "event", "task", "task id", "detail")


class WorkerDashboard(Dashboard):
    """A live dashboard of ``worker`` (display it as a cell's last expression, or ``display(dash)``).

    Args:
        worker: the :class:`~stemnb.Worker` to show (started or not).
        interval: seconds between refreshes (at least 0.1).
        events: how many recent events the table keeps.
        start: start the background refresher (False: call :meth:`refresh` yourself).

    Raises:
        ImportError: ipywidgets is missing (with the ``pip install`` hint).
    """

    kind = "worker-dashboard"

    def __init__(self, worker: Any, *, interval: float = 0.5, events: int = 20,
                 start: bool = True) -> None:
        self.worker = worker
        self.recent: collections.deque[Any] = collections.deque(maxlen=events)
        self.progress: dict[str, float] = {}
        self._event_lock = threading.Lock()
        self._events_changed = True
        self._queue_rows: dict[str, _QueueRow] = {}
        self._task_rows: dict[str, _TaskRow] = {}
        self._scaled: Any = None
        self._stats: dict[str, Any] = {}
        self._subscription = worker.events._listen(self._on_event, None, quick=True)  # never waits
        super().__init__(interval=interval, start=start)

    def _build(self) -> list[Any]:
        w = self._widgets
        self.summary = w.HTML()
        self.summary.add_class("stemnb-worker-summary")
        self.queues = w.VBox([])
        self.queues.add_class("stemnb-queues")
        self.tasks = w.VBox([])
        self.tasks.add_class("stemnb-tasks")
        self.events_table = w.HTML()
        self.events_table.add_class("stemnb-events")
        limit = max(self.worker.autoscale_config.max_concurrency or 1, self.worker.concurrency)
        self.concurrency_input = w.BoundedIntText(value=self.worker.active_concurrency, min=1,
                                                  max=limit, description="concurrency",
                                                  layout=w.Layout(width="190px"))
        self.scale_button = w.Button(description="scale", tooltip="set how many tasks run at once")
        self.shutdown_button = w.Button(description="shutdown", button_style="danger",
                                        tooltip="soft shutdown: finish running tasks, then stop")
        self.scale_button.on_click(self._action(self._scale))
        self.shutdown_button.on_click(self._action(self._shutdown))
        controls = w.HBox([self.concurrency_input, self.scale_button, self.shutdown_button])
        return [self.summary, _heading(w, "queues"), self.queues, _heading(w, "in flight"),
                self.tasks, _heading(w, "recent events"), self.events_table, controls]

    def _controls(self) -> list[Any]:
        return [self.concurrency_input, self.scale_button, self.shutdown_button,
                *(r.button for r in self._queue_rows.values()),
                *(r.revoke for r in self._task_rows.values())]

    # -- events (called on the worker's threads: record and wake, nothing more) ----------------
    def _on_event(self, event: Any) -> None:
        kind = getattr(event.type, "value", str(event.type))
        with self._event_lock:
            if kind == "progress" and event.task_id is not None and event.progress is not None:
                self.progress[event.task_id] = float(event.progress)
            elif kind == "scaled":
                self._scaled = event
            if kind in LISTED_EVENTS:
                self.recent.appendleft(event)
                self._events_changed = True
                if event.task_id is not None and kind != "retried":
                    self.progress.pop(event.task_id, None)
        self.wake()

    # -- actions ------------------------------------------------------------------------------
    def _scale(self) -> None:
        n = int(self.concurrency_input.value)
        scale = getattr(self.worker, "scale", None)
        if scale is not None:
            scale(n)
        else:  # the worker has no public verb for it yet; this is what its autoscaler calls
            self.worker._set_concurrency(n)

    def _shutdown(self) -> None:
        self.worker.shutdown("soft")  # returns a Future; the dashboard shows "stopping" then "closed"

    def _toggle_queue(self, queue: str) -> None:
        if queue in self.worker.paused_queues():
            self.worker.resume_queue(queue)
        else:
            self.worker.pause_queue(queue)
        self.refresh()

    def _revoke(self, task_id: str) -> None:
        self.worker.revoke(task_id, terminate=True, reason="revoked from the dashboard")

    # -- refresh ------------------------------------------------------------------------------
    def _refresh(self) -> bool:
        state = _html._state_word(self.worker.state)
        if state == "stopped":
            return False
        stats = self.worker.stats()
        paused = set(self.worker.paused_queues())
        self._stats = stats
        self.title.value = self._title_html(state)
        self.summary.value = self._summary_html(stats)
        self._update_queues(stats, paused)
        self._update_tasks(stats)
        with self._event_lock:
            changed, self._events_changed = self._events_changed, False
            recent = list(self.recent)
        if changed:
            self.events_table.value = _html.table_html(EVENT_HEADERS, [_event_row(e) for e in recent],
                                                       empty="no events yet")
        return True

    def _summary_html(self, stats: dict[str, Any]) -> str:
        counters = " · ".join(f"{_html.escape(k)} <b>{_html.escape(v)}</b>"
                              for k, v in (stats.get("counters") or {}).items())
        cfg = self.worker.autoscale_config
        if cfg.enabled:
            scaler = (f"autoscale <b>on</b> {cfg.min_concurrency}–{cfg.max_concurrency}"
                      f"{self._last_scale_text()}")
        else:
            scaler = "autoscale <b>off</b>"
        return (f'<div style="font-family: {_html.FONT}; color: {_html.FG_MUTED}">{counters}<br>'
                f"concurrency <b>{_html.escape(stats.get('concurrency'))}</b> · "
                f"in flight <b>{_html.escape(stats.get('inflight'))}</b> · "
                f"running <b>{_html.escape(stats.get('running'))}</b> · "
                f"isolates <b>{_html.escape(stats.get('isolates'))}</b> · {scaler}</div>")

    def _last_scale_text(self) -> str:
        event = self._scaled
        if event is None:
            return ""
        data = event.data or {}
        detail = ", ".join(f"{k}={v}" for k, v in data.items())
        return f" (last: {_html.escape(detail)})"

    def _update_queues(self, stats: dict[str, Any], paused: set[str]) -> None:
        depths = stats.get("queue_depth") or {}
        for queue in stats.get("queues") or depths:
            row = self._queue_rows.get(queue)
            if row is None:
                row = self._queue_rows[queue] = _QueueRow(
                    self._widgets, queue, self._action(functools.partial(self._toggle_queue, queue)))
            row.update(depths.get(queue), queue in paused)
        self.queues.children = tuple(r.box for r in self._queue_rows.values())

    def _update_tasks(self, stats: dict[str, Any]) -> None:
        now = time.time()
        active = {t["id"]: t for t in stats.get("active") or ()}
        for task_id, task in active.items():
            row = self._task_rows.get(task_id)
            if row is None:
                row = self._task_rows[task_id] = _TaskRow(
                    self._widgets, task_id, self._action(functools.partial(self._revoke, task_id)))
            row.update(task, self.progress.get(task_id), now)
        for task_id in [t for t in self._task_rows if t not in active]:
            self._task_rows.pop(task_id).close()
        self.tasks.children = tuple(self._task_rows[t].box for t in active)

    def close(self) -> None:
        """Stop listening and refreshing and close the widgets; idempotent. The worker runs on."""
        self._subscription.cancel()
        super().close()

    def _name(self) -> str:
        return f"Worker {self.worker.worker_id}"

    def _text(self) -> str:
        name = self.worker.worker_id
        if not self._stats:
            return f"<WorkerDashboard of Worker {name!r} (closed)>"
        stats = self._stats
        paused = set(self.worker.paused_queues()) if not self.target_closed else set()
        queues = {q: (f"{d} (paused)" if q in paused else d)
                  for q, d in (stats.get("queue_depth") or {}).items()}
        inflight = [(t.get("id"), t.get("task"), self.progress.get(t.get("id")), None)
                    for t in stats.get("active") or ()]
        text = _html.worker_text(name, stats.get("state"), queues=queues,
                                 counters=stats.get("counters"), inflight=inflight)
        return text.replace("<Worker", "<WorkerDashboard of Worker", 1) + \
            (" (closed)" if self.target_closed else "")


class _QueueRow:
    """One queue: its name, depth and a pause/resume button."""

    def __init__(self, w: Any, queue: str, on_click: Any) -> None:
        self.name = w.HTML(f"<b>{_html.escape(queue)}</b>", layout=w.Layout(width="160px"))
        self.depth = w.HTML(layout=w.Layout(width="200px"))
        self.button = w.Button(description="pause", tooltip=f"pause queue {queue}",
                               layout=w.Layout(width="90px"))
        self.button.on_click(on_click)
        self.box = w.HBox([self.name, self.depth, self.button])
        self.box.add_class("stemnb-queue-row")
        follow_frontend_subshell(self.box)

    def update(self, depth: Any, paused: bool) -> None:
        state = _html.state_badge("paused") if paused else _html.state_badge("running")
        value = f"depth <b>{_html.escape('-' if depth is None else depth)}</b> {state}"
        if self.depth.value != value:
            self.depth.value = value
        self.button.description = "resume" if paused else "pause"
        self.button.button_style = "warning" if paused else ""


class _TaskRow:
    """One in-flight task: id, name, elapsed time, a progress bar and a revoke button."""

    def __init__(self, w: Any, task_id: str, on_revoke: Any) -> None:
        self.label = w.HTML(layout=w.Layout(width="380px"))
        self.bar = w.FloatProgress(value=0.0, min=0.0, max=1.0, layout=w.Layout(width="200px"))
        self.revoke = w.Button(description="revoke", button_style="danger",
                               tooltip=f"revoke task {task_id} (stops it if it runs)",
                               layout=w.Layout(width="80px"))
        self.revoke.on_click(on_revoke)
        self.box = w.HBox([self.label, self.bar, self.revoke])
        self.box.add_class("stemnb-task-row")
        follow_frontend_subshell(self.box)

    def update(self, task: dict[str, Any], fraction: float | None, now: float) -> None:
        started = task.get("started_at")
        elapsed = _html.format_duration(None if started is None else max(0.0, now - started))
        self.label.value = (f"<b>{_html.escape(task.get('task'))}</b> "
                            f"<code>{_html.escape(str(task.get('id'))[:12])}</code> {elapsed}")
        if fraction is not None:
            self.bar.value = min(1.0, max(0.0, fraction))

    def close(self) -> None:
        for widget in (self.label, self.bar, self.revoke, self.box):
            widget.close()


def _heading(w: Any, text: str) -> Any:
    return w.HTML(f'<div style="color: {_html.FG_MUTED}; margin-top: 6px; '
                  f'border-bottom: 1px solid {_html.BORDER}">{_html.escape(text)}</div>')


def _event_row(event: Any) -> tuple[Any, ...]:
    kind = getattr(event.type, "value", str(event.type))
    detail = ""
    if event.error is not None:
        detail = f"{type(event.error).__name__}: {event.error}"
    elif event.data:
        detail = ", ".join(f"{k}={v}" for k, v in event.data.items())
    stamp = time.strftime("%H:%M:%S", time.localtime(event.timestamp))
    return (stamp, _html.Raw(_html.state_badge(kind), kind), event.name or "-",
            event.task_id or "-", detail)
