"""The isolate-pattern notebooks: built from notebooks/patterns/build.py, committed with clean outputs.

One notebook per pattern of the Dart isolate catalogue (the core patterns, then the architecture ones). Their outputs are checked by the
nbval run in tests/test_notebooks.py (it collects notebooks/ recursively); these tests keep the
committed files honest and the list complete.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from notebook_support import assert_no_error_or_stderr, load_build

PATTERNS = Path(__file__).resolve().parent.parent / "notebooks" / "patterns"


BUILD = load_build(PATTERNS / "build.py", "notebooks_patterns_build")

EXPECTED = [
    "01_basic_isolate_run.ipynb",
    "02_heavy_task.ipynb",
    "03_passing_data.ipynb",
    "04_spawn_send_receive_ports.ipynb",
    "05_bidirectional_communication.ipynb",
    "06_multiple_isolates_in_parallel.ipynb",
    "07_error_handling.ipynb",
    "08_error_port.ipynb",
    "09_exit_port.ipynb",
    "10_pausing_and_resuming.ipynb",
    "11_killing_isolates.ipynb",
    "12_command_pattern.ipynb",
    "13_isolate_pool.ipynb",
    "14_streaming_data.ipynb",
    "15_isolate_with_timeout.ipynb",
    "16_debugging_names.ipynb",
    "17_transferable_types.ipynb",
    "18_priority_queue.ipynb",
    "19_run_vs_spawn.ipynb",
    "20_platform_features.ipynb",
    "21_background_scheduler.ipynb",
    "22_actor_model.ipynb",
    "23_pipeline.ipynb",
    "24_producer_consumer.ipynb",
    "25_work_stealing.ipynb",
    "26_fault_tolerance.ipynb",
    "27_load_balancer.ipynb",
    "28_rate_limiting.ipynb",
    "29_graceful_shutdown.ipynb",
    "30_monte_carlo.ipynb",
    "31_memory_intensive.ipynb",
    "32_json_processing.ipynb",
    "33_cryptographic_operations.ipynb",
    "34_compression.ipynb",
    "35_database_operations.ipynb",
    "36_file_processing.ipynb",
    "37_image_processing.ipynb",
    "38_event_sourcing.ipynb",
    "39_cqrs.ipynb",
    "40_state_management.ipynb",
    "41_hierarchical_isolates.ipynb",
    "42_genetic_algorithm.ipynb",
    "43_scientific_pipeline.ipynb",
    "44_realtime_aggregation.ipynb",
    "45_communication_patterns.ipynb",
    "46_performance_monitoring.ipynb",
    "47_resource_pooling.ipynb",
    "48_cascading_failures.ipynb",
    "49_deadlock_prevention.ipynb",
    "50_reactive_streams.ipynb",
    "51_distributed_tracing.ipynb",
    "52_network_requests.ipynb",
    "53_web_scraping.ipynb",
    "54_batch_documents.ipynb",
    "55_ml_inference.ipynb",
    "56_ray_tracing.ipynb",
    "57_blockchain_mining.ipynb",
    "58_video_processing.ipynb",
    "59_audio_processing.ipynb",
    "60_best_practices.ipynb",
]


def test_every_listed_pattern_has_a_build_entry_and_a_committed_notebook():
    assert list(BUILD.NOTEBOOKS) == EXPECTED
    committed = sorted(p.name for p in PATTERNS.glob("*.ipynb"))
    assert committed == EXPECTED


@pytest.mark.parametrize("name", EXPECTED)
def test_committed_pattern_notebook_matches_its_build_script(name):
    nb = nbformat.read(PATTERNS / name, as_version=4)
    expected = list(BUILD.NOTEBOOKS[name])
    actual = [(BUILD.MD if c.cell_type == "markdown" else BUILD.PY, c.source) for c in nb.cells]
    assert actual == expected, f"{name} is stale: run python notebooks/patterns/build.py {name[:2]}"


@pytest.mark.parametrize("name", EXPECTED)
def test_pattern_notebook_starts_with_an_intro_and_every_code_cell_ran_cleanly(name):
    nb = nbformat.read(PATTERNS / name, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run top to bottom once"
    assert_no_error_or_stderr(code)


def test_pattern_notebooks_print_no_unsanitised_process_ids():
    """Outputs are compared by nbval; a pid only passes when written as ``pid=N`` (sanitize.cfg)."""
    for name in EXPECTED:
        nb = nbformat.read(PATTERNS / name, as_version=4)
        for cell in nb.cells:
            for out in cell.get("outputs", []):
                text = out.get("text", "") + str(out.get("data", {}).get("text/plain", ""))
                assert "(pid " not in text and "pid:" not in text, (name, text)


def test_nbval_collects_the_pattern_notebooks():
    """The slow nbval test runs ``pytest --nbval notebooks/``; it must reach notebooks/patterns/."""
    root = PATTERNS.parent.parent
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-current-env", "--collect-only", "notebooks/"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    for name in EXPECTED:
        assert f"notebooks/patterns/{name}::" in proc.stdout, name
