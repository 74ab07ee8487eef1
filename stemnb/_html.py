"""Rich reprs: small HTML and plain-text renderers for futures, pools, workers and tables.

Every renderer takes plain data (numbers, strings, records with attributes) and returns a string,
so the objects that own the data (``Future``, ``IsolatePool``, ``Worker``, the dashboards) only
call them. HTML uses JupyterLab CSS variables with fallbacks, so light and dark themes both work
and static viewers (GitHub, nbviewer) still get readable colours; every value is escaped. Each
HTML renderer has a ``*_text`` twin for ``text/plain``.
"""

from __future__ import annotations

import concurrent.futures
import enum
import html
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FG = "var(--jp-ui-font-color1, black)"
FG_MUTED = "var(--jp-ui-font-color2, gray)"
BORDER = "var(--jp-border-color2, #e0e0e0)"
FONT = "var(--jp-ui-font-family, sans-serif)"
ERROR = "var(--jp-error-color1, #d32f2f)"
SUCCESS = "var(--jp-success-color1, #388e3c)"
WARN = "var(--jp-warn-color1, #f57c00)"
INFO = "var(--jp-info-color1, #0288d1)"

#: colour of each state word; anything else is shown in the muted colour.
STATE_COLOURS: dict[str, str] = {
    "running": SUCCESS, "busy": SUCCESS, "finished": SUCCESS, "completed": SUCCESS,
    "succeeded": SUCCESS, "idle": FG_MUTED, "pending": FG_MUTED, "queued": FG_MUTED,
    "starting": INFO, "paused": WARN, "recycling": WARN, "retried": WARN, "draining": WARN,
    "error": ERROR, "failed": ERROR, "cancelled": ERROR, "revoked": ERROR, "closed": ERROR,
    "killed": ERROR, "timeout": ERROR,
}

POOL_FIELDS = ("size", "starting", "idle", "busy", "queued", "submitted", "completed", "failed",
               "cancelled", "recycled")
ISOLATE_HEADERS = ("name", "pid", "state", "tasks", "RSS", "current call")
_SPARK = "▁▂▃▄▅▆▇█"


def escape(value: Any) -> str:
    """Return ``str(value)`` escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def format_bytes(n: int | float | None) -> str:
    """Return ``n`` bytes as a short human string (``"12.3 MiB"``); ``None`` gives ``"-"``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_duration(seconds: float | None) -> str:
    """Return a duration as ``"850 ms"``, ``"12.5 s"``, ``"3m 05s"`` or ``"2h 01m"``; ``None`` gives ``"-"``."""
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def sparkline(values: Sequence[float]) -> str:
    """Return one block character per value, scaled to the largest (``"▁▃█"``); empty for no values."""
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return _SPARK[0] * len(values)
    return "".join(_SPARK[min(7, int(v / top * 7.999))] if v > 0 else _SPARK[0] for v in values)


def state_badge(state: Any) -> str:
    """Return ``state`` as a coloured, bold HTML span (enum members show their ``name`` in lower case)."""
    word = _state_word(state)
    colour = STATE_COLOURS.get(word, FG_MUTED)
    return f'<span class="stemnb-state" style="color: {colour}; font-weight: bold">{escape(word)}</span>'


def table_html(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "none") -> str:
    """Return an HTML table; cells are escaped unless wrapped in :class:`Raw`; ``empty`` shows for no rows."""
    cell = f"padding: 2px 8px; border-bottom: 1px solid {BORDER}; text-align: left"
    head = "".join(f'<th style="{cell}">{escape(h)}</th>' for h in headers)
    body = ["<tr>" + "".join(f'<td style="{cell}">{_cell(v)}</td>' for v in row) + "</tr>"
            for row in rows]
    if not body:
        body = [f'<tr><td colspan="{len(headers)}" style="{cell}; color: {FG_MUTED}">'
                f"{escape(empty)}</td></tr>"]
    return (f'<table class="stemnb-table" style="border-collapse: collapse; color: {FG}">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def table_text(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "none") -> str:
    """Return a fixed-width text table (columns padded to their widest cell)."""
    cells = [[_plain(v) for v in row] for row in rows]
    if not cells:
        return "  ".join(headers) + f"\n({empty})"
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)).rstrip() for row in cells]
    return "\n".join(lines)


