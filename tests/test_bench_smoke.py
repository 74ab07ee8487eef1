"""The hand-run benchmarks under bench/ still import and measure stemnb (tiny sizes, no peers).

These check the harness cannot rot; they assert nothing about speed.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is not part of the installed package
    sys.path.insert(0, str(ROOT))

from bench import _cpu, _harness, gaps, runtime, tasks  # noqa: E402

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


def test_runtime_bench_names_an_unknown_workload_as_a_workload(capsys):
    with pytest.raises(SystemExit) as exit_info:
        runtime.main(["--only", "oneshot,warp"])
    assert exit_info.value.code == 2
    assert "unknown workloads ['warp']; known: " in capsys.readouterr().err


def test_tasks_bench_runs_inline_stemnb_tasks_end_to_end_at_a_tiny_size():
    doc = tasks.measure_system("stemnb-inline", tasks.QUICK, timeout=120)
    assert "error" not in doc, doc.get("stderr")
    assert doc["errors"] == {}
    assert doc["noop_n"] == tasks.QUICK["noop_n"] and doc["noop_tps"] > 0
    assert doc["busy_1ms_lat_n"] == tasks.QUICK["latency_n"]
    if _cpu.available():  # the producer's process ran every 1 ms task: 20 ms of CPU, 2 clock ticks
        assert doc["busy_1ms_cpu_us"] > 0
        assert doc["busy_1ms_cpu_us:producer+worker"] == doc["busy_1ms_cpu_us"]
    report = "\n".join(tasks.render({"stemnb-inline": doc}, {**_notes(), "lines": []}))
    assert "| no-op: tasks/s" in report
    assert "| no-op: CPU per task, every process: µs" in report
    if _cpu.available():
        assert "| no-op: of which producer · worker · Redis: µs |  | producer+worker " in report


def test_tasks_bench_takes_celery_ratios_round_by_round_and_reports_their_median():
    rounds = [
        {"stemnb-isolate": {"noop_tps": 900.0}, "celery": {"noop_tps": 300.0}},
        {"stemnb-isolate": {"noop_tps": 500.0}, "celery": {"noop_tps": 500.0}},
        {"stemnb-isolate": {"noop_tps": 800.0}, "celery": {"noop_tps": 400.0}},
    ]
    lines = tasks._celery_targets(rounds)
    assert lines == [
        "stemnb-isolate noop: 2.00× Celery's throughput (rounds: ×3.00, ×1.00, ×2.00) (target ≥ 2×: met)"
    ]


def test_tasks_bench_adds_celerys_cpu_per_task_over_stemnbs_where_both_were_measured():
    rounds = [
        {"stemnb-isolate-redis": {"busy_1ms_tps": 900.0, "busy_1ms_cpu_us": 1600.0},
         "celery": {"busy_1ms_tps": 500.0, "busy_1ms_cpu_us": 3200.0}},
        {"stemnb-isolate-redis": {"busy_1ms_tps": 950.0, "busy_1ms_cpu_us": 1800.0},
         "celery": {"busy_1ms_tps": 500.0, "busy_1ms_cpu_us": 3240.0}},
    ]
    assert tasks._celery_targets(rounds) == [
        "stemnb-isolate-redis busy_1ms: 1.85× Celery's throughput (rounds: ×1.80, ×1.90) (target ≥ 2×: missed); "
        "Celery's CPU per task ×1.90 its own (rounds: ×2.00, ×1.80)"
    ]


def test_median_docs_takes_each_numeric_cell_s_median_over_the_rounds():
    rounds = [
        {"a": {"tps": 1.0, "how": "x", "probes_ms": [5.0]}},
        {"a": {"tps": 9.0, "how": "y", "probes_ms": [7.0, 6.0]}},
        {"a": {"tps": 4.0, "how": "z", "probes_ms": [9.5]}},
    ]
    merged = _harness.median_docs(rounds)
    assert merged["a"]["tps"] == 4.0
    assert merged["a"]["how"] == "z"  # not numeric: the last round's
    assert merged["a"]["probe_range"] == "5.0–9.5"


def test_rounds_must_be_a_positive_count():
    with pytest.raises(SystemExit):
        tasks.main(["--rounds", "0"])


@pytest.mark.skipif(not _cpu.available(), reason="reads /proc")
def test_cpu_meter_counts_the_cpu_a_child_process_burns_between_its_readings():
    import subprocess

    burn = "import sys\nn = 0\nfor i in range(3_000_000): n += i\nprint('done', flush=True)\nsys.stdin.read()"
    child = subprocess.Popen([sys.executable, "-c", burn], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        meter = _cpu.CpuMeter({"child": child.pid})
        meter.start()
        assert child.stdout.readline() == "done\n"  # it burnt its loop and now blocks on stdin
        spent = meter.stop()
        assert spent["child"] > 0.0
        assert meter.per_task_us(1000)["total"] == pytest.approx(spent["child"] * 1000)
        nested = _cpu.CpuMeter({"parent": os.getpid(), "child": child.pid})
        nested.start()
        assert child.pid in _cpu.descendants(os.getpid())
        assert child.pid not in nested._read()["parent"]  # the child counts once, as its own group
        nested.stop()
    finally:
        child.stdin.close()
        child.wait(30)
        child.stdout.close()


def test_best_peer_ratio_says_how_many_times_better_the_subject_is():
    row = _harness.Row("t", "time", lower_is_better=True)
    table = _harness.ratio_table([row], {"a": {"t": 2.0}, "b": {"t": 8.0}, "c": {"t": 4.0}}, ["a"])
    assert table[-1] == "| time |  | 2 | 8 | 4 | c 4 | ×2.00 |"


def test_threads_bench_runs_stemnb_capped_and_uncapped_at_a_tiny_size(tmp_path, monkeypatch):
    from bench import threads

    monkeypatch.setattr(_harness, "RESULTS", tmp_path)
    assert threads.main(["--systems", "stemnb,stemnb-uncapped", "--quick"]) == 0
    (report,) = tmp_path.glob("threads-*.md")
    rows = {cells[1].strip(): [c.strip() for c in cells[2:]] for cells in
            (line.split("|") for line in report.read_text().splitlines() if line.startswith("| stemnb"))}
    from loky import cpu_count

    assert rows["stemnb"][1] == str(max(1, cpu_count() // 2))  # BLAS threads per process
    assert rows["stemnb-uncapped"][1] == str(cpu_count())


def test_gaps_bench_times_stemnb_isolate_tasks_at_a_tiny_size():
    doc = gaps.measure_system("stemnb-isolate", 10, timeout=120)
    assert "error" not in doc, doc.get("stderr")
    assert doc["tasks"] == 10 and doc["isolates"] in (1, 2)
    assert 0 < doc["busy_pct"] <= 100
    notes = {"when": "now", "machine": _harness.machine_facts(), "tasks": 10, "rounds": 1, "duration_min": 0.1}
    report = "\n".join(gaps.render({"stemnb-isolate": doc}, notes))
    assert "| isolates busy: % of the run |" in report


def test_gaps_summary_counts_busy_time_and_gaps_per_isolate_and_phase():
    # isolate 1: 0-1, 1.5-2.5 (gap 0.5); isolate 2: 0-1, 4-5 (gap 3); enqueueing ends at 1
    spans = [[1, 0.0, 1.0], [1, 1.5, 2.5], [2, 0.0, 1.0], [2, 4.0, 5.0]]
    doc = gaps.summarize(spans, start=0.0, enqueued=1.0, end=5.0)
    assert doc["isolates"] == 2 and doc["tasks_per_s"] == 4 / 5
    assert doc["busy_pct"] == 100 * 4 / 10
    assert doc["busy_enqueue_pct"] == 100.0 and doc["busy_after_pct"] == 100 * 2 / 8
    assert doc["gap_median_ms"] == 1750.0 and doc["long_gaps"] == 2 and doc["long_gaps_ms"] == 3500.0
    assert doc["gap_p90_ms"] == 3000.0 and doc["gap_p99_ms"] == 3000.0


def test_percentiles_are_by_nearest_rank():
    values = list(range(1, 101))  # 1..100
    assert _harness.percentile(values, 0.90) == 90 and _harness.p99(values) == 99 and _harness.percentile(values, 0.0) == 1
    assert _harness.percentile([5.0], 0.5) == 5.0 and math.isnan(_harness.percentile([], 0.9))


def test_gaps_bench_rejects_an_unknown_system_by_name():
    with pytest.raises(ValueError, match="unknown system 'celery'"):
        gaps.measure_system("celery", 10)


def test_ports_bench_times_a_stemnb_port_ping_pong_at_a_tiny_size(tmp_path, monkeypatch):
    from bench import ports

    monkeypatch.setattr(_harness, "RESULTS", tmp_path)
    assert ports.main(["--systems", "stemnb-port", "--quick"]) == 0
    (report,) = tmp_path.glob("ports-*.md")
    (row,) = [line for line in report.read_text().splitlines() if line.startswith("| stemnb-port")]
    median_us, p99_us, error = (cell.strip() for cell in row.split("|")[2:5])
    assert error == ""
    assert 0 < float(median_us.replace(",", "")) <= float(p99_us.replace(",", ""))
