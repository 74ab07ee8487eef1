"""Which objects the C pickler alone pickles to the very bytes cloudpickle would make.

cloudpickle runs Python code for every object that is not a builtin scalar or container (its
``reducer_override``, then a lookup in its ``ChainMap`` dispatch table). A task's call (the
handler, JSON arguments, headers, a ``SendPort``) has a dozen such objects, and they made pickling
it the largest single cost of an isolate task in the worker. For a small object built only of

* builtin scalars (``int``, ``float``, ``complex``, ``bool``, ``str``, ``bytes``, ``None``),
* ``tuple``, ``list`` and ``dict`` of those,
* functions importable by name (which cloudpickle too pickles by reference), and
* instances of types registered here (their ``__reduce__`` returns plain data),

``pickle.dumps`` makes the same bytes: :func:`is_plain` tells, looking at most
:data:`PLAIN_BUDGET` objects deep, so a large object costs no long walk before cloudpickle.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from ._share import by_value

PLAIN_BUDGET = 64

SCALARS = frozenset({int, float, complex, bool, str, bytes, type(None)})  #: the builtin scalar types
_SEQUENCES = frozenset({tuple, list})
_plain_types: set[type] = set()


def register_plain_type(cls: type) -> type:
    """Mark ``cls`` as pickled alike by pickle and cloudpickle: a ``__reduce__`` returning ``cls``
    and plain data. Exact instances only; returns ``cls`` (usable as a decorator)."""
    _plain_types.add(cls)
    return cls


def is_plain(obj: Any, budget: int = PLAIN_BUDGET) -> bool:
    """Whether ``pickle.dumps(obj)`` equals cloudpickle's pickle of ``obj``, judged from at most
    ``budget`` objects (a larger or self-containing object is not plain)."""
    if type(obj) in SCALARS:  # the common small result, without building a stack
        return True
    stack = [obj]
    while stack:
        budget -= 1
        if budget < 0:
            return False
        item = stack.pop()
        kind = type(item)
        if kind in SCALARS or kind in _plain_types:
            continue
        if kind in _SEQUENCES:
            if len(item) > budget:
                return False
            stack.extend(item)
        elif kind is dict:
            if 2 * len(item) > budget:
                return False
            stack.extend(item.keys())
            stack.extend(item.values())
        elif kind is not types.FunctionType or not importable(item):
            return False
    return True


def plain_args(args: tuple, kwargs: dict) -> bool:
    """:func:`is_plain` of a call's arguments; positional builtin scalars alone are seen in one look."""
    if not kwargs and SCALARS.issuperset(map(type, args)):
        return True
    return is_plain((args, kwargs))


def importable(fn: types.FunctionType) -> bool:
    """Whether ``fn`` is a module-level function found by its name in its imported module (and
    that module is not registered with cloudpickle to be pickled by value)."""
    qualname = fn.__qualname__
    if "." in qualname or "<" in qualname:
        return False
    name = fn.__module__
    if name == "__main__" or name == "__mp_main__" or not isinstance(name, str):
        return False
    module = sys.modules.get(name)
    if module is None or getattr(module, qualname, None) is not fn:
        return False
    return not by_value(module)  # a shared module's functions travel by value
