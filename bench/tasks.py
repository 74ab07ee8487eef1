"""Issue 3 benchmark: stemnb's task worker beside Celery and Dramatiq, end to end, in one run.

Each system runs in its own fresh ``python -c`` child, one after the other: broker → worker → pool
→ result backend, with a no-op task and a 1 ms CPU task, inline and in isolates for stemnb. Run by
hand from the repository root (needs Redis on 127.0.0.1:6379 for the peers)::

    .venv/bin/python -m bench.tasks
    .venv/bin/python -m bench.tasks --systems stemnb-isolate,celery --quick

It prints a Markdown report and writes it to ``bench/results/tasks-<UTC date-time>.md``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from . import _harness as h
from ._task_systems import TASK_SYSTEMS
from ._tasks_child import CHILD_SOURCE
from ._taskwork import REDIS_DB

ALL_SYSTEMS = (
    "stemnb-isolate",
    "stemnb-inline",
    "stemnb-isolate-redis",
    "stemnb-redis-worker-process",
    "celery",
    "dramatiq",
)
SUBJECTS = (
    "stemnb-isolate",
    "stemnb-inline",
    "stemnb-isolate-redis",
    "stemnb-redis-worker-process",
)
FULL: dict[str, Any] = {"noop_n": 2000, "busy_1ms_n": 1000}
QUICK: dict[str, Any] = {"noop_n": 50, "busy_1ms_n": 20, "latency_warmup": 2, "latency_n": 10}
CHILD_TIMEOUT_S = 300.0

ROWS = [
    h.Row(
        "noop_tps", "no-op: tasks/s (N enqueued at once, to the last result)", False, "≥ 2× celery"
    ),
    h.Row(
        "noop_lat_median_ms",
        "no-op: enqueue → result, one at a time: median ms",
        True,
        "",
        "{:,.2f}",
    ),
    h.Row("noop_lat_p99_ms", "no-op: enqueue → result: p99 ms", True, "", "{:,.2f}"),
    h.Row(
        "busy_1ms_tps", "1 ms CPU task: tasks/s (ideal on 2 cores ≈ 2,000)", False, "≥ 2× celery"
    ),
    h.Row(
        "busy_1ms_lat_median_ms", "1 ms CPU task: enqueue → result: median ms", True, "", "{:,.2f}"
    ),
    h.Row("busy_1ms_lat_p99_ms", "1 ms CPU task: enqueue → result: p99 ms", True, "", "{:,.2f}"),
    h.Row("noop_cpu_us", "no-op: CPU per task, every process: µs", True),
    h.Row("noop_cpu_split", "no-op: of which producer · worker · Redis: µs", None),
    h.Row("busy_1ms_cpu_us", "1 ms CPU task: CPU per task, every process: µs", True),
    h.Row("busy_1ms_cpu_split", "1 ms CPU task: of which producer · worker · Redis: µs", None),
    h.Row("noop_enqueue_per_s", "enqueue alone (no-op tasks): tasks/s", False),
    h.Row("start_s", "worker start to first result: s", True, "", "{:.2f}"),
    h.Row("stop_s", "worker stop: s", True, "", "{:.2f}"),
    h.Row("probe_range", "CPU probe before each workload: ms min–max", None),
]


def measure_system(
    name: str, config: dict[str, Any], timeout: float = CHILD_TIMEOUT_S
) -> dict[str, Any]:
    """Run both task kinds on system ``name`` in a fresh ``python -c`` child; return its results."""
    if name not in TASK_SYSTEMS:
        raise ValueError(f"unknown system {name!r}; known: {', '.join(TASK_SYSTEMS)}")
    doc = h.run_child(CHILD_SOURCE, {**config, "system": name}, timeout)
    probes = doc.get("probes_ms") or []
    if probes:
        doc["probe_range"] = f"{min(probes):.1f}–{max(probes):.1f}"
    return doc


def render(results: dict[str, dict[str, Any]], notes: dict[str, Any]) -> list[str]:
    """Return the whole report as Markdown lines."""
    lines = [f"# stemnb task-queue benchmark — {notes['when']}", "", h.machine_line(notes)]
    lines += ["", *h.ratio_table(ROWS, _with_cpu_splits(results), SUBJECTS), ""]
    lines.append(
        "Ratios: how many times better that stemnb column is than the best peer (Celery or Dramatiq) on the "
        "row; the issue's target is ×2 of Celery's throughput for isolate tasks."
    )
    rounds = notes.get("rounds") or [results]
    lines += [f"- {r}" for r in _celery_targets(rounds)]
    if len(rounds) > 1:
        lines += ["", f"Each cell above is the median of {len(rounds)} rounds; throughput in each round:", ""]
        lines += _round_table(rounds)
    errors = [
        f"- {name} / {step}: {err}"
        for docs in rounds
        for name, doc in docs.items()
        for step, err in (doc.get("errors") or {}).items()
    ] + [
        f"- {name}: {doc['error']}\n\n```\n{doc.get('stderr', '')}\n```"
        for docs in rounds
        for name, doc in docs.items()
        if "error" in doc
    ]
    if errors:
        lines += ["", "Errors (a failed workload shows as —):", "", *errors]
    lines += ["", "## How each system was called", ""]
    lines += h.simple_table(["system", "calls"], [(n, TASK_SYSTEMS[n].how) for n in results])
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes["lines"]]
    return lines


def _celery_targets(rounds: Sequence[dict[str, dict[str, Any]]]) -> list[str]:
    """One line per stemnb system and task kind: its throughput over Celery's, per round; and,
    where measured, Celery's CPU per task over its own (the ratio the throughput one tends to
    once both cores are busy, and one that moves less with the host's load)."""
    out = []
    for subject in SUBJECTS:
        for kind in ("noop", "busy_1ms"):
            ratios = _ratios(rounds, subject, "celery", f"{kind}_tps")
            if not ratios:
                continue
            mid = h.median(ratios)
            verdict = "met" if mid >= 2 else "missed"
            line = f"{subject} {kind}: {mid:.2f}× Celery's throughput{_each(ratios)} (target ≥ 2×: {verdict})"
            cpu = _ratios(rounds, "celery", subject, f"{kind}_cpu_us")
            if cpu:
                line += f"; Celery's CPU per task ×{h.median(cpu):.2f} its own{_each(cpu)}"
            out.append(line)
    return out


