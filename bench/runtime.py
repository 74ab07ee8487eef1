"""Issue 2 benchmark: stemnb's isolate pool beside loky, concurrent.futures, multiprocessing.Pool,
joblib and Ray, all in one run, each in its own fresh ``python -c`` child, one after the other.

Run by hand from the repository root (never by the test suite)::

    .venv/bin/python -m bench.runtime                  # every system, full sizes (~6-10 min)
    .venv/bin/python -m bench.runtime --systems stemnb,loky --quick

It prints a Markdown report and writes it to ``bench/results/runtime-<UTC date-time>.md``.
See ``bench/README.md`` for what each workload means.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import _harness as h
from ._limits import SOURCE as LIMITS_SOURCE
from ._notebook_child import CHILD_SOURCE as NOTEBOOK_SOURCE
from ._runtime_child import CHILD_SOURCE, STEPS
from ._systems import SYSTEMS

ALL_SYSTEMS = ("stemnb", "loky", "cf", "mp-pool", "joblib", "ray")

FULL: dict[str, Any] = {}  # every workload's defaults live in _runtime_child
QUICK: dict[str, Any] = {
    "oneshot_warmup": 5,
    "oneshot_n": 50,
    "calls_n": 200,
    "map_repeats": 1,
    "array_bytes": 1_000_000,
    "array_repeats": 1,
    "big_transfer_bytes": 10_000_000,
    "transfer_repeats": 1,
    "cpu_repeats": 1,
    "cpu_tasks": 2,
    "idle_s": 0.2,
}
CHILD_TIMEOUT_S = 300.0
COLD_RUNS = 5


def _le(limit: float) -> Callable[[Any, dict], bool]:
    return lambda v, _: v <= limit


def _ge(limit: float) -> Callable[[Any, dict], bool]:
    return lambda v, _: v >= limit


def _le_loky(v: Any, results: dict) -> bool | None:
    loky = results.get("loky", {}).get("pss_mb")
    return v <= loky if isinstance(loky, (int, float)) else None  # None: loky not measured


WORKLOADS = tuple(step.__name__ for step in STEPS)
ROUND_KEYS = (("oneshot_median_us", "round trip µs", "{:,.0f}"), ("submit_per_s", "20k calls/s", "{:,.0f}"),
              ("cpu_speedup", "speedup", "{:.2f}"))

ROWS: list[tuple[h.Row, Callable[[Any, dict], bool | None] | None]] = [
    (
        h.Row(
            "oneshot_median_us", "(a) one-shot round trip, `__main__` fn: median µs", True, "≤ 150"
        ),
        _le(150),
    ),
    (h.Row("oneshot_p99_us", "(a) one-shot round trip: p99 µs", True), None),
    (h.Row("submit_per_s", "(b) 20,000 individual calls: calls/s", False, "≥ 40,000"), _ge(40_000)),
    (
        h.Row(
            "map_per_s",
            "(b) map of 20,000 items, chunksize N/8 = 2,500: items/s",
            False,
            "≥ 1,000,000",
        ),
        _ge(1e6),
    ),
    (
        h.Row("arg100_ms", "(c) 100 MB array as argument (sum there): ms", True, "≤ 40", "{:,.1f}"),
        _le(40),
    ),
    (
        h.Row(
            "res100_ms", "(c) 100 MB array as result (np.ones there): ms", True, "≤ 40", "{:,.1f}"
        ),
        _le(40),
    ),
    (
        h.Row("tr1mb_ms", "(c) transferable array (shared_array), 1 MB: ms", True, "", "{:,.3f}"),
        None,
    ),
    (
        h.Row(
            "tr1gb_ms", "(c) transferable array (shared_array), 1 GB: ms", True, "≤ 1", "{:,.3f}"
        ),
        _le(1),
    ),
    (
        h.Row(
            "ttd1mb_ms",
            "(c) one-shot TransferableTypedData, 1 MB, sent + materialized: ms",
            True,
            "",
            "{:,.3f}",
        ),
        None,
    ),
    (
        h.Row(
            "ttd1gb_ms",
            "(c) one-shot TransferableTypedData, 1 GB, sent + materialized: ms",
            True,
            "≤ 1",
            "{:,.3f}",
        ),
        _le(1),
    ),
    (
        h.Row(
            "ttd1mb_warm_ms",
            "(c) the same, 1 MB, after one untimed tiny call per worker: ms",
            True,
            "",
            "{:,.3f}",
        ),
        None,
    ),
    (
        h.Row(
            "ttd1gb_warm_ms",
            "(c) the same, 1 GB, after one untimed tiny call per worker: ms",
            True,
            "",
            "{:,.3f}",
        ),
        None,
    ),
    (
        h.Row(
            "tiny_cold_ms",
            "(c) control: a tiny call timed as the one-shot rows (right after building 1 GB): ms",
            True,
            "",
            "{:,.3f}",
        ),
        None,
    ),
    (h.Row("cpu_serial_s", "(d) 8 CPU tasks serially in the driver: s", None, "", "{:.2f}"), None),
    (h.Row("cpu_parallel_s", "(d) the same 8 tasks on the pool: s", True, "", "{:.2f}"), None),
    (h.Row("cpu_speedup", "(d) speedup (ideal 2.0)", False, "≥ 1.9", "{:.2f}"), _ge(1.9)),
    (
        h.Row(
            "cold_s",
            "(e) cold start, fresh interpreter → first result: s",
            True,
            "≤ 0.25",
            "{:.3f}",
        ),
        _le(0.25),
    ),
    (h.Row("cold_stop_s", "(e) stop call after that first result: s", True, "", "{:.3f}"), None),
    (
        h.Row(
            "pool_start_s", "(f) pool start + warm-up inside a warm child: s", True, "", "{:.2f}"
        ),
        None,
    ),
    (h.Row("procs", "(f) processes under the driver", None), None),
    (h.Row("pss_mb", "(f) PSS of those processes: MB", True, "≤ loky", "{:,.0f}"), _le_loky),
    (h.Row("driver_pss_mb", "(f) driver's own PSS: MB", True, "", "{:,.0f}"), None),
    (
        h.Row(
            "idle_cpu_pct",
            "(f) idle CPU over 2 s, driver + pool: % of one core",
            True,
            "0 %",
            "{:.1f}",
        ),
        _le(0.5),
    ),
    (h.Row("stop_s", "(f) stop the warm pool at the end: s", True, "", "{:.2f}"), None),
    (h.Row("probe_range", "CPU probe before each workload: ms min–max", None), None),
]

COLD_SOURCES = {
    "stemnb": """
