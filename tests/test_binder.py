"""Binder: build a fresh environment from binder/ the way repo2docker does, and run the notebooks in it.

repo2docker copies the repository, runs ``pip install -r binder/requirements.txt`` from the
repository root (the local ``.[...]`` line installs stemnb itself), then runs ``binder/postBuild``
(which must start with ``set -e``). Its base environment already has Jupyter; here a fresh venv
gets the same kernel pieces plus nbval to run the notebooks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"
BASE_ENV = ["nbclient", "nbformat", "nbval", "pytest", "pytest-timeout"]  # what the base image provides


def test_binder_files_follow_repo2docker_conventions():
    requirements = [line.strip() for line in (BINDER / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert any(line.startswith(".") for line in requirements), "a local line installs this repo"
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    post_build = (BINDER / "postBuild").read_text().splitlines()
    assert post_build[0] == "#!/bin/bash" and "set -e" in post_build
    assert os.access(BINDER / "postBuild", os.X_OK)
    assert not (ROOT / ".binder").exists(), "binder/ and .binder/ together are an error"


def copy_repository(dest: Path) -> Path:
    """Copy the files git knows about (as repo2docker copies the repository)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True,
                           text=True).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_fresh_environment_from_binder_runs_the_notebooks(tmp_path):
    repo = copy_repository(tmp_path / "repo")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], tmp_path, dict(os.environ))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", VIRTUAL_ENV=str(venv),
               PIP_DISABLE_PIP_VERSION_CHECK="1", JUPYTER_PLATFORM_DIRS="1")
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", *BASE_ENV], repo, env)
    run([python, "-m", "pip", "install", "-q", "-r", "binder/requirements.txt"], repo, env)
    out = run(["./binder/postBuild"], repo, env)
    assert "stemnb 0.1.0" in out
    run([python, "-c", "import stemnb, pathlib; assert pathlib.Path(stemnb.__file__).is_relative_to("
                       f"pathlib.Path({str(venv)!r}))"], tmp_path, env)  # installed, not the checkout
    out = run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
               "notebooks/", "--nbval-sanitize-with", "notebooks/sanitize.cfg"], repo, env)
    assert " passed" in out and "failed" not in out
