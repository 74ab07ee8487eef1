"""Turning arguments, results and messages into bytes plus shared-memory buffers, and back.

Objects are pickled with cloudpickle (so notebook functions and lambdas travel) at protocol 5.
Contiguous buffers of at least :data:`SHM_THRESHOLD` bytes (numpy arrays, ``bytes``-like objects
exposing ``PickleBuffer``) go out-of-band into shared-memory segments; the pickle only carries a
:class:`~stemnb._shm.SegmentRef`. If shared memory is unavailable the buffer travels in-band and a
:class:`~stemnb._exceptions.SharedMemoryWarning` is issued once.
"""

from __future__ import annotations

import copyreg
import io
import marshal
import pickle
import threading
import types
import warnings
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import cloudpickle

from ._exceptions import SerializationError, SharedMemoryError, SharedMemoryWarning
from ._fnpickle import _rebuild, function_blob, reduce_function
from ._plain import importable, is_plain, plain_args
from ._shm import Segment, SegmentCache, SegmentRef, attach, unlink_foreign

SHM_THRESHOLD = 256 * 1024
_warned = False


_code_bytes: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _code_from_marshal(data: bytes) -> types.CodeType:
    return marshal.loads(data)


def _reduce_code(code: types.CodeType) -> tuple:
    """Pickle a code object as its cached ``marshal`` bytes.

    Code objects are immutable and every stemnb process runs the same interpreter, so the bytes
    can be computed once per code object; a function's globals, defaults and closure are still
    pickled afresh on every call.
    """
    data = _code_bytes.get(code)
    if data is None:
        data = _code_bytes[code] = marshal.dumps(code)
    return _code_from_marshal, (data,)


_dispatch: dict = {}
_dispatch_source: tuple[dict, int] = ({}, -1)


def _dispatch_table() -> dict:
    """cloudpickle's dispatch table (its reducers over ``copyreg``'s) plus cached code objects, as
    one ``dict``, rebuilt whenever ``copyreg``'s table has changed.

    cloudpickle's own table is a ``ChainMap``: the C pickler looks it up through Python for every
    object it does not know, and each miss raises a ``KeyError``.
    """
    global _dispatch, _dispatch_source
    ours = cloudpickle.CloudPickler.dispatch_table.maps[0]
    seen, size = _dispatch_source
    if size != len(ours) or seen != copyreg.dispatch_table:
        _dispatch = {**copyreg.dispatch_table, **ours, types.CodeType: _reduce_code}
        _dispatch_source = (dict(copyreg.dispatch_table), len(ours))
    return _dispatch


class _PlainPickler(cloudpickle.CloudPickler):
    """cloudpickle, with code objects as cached ``marshal`` bytes and a flat dispatch table."""

    def __init__(self, file: Any, *args: Any, **kwargs: Any) -> None:
        self.dispatch_table = _dispatch_table()  # read once by the C pickler's __init__
        super().__init__(file, *args, **kwargs)


def _dump_plain(obj: Any) -> bytes:
    out = io.BytesIO()
    _PlainPickler(out, protocol=5).dump(obj)
    return out.getvalue()


class _Pickler(_PlainPickler):
    """:class:`_PlainPickler` that sends notebook functions as blobs pickled once (see ``_fnpickle``)."""

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind in _PLAIN_TYPES:  # cloudpickle leaves these to pickle too
            return NotImplemented
        if kind is types.FunctionType:
            if obj is _rebuild or obj is _code_from_marshal:  # importable: pickle saves them by name
                return NotImplemented
            reduced = reduce_function(obj, _dump_plain)
            if reduced is not None:
                return reduced
        return super().reducer_override(obj)


_PLAIN_TYPES = frozenset({tuple, list, dict, set, frozenset, bytearray, complex, type(None)})


class Payload(NamedTuple):
    """A pickled object, the out-of-band buffers it refers to (in order), and the segment names it hands over.

    ``transit`` names segments that objects inside the pickle give to the receiver (a
    ``shared_array``'s link, a ``TransferableTypedData``): :func:`discard` unlinks them when the
    payload is never loaded.
    """

    data: bytes
    buffers: tuple[SegmentRef | bytes, ...] = ()
    transit: tuple[str, ...] = ()


_collecting = threading.local()


def collecting_transit() -> bool:
    """Whether :func:`dumps` is pickling on this thread (so a name handed over can be recorded)."""
    return getattr(_collecting, "names", None) is not None


def note_transit(name: str) -> None:
    """Record that the object being pickled by :func:`dumps` hands segment ``name`` to the receiver."""
    names = getattr(_collecting, "names", None)
    if names is not None:
        names.append(name)


def dumps(obj: Any, *, what: str = "object", cache: SegmentCache | None = None) -> Payload:
    """Pickle ``obj``; large buffers go to shared memory.

    With ``cache`` the segments come from (and return to) that cache; without it they are
    one-shot segments the receiver unlinks. Raises SerializationError naming ``what``.
    """
    if is_plain(obj):  # plain pickle makes the same bytes, faster
        return Payload(pickle.dumps(obj, protocol=5))
    buffers: list[SegmentRef | bytes] = []

    def on_buffer(pb: pickle.PickleBuffer) -> bool:
        view = pb.raw()
        if view.nbytes < SHM_THRESHOLD:
            return True
        ref = _to_segment(view, cache)
        if ref is None:
            return True
        buffers.append(ref)
        return False

    out = io.BytesIO()
    outer, _collecting.names = getattr(_collecting, "names", None), []
    try:
        _Pickler(out, protocol=5, buffer_callback=on_buffer).dump(obj)
    except Exception as exc:
        discard(Payload(b"", tuple(buffers), tuple(_collecting.names)), cache)
        raise SerializationError(_describe("pickle", what, obj, exc), what) from exc
    finally:
        transit, _collecting.names = tuple(_collecting.names), outer
    return Payload(out.getvalue(), tuple(buffers), transit)


