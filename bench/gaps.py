"""Where an isolate's time goes: how busy stemnb's isolates are while a worker runs 1 ms tasks.

A diagnostic beside ``bench.tasks``: its throughput says how fast, this says why not faster. Each
system runs in its own fresh ``python -c`` child; the producer enqueues N tasks back to back, then
waits for each. Every task spins for 1 ms and returns its process id and when it started and
ended (one monotonic clock for every process), so the report can say, per isolate, what share of
the run it was busy (while the producer enqueued, and after) and how long it waited between one
task's end and the next one's start. Run by hand from the repository root::

    .venv/bin/python -m bench.gaps --rounds 2
    .venv/bin/python -m bench.gaps --systems stemnb-isolate --quick

It prints a Markdown report and writes it to ``bench/results/gaps-<UTC date-time>.md``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from . import _harness as h
from ._gaps_child import CHILD_SOURCE
from ._task_systems import TASK_SYSTEMS

ALL_SYSTEMS = ("stemnb-isolate", "stemnb-isolate-redis", "stemnb-redis-worker-process")
FULL_TASKS, QUICK_TASKS = 2000, 30
CHILD_TIMEOUT_S = 300.0
LONG_GAP_MS = 2.0


def measure_system(name: str, tasks: int, timeout: float = CHILD_TIMEOUT_S) -> dict[str, Any]:
    """Run ``tasks`` timed tasks on system ``name`` in a fresh child; return its summary."""
    if name not in ALL_SYSTEMS:
        raise ValueError(f"unknown system {name!r}; known: {', '.join(ALL_SYSTEMS)}")
    doc = h.run_child(CHILD_SOURCE, {"system": name, "tasks": tasks}, timeout)
    if "error" in doc:
        return {"error": doc["error"], "stderr": doc.get("stderr", "")}
    return summarize(doc["spans"], doc["start"], doc["enqueued"], doc["end"])


def summarize(spans: Sequence[Sequence[float]], start: float, enqueued: float, end: float) -> dict[str, Any]:
    """Throughput, and each isolate's busy share and gaps, from the tasks' ``[pid, start, end]``.

    A gap is the time from one task's end to the start of the next task on the same isolate; it is
    counted in the phase (enqueueing, after) in which that next task started.
    """
    by_pid: dict[int, list[tuple[float, float]]] = {}
    for pid, begun, ended in spans:
        by_pid.setdefault(int(pid), []).append((begun, ended))
    gaps: list[float] = []
    busy = {"enqueue": 0.0, "after": 0.0}
    for runs in by_pid.values():
        runs.sort()
        for (_, prev_end), (begun, _) in zip(runs, runs[1:], strict=False):
            gaps.append((begun - prev_end) * 1000)
        for begun, ended in runs:
            busy["enqueue"] += max(0.0, min(ended, enqueued) - max(begun, start))
            busy["after"] += max(0.0, min(ended, end) - max(begun, enqueued))
    isolates = len(by_pid)
    return {
        "tasks": len(spans),
        "isolates": isolates,
        "tasks_per_s": len(spans) / (end - start),
        "enqueue_s": enqueued - start,
        "total_s": end - start,
        "busy_pct": 100 * (busy["enqueue"] + busy["after"]) / (isolates * (end - start)),
        "busy_enqueue_pct": 100 * busy["enqueue"] / (isolates * (enqueued - start)),
        "busy_after_pct": 100 * busy["after"] / (isolates * (end - start - (enqueued - start)))
        if end > enqueued
        else 0.0,
        "gap_median_ms": h.median(gaps) if gaps else 0.0,
        "gap_p90_ms": h.percentile(gaps, 0.90) if gaps else 0.0,
        "gap_p99_ms": h.p99(gaps) if gaps else 0.0,
        "long_gaps": sum(g > LONG_GAP_MS for g in gaps),
        "long_gaps_ms": sum(g for g in gaps if g > LONG_GAP_MS),
    }


ROWS = (
    ("tasks/s (ideal on 2 isolates ≈ 2,000)", "tasks_per_s", "{:,.0f}"),
    ("run: s (of which enqueueing)", None, None),
    ("isolates busy: % of the run", "busy_pct", "{:.0f}"),
    ("… while the producer enqueued", "busy_enqueue_pct", "{:.0f}"),
    ("… after the last enqueue", "busy_after_pct", "{:.0f}"),
    ("gap between tasks: median ms", "gap_median_ms", "{:.2f}"),
    ("gap: p90 ms", "gap_p90_ms", "{:.2f}"),
    ("gap: p99 ms", "gap_p99_ms", "{:.2f}"),
    (f"gaps over {LONG_GAP_MS:g} ms: count (their total ms)", None, None),
)


def _cell(doc: dict[str, Any], label: str, key: str | None, fmt: str | None) -> str:
    if "error" in doc:
        return "—"
    if key is not None and fmt is not None:
        return fmt.format(doc[key])
    if label.startswith("run"):
        return f"{doc['total_s']:.2f} ({doc['enqueue_s']:.2f})"
    return f"{doc['long_gaps']:,.0f} ({doc['long_gaps_ms']:,.0f})"


def render(results: dict[str, dict[str, Any]], notes: dict[str, Any]) -> list[str]:
    """The report as Markdown lines."""
    lines = [f"# stemnb isolate gaps — {notes['when']}", "", h.machine_line(notes)]
    lines.append(f"\n{notes['tasks']:,} tasks of 1 ms per system; medians of {notes['rounds']} round(s).")
    systems = list(results)
    rows = [[label, *(_cell(results[s], label, key, fmt) for s in systems)] for label, key, fmt in ROWS]
    lines += ["", *h.simple_table(["measure", *systems], rows), ""]
    for name, doc in results.items():
        if "error" in doc:
            lines.append(f"- {name} failed: {doc['error']}\n\n```\n{doc.get('stderr', '')}\n```")
    lines += [
        "- Each task spins for 1 ms of wall time and returns its pid and start and end times; a gap is the time "
        "from one task's end to the start of the next on the same isolate. With a task staged behind the running "
        "one (the worker's send-ahead), an isolate goes from one task to the next without a gap.",
        "- stemnb-isolate: in-memory broker, worker in the producer's process; stemnb-isolate-redis: the same "
        "on Redis; stemnb-redis-worker-process: `python -m stemnb worker` on Redis, producer apart. "
        "Concurrency 2 everywhere.",
    ]
    return lines


def run(systems: Sequence[str], *, tasks: int, rounds: int = 1) -> tuple[dict[str, Any], list[str]]:
    """Measure ``systems`` ``rounds`` times, interleaved; return the median summaries and the report."""
    machine, began = h.machine_facts(), time.perf_counter()

    def measure(name: str, label: str) -> dict[str, Any]:
        print(f"[{time.strftime('%H:%M:%S')}] {label}{name}", file=sys.stderr, flush=True)
        return measure_system(name, tasks)

    per_round = h.interleaved_rounds(systems, rounds, measure)
    results = h.median_docs(per_round)  # a system that failed in any round shows its error
    notes = {"when": h.utc_now(), "machine": machine, "tasks": tasks, "rounds": rounds,
             "duration_min": (time.perf_counter() - began) / 60}
    return results, render(results, notes)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run the diagnostic, print and save the report."""
    parser = h.cli(__doc__.splitlines()[0], ALL_SYSTEMS, "gaps")
    args = parser.parse_args(argv)
    systems = h.chosen_systems(parser, args.systems, [s for s in TASK_SYSTEMS if s in ALL_SYSTEMS])
    _, lines = run(systems, tasks=QUICK_TASKS if args.quick else FULL_TASKS, rounds=args.rounds)
    h.publish(args.name, lines)


if __name__ == "__main__":
    main()
