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