class Raw(str):
    """A table cell that is already HTML (e.g. a :func:`state_badge`); shown unescaped."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, markup: str, text: str = "") -> Raw:
        obj = super().__new__(cls, markup)
        obj.text = text
        return obj


def box(title: str, body: str, *, state: Any = None) -> str:
    """Wrap ``body`` HTML in the stemnb frame: a bordered block with a bold ``title`` and optional state."""
    badge = f" {state_badge(state)}" if state is not None else ""
    return (f'<div class="stemnb-repr jp-RenderedHTMLCommon" style="font-family: {FONT}; '
            f'color: {FG}; border-left: 3px solid {BORDER}; padding: 4px 10px">'
            f"<strong>{escape(title)}</strong>{badge}{body}</div>")


def render_future(state: Any, *, name: str | None = None, result_type: str | None = None,
                  error: BaseException | str | None = None) -> str:
    """Return the HTML repr of a future: its name, state, and the result type or the error text.

    ``state`` may also be a ``concurrent.futures.Future``; its name, state, result type and
    error are then read from it (without blocking).
    """
    if isinstance(state, concurrent.futures.Future):
        state, name, result_type, error = future_fields(state)
    rows: list[tuple[str, Any]] = []
    if result_type is not None:
        rows.append(("result", result_type))
    if error is not None:
        rows.append(("error", Raw(f'<span style="color: {ERROR}">{escape(_error_text(error))}</span>',
                                  _error_text(error))))
    body = _definition_list(rows)
    return box(f"Future {name}" if name else "Future", body, state=state)


def future_text(state: Any, *, name: str | None = None, result_type: str | None = None,
                error: BaseException | str | None = None) -> str:
    """Return the ``text/plain`` repr of a future (``<Future 'name' state=finished result=int>``)."""
    if isinstance(state, concurrent.futures.Future):
        state, name, result_type, error = future_fields(state)
    parts = ["<Future"]
    if name:
        parts.append(repr(name))
    parts.append(f"state={_state_word(state)}")
    if result_type is not None:
        parts.append(f"result={result_type}")
    if error is not None:
        parts.append(f"error={_error_text(error)!r}")
    return " ".join(parts) + ">"


def future_fields(future: concurrent.futures.Future) -> tuple[str, str | None, str | None,
                                                               BaseException | None]:
    """Return ``(state, name, result type, error)`` of a future without blocking on it."""
    name = getattr(future, "debug_name", None)
    if future.cancelled():
        return "cancelled", name, None, None
    if not future.done():
        return ("running" if future.running() else "pending"), name, None, None
    error = future.exception()
    if error is not None:
        return "error", name, None, error
    return "finished", name, type(future.result()).__name__, None


def render_pool(stats: Any, isolates: Iterable[Any], *, name: str | None = None,
                now: float | None = None) -> str:
    """Return the HTML repr of an isolate pool from its ``statistics()`` and ``isolates()`` records.

    ``stats`` needs ``state`` and the :data:`POOL_FIELDS` attributes; each isolate needs ``pid``,
    ``debug_name``, ``state``, ``tasks_done``, ``rss_bytes``, ``current_call`` and ``call_started``.
    """
    counters = " · ".join(f"{escape(f)} <b>{escape(getattr(stats, f, '-'))}</b>" for f in POOL_FIELDS)
    head = f'<div style="color: {FG_MUTED}; margin: 2px 0 4px">{counters}</div>'
    rows = isolate_rows(isolates, now=now, html=True)
    return box(f"IsolatePool {name}" if name else "IsolatePool",
               head + _details(f"isolates ({len(rows)})", table_html(ISOLATE_HEADERS, rows,
                                                                    empty="no isolates")),
               state=getattr(stats, "state", None))


def pool_text(stats: Any, isolates: Iterable[Any], *, name: str | None = None,
              now: float | None = None) -> str:
    """Return the ``text/plain`` repr of an isolate pool: one summary line, then a table of isolates."""
    counters = " ".join(f"{f}={getattr(stats, f, '-')}" for f in POOL_FIELDS)
    title = f"<IsolatePool {name!r}" if name else "<IsolatePool"
    head = f"{title} state={_state_word(getattr(stats, 'state', None))} {counters}>"
    rows = isolate_rows(isolates, now=now, html=False)
    return head + "\n" + table_text(ISOLATE_HEADERS, rows, empty="no isolates") if rows else head


def isolate_rows(isolates: Iterable[Any], *, now: float | None = None,
                 html: bool = True) -> list[tuple[Any, ...]]:
    """Return one table row per isolate record (see :func:`render_pool`), states as badges if ``html``."""
    now = time.time() if now is None else now
    rows = []
    for iso in isolates:
        state = getattr(iso, "state", None)
        rows.append((getattr(iso, "debug_name", None) or "-", getattr(iso, "pid", "-"),
                     Raw(state_badge(state), _state_word(state)) if html else _state_word(state),
                     getattr(iso, "tasks_done", 0), format_bytes(getattr(iso, "rss_bytes", None)),
                     current_call_text(iso, now)))
    return rows


def current_call_text(isolate: Any, now: float | None = None) -> str:
    """Return ``"fn (1.2 s)"`` for an isolate running a call, or ``"-"`` when it runs none."""
    call = getattr(isolate, "current_call", None)
    if call is None:
        return "-"
    started = getattr(isolate, "call_started", None)
    if started is None:
        return str(call)
    now = time.time() if now is None else now
    return f"{call} ({format_duration(max(0.0, now - started))})"


def render_worker(name: Any, state: Any = None, *, queues: Mapping[str, Any] | None = None,
                  counters: Mapping[str, Any] | None = None,
                  inflight: Iterable[Sequence[Any]] = ()) -> str:
    """Return the HTML repr of a task worker: counters, queue depths and in-flight tasks.

    ``queues`` maps a queue name to its depth (or to a ``"12 (paused)"`` string); ``inflight``
    rows are ``(task id, task name, progress fraction or None, elapsed seconds or None)``.
    ``name`` may also be a :class:`~stemnb.Worker`, whose fields are then read from it.
    """
    if not isinstance(name, str):
        name, state, queues, counters, inflight = worker_fields(name)
    line = " · ".join(f"{escape(k)} <b>{escape(v)}</b>" for k, v in (counters or {}).items())
    head = f'<div style="color: {FG_MUTED}; margin: 2px 0 4px">{line}</div>' if line else ""
    queue_table = table_html(("queue", "depth"), sorted((queues or {}).items()), empty="no queues")
    task_table = table_html(("task id", "task", "progress", "elapsed"), _inflight_rows(inflight),
                            empty="no tasks in flight")
    return box(f"Worker {name}", head + queue_table + _details("in flight", task_table), state=state)


def worker_text(name: Any, state: Any = None, *, queues: Mapping[str, Any] | None = None,
                counters: Mapping[str, Any] | None = None,
                inflight: Iterable[Sequence[Any]] = ()) -> str:
    """Return the ``text/plain`` repr of a task worker (see :func:`render_worker` for the arguments)."""
    if not isinstance(name, str):
        name, state, queues, counters, inflight = worker_fields(name)
    parts = [f"<Worker {name!r} state={_state_word(state)}"]
    parts += [f"{k}={v}" for k, v in (counters or {}).items()]
    text = " ".join(parts) + ">"
    if queues:
        text += "\n" + table_text(("queue", "depth"), sorted(queues.items()))
    rows = _inflight_rows(inflight)
    if rows:
        text += "\n" + table_text(("task id", "task", "progress", "elapsed"), rows)
    return text


def worker_fields(worker: Any, *, progress: Mapping[str, float] | None = None,
                  now: float | None = None) -> tuple[str, Any, dict[str, Any], dict[str, Any], list]:
    """Read ``(name, state, queues, counters, inflight)`` for the worker renderers from a Worker.

    Uses ``worker.stats()`` and ``worker.paused_queues()``; ``progress`` maps task ids to the
    last fraction they reported (from the worker's progress events).
    """
    stats = worker.stats()
    now = time.time() if now is None else now
    paused = set(worker.paused_queues())
    queues = {q: (f"{d} (paused)" if q in paused else d)
              for q, d in (stats.get("queue_depth") or {}).items()}
    counters = dict(stats.get("counters") or {})
    counters.update(concurrency=stats.get("concurrency"), inflight=stats.get("inflight"))
    inflight = []
    for task in stats.get("active") or ():
        started = task.get("started_at")
        inflight.append((task.get("id"), task.get("task"), (progress or {}).get(task.get("id")),
                         None if started is None else max(0.0, now - started)))
    return stats.get("worker_id", "?"), stats.get("state"), queues, counters, inflight


def progress_html(done: int, total: int, *, failed: int = 0, label: str = "") -> str:
    """Return a one-line HTML summary of progress: ``label: 3 / 10 done, 1 failed``."""
    colour = ERROR if failed else FG
    text = progress_text(done, total, failed=failed, label=label, width=0)
    return f'<span class="stemnb-progress" style="font-family: {FONT}; color: {colour}">{escape(text)}</span>'


def progress_text(done: int, total: int, *, failed: int = 0, label: str = "", width: int = 30) -> str:
    """Return a text progress bar: ``label [#####.....] 3 / 10 done, 1 failed`` (no bar if ``width`` is 0)."""
    bar = ""
    if width > 0:
        filled = int(width * done / total) if total else width
        bar = "[" + "#" * filled + "." * (width - filled) + "] "
    tail = f", {failed} failed" if failed else ""
    prefix = f"{label}: " if label else ""
    return f"{prefix}{bar}{done} / {total} done{tail}"


def _inflight_rows(inflight: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    rows = []
    for task_id, task_name, fraction, elapsed in inflight:
        pct = "-" if fraction is None else f"{100 * float(fraction):.0f}%"
        rows.append((task_id, task_name, pct, format_duration(elapsed)))
    return rows


def _definition_list(rows: Sequence[tuple[str, Any]]) -> str:
    if not rows:
        return ""
    items = "".join(f'<div><span style="color: {FG_MUTED}">{escape(k)}:</span> {_cell(v)}</div>'
                    for k, v in rows)
    return f'<div style="margin-top: 2px">{items}</div>'


def _details(summary: str, body: str) -> str:
    return f"<details open><summary>{escape(summary)}</summary>{body}</details>"


def _cell(value: Any) -> str:
    return str(value) if isinstance(value, Raw) else escape(value)


def _plain(value: Any) -> str:
    return value.text if isinstance(value, Raw) else str(value)


def _state_word(state: Any) -> str:
    if state is None:
        return "-"
    if isinstance(state, enum.Enum):
        return state.value if isinstance(state, str) else state.name.lower()
    return str(state)


def _error_text(error: BaseException | str) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return error
