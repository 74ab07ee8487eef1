"""Shared-memory segments in ``/dev/shm``: creation, attachment, reuse and clean-up.

Segment names are ``stemnb-<session>-<creator pid>-<n>``. The creator owns a segment: it unlinks it
when it is no longer needed and registers it with loky's resource tracker, which unlinks whatever
is left if every process of the session dies without cleaning up (a SIGKILLed kernel). Stale
segments of dead sessions are also swept when a new session starts.

Two kinds of segment travel in messages:

* *one-shot* segments (port messages): the receiver unlinks the name as soon as it has mapped it;
  the memory lives on until the receiver's last view is gone.
* *cached* segments (pool calls): the creator keeps the file and reuses it once the receiver
  reports the mapping released. Reusing already-faulted pages makes a 100 MB copy ~4x cheaper.

Memory is reserved with ``posix_fallocate`` before it is written, so a full ``/dev/shm`` surfaces
as :class:`SharedMemoryError` (the caller falls back to a pipe) instead of a SIGBUS.
"""

from __future__ import annotations

import itertools
import mmap
import os
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._exceptions import SharedMemoryError
from ._session import current_session, pid_is_alive, session_is_alive

SHM_DIR = "/dev/shm"
_counter = itertools.count()
# Held from a segment's unlink to its unregistering: whoever unlinks a segment unregisters it, and
# a sweep must not find it gone while another thread of this process has not unregistered it yet
# (the root's exit sweep would return, the interpreter end that daemon thread, and the tracker
# warn of a leaked segment that no longer exists).
_unlinking = threading.RLock()  # re-entrant: a finalizer may unlink a segment while this thread sweeps


@dataclass(frozen=True)
class SegmentRef:
    """A reference to ``nbytes`` of data at the start of segment ``name`` (what a message carries)."""

    name: str
    nbytes: int
    oneshot: bool


def _path(name: str) -> str:
    return os.path.join(SHM_DIR, name)


_tracker: Any = None
_inherited_fd: int | None = None


def inherit_tracker(fd: int) -> None:
    """Child: use the parent's resource tracker, whose pipe is ``fd``, once loky's is first needed."""
    global _inherited_fd
    _inherited_fd = fd


def _resource_tracker() -> Any:
    """loky's resource tracker module (kept, so clean-up at interpreter exit needs no import).

    In a child, it is imported here on first use and pointed at the tracker the child inherited.
    """
    global _tracker
    if _tracker is None:
        from ._loky import loky_imports

        with loky_imports:
            from loky.backend import resource_tracker

        if _inherited_fd is not None and resource_tracker._resource_tracker._fd is None:
            resource_tracker._resource_tracker._fd = _inherited_fd
        _tracker = resource_tracker
    return _tracker


def _tracker_register(name: str) -> None:
    _resource_tracker().register(_path(name), "file")


def _tracker_unregister(name: str) -> None:
    tracker = _tracker or _resource_tracker()
    tracker.unregister(_path(name), "file")


