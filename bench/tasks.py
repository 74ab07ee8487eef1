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
    m = notes["machine"]
    lines = [f"# stemnb task-queue benchmark — {notes['when']}", ""]
    lines.append(
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}, Python {m['python']}; "
        f"load average at start {m['load_at_start']}. **The machine was shared with other agents' builds and "
        f"tests during the run**, so absolute numbers are noisy; compare within a row. Run took "
        f"{notes['duration_min']:.1f} min."
    )
    lines += ["", *h.ratio_table(ROWS, results, SUBJECTS), ""]
    lines.append(
        "Ratios: how many times better that stemnb column is than the best peer (Celery or Dramatiq) on the "
        "row; the issue's target is ×2 of Celery's throughput for isolate tasks."
    )
    lines += [f"- {r}" for r in _celery_targets(results)]
    errors = [
        f"- {name} / {step}: {err}"
        for name, doc in results.items()
        for step, err in (doc.get("errors") or {}).items()
    ] + [
        f"- {name}: {doc['error']}\n\n```\n{doc.get('stderr', '')}\n```"
        for name, doc in results.items()
        if "error" in doc
    ]
    if errors:
        lines += ["", "Errors (a failed workload shows as —):", "", *errors]
    lines += ["", "## How each system was called", ""]
    lines += h.simple_table(["system", "calls"], [(n, TASK_SYSTEMS[n].how) for n in results])
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes["lines"]]
    return lines


def _celery_targets(results: dict[str, dict[str, Any]]) -> list[str]:
    celery = results.get("celery", {})
    out = []
    for subject in SUBJECTS:
        doc = results.get(subject, {})
        for kind in ("noop", "busy_1ms"):
            mine, theirs = doc.get(f"{kind}_tps"), celery.get(f"{kind}_tps")
            if isinstance(mine, (int, float)) and isinstance(theirs, (int, float)):
                verdict = "met" if mine >= 2 * theirs else "missed"
                out.append(
                    f"{subject} {kind}: {mine / theirs:.2f}× Celery's throughput (target ≥ 2×: {verdict})"
                )
    return out


def run(systems: Sequence[str], quick: bool = False) -> tuple[dict, list[str]]:
    """Measure ``systems`` one after the other and return (raw results, report lines)."""
    start = time.perf_counter()
    machine = h.machine_facts()
    h.byte_compile_stemnb()
    config = QUICK if quick else FULL
    results: dict[str, dict[str, Any]] = {}
    for name in systems:
        print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)
        results[name] = measure_system(name, config)
    notes = {
        "when": h.utc_now(),
        "machine": machine,
        "duration_min": (time.perf_counter() - start) / 60,
        "lines": [
            f"Throughput: {config['noop_n']:,} no-op / {config['busy_1ms_n']:,} 1 ms tasks enqueued back to back "
            "from the producer, timed from the first enqueue to the last result read from the backend. "
            "Latency: one task at a time after 20 warm-up tasks, up to 300 samples or 8 s.",
            "Every worker has concurrency 2 (the machine's cores). Celery: prefork pool (processes, like stemnb "
            "isolates), default prefetch multiplier. Dramatiq: 2 worker processes × 1 thread. The 1 ms task "
            "spins on the CPU (not a sleep).",
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
    _, lines = run(systems, quick=args.quick)
    print("\n".join(lines))
    print(f"\nwritten to {h.write_report(args.name, lines)}", file=sys.stderr)


if __name__ == "__main__":
    main()
