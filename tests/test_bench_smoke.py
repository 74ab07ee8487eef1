"""The hand-run benchmarks under bench/ still import and measure stemnb (tiny sizes, no peers).

These check the harness cannot rot; they assert nothing about speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is not part of the installed package
    sys.path.insert(0, str(ROOT))

from bench import _harness, runtime, tasks  # noqa: E402

pytestmark = pytest.mark.slow

ALL_BUT_ONESHOT = ["footprint", "throughput", "arrays", "transfer", "cpu"]


def _notes() -> dict:
    return {
        "when": _harness.utc_now(),
        "machine": _harness.machine_facts(),
        "duration_min": 0.0,
        "lines": [],
    }


def test_runtime_bench_measures_stemnb_one_shot_round_trips_at_a_tiny_size():
    config = {**runtime.QUICK, "cpu_n": 1000, "skip": ALL_BUT_ONESHOT}
    doc = runtime.measure_system("stemnb", config, timeout=120)
    assert "error" not in doc, doc.get("stderr")
    assert doc["errors"] == {}
    assert doc["oneshot_n"] == config["oneshot_n"]
    assert doc["oneshot_median_us"] > 0
    report = "\n".join(runtime.render({"stemnb": doc}, {"error": "not measured"}, {}, _notes()))
    assert "| (a) one-shot round trip, `__main__` fn: median µs | ≤ 150 |" in report


def test_runtime_bench_rejects_an_unknown_system_by_name():
    with pytest.raises(ValueError, match="unknown system 'dask'"):
        runtime.measure_system("dask", {})


def test_tasks_bench_runs_inline_stemnb_tasks_end_to_end_at_a_tiny_size():
    doc = tasks.measure_system("stemnb-inline", tasks.QUICK, timeout=120)
    assert "error" not in doc, doc.get("stderr")
    assert doc["errors"] == {}
    assert doc["noop_n"] == tasks.QUICK["noop_n"] and doc["noop_tps"] > 0
    assert doc["busy_1ms_lat_n"] == tasks.QUICK["latency_n"]
    report = "\n".join(tasks.render({"stemnb-inline": doc}, {**_notes(), "lines": []}))
    assert "| no-op: tasks/s" in report


def test_best_peer_ratio_says_how_many_times_better_the_subject_is():
    row = _harness.Row("t", "time", lower_is_better=True)
    table = _harness.ratio_table([row], {"a": {"t": 2.0}, "b": {"t": 8.0}, "c": {"t": 4.0}}, ["a"])
    assert table[-1] == "| time |  | 2 | 8 | 4 | c 4 | ×2.00 |"
