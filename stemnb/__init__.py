"""stemnb: Dart-style isolates, shared-memory numpy and a Stem task worker for Jupyter notebooks.

Every public name is importable from here. Names resolve lazily (PEP 562), so ``import stemnb``
loads no IPython, ipywidgets or numpy; each name's home module is listed in one of the
``_api_*`` tables, one per area of the package.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._api_notebook import NAMES as _NOTEBOOK
from ._api_runtime import NAMES as _RUNTIME
from ._api_taskdata import NAMES as _TASKDATA
from ._api_tasks import NAMES as _TASKS

__version__ = "0.1.0"

_HOME: dict[str, str] = {**_RUNTIME, **_TASKDATA, **_TASKS, **_NOTEBOOK}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    try:
        module = _HOME[name]
    except KeyError:
        raise AttributeError(f"module 'stemnb' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%stem`` magics: ``%load_ext stemnb``."""
    from ._magics import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the ``%stem`` magics."""
    from ._magics import unload_ipython_extension as unload

    unload(ipython)
