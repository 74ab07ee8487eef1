"""The example notebooks: built from notebooks/build.py, committed with clean outputs.

Their outputs are checked by ``pytest --nbval notebooks/ --nbval-sanitize-with
notebooks/sanitize.cfg`` (part of CI); these tests keep the committed files honest.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from notebook_support import assert_no_error_or_stderr, load_build

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


BUILD = load_build(NOTEBOOKS / "build.py", "notebooks_build")


def test_the_four_example_notebooks_exist():
    assert sorted(BUILD.NOTEBOOKS) == ["00_quickstart.ipynb", "01_isolate_run.ipynb",
                                       "02_spawn_and_ports.ipynb", "03_worker_quickstart.ipynb"]


@pytest.mark.parametrize("name", sorted(BUILD.NOTEBOOKS))
def test_committed_notebook_matches_its_build_script(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    expected = [(BUILD.MD if kind == BUILD.MD else BUILD.PY, src) for kind, src in BUILD.NOTEBOOKS[name]]
    actual = [(BUILD.MD if c.cell_type == "markdown" else BUILD.PY, c.source) for c in nb.cells]
    assert actual == expected, f"{name} is stale: run python notebooks/build.py"


@pytest.mark.parametrize("name", sorted(BUILD.NOTEBOOKS))
def test_committed_notebook_was_executed_without_errors_or_stderr(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every code cell ran"
    assert_no_error_or_stderr(code)


def test_widget_cells_are_excluded_from_output_comparison():
    for name, cells in BUILD.NOTEBOOKS.items():
        for kind, src in cells:
            if kind == BUILD.PY and ("Dashboard(" in src or "stemnb.progress(" in src):
                assert src.startswith("# NBVAL_IGNORE_OUTPUT"), (name, src)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_notebooks_reproduce_their_committed_outputs_under_nbval():
    """``pytest --nbval notebooks/`` (sanitised) as part of the one test command."""
    import subprocess
    import sys

    root = NOTEBOOKS.parent
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
                           "--nbval-current-env", "notebooks/", "--nbval-sanitize-with",
                           "notebooks/sanitize.cfg"], cwd=root, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