import stemnb
def identity(x): return x
pool = stemnb.IsolatePool(2)
pool.run(identity, 1).result()
print("FIRST", flush=True)
import time; t = time.perf_counter(); pool.close(); print("SHUTDOWN", time.perf_counter() - t, flush=True)
""",
    "loky": """
from loky import get_reusable_executor
def identity(x): return x
ex = get_reusable_executor(max_workers=2)
ex.submit(identity, 1).result()
print("FIRST", flush=True)
import time; t = time.perf_counter(); ex.shutdown(wait=True); print("SHUTDOWN", time.perf_counter() - t, flush=True)
""",
    "cf": """
from concurrent.futures import ProcessPoolExecutor
def identity(x): return x
ex = ProcessPoolExecutor(2)
ex.submit(identity, 1).result()
print("FIRST", flush=True)
import time; t = time.perf_counter(); ex.shutdown(wait=True); print("SHUTDOWN", time.perf_counter() - t, flush=True)
""",
    "mp-pool": """
import multiprocessing
def identity(x): return x
pool = multiprocessing.Pool(2)
pool.apply_async(identity, (1,)).get()
print("FIRST", flush=True)
import time; t = time.perf_counter(); pool.close(); pool.join(); print("SHUTDOWN", time.perf_counter() - t, flush=True)
""",
    "joblib": """
from joblib import Parallel, delayed
def identity(x): return x
Parallel(n_jobs=2)([delayed(identity)(1)])
print("FIRST", flush=True)
import time; t = time.perf_counter()
from joblib.externals.loky import get_reusable_executor
get_reusable_executor().shutdown(wait=True); print("SHUTDOWN", time.perf_counter() - t, flush=True)
""",
    "ray": """