def _size_class(nbytes: int) -> int:
    """Round ``nbytes`` up so that similar sizes share cached segments (at most 12.5 % slack)."""
    if nbytes <= 1 << 20:
        return 1 << 20
    step = 1 << (nbytes.bit_length() - 4)
    return -(-nbytes // step) * step


def _create(capacity: int) -> tuple[str, str, int]:
    """Create, register and reserve a new segment file; return its name, path and an open fd.

    Raises SharedMemoryError (the file already removed) when ``/dev/shm`` cannot hold it.
    """
    name = f"{current_session().prefix}-{os.getpid()}-{next(_counter)}"
    path = _path(name)
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        _resource_tracker().register(path, "file")
        os.posix_fallocate(fd, 0, capacity)
    except OSError as exc:
        os.close(fd)
        _remove(path)
        raise SharedMemoryError(
            f"cannot reserve {capacity:,} bytes in {SHM_DIR} ({exc.strerror}); it is too small or full"
        ) from exc
    return name, path, fd


_WRITE_CHUNK = 64 << 20  # bytes per pwrite: large enough to amortise the call, small enough to stay interruptible


def write_segment(data: memoryview) -> str:
    """Make a new segment holding a copy of ``data`` (contiguous) and return its name, unmapped here.

    Written with ``pwrite``, not through a mapping: for large data that is a third faster, and
    this process never maps (so never has to unmap) the whole size. Raises SharedMemoryError when
    ``/dev/shm`` cannot hold it.
    """
    raw = data.cast("B") if data.nbytes else memoryview(b"")  # an empty array's view cannot be cast
    name, path, fd = _create(max(raw.nbytes, 1))
    try:
        done = 0
        while done < raw.nbytes:
            done += os.pwrite(fd, raw[done : done + _WRITE_CHUNK], done)
    except BaseException:
        _remove(path)
        raise
    finally:
        os.close(fd)
    return name


def _remove(path: str) -> None:
    """Unlink a segment file this process created, and stop tracking it (nothing if it is gone)."""
    with _unlinking:
        try:
            os.unlink(path)
        except FileNotFoundError:
            return  # whoever unlinked it also unregistered it
        (_tracker or _resource_tracker()).unregister(path, "file")



class Segment:
    """A segment this process created, mapped read-write."""

    def __init__(self, capacity: int) -> None:
        self.name, self._path, fd = _create(capacity)
        self.capacity = capacity
        try:
            self.map = mmap.mmap(fd, capacity, flags=mmap.MAP_SHARED)
        except BaseException:
            _remove(self._path)
            raise
        finally:
            os.close(fd)
        self.unlinked = False

    @property
    def path(self) -> str:
        """Full path of the segment (the directory in force when it was made)."""
        return self._path

    def write(self, data: memoryview) -> None:
        """Copy ``data`` (a contiguous buffer) to the start of the segment."""
        memoryview(self.map)[: data.nbytes] = data.cast("B")

    def _unlink(self) -> None:
        _remove(self._path)

    def destroy(self) -> None:
        """Unlink the name and drop this process's mapping (idempotent)."""
        if not getattr(self, "unlinked", True):
            self.unlinked = True
            self._unlink()
        m = getattr(self, "map", None)
        if m is not None:
            try:
                m.close()
            except BufferError:  # a view of it is still alive; the unmap happens when it dies
                pass


class SegmentCache:
    """Segments this process created, free for reuse or lent to a receiver.

    ``acquire`` hands out a free segment of the right size class (or makes one); ``release`` takes
    back a segment whose receiver has dropped its mapping. At most ``max_idle_bytes`` stay idle.
    """

    def __init__(self, max_idle_bytes: int = 512 << 20) -> None:
        self.max_idle_bytes = max_idle_bytes
        self._lock = threading.Lock()
        self._free: dict[int, list[Segment]] = {}
        self._lent: dict[str, Segment] = {}
        self._idle_bytes = 0

    def acquire(self, nbytes: int) -> Segment:
        size = _size_class(nbytes)
        with self._lock:
            stack = self._free.get(size)
            seg = stack.pop() if stack else None
            if seg is not None:
                self._idle_bytes -= seg.capacity
        if seg is None:
            seg = Segment(size)
        with self._lock:
            self._lent[seg.name] = seg
        return seg

    def release(self, name: str) -> None:
        """Take back a lent segment; unknown names are ignored."""
        with self._lock:
            seg = self._lent.pop(name, None)
            if seg is None:
                return
            if self._idle_bytes + seg.capacity <= self.max_idle_bytes:
                self._free.setdefault(seg.capacity, []).append(seg)
                self._idle_bytes += seg.capacity
                return
        seg.destroy()

    def forget(self, name: str) -> None:
        """Destroy a lent segment whose receiver will never report back (it died)."""
        with self._lock:
            seg = self._lent.pop(name, None)
        if seg is not None:
            seg.destroy()

    def trim(self) -> None:
        """Destroy every idle segment."""
        with self._lock:
            idle = [s for stack in self._free.values() for s in stack]
            self._free.clear()
            self._idle_bytes = 0
        for seg in idle:
            seg.destroy()

    def close(self) -> None:
        """Destroy every segment, idle or lent (idempotent)."""
        self.trim()
        with self._lock:
            lent = list(self._lent.values())
            self._lent.clear()
        for seg in lent:
            seg.destroy()


def attach(ref: SegmentRef, *, writable: bool, on_release: Callable[[str], None] | None) -> memoryview:
    """Map a segment made by another process and return a view of its ``nbytes``.

    One-shot segments are unlinked at once. ``on_release(name)`` runs when the last view of the
    mapping is gone. ``writable`` maps copy-on-write: the receiver may write; nobody else sees it.
    Raises SharedMemoryError if the segment no longer exists.
    """
    try:
        fd = os.open(_path(ref.name), os.O_RDONLY if not writable else os.O_RDWR)
    except FileNotFoundError as exc:
        raise SharedMemoryError(f"shared-memory segment {ref.name} no longer exists") from exc
    try:
        if ref.nbytes == 0:
            return memoryview(b"")
        if writable:
            m = mmap.mmap(fd, ref.nbytes, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
        else:
            m = mmap.mmap(fd, ref.nbytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
    finally:
        os.close(fd)
    if ref.oneshot:
        unlink_foreign(ref.name)
    if on_release is not None:
        weakref.finalize(m, on_release, ref.name)
    return memoryview(m)


def link_for_transit(name: str) -> str:
    """Give segment ``name`` a second name, in the session root's namespace, for a receiver to own.

    The receiver unlinks that name once it no longer maps the memory, so the memory outlives its
    creator for as long as anyone uses it; a name never received is swept with the session.
    Raises SharedMemoryError if ``name`` no longer exists.
    """
    session = current_session()
    new = f"{session.prefix}-{session.root_pid}-t{os.getpid()}x{next(_counter)}"
    try:
        os.link(_path(name), _path(new))
    except FileNotFoundError as exc:
        raise SharedMemoryError(f"shared array segment {name} no longer exists (its creator dropped it)") from exc
    _tracker_register(new)
    return new


def unlink_foreign(name: str) -> None:
    """Unlink a segment another process created (a one-shot handed over, or a dead owner's)."""
    with _unlinking:
        try:
            os.unlink(_path(name))
        except FileNotFoundError:
            return
        _tracker_unregister(name)


def sweep_pid(pid: int) -> int:
    """Unlink every segment of this session created by process ``pid`` (which has died)."""
    prefix = f"{current_session().prefix}-{pid}-"
    return _sweep(lambda name: name.startswith(prefix), tracked=True)


def sweep_stale_sessions() -> int:
    """Unlink segments left by sessions whose root process is gone. Returns how many."""

    def stale(name: str) -> bool:
        parts = name.split("-")
        if len(parts) < 4 or parts[0] != "stemnb":
            return False
        if session_is_alive(parts[1]):
            return False
        return not pid_is_alive(int(parts[2])) if parts[2].isdigit() else True

    return _sweep(stale)


def sweep_session() -> int:
    """Unlink every segment of this session (the root does this when it exits)."""
    prefix = current_session().prefix + "-"
    return _sweep(lambda name: name.startswith(prefix), tracked=True)


def _sweep(match: Callable[[str], bool], tracked: bool = False) -> int:
    with _unlinking:
        try:
            names = os.listdir(SHM_DIR)
        except OSError:
            return 0
        count = 0
        for entry in names:
            semaphore = entry.startswith("sem.stemnb-")  # a pool's claim-board lock (see _claim)
            name = entry[4:] if semaphore else entry
            if name.startswith("stemnb-") and match(name):
                try:
                    os.unlink(_path(entry))
                    count += 1
                except OSError:
                    continue
                if tracked and not semaphore and not _is_board(name):  # registered with the tracker: keep its books straight
                    _tracker_unregister(name)
        return count


def untracked_path() -> str:
    """A new name in ``/dev/shm`` for a file that is never registered with the resource tracker
    (a pool's claim board, see ``_claim``): swept like a segment, skipped when unregistering."""
    return _path(f"{current_session().prefix}-{os.getpid()}-b{next(_counter)}")


def _is_board(name: str) -> bool:
    """Whether ``name`` was made by :func:`untracked_path`."""
    return name.rpartition("-")[2].startswith("b")


def session_segments() -> list[str]:
    """Names of this session's segments currently in ``/dev/shm`` (for tests and diagnostics)."""
    prefix = current_session().prefix + "-"
    try:
        return sorted(n for n in os.listdir(SHM_DIR) if n.startswith(prefix))
    except OSError:
        return []
