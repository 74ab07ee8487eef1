"""The claim board: deciding, without a race, whether a call queued in a worker runs or is skipped.

A pool sends a worker several calls ahead (pipelining). Before starting call number ``seq`` the
worker *claims* it; a parent cancelling that call *revokes* it. Both happen under one
cross-process semaphore over a small shared-memory record (the last claimed ``seq`` and a ring of
revoked ones), so exactly one of them wins: a revoked call never starts, and a claimed call is
known to be running (the parent then ends the process) or already finished.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import tempfile
from typing import Any

from ._session import current_session

RING = 1024  #: how many calls may be pending in a worker at once: its calls' seq numbers must span less
_SEMAPHORE = 1  #: ``_multiprocessing.SemLock``'s kind for a plain semaphore (as ``multiprocessing.Lock``)
_lock_ids = itertools.count()


class ClaimBoard:
    """One worker's board; the parent makes it, the worker attaches with :meth:`attach`."""

    def __init__(self, lock: Any, path: str, view: memoryview, *, owned: bool = False) -> None:
        self._lock = lock
        self.name = path
        self._owned = owned
        self._slots = view

    @classmethod
    def create(cls) -> ClaimBoard:
        """A new board: a file in ``/dev/shm`` named after this session, or a temporary file when
        shared memory is unavailable.

        Like the semaphore (see :func:`_new_lock`), the file is not registered with a resource
        tracker: its worker unlinks it as soon as it has mapped it, the parent in :meth:`destroy`
        if the worker never got that far, and a session killed before either is swept at the
        next start. So a worker never needs the tracker (nor to import loky) for its board.
        """
        from ._shm import untracked_path

        lock = _new_lock()
        try:
            try:
                path = untracked_path()
                view = _map_new(path, os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
            except OSError:  # no usable /dev/shm
                fd, path = tempfile.mkstemp(prefix="stemnb-claim-")
                view = _map_new(path, fd)
        except BaseException:
            _sem_unlink(lock.name)
            raise
        return cls(lock, path, view, owned=True)

    def for_child(self) -> tuple[str, str]:
        """What the worker needs: the names of the semaphore and of the board's memory."""
        return (self._lock.name, self.name)

    @classmethod
    def attach(cls, spec: tuple[str, str]) -> ClaimBoard:
        """Worker: open the semaphore and map the board, then unlink both names (see :func:`_unlink_names`)."""
        from _multiprocessing import SemLock

        lock_name, path = spec
        lock = SemLock._rebuild(0, _SEMAPHORE, 1, lock_name)  # opened by name; the handle is unused
        fd = os.open(path, os.O_RDWR)
        try:
            m = mmap.mmap(fd, 8 * (RING + 1), flags=mmap.MAP_SHARED)
        finally:
            os.close(fd)
        _unlink_names(lock_name, path)
        return cls(lock, path, memoryview(m).cast("q"))

    def claim(self, seq: int) -> bool:
        """Worker: start call ``seq`` unless it was revoked. True means it may run."""
        with self._lock:
            if self._slots[1 + seq % RING] == seq:
                return False
            self._slots[0] = seq
            return True

    def revoke(self, seq: int) -> str:
        """Parent: stop call ``seq``: "skipped" (it will never run), "running" or "finished".

        A worker killed inside its (tiny) claim section would hold the lock forever; after a
        bounded wait the call is reported "running", so the caller ends that process.
        """
        if not self._lock.acquire(timeout=5.0):
            return "running"
        try:
            started = self._slots[0]
            if started == seq:
                return "running"
            if started > seq:
                return "finished"
            self._slots[1 + seq % RING] = seq
            return "skipped"
        finally:
            self._lock.release()

    def last_claimed(self) -> int:
        """The last call the worker started, read without the lock: exact once the worker is dead,
        and while it lives a value it has passed (every call it still holds comes later)."""
        return int(self._slots[0])

    def destroy(self) -> None:
        """Parent: remove the board's file and semaphore names, if its worker has not (idempotent)."""
        _sem_unlink(self._lock.name)
        if self._owned:
            self._owned = False
            self._slots.release()
            with contextlib.suppress(FileNotFoundError):  # the worker unlinked it once attached
                os.unlink(self.name)


def _map_new(path: str, fd: int) -> memoryview:
    """Size the new file open at ``fd`` for a board, map it and close ``fd``; on error the file is removed."""
    try:
        os.write(fd, bytes(8 * (RING + 1)))
        return memoryview(mmap.mmap(fd, 8 * (RING + 1), flags=mmap.MAP_SHARED)).cast("q")
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    finally:
        os.close(fd)


def _new_lock() -> Any:
    """A process-shared lock: a POSIX semaphore named after this session, so a leftover is swept.

    It is not registered with any resource tracker: its worker unlinks the name as soon as it has
    opened it (:func:`_unlink_names`), and the parent unlinks it in :meth:`ClaimBoard.destroy`
    if the worker never got that far.
    """
    from _multiprocessing import SemLock

    prefix = f"/{current_session().prefix}-{os.getpid()}-c"
    for _ in range(100):
        try:
            return SemLock(_SEMAPHORE, 1, 1, f"{prefix}{next(_lock_ids)}", False)
        except FileExistsError:  # a name left by an earlier process with the same pid
            continue
    raise FileExistsError(f"no free semaphore name starting with {prefix}")


def _sem_unlink(name: str) -> None:
    from _multiprocessing import sem_unlink

    with contextlib.suppress(FileNotFoundError):
        sem_unlink(name)


def _unlink_names(lock_name: str, path: str) -> None:
    """Once its worker has the board open and mapped, nobody needs its names any more.

    The worker unlinks both the file and the semaphore, so the memory and the lock live only as
    long as the two processes that hold them: a session killed outright (a kernel's whole process
    group) leaves no semaphore or board file behind. The parent's own clean-up later finds them
    gone, which it tolerates.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    _sem_unlink(lock_name)
