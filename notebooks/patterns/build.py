"""Build the isolate-pattern notebooks, one per core pattern of the Dart isolate catalogue.

    python notebooks/patterns/build.py            # every pattern notebook
    python notebooks/patterns/build.py 04 11      # the ones whose names start with these prefixes

The cell lists live in ``cells_*.py`` beside this file; execution reuses ``build()`` from
``notebooks/build.py`` (a fresh kernel per notebook, outputs kept). The notebooks are committed
with their outputs and checked by ``pytest --nbval notebooks/ --nbval-sanitize-with
notebooks/sanitize.cfg``, so every printed value must be the same on every run: no PIDs,
addresses or timings, and what arrives unordered is sorted before it is printed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import nbformat

HERE = Path(__file__).resolve().parent


def _load(path: Path, name: str) -> ModuleType:
    """Import the module at ``path`` under ``name`` (these files are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EXAMPLES = _load(HERE.parent / "build.py", "notebooks_build")
MD, PY = EXAMPLES.MD, EXAMPLES.PY

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}
for _part in ("cells_basics", "cells_lifecycle", "cells_structures", "cells_architecture",
              "cells_messaging", "cells_resilience", "cells_numeric", "cells_applications",
              "cells_designs", "cells_systems", "cells_operations", "cells_workloads"):
    NOTEBOOKS.update(_load(HERE / f"{_part}.py", f"notebooks_patterns_{_part}").NOTEBOOKS)


def main(prefixes: list[str]) -> None:
    """Execute and write each pattern notebook whose name starts with one of ``prefixes`` (all if none)."""
    for name, cells in NOTEBOOKS.items():
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        nb = EXAMPLES.build(name, cells)
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main(sys.argv[1:])
