"""The task-queue names stemnb exports resolve, are documented, and come from stemnb's modules."""

from __future__ import annotations

import inspect

import pytest

import stemnb
from stemnb._api_tasks import NAMES


@pytest.mark.parametrize("name", sorted(NAMES))
def test_every_task_queue_name_resolves_and_has_a_docstring(name):
    value = getattr(stemnb, name)
    assert name in stemnb.__all__
    assert inspect.getdoc(value), f"stemnb.{name} has no docstring"
    module = getattr(value, "__module__", "") or ""
    assert module.startswith("stemnb"), module


def test_importing_stemnb_does_not_load_the_worker():
    import subprocess
    import sys

    code = "import sys, stemnb; print(any(m.startswith('stemnb._worker') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