import logging
import ray
def identity(x): return x
ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)
ray.get(ray.remote(identity).remote(1))
print("FIRST", flush=True)
import time; t = time.perf_counter(); ray.shutdown(); print("SHUTDOWN", time.perf_counter() - t, flush=True)
""",
}
BASELINES = {
    "python -c pass": 'print("FIRST", flush=True)',
    "python -c 'import numpy'": 'import numpy\nprint("FIRST", flush=True)',
}


def measure_system(
    name: str, config: dict[str, Any], timeout: float = CHILD_TIMEOUT_S
) -> dict[str, Any]:
    """Run every workload of system ``name`` in a fresh ``python -c`` child; return its results."""
    if name not in SYSTEMS:
        raise ValueError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
    doc = h.run_child(CHILD_SOURCE, {**config, "system": name}, timeout)
    probes = doc.get("probes_ms") or []
    if probes:
        doc["probe_range"] = f"{min(probes):.1f}–{max(probes):.1f}"
    return doc


def cold_start(source: str, runs: int = COLD_RUNS) -> tuple[float, float]:
    """Return the median seconds to first result and median stop seconds over ``runs`` children."""
    firsts, stops = [], []
    for _ in range(runs):
        first, stop = h.time_to_marker(source, "FIRST", timeout=120)
        firsts.append(first)
        if stop is not None:
            stops.append(stop)
    return statistics.median(firsts), statistics.median(stops) if stops else math.nan


def measure_limits(config: dict[str, Any]) -> dict[str, Any]:
    """Measure the machine's pipe round trips and memcpy bandwidth in a fresh child."""
    return h.run_child(LIMITS_SOURCE, config, timeout=120)


def render(
    results: dict[str, dict[str, Any]],
    limits: dict[str, Any],
    baselines: dict[str, float],
    notes: dict[str, Any],
) -> list[str]:
    """Return the whole report as Markdown lines."""
    rows = [row for row, _ in ROWS]
    lines = [f"# stemnb runtime benchmark — {notes['when']}", ""]
    lines += [h.machine_line(notes), ""]
    lines += h.ratio_table(rows, results, ["stemnb"])
    lines += ["", _targets_line(results)] if "stemnb" in results else []
    lines += [
        "",
        "Ratios: how many times better stemnb is than the best peer on that row (×1.00 = equal; below 1 = worse).",
    ]
    rounds = notes.get("rounds") or []
    if len(rounds) > 1:
        lines += ["", f"Each cell above is the median of {len(rounds)} rounds; some rows in each round:", ""]
        lines += _round_table(rounds)
    lines += _errors(results)
    lines += [
        "",
        "## Notebook-style callables (`python -c` child: `__main__` has no file, as in Jupyter)",
        "",
    ]
    lines += _notebook_table(results)
    lines += ["", "## Physical limits (same machine, same run)", ""]
    lines += _limits_table(limits)
    if baselines:
        lines += ["", "## Cold-start baselines (median of 5)", ""]
        lines += h.simple_table(
            ["interpreter", "s"], [(k, f"{v:.3f}") for k, v in baselines.items()]
        )
    lines += ["", "## How each system was called", ""]
    lines += h.simple_table(["system", "calls"], [(n, SYSTEMS[n].how) for n in results])
    lines += ["", "## Notes", ""] + [f"- {n}" for n in notes["lines"]]
    return lines


def _round_table(rounds: Sequence[dict[str, dict[str, Any]]]) -> list[str]:
    """Per round and system, the rows of :data:`ROUND_KEYS` that were measured."""
    keys = [k for k in ROUND_KEYS if any(isinstance(d.get(k[0]), (int, float)) for r in rounds for d in r.values())]
    rows = []
    for i, docs in enumerate(rounds, 1):
        for name, doc in docs.items():
            cells = [fmt.format(doc[key]) if isinstance(doc.get(key), (int, float)) else "—" for key, _, fmt in keys]
            rows.append((str(i), name, *cells))
    return h.simple_table(["round", "system", *(label for _, label, _ in keys)], rows)