def dumps_call(fn: Callable, args: tuple, kwargs: dict, *, cache: SegmentCache | None = None,
               plain: bool = False) -> Payload:
    """Pickle the call ``fn(*args, **kwargs)`` as the tuple ``(fn, args, kwargs)``; load it with :func:`loads_call`.

    The common call (an importable function, or a notebook function cloudpickle would send by
    value, whose blob is cached, with plain arguments: see ``_plain``) is pickled by the C pickler
    alone, with a notebook function as its blob (``bytes``, which no callable is), in a sixth of the
    time cloudpickle takes. With ``plain`` the caller vouches for that (``fn`` importable, the
    rest plain: see ``_plain``), and the look is skipped.
    """
    if plain:
        return Payload(pickle.dumps((fn, args, kwargs), protocol=5))
    if type(fn) is types.FunctionType and plain_args(args, kwargs):
        sent = plain_function(fn)
        if sent is not None:
            return Payload(pickle.dumps((sent, args, kwargs), protocol=5))
    return dumps((fn, args, kwargs), what="call", cache=cache)


def plain_function(fn: Any) -> Any:
    """``fn`` in a form the C pickler alone pickles, or None: an importable function itself, a
    notebook function as its cached blob (``bytes``, which no callable is; see ``_fnpickle``).
    :func:`received_function` turns it back into a function."""
    if type(fn) is not types.FunctionType:
        return None
    return fn if importable(fn) else function_blob(fn, _dump_plain)


def received_function(fn: Any) -> Any:
    """The function sent as :func:`plain_function` made it (anything else unchanged).

    Raises:
        SerializationError: a blob that cannot be loaded here.
    """
    if type(fn) is not bytes:
        return fn
    try:
        return _rebuild(fn)
    except Exception as exc:
        raise SerializationError(_describe("unpickle", "arguments", None, exc), "arguments") from exc


def loads_call(payload: Payload | tuple, *, writable: bool = False,
               on_release: Callable[[str], None] | None = None) -> tuple[Callable, tuple, dict]:
    """``(fn, args, kwargs)`` of a call made by :func:`dumps_call`; raises SerializationError like :func:`loads`."""
    fn, args, kwargs = loads(payload, what="arguments", writable=writable, on_release=on_release)
    return received_function(fn), args, kwargs


def _to_segment(view: memoryview, cache: SegmentCache | None) -> SegmentRef | None:
    try:
        if cache is not None:
            seg = cache.acquire(view.nbytes)
            seg.write(view)
            return SegmentRef(seg.name, view.nbytes, oneshot=False)
        seg = Segment(view.nbytes)
        try:
            seg.write(view)
        finally:
            seg.unlinked = True  # the receiver unlinks it; only drop our mapping
            seg.destroy()
        return SegmentRef(seg.name, view.nbytes, oneshot=True)
    except SharedMemoryError as exc:
        _warn_fallback(exc)
        return None


def _warn_fallback(exc: Exception) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"{exc}; sending large buffers through the pipe instead", SharedMemoryWarning, stacklevel=4)


def loads(
    payload: Payload | tuple[bytes, tuple[SegmentRef | bytes, ...], tuple[str, ...]],
    *,
    what: str = "object",
    writable: bool = False,
    on_release: Callable[[str], None] | None = None,
) -> Any:
    """Rebuild an object made by :func:`dumps`.

    Shared-memory buffers are mapped zero-copy: read-only unless ``writable`` (then copy-on-write).
    ``on_release(name)`` runs when a cached segment's last view is gone. Raises SerializationError.
    """
    data, buffers, transit = payload  # a Payload, or the plain tuple it travels as between processes
    views: list[Any] = []
    try:
        for buf in buffers:
            if isinstance(buf, SegmentRef):
                views.append(attach(buf, writable=writable, on_release=None if buf.oneshot else on_release))
            else:
                views.append(buf)
        return pickle.loads(data, buffers=views)
    except Exception as exc:
        for buf in buffers[len(views):]:
            if isinstance(buf, SegmentRef) and buf.oneshot:
                unlink_foreign(buf.name)
        for name in transit:  # nothing here will own them now
            unlink_foreign(name)
        raise SerializationError(_describe("unpickle", what, None, exc), what) from exc


def discard(payload: Payload, cache: SegmentCache | None = None) -> None:
    """Free the segments of a payload that will never be loaded (a dropped message, a cancelled call)."""
    for buf in payload.buffers:
        if isinstance(buf, SegmentRef):
            if buf.oneshot:
                unlink_foreign(buf.name)
            elif cache is not None:
                cache.release(buf.name)
    for name in payload.transit:
        unlink_foreign(name)


def _describe(verb: str, what: str, obj: Any, exc: Exception) -> str:
    kind = f" ({type(obj).__name__})" if obj is not None else ""
    text = f"cannot {verb} the {what}{kind}: {type(exc).__name__}: {exc}"
    if isinstance(exc, ModuleNotFoundError) and exc.name:  # a helper module this process cannot import
        text += (f" (this process cannot import it; if it is your module, "
                 f"stemnb.share_module({exc.name.partition('.')[0]!r}) sends its code along)")
    return text
