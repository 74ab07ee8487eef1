"""Pickling notebook functions once instead of on every call.

cloudpickle rebuilds a ``__main__`` function from scratch on every call: it looks up the globals the
code uses, decides for each whether it travels by reference, finds imported submodules, and on the
other side makes a new function and fills it in. For the common notebook function, whose globals,
defaults and closure hold only values that cannot change in place (modules, importable functions and
classes, numbers, strings, tuples of those), the result is the same every time as long as those
values are the same objects. So:

* the sender pickles such a function once with cloudpickle into a *blob*, and afterwards, while the
  function and every value it captures are still identical, sends that blob again
  (:func:`reduce_function`);
* the receiver loads each distinct blob once and then makes a fresh copy of that template for every
  call (:func:`_rebuild`): a new function object with its own globals dict and closure cells, as
  cloudpickle would give.

Any other function (one that writes globals, captures a list, has attributes, is nested in a
closure of something mutable...) goes through cloudpickle as before, so behaviour never differs.
"""

from __future__ import annotations

import operator
import sys
import types
import weakref
from collections.abc import Callable
from typing import Any

import cloudpickle
from cloudpickle.cloudpickle import _extract_code_globals, _should_pickle_by_reference

from ._share import by_value

_MISSING = object()
_IMMUTABLE = frozenset({type(None), bool, int, float, complex, str, bytes, type(Ellipsis)})
_WRITES_GLOBALS = frozenset({"STORE_GLOBAL", "DELETE_GLOBAL"})
_TEMPLATES_MAX = 256


class _Entry:
    """What one function captured when it was pickled, and the blob made from it."""

    __slots__ = ("ref", "code", "names", "values", "blob")

    def __init__(self, ref: weakref.ref, code: types.CodeType, names: tuple[str, ...],
                 values: tuple, blob: bytes | None) -> None:
        self.ref = ref
        self.code = code
        self.names = names
        self.values = values
        self.blob = blob  # None: this function must go through cloudpickle each time


_entries: dict[int, _Entry] = {}


def reduce_function(fn: types.FunctionType, dump: Callable[[Any], bytes]) -> tuple | None:
    """The reduction of a by-value function from its cached blob, or None to let cloudpickle do it."""
    blob = function_blob(fn, dump)
    return None if blob is None else (_rebuild, (blob,))


def function_blob(fn: types.FunctionType, dump: Callable[[Any], bytes]) -> bytes | None:
    """The function's cached blob (load it with :func:`_rebuild`), or None when it must go through cloudpickle.

    ``dump`` pickles the function with cloudpickle; it is called the first time and again whenever
    something the function captures has changed.
    """
    if fn.__module__ != "__main__" and "<" not in fn.__qualname__ and not _in_shared_module(fn):
        return None  # most likely importable, hence pickled by reference: cloudpickle decides
    entry = _entries.get(id(fn))
    code = fn.__code__
    if entry is not None and entry.ref() is fn and entry.code is code:
        values = _captured(fn, entry.names)
        if values is not None and _same(values, entry.values):
            return entry.blob
    if _should_pickle_by_reference(fn):
        return None
    names = _global_names(code)
    values = _captured(fn, names)
    blob = dump(fn) if values is not None and _cacheable(fn, names) else None
    _entries[id(fn)] = _Entry(weakref.ref(fn, _forget(id(fn))), code, names, values or (), blob)
    return blob


def _in_shared_module(fn: types.FunctionType) -> bool:
    """Whether ``fn`` belongs to a module shared by value (``stemnb.share_module``)."""
    module = sys.modules.get(fn.__module__)
    return module is not None and by_value(module)


def _forget(key: int) -> Callable[[weakref.ref], None]:
    def forget(ref: weakref.ref) -> None:
        entry = _entries.get(key)
        if entry is not None and entry.ref is ref:
            del _entries[key]

    return forget


def _global_names(code: types.CodeType) -> tuple[str, ...]:
    return tuple(sorted(_extract_code_globals(code)))


_HEAD = operator.attrgetter("__name__", "__qualname__", "__module__", "__doc__", "__defaults__")