def _targets_line(results: dict[str, dict[str, Any]]) -> str:
    met, missed = [], []
    for row, check in ROWS:
        value = results["stemnb"].get(row.key)
        if check is None or not isinstance(value, (int, float)):
            continue
        verdict = check(value, results)
        if verdict is not None:
            (met if verdict else missed).append(row.label.split(":")[0])
    return f"Issue targets for stemnb — met: {', '.join(met) or 'none'}; missed: {', '.join(missed) or 'none'}."


def _errors(results: dict[str, dict[str, Any]]) -> list[str]:
    out = []
    for name, doc in results.items():
        for step, err in (doc.get("errors") or {}).items():
            out.append(f"- {name} / {step}: {err}")
        if "error" in doc:
            out.append(
                f"- {name}: {doc['error']}"
                + (f"\n\n```\n{doc.get('stderr', '')}\n```" if doc.get("stderr") else "")
            )
    return ["", "Errors (a failed workload shows as —):", "", *out] if out else []


def _notebook_table(results: dict[str, dict[str, Any]]) -> list[str]:
    rows = []
    for name, doc in results.items():
        nb = doc.get("notebook") or {}
        cells = [nb.get(case, nb.get("error", "—")) for case in ("after_warm", "lambda")]
        rows.append((name, *cells))
    head = ["system", "`__main__` function defined after the pool is warm", "lambda"]
    return [
        *h.simple_table(head, rows),
        "",
        "Each call has 10 s; a failed case abandons the pool and starts a new one.",
    ]


def _limits_table(lim: dict[str, Any]) -> list[str]:
    if "error" in lim:
        return [f"limits failed: {lim['error']}"]
    gb = lim["bytes"] / 1e9
    rows = [
        (
            "os.pipe ping-pong, 1 byte, forked echo: median / p99 µs",
            f"{lim['pipe_median_us']:.1f} / {lim['pipe_p99_us']:.1f}",
        ),
        (
            "multiprocessing Pipe ping-pong, an int: median / p99 µs",
            f"{lim['mp_median_us']:.1f} / {lim['mp_p99_us']:.1f}",
        ),
        (
            f"os.pipe bulk {gb * 1000:.0f} MB to another process: ms (GB/s)",
            f"{lim['pipe_bulk_ms']:.0f} ({gb / lim['pipe_bulk_ms'] * 1e3:.2f})",
        ),
        (
            f"memcpy {gb * 1000:.0f} MB into a prefaulted array (np.copyto): ms (GB/s)",
            f"{lim['memcpy_prefaulted_ms']:.1f} ({gb / lim['memcpy_prefaulted_ms'] * 1e3:.2f})",
        ),
        (
            f"memcpy {gb * 1000:.0f} MB into a fresh array (arr.copy()): ms (GB/s)",
            f"{lim['memcpy_fresh_ms']:.1f} ({gb / lim['memcpy_fresh_ms'] * 1e3:.2f})",
        ),
        (
            f"in-process work: np.ones {gb * 1000:.0f} MB / .sum(): ms",
            f"{lim['np_ones_ms']:.1f} / {lim['np_sum_ms']:.1f}",
        ),
    ]
    if "fork_speedup" in lim:
        rows.append((
            "(d)'s 8 CPU tasks on 2 bare forked processes (no pool): serial / parallel s, speedup",
            f"{lim['fork_serial_s']:.2f} / {lim['fork_parallel_s']:.2f}, {lim['fork_speedup']:.2f}",
        ))
    return h.simple_table(["measure", "value"], rows)


