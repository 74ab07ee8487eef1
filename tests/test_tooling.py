"""The house tooling, enforced by the suite: ruff lints everything, mypy type-checks the package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_finds_nothing_in_the_package_tests_and_benchmarks():
    out = _run("ruff", "check", "stemnb", "tests", "bench", "notebooks/build.py")
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_finds_no_type_error_in_the_package():
    out = _run("mypy", "stemnb")
    assert out.returncode == 0, out.stdout + out.stderr