def _ratios(rounds: Sequence[dict[str, dict[str, Any]]], top: str, bottom: str, key: str) -> list[float]:
    """``top``'s ``key`` over ``bottom``'s, in each round where both were measured."""
    return [
        mine / theirs
        for docs in rounds
        for mine, theirs in [(docs.get(top, {}).get(key), docs.get(bottom, {}).get(key))]
        if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)) and theirs > 0
    ]


def _each(ratios: list[float]) -> str:
    return "" if len(ratios) == 1 else f" (rounds: {', '.join(f'×{x:.2f}' for x in ratios)})"


def _round_table(rounds: Sequence[dict[str, dict[str, Any]]]) -> list[str]:
    """Throughput of each system in each round, so the spread behind the medians shows."""
    systems = list(rounds[0])
    rows = []
    for i, docs in enumerate(rounds, 1):
        for kind in ("noop", "busy_1ms"):
            cells = [fmt_tps(docs[name].get(f"{kind}_tps")) for name in systems]
            rows.append((f"{i}", kind, *cells))
    return h.simple_table(["round", "task", *systems], rows)


def _with_cpu_splits(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``results`` with a "<kind>_cpu_split" cell per system: its per-process CPU parts."""
    out = {}
    for name, doc in results.items():
        doc = dict(doc)
        for kind in ("noop", "busy_1ms"):
            prefix = f"{kind}_cpu_us:"
            parts = [(k[len(prefix) :], v) for k, v in doc.items() if k.startswith(prefix)]
            if parts:
                doc[f"{kind}_cpu_split"] = " · ".join(f"{part} {us:,.0f}" for part, us in parts)
        out[name] = doc
    return out


def fmt_tps(value: Any) -> str:
    """A tasks/s cell ("—" when missing)."""
    return f"{value:,.0f}" if isinstance(value, (int, float)) else "—"


def run(systems: Sequence[str], quick: bool = False, rounds: int = 1) -> tuple[dict, list[str]]:
    """Measure ``systems`` one after the other, ``rounds`` times (each round in a rotated order,
    so no system always follows the same one), and return (results, report lines). With several
    rounds each cell is the median over the rounds, and the Celery ratios are taken round by
    round (a system against Celery measured minutes apart on this noisy host says little)."""
    start = time.perf_counter()
    machine = h.machine_facts()
    h.byte_compile_stemnb()
    config = QUICK if quick else FULL

    def measure(name: str, label: str) -> dict[str, Any]:
        print(f"[{time.strftime('%H:%M:%S')}] {label}{name}", file=sys.stderr, flush=True)
        return measure_system(name, config)

    per_round = h.interleaved_rounds(systems, rounds, measure)
    results = h.median_docs(per_round)
    notes = {
        "when": h.utc_now(),
        "machine": machine,
        "duration_min": (time.perf_counter() - start) / 60,
        "rounds": per_round,
        "lines": [
            f"Throughput: {config['noop_n']:,} no-op / {config['busy_1ms_n']:,} 1 ms tasks enqueued back to back "
            "from the producer, timed from the first enqueue to the last result read from the backend. "
            "Latency: one task at a time after 20 warm-up tasks, up to 300 samples or 8 s.",
            "CPU per task: user + system time, read from /proc before and after the throughput workload, of "
            "every process involved: the producer's process and everything below it (for stemnb-isolate, "
            "stemnb-inline and stemnb-isolate-redis the worker and its isolates run there), the worker "
            "program and everything below it, and the Redis server for the systems that use it, divided by "
            "the number of tasks. It moves much less with the host's load than throughput does, and bounds "
            "throughput once both cores are busy.",
            "Every worker has concurrency 2 (the machine's cores). Celery: prefork pool (processes, like stemnb "
            "isolates), default prefetch multiplier. Dramatiq: 2 worker processes × 1 thread. The 1 ms task "
            "spins on the CPU (not a sleep). Every system runs with its defaults: stemnb's isolates 5 steps "
            "below their worker's CPU priority (`WorkerLifecycleConfig.isolate_nice`), Celery's and "
            "Dramatiq's processes at their worker's.",
            f"Celery, Dramatiq, stemnb-isolate-redis and stemnb-redis-worker-process use Redis on "
            f"127.0.0.1:6379, database {REDIS_DB} (flushed before and after each); stemnb-isolate and "
            "stemnb-inline use the in-memory broker and backend. stemnb's worker runs in the producer's "
            "process (the notebook case), except in stemnb-redis-worker-process, where it is a separate "
            "program (`python -m stemnb worker`), as Celery's and Dramatiq's are.",
            "stemnb's task functions are defined in the child's `__main__` (as in a notebook) and shipped to "
            "isolates by cloudpickle, except stemnb-redis-worker-process's, which live in "
            "bench/_stemnb_app.py as Celery's and Dramatiq's live in bench/_celery_app.py / _dramatiq_app.py.",
            "Versions: "
            + h.versions(["stemnb", "celery", "kombu", "dramatiq", "redis", "cloudpickle", "loky"])
            + ".",
        ],
    }
    return results, render(results, notes)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run the benchmark, print and save the report."""
    parser = h.cli(__doc__.splitlines()[0], ALL_SYSTEMS, "tasks")
    args = parser.parse_args(argv)
    systems = h.chosen_systems(parser, args.systems, TASK_SYSTEMS)
    _, lines = run(systems, quick=args.quick, rounds=args.rounds)
    h.publish(args.name, lines)


if __name__ == "__main__":
    main()
