"""Loading a notebook build script (notebooks/build.py, notebooks/patterns/build.py) as a module."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType


def load_build(path: Path, name: str) -> ModuleType:
    """Import the build script at ``path`` under module ``name`` (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"cannot load {path}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_no_error_or_stderr(code_cells: list) -> None:
    """Fail on any code cell whose committed outputs hold an error or text written to stderr."""
    for cell in code_cells:
        for out in cell.outputs:
            assert out.output_type != "error", cell.source
            assert not (out.output_type == "stream" and out.name == "stderr"), (cell.source, out.text)
