"""Arrays that move between isolates at a cost that does not grow with their size.

* :func:`shared_array` allocates an array *in* a shared-memory segment. Sending it (as an
  argument, result or port message) sends only a name for the segment; every receiver maps the same
  memory, so writes are seen by all. Each process names the memory while it has views of it (a
  receiver gets a hard link of its own), so a worker may return an array it made and drop it;
  the memory goes when the last view anywhere is gone.
* :class:`TransferableTypedData` (Dart's name) copies an array once into a segment; sending it is
  then O(1), and the receiver's :meth:`~TransferableTypedData.materialize` maps it without a copy,
  writable and private to the receiver. It can be materialized once.
"""

from __future__ import annotations

import mmap
import os
from typing import Any, SupportsIndex

from ._exceptions import ClosedError, SharedMemoryError
from ._hub import hand_over
from ._serialize import collecting_transit, note_transit
from ._session import current_session
from ._shm import SHM_DIR, Segment, link_for_transit, unlink_foreign, write_segment


class _Owner:
    """Keeps a creator's segment linked while any of its arrays is alive."""

    def __init__(self, nbytes: int) -> None:
        self.segment = Segment(max(nbytes, 1))

    def __del__(self) -> None:
        self.segment.destroy()


class _Held:
    """A receiver's own name for a shared array's segment, unlinked when its last view here is gone."""

    def __init__(self, name: str, mapping: mmap.mmap) -> None:
        self.name = name
        self.mapping = mapping

    def __del__(self) -> None:
        try:
            unlink_foreign(self.name)
        except Exception:  # noqa: BLE001, S110 - interpreter teardown; the session sweep gets it
            pass


def _map(name: str, nbytes: int, *, private: bool) -> mmap.mmap:
    try:
        fd = os.open(os.path.join(SHM_DIR, name), os.O_RDWR)
    except FileNotFoundError as exc:
        raise SharedMemoryError(f"shared array segment {name} no longer exists (its creator dropped it)") from exc
    try:
        flags = mmap.MAP_PRIVATE if private else mmap.MAP_SHARED
        return mmap.mmap(fd, max(nbytes, 1), flags=flags)
    finally:
        os.close(fd)


def _shared_class() -> type:
    import numpy as np

    global _SharedArray
    if _SharedArray is None:

        class SharedArray(np.ndarray):
            """A numpy array living in shared memory; pickles as a reference to that memory."""

            _stemnb_segment: Any = None

            def __array_finalize__(self, obj: Any) -> None:
                # a view keeps referring to the segment; a new array made from it (``a + 1``,
                # ``a.copy()``) lives in ordinary memory and must pickle as its values
                seg = getattr(obj, "_stemnb_segment", None)
                self._stemnb_segment = seg if seg is not None and np.may_share_memory(self, obj) else None

            def __reduce__(self) -> Any:
                seg = self._stemnb_segment
                if seg is None:
                    return np.asarray(self).__reduce__()
                name, nbytes, base_addr, _keep = seg
                offset = self.__array_interface__["data"][0] - base_addr
                layout = (nbytes, offset, self.shape, self.dtype.str, self.strides)
                if not collecting_transit():  # pickled by hand: refer to the memory, leave no name behind
                    return (_attach_shared, (name, *layout, False))
                # sent by stemnb: the receiver gets a name of its own, so the memory outlives this
                # process's views (a pool worker returning an array it made drops it right after sending)
                transit = link_for_transit(name)
                note_transit(transit)
                return (_attach_shared, (transit, *layout))

            def __reduce_ex__(self, protocol: SupportsIndex) -> Any:
                return self.__reduce__()

        SharedArray.__module__ = "stemnb"
        _SharedArray = SharedArray
    return _SharedArray


_SharedArray: Any = None


def _wrap(buffer: Any, keep: Any, name: str, nbytes: int, offset: int, shape: tuple, dtype: Any,
          strides: tuple | None) -> Any:
    import numpy as np

    cls = _shared_class()
    base = np.frombuffer(buffer, dtype=np.uint8, count=max(nbytes, 1))
    arr = np.ndarray(shape, dtype=dtype, buffer=base, offset=offset, strides=strides).view(cls)
    arr._stemnb_segment = (name, nbytes, base.__array_interface__["data"][0], keep)
    return arr


def shared_array(shape: int | tuple[int, ...], dtype: Any = "float64", *, fill: Any = None) -> Any:
    """A new numpy array in shared memory; sending it to an isolate costs the same at any size.

    Every process that receives it maps the same memory, so writes are visible to all.
    Raises SharedMemoryError if ``/dev/shm`` cannot hold it.
    """
    import numpy as np

    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
    owner = _Owner(nbytes)
    arr = _wrap(owner.segment.map, owner, owner.segment.name, nbytes, 0, shape, dt, None)
    if fill is not None:
        arr.fill(fill)
    return arr


def _attach_shared(name: str, nbytes: int, offset: int, shape: tuple, dtype: str, strides: tuple,
                   owned: bool = True) -> Any:
    """Map a received shared array; an ``owned`` name (stemnb's hand-over) is unlinked with the last view."""
    m = _map(name, nbytes, private=False)
    return _wrap(m, _Held(name, m) if owned else m, name, nbytes, offset, shape, dtype, strides)


class TransferableTypedData:
    """An array packed for O(1) transfer between isolates (Dart's ``TransferableTypedData``).

    Construction copies ``array`` into shared memory once. Sending the object costs the same at any
    size; :meth:`materialize` returns the array, writable and private to the caller, and may be
    called once (the shared memory is then released).
    """

    def __init__(self, array: Any) -> None:
        import numpy as np

        arr = np.ascontiguousarray(array)
        self._shape = arr.shape
        self._dtype = arr.dtype.str
        self._nbytes = arr.nbytes
        # from now on unlinked by whoever materializes it (or by __del__ if nobody does)
        self._name: str | None = write_segment(arr.data)
        self._owned = True

    def materialize(self) -> Any:
        """Return the array (writable, zero-copy). Raises ClosedError if already materialized."""
        import numpy as np

        if self._name is None:
            raise ClosedError("this TransferableTypedData was already materialized")
        name, self._name = self._name, None
        m = _map(name, self._nbytes, private=True)
        unlink_foreign(name)
        return np.frombuffer(m, dtype=self._dtype, count=int(np.prod(self._shape))).reshape(self._shape)

    def __reduce__(self) -> Any:
        if self._name is None:
            raise ClosedError("this TransferableTypedData was already materialized and cannot be sent")
        # in flight, the segment belongs to the session's root, so it outlives its creator's end
        self._name = hand_over(self._name, current_session().root_pid)
        note_transit(self._name)  # unlinked if the message is dropped unread
        self._owned = False  # the receiver takes over
        return (_rebuild_transferable, (self._name, self._shape, self._dtype, self._nbytes))

    def __del__(self) -> None:
        if getattr(self, "_owned", False) and self._name is not None:
            unlink_foreign(self._name)

    @property
    def nbytes(self) -> int:
        return self._nbytes

    def __repr__(self) -> str:
        state = "materialized" if self._name is None else f"{self._nbytes:,} bytes"
        return f"<stemnb.TransferableTypedData {self._shape} {self._dtype} {state}>"


def _rebuild_transferable(name: str, shape: tuple, dtype: str, nbytes: int) -> TransferableTypedData:
    obj = TransferableTypedData.__new__(TransferableTypedData)
    obj._name, obj._shape, obj._dtype, obj._nbytes, obj._owned = name, shape, dtype, nbytes, True
    return obj
