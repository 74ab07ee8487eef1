"""``share_module``: a helper module's code travels with its functions, instead of being imported.

Functions and classes of an importable module are pickled *by name*: each process imports the
module itself. For a helper module beside a notebook that has two costs. A warm pool process
imported the module once, so after the notebook edits the file and reloads it
(``importlib.reload``), the isolates still run the old code; and a process that cannot import the
module (an isolate started elsewhere, on another machine) cannot run its functions at all. A
shared module's functions and classes are pickled *by value* (cloudpickle's
``register_pickle_by_value``), as a notebook's own functions are, so every call carries the code
the notebook has now. (A worker program still finds its task handlers by name in its own
registry; what travels by value is what is sent: calls, messages, cloudpickle-encoded arguments,
and the handlers a worker sends to its own isolates.)
"""

from __future__ import annotations

import importlib
import sys
import types

import cloudpickle
from cloudpickle.cloudpickle import _PICKLE_BY_VALUE_MODULES, _is_registered_pickle_by_value

__all__ = ["share_module", "unshare_module"]

_NEVER = ("stemnb", "cloudpickle", "loky")


def share_module(module: types.ModuleType | str) -> types.ModuleType:
    """Send ``module``'s functions and classes to isolates by value, not by name.

    ``module`` is an imported module or its name (imported if need be); a package shares its
    submodules too. Returns the module. Functions sent afterwards carry the module's current code,
    so a reloaded helper takes effect in a warm pool, and an isolate without the module runs them.

    Raises:
        TypeError: ``module`` is neither a module nor a name.
        ModuleNotFoundError: no module has that name.
        ValueError: the module has no Python source to send (a built-in or extension module), is
            part of the standard library, or is one stemnb itself relies on.
    """
    found = _resolve(module)
    _check_shareable(found)
    cloudpickle.register_pickle_by_value(found)
    return found


def unshare_module(module: types.ModuleType | str) -> None:
    """Send ``module``'s functions by name again (undo :func:`share_module`); nothing if not shared.

    Raises TypeError or ModuleNotFoundError as :func:`share_module` does.
    """
    found = _resolve(module)
    _PICKLE_BY_VALUE_MODULES.discard(found.__name__)


def by_value(module: types.ModuleType) -> bool:
    """Whether ``module`` (or a package it belongs to) is shared: its functions travel by value."""
    return bool(_PICKLE_BY_VALUE_MODULES) and _is_registered_pickle_by_value(module)


def _resolve(module: types.ModuleType | str) -> types.ModuleType:
    if isinstance(module, types.ModuleType):
        if sys.modules.get(module.__name__) is not module:
            raise ValueError(f"module {module.__name__!r} is not the one imported under that name "
                             f"(sys.modules); import it with an import statement first")
        return module
    if isinstance(module, str):
        return importlib.import_module(module)
    raise TypeError(f"module must be a module or a module name, not {type(module).__name__}")


def _check_shareable(module: types.ModuleType) -> None:
    name = module.__name__
    if name in ("__main__", "__mp_main__"):
        raise ValueError(f"module {name!r} is the notebook or script itself: its functions travel by value already")
    if name.partition(".")[0] in _NEVER:
        raise ValueError(f"module {name!r} cannot be shared: stemnb's isolates import it themselves")
    if name in sys.builtin_module_names or name.partition(".")[0] in sys.stdlib_module_names:
        raise ValueError(f"module {name!r} is part of Python's standard library; every isolate has it")
    source = getattr(module, "__file__", None)
    if not source or not source.endswith(".py"):
        raise ValueError(f"module {name!r} has no Python source ({source or 'built in'}); "
                         f"only a module written in Python can be sent by value")