def run(
    systems: Sequence[str],
    quick: bool = False,
    cold: bool = True,
    rounds: int = 1,
    only: Sequence[str] = (),
) -> tuple[dict, list[str]]:
    """Measure ``systems`` one after the other and return (raw results, report lines).

    With ``rounds`` > 1 every system is measured that many times, each round in a rotated order,
    and each cell is its median over the rounds. ``only`` names the workloads to run (all when
    empty; see ``_runtime_child.STEPS``); the notebook-style and cold-start children run only
    when it is empty.
    """
    start = time.perf_counter()
    machine = h.machine_facts()
    h.byte_compile_stemnb()
    cpu_n = h.calibrate_cpu_task(0.01 if quick else 0.25)
    config = {**(QUICK if quick else FULL), "cpu_n": cpu_n}
    if only:
        config["skip"] = [name for name in WORKLOADS if name not in only]
    extras = cold and not only
    per_round = h.interleaved_rounds(systems, rounds, lambda name, label: _measure_round(name, config, extras, label))
    results = h.median_docs(per_round)
    _say("physical limits")
    limits = measure_limits({"rounds": 200, "bulk_bytes": 10_000_000, "cpu_n": cpu_n} if quick else {"cpu_n": cpu_n})
    baselines = {k: cold_start(src)[0] for k, src in BASELINES.items()} if cold else {}
    serial_end = h.best_of(3, lambda: h.cpu_task(cpu_n)) * 8
    notes = {
        "when": h.utc_now(),
        "machine": machine,
        "duration_min": (time.perf_counter() - start) / 60,
        "rounds": per_round,
        "lines": [
            f"(d) uses 8 × cpu_task(n={cpu_n:,}), calibrated to ~0.25 s per task at the start of the run; "
            f"8 tasks serially in the driver at the end of the run took {serial_end:.2f} s. Each system's "
            "speedup divides its own best serial time by its best parallel time, interleaved (best of 3 each).",
            "All pools have 2 workers and are warm (workers started, numpy imported) before measuring; every "
            "task function is defined in the child's `__main__` (a `python -c` child, no file), before the pool "
            "is made — the kindest case for the fork-based peers (cf, mp-pool).",
            "(a) 2000 sequential submit-and-wait calls of identity(i) after 100 warm-up calls (at most 6 s: the "
            "n is smaller for slow systems). (b) wall time from the first submit to the last result. (c) median "
            "of 3 after one warm-up, a new array object per call made outside the timing; the transferable row "
            "sends an array made once (stemnb.shared_array; Ray: ray.put ref) and reads its ends in the worker. "
            "(e) median of 5 fresh `python -c` processes: interpreter + imports + pool + first identity() result; "
            "stemnb's bytecode is written first, as pip writes every installed peer's (this machine sets "
            "PYTHONDONTWRITEBYTECODE, so the editable stemnb would otherwise compile its sources in every process).",
            "(f) processes and PSS are everything below the driver (workers, daemons, trackers); idle CPU sums "
            "the driver and them.",
            "Versions: "
            + h.versions(["stemnb", "numpy", "cloudpickle", "loky", "joblib", "ray", "psutil"])
            + ".",
        ],
    }
    return {"systems": results, "limits": limits, "baselines": baselines}, render(
        results, limits, baselines, notes
    )


def _measure_round(name: str, config: dict[str, Any], extras: bool, prefix: str) -> dict[str, Any]:
    """One system's workloads child, then (``extras``) its notebook-style and cold-start children."""
    _say(f"{prefix}{name}: workloads")
    doc = measure_system(name, config)
    if not extras:
        return doc
    _say(f"{prefix}{name}: notebook-style callables")
    doc["notebook"] = h.run_child(NOTEBOOK_SOURCE, {"system": name}, timeout=120)
    _say(f"{prefix}{name}: cold start x{COLD_RUNS}")
    try:
        doc["cold_s"], doc["cold_stop_s"] = cold_start(COLD_SOURCES[name])
    except Exception as exc:
        doc.setdefault("errors", {})["cold_start"] = str(exc)[:400]
    return doc


def _say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run the benchmark, print and save the report."""
    parser = h.cli(__doc__.splitlines()[0], ALL_SYSTEMS, "runtime")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-start children")
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated workloads to run, of {', '.join(WORKLOADS)} (default: all, plus "
        "the notebook-style and cold-start children)",
    )
    args = parser.parse_args(argv)
    systems = h.chosen_systems(parser, args.systems, SYSTEMS)
    only = h.chosen_systems(parser, args.only, WORKLOADS, "workloads") if args.only else []
    _, lines = run(systems, quick=args.quick, cold=not args.no_cold, rounds=args.rounds, only=only)
    h.publish(args.name, lines)


if __name__ == "__main__":
    main()
