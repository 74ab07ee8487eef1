"""The documentation site builds with mkdocs in strict mode (every warning is an error)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_api_reference_pages_list_every_public_name():
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import api_pages
    finally:
        sys.path.remove(str(ROOT / "docs" / "hooks"))
    import stemnb

    listed = set()
    for area in api_pages.AREAS:
        page = api_pages.page(area)
        listed |= {line.split("`stemnb.")[1].rstrip("`") for line in page.splitlines()
                   if line.startswith("## `stemnb.")}
    assert listed == set(stemnb.__all__)


def test_nav_links_the_worker_page_and_the_notebooks():
    text = (ROOT / "mkdocs.yml").read_text()
    for target in ("worker.md", "notebook.md", "notebooks/00_quickstart.ipynb",
                   "notebooks/03_worker_quickstart.ipynb", "api/notebook.md"):
        assert f": {target}" in text, target


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_mkdocs_build_strict_passes(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d",
                           str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "notebook" / "index.html").exists()
    assert (tmp_path / "site" / "notebooks" / "00_quickstart" / "index.html").exists()