def _captured(fn: types.FunctionType, names: tuple[str, ...]) -> tuple | None:
    """Every object the pickled function depends on, flat, in a fixed order; None if it has attributes.

    Two snapshots holding the very same objects mean the function would pickle to the same bytes
    (given :func:`_cacheable`); an equal but distinct object only costs a fresh pickle.
    """
    if fn.__dict__:
        return None
    closure = fn.__closure__
    try:
        cells = tuple([cell.cell_contents for cell in closure]) if closure else ()
    except ValueError:  # an empty cell (a variable assigned later): leave it to cloudpickle
        return None
    kwdefaults = fn.__kwdefaults__
    annotations = fn.__annotations__
    g = fn.__globals__
    return (*_HEAD(fn), len(cells), *cells,
            *((len(kwdefaults), *_flat(kwdefaults)) if kwdefaults else (0,)),
            *((len(annotations), *_flat(annotations)) if annotations else (0,)),
            *[g.get(name, _MISSING) for name in names])


def _flat(mapping: dict) -> list:
    return [x for item in mapping.items() for x in item]


def _same(a: tuple, b: tuple) -> bool:
    """Whether two snapshots hold the very same objects, position by position."""
    return len(a) == len(b) and all(map(operator.is_, a, b))


def _cacheable(fn: types.FunctionType, names: tuple[str, ...]) -> bool:
    """Whether the function pickles to the same bytes, and behaves alike, while its snapshot is unchanged."""
    if _writes_globals(fn.__code__):
        return False
    g = fn.__globals__
    if not all(g.get(name) is fn or _fixed(g.get(name, _MISSING)) for name in names):
        return False  # only a global may name the function itself
    closure = [cell.cell_contents for cell in fn.__closure__ or ()]
    if not all(_fixed(v) for v in (*closure, fn.__defaults__, *(fn.__kwdefaults__ or {}).values())):
        return False
    return all(_fixed(v) or isinstance(v, types.GenericAlias) for v in fn.__annotations__.values())


def _fixed(value: Any) -> bool:
    """Whether ``value`` cannot change without becoming another object."""
    kind = type(value)
    if kind in _IMMUTABLE or value is _MISSING:
        return True
    if kind is tuple or kind is frozenset:
        return all(_fixed(v) for v in value)
    if isinstance(value, (types.ModuleType, types.FunctionType, type)):
        return _should_pickle_by_reference(value)
    return isinstance(value, types.BuiltinFunctionType)


def _writes_globals(code: types.CodeType) -> bool:
    """Whether the code (or code nested in it) assigns globals or may reach its globals dict."""
    import dis  # only when a function is first seen

    if "globals" in code.co_names or "vars" in code.co_names:
        return True
    if any(ins.opname in _WRITES_GLOBALS for ins in dis.get_instructions(code)):
        return True
    return any(_writes_globals(c) for c in code.co_consts if isinstance(c, types.CodeType))


# ---------------------------------------------------------------------------- receiving side
_templates: dict[bytes, tuple[types.FunctionType, tuple[str, ...]]] = {}


def _rebuild(blob: bytes) -> types.FunctionType:
    """A fresh copy of the function pickled in ``blob`` (loaded once per process, then copied)."""
    found = _templates.get(blob)
    if found is None:
        template = cloudpickle.loads(blob)
        itself = tuple(name for name, value in template.__globals__.items() if value is template)
        if len(_templates) >= _TEMPLATES_MAX:
            del _templates[next(iter(_templates))]
        found = _templates[blob] = (template, itself)
    return _copy(*found)


def _copy(template: types.FunctionType, itself: tuple[str, ...]) -> types.FunctionType:
    namespace = dict(template.__globals__)
    closure = tuple(types.CellType(c.cell_contents) for c in template.__closure__ or ())
    fn = types.FunctionType(template.__code__, namespace, template.__name__, template.__defaults__, closure or None)
    fn.__qualname__ = template.__qualname__
    fn.__module__ = template.__module__
    fn.__doc__ = template.__doc__
    fn.__kwdefaults__ = dict(template.__kwdefaults__) if template.__kwdefaults__ else None
    fn.__annotations__ = dict(template.__annotations__)
    for name in itself:  # a recursive function calls itself, not the template
        namespace[name] = fn
    return fn
