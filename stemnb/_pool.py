"""``IsolatePool``: a warm pool of processes running one-shot calls (``Isolate.run``).

Each process has its own connection to the pool and at most one call at a time, so a call can be
stopped (timeout, ``Future.cancel()``, a kernel interrupt) by ending the process that runs it; the
pool then starts a replacement and no other call notices. Arguments and results are pickled with
cloudpickle in the caller's thread (errors surface at the call site); large buffers go through
shared-memory segments the pool and its processes reuse.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED
from typing import Any

from ._claim import RING
from ._exceptions import (
    ClosedError,
    SerializationError,
)
from ._future import Future
from ._interrupt import remember
from ._options import Seconds, to_seconds
from ._output import capture_origin
from ._pool_helpers import (
    _apply_chunk,
    _apply_chunk_star,
    _blame,
    _check_positive,
    _chunks,
    _fn_name,
    _ordered,
    _unordered,
)
from ._pool_lives import ProcessLives
from ._pool_records import _Call, _Worker
from ._pool_types import IsolateInfo, IsolateRecycleEvent, IsolateRecycleReason, PoolStatistics
from ._priority import DEFAULT_NICE, check_nice
from ._runtime import ensure_started, track_closeable
from ._serialize import Payload, discard, dumps_call
from ._shm import SegmentCache, SegmentRef
from ._threads import inner_thread_env, usable_cores
from ._timers import call_later

_pool_ids = itertools.count(1)
# a future's states once cancelled, read without its lock (set_running_or_notify_cancel decides under it)
_CANCELLED = (CANCELLED, CANCELLED_AND_NOTIFIED)
PIPELINE_DEPTH = 256  #: calls a busy worker may hold while the pool has a backlog
#: a busy worker is topped up once it holds this many calls or fewer, not after each result: one
#: message, and one system call, then carries many calls, not a few
REFILL_AT = PIPELINE_DEPTH // 2


def _load(worker: _Worker) -> int:
    return len(worker.inflight)


class IsolatePool(ProcessLives):
    """A warm, reusable pool of worker processes for one-shot calls.

    Args:
        size: number of processes; default ``loky.cpu_count()`` (which respects cgroup limits).
        debug_name: prefix of the processes' debug names.
        max_tasks_per_isolate: recycle a process after this many calls.
        max_memory_per_isolate: recycle a process whose RSS exceeds this many bytes after a call.
        writable_arrays: map received arrays copy-on-write (writable) instead of read-only.
        inner_threads: threads each process's native libraries (BLAS, OpenMP, numexpr, numba) may
            use; default the usable cores divided by ``size``, at least 1, so the processes do not
            oversubscribe the cores. A variable such as ``OMP_NUM_THREADS`` set in the caller's
            environment is kept as it is.
        nice: how many steps below the caller's CPU priority the processes run (0-19, default
            5): when calls saturate the cores, the caller still gets a core at once to feed
            them (see ``stemnb._priority``). 0 keeps the caller's priority.

    Raises:
        ValueError: for a size, limit or ``inner_threads`` below 1, or ``nice`` outside 0-19.
        TypeError: ``nice`` is not an int.
    """

    def __init__(
        self,
        size: int | None = None,
        *,
        debug_name: str | None = None,
        max_tasks_per_isolate: int | None = None,
        max_memory_per_isolate: int | None = None,
        writable_arrays: bool = False,
        inner_threads: int | None = None,
        nice: int = DEFAULT_NICE,
    ) -> None:
        # the cores are read once, here in the caller's thread: importing loky from the per-process
        # threads could deadlock with another thread importing it (loky's package imports are circular)
        cores: int | None = None
        if size is None or inner_threads is None:
            cores = usable_cores()
            size = cores if size is None else size
        _check_positive("size", size)
        for label, value in (("max_tasks_per_isolate", max_tasks_per_isolate),
                             ("max_memory_per_isolate", max_memory_per_isolate),
                             ("inner_threads", inner_threads)):
            if value is not None:
                _check_positive(label, value)
        ensure_started()
        self.debug_name = debug_name or f"pool{next(_pool_ids)}"
        self.max_tasks_per_isolate = max_tasks_per_isolate
        self.max_memory_per_isolate = max_memory_per_isolate
        self.nice = check_nice(nice)
        self._config = {"writable_arrays": writable_arrays, "track_rss": max_memory_per_isolate is not None,
                        "nice": self.nice}
        self._inner_threads = inner_threads
        self._cores = cores
        self._lock = threading.RLock()
        self._target = size
        self._state = "running"
        self._queue: collections.deque[_Call] = collections.deque()
        self._workers: list[_Worker] = []
        self._idle: list[_Worker] = []
        self._call_ids = itertools.count()
        self._worker_ids = itertools.count(1)
        self._cache = SegmentCache()
        self._counts: collections.Counter[str] = collections.Counter()
        self._spawn_failures = 0
        self._listeners: dict[str, list[Callable[[Any], None]]] = {"recycle": [], "spawned": [], "disposed": []}
        self._all_stopped = threading.Condition(self._lock)
        with self._lock:
            for _ in range(size):
                self._spawn_locked()
        track_closeable(self)

    # ------------------------------------------------------------------ submitting
    def run(self, fn: Callable[..., Any], /, *args: Any, timeout: Seconds | None = None,
            debug_name: str | None = None, **kwargs: Any) -> Future:
        """Run ``fn(*args, **kwargs)`` in one of the pool's processes.

        Returns a :class:`~stemnb.Future`. ``timeout`` (seconds, counted from when the call starts
        running) is a hard limit: the process is ended and the future raises ``TimeoutError``.
        Raises TypeError if ``fn`` is not callable or ``timeout`` is not a number of seconds (or
        a timedelta), ValueError if ``timeout`` is not positive and finite, SerializationError
        if the call cannot be pickled, ClosedError if the pool is closed.
        """
        if not callable(fn):
            raise TypeError(f"fn must be callable, not {type(fn).__name__}")
        if timeout is not None:
            timeout = to_seconds("timeout", timeout, allow_zero=False)
        return self._submit(fn, args, kwargs, timeout=timeout, debug_name=debug_name)

    submit = run

    def _submit(self, fn: Callable[..., Any], args: tuple, kwargs: dict, *, timeout: float | None,
                debug_name: str | None, behind: Future | None = None, plain: bool = False) -> Future:
        """:meth:`run` after its argument checks. With ``behind`` (the Future of a call of this
        pool) the call is sent to the process running that call, to start the moment it ends
        (see :meth:`_pin_locked`); when that process may not take it, the call is not queued at
        all: the returned Future is cancelled already. ``plain``: see ``dumps_call``."""
        self._check_open()
        name = debug_name or getattr(fn, "__qualname__", None) or type(fn).__name__
        if behind is not None:
            if not self._may_pin(behind):  # this spares the pickling
                future: Future = Future(debug_name=name)
                future.cancel()
                return future
        payload = self._dump_call(fn, args, kwargs, plain)
        future = Future(debug_name=name)
        remember(future, capture_origin())
        call = _Call(next(self._call_ids), future, payload, timeout, name, self)
        with self._lock:
            if self._state != "running" and self._state != "paused":
                discard(payload, self._cache)
                raise ClosedError(f"pool {self.debug_name!r} is closed")
            if behind is not None:
                if not self._pin_locked(call, behind):
                    discard(payload, self._cache)
                    future.cancel()
                return future
            self._counts["submitted"] += 1
            self._queue.append(call)
            if not self._workers:  # every process died at start before: try again for this call
                self._spawn_failures = 0
                while len(self._workers) < self._target:
                    self._spawn_locked()
            if self._idle:  # busy workers are fed ahead when their results come back, several per message
                self._pump_locked()
        return future

    def _dump_call(self, fn: Callable, args: tuple, kwargs: dict, plain: bool = False) -> Payload:
        try:
            return dumps_call(fn, args, kwargs, cache=self._cache, plain=plain)
        except SerializationError as exc:
            raise _blame(fn, args, kwargs, exc) from exc.__cause__

    def map(self, fn: Callable[..., Any], iterable: Iterable[Any], *iterables: Iterable[Any],
            chunksize: int = 1, timeout: float | None = None) -> Iterator[Any]:
        """Like ``map(fn, iterable, *iterables)``, in parallel; results come in input order.

        With several iterables ``fn`` gets one item of each and the shortest one ends the map, as
        with the builtin. Items are sent in chunks of ``chunksize``; ``timeout`` is each chunk's
        hard limit, as in :meth:`run`. The first failing call's exception is raised when its
        result is reached; closing the iterator early cancels the remaining calls.
        """
        return _ordered(self._submit_chunks(fn, iterable, iterables, chunksize, timeout))

    def imap_unordered(self, fn: Callable[..., Any], iterable: Iterable[Any], *iterables: Iterable[Any],
                       chunksize: int = 1) -> Iterator[Any]:
        """Like :meth:`map`, but yields each result as soon as it is ready."""
        return _unordered(self._submit_chunks(fn, iterable, iterables, chunksize, None))

    def _submit_chunks(self, fn: Callable[..., Any], iterable: Iterable[Any], more: tuple[Iterable[Any], ...],
                       chunksize: int, timeout: float | None) -> list[Future]:
        _check_positive("chunksize", chunksize)
        apply, items = (_apply_chunk_star, zip(iterable, *more, strict=False)) if more else (_apply_chunk, iterable)
        return [self.run(apply, fn, chunk, timeout=timeout, debug_name=_fn_name(fn))
                for chunk in _chunks(items, chunksize)]

    # ------------------------------------------------------------------ dispatching
    def _pump_locked(self) -> None:
        """Hand queued calls to workers; the calls one worker gets travel in one message.

        Messages are written under the pool's lock, so a write must never wait for long: an idle
        worker reads what it is sent, but a busy one reads its calls only between them, and it may
        itself be waiting for this pool's reader, which waits for the lock, to take its results.
        So a busy worker is sent ahead no more than its connection's buffer surely holds (calls
        it has not finished of at most half that buffer: 104 KiB on Linux), and a call too large
        for that waits for an idle worker. Deep pipelines matter: a submitting thread holds the
        GIL for up to ``sys.getswitchinterval()`` (5 ms) at a time, and the pool's readers can
        feed the workers only in between.
        """
        batches: dict[_Worker, list[_Call]] = {}
        ready: dict[_Worker, int] | None = None  # busy workers that may take more, and how many: found once
        queue = self._queue
        while queue and (self._state == "running" or self._state == "closing"):
            call = queue[0]
            if not call.started and call.future._state in _CANCELLED:  # cancelled while queued: drop it
                queue.popleft()
                self._drop_cancelled_locked(call)
                continue
            if self._idle:
                worker = self._idle.pop()
            else:
                if call.timeout is not None or len(queue) < 2:
                    break  # sent ahead only from a backlog, and never a call with a time limit
                if ready is None:
                    ready = {w: room for w in self._workers
                             if w.state == "busy" and len(w.inflight) <= REFILL_AT and (room := self._room(w)) > 0}
                ahead = self._ahead_worker(call, ready)
                if ahead is None:
                    break
                worker = ahead
                if ready[worker] == 1:  # full once it has this call
                    del ready[worker]
                else:
                    ready[worker] -= 1
            queue.popleft()
            if not call.started:
                if not call.future.set_running_or_notify_cancel():  # cancelled just now: keep the worker
                    self._drop_cancelled_locked(call)
                    if worker.state != "busy":
                        self._idle.append(worker)
                    elif ready is not None:  # a busy worker came from ready: its room is back
                        ready[worker] = ready.get(worker, 0) + 1
                    continue
                call.started = True
            self._assign_locked(worker, call)
            batches.setdefault(worker, []).append(call)
        for worker, calls in batches.items():
            self._send_calls_locked(worker, calls)

    @staticmethod
    def _ahead_worker(call: _Call, ready: dict[_Worker, int]) -> _Worker | None:
        """The least-loaded worker of ``ready`` whose pipeline has the bytes for ``call``; the
        ones that have not are dropped from ``ready``."""
        size = len(call.payload.data)
        while ready:
            worker = min(ready, key=_load)
            if worker.queued_bytes + size <= worker.ahead_limit:
                return worker
            del ready[worker]
        return None

    def _room(self, worker: _Worker) -> int:
        """How many more calls a busy worker may be sent now: none once it is stopping; else as
        many as its pipeline holds and its ``max_tasks_per_isolate`` leaves, and no more than
        keeps the numbers of the calls it holds (taken-back ones too, until it skips them) within
        its claim board's ring."""
        if worker.stop_reason is not None or worker.kill_reason is not None:
            return 0
        room = min(PIPELINE_DEPTH - len(worker.inflight), RING - 1 - (worker.seq - worker.board.last_claimed()))
        limit = self.max_tasks_per_isolate
        if limit is not None:
            room = min(room, limit - worker.tasks_done - len(worker.inflight))
        return room

    def _pin_locked(self, call: _Call, behind: Future) -> bool:
        """Send ``call`` to the worker whose last call is ``behind``'s, to start right after it;
        False (nothing done) when no such worker may take it now.

        A pinned call is never stolen by an idle worker (its caller decides that, see
        :meth:`_withdraw`); its time limit counts from its start, as every call's.
        """
        worker = self._pinnable(behind)
        if worker is None or worker.queued_bytes + len(call.payload.data) > worker.ahead_limit:
            return False
        call.future.set_running_or_notify_cancel()  # a new future: nobody could cancel it yet
        call.started = call.pinned = True
        self._counts["submitted"] += 1
        self._assign_locked(worker, call)
        self._send_calls_locked(worker, [call])
        return True

    def _may_pin(self, behind: Future) -> bool:
        """Whether a call sent behind ``behind`` would be pinned now: :meth:`_pinnable` without the
        lock, which the pool's readers hold often (so :meth:`_pin_locked` checks again)."""
        try:
            return self._pinnable(behind) is not None
        except (IndexError, RuntimeError):  # the worker's calls changed meanwhile
            return True

    def _pinnable(self, behind: Future) -> _Worker | None:
        """The worker whose last call is ``behind``'s, if it may be sent one more call now."""
        if self._state != "running":
            return None
        worker = next((w for w in self._workers if w.inflight and w.inflight[-1].future is behind), None)
        if worker is None or worker.state != "busy" or self._room(worker) <= 0:
            return None
        return worker

    def _withdraw(self, future: Future) -> bool:
        """Take back a call that has not started (queued here or waiting in a process): it never
        runs and ``future`` is cancelled. False, and nothing done, once it has started."""
        with self._lock:
            call = next((c for c in self._queue if c.future is future), None)
            if call is not None:
                self._queue.remove(call)
                self._drop_cancelled_locked(call)
            else:
                found = next(((w, c) for w in self._workers for c in w.inflight if c.future is future), None)
                if found is None or self._skip_locked(*found) != "skipped":
                    return False
            future._set_stopper(lambda: True)  # taken back already: cancelling stops nothing more
        return future.cancel()

    def _drop_cancelled_locked(self, call: _Call) -> None:
        discard(call.payload, self._cache)
        self._counts["cancelled"] += 1

    def _fail_call(self, call: _Call, exc: BaseException) -> None:
        """Settle a call that will never run with ``exc`` (``started``: it was sent to a process that died)."""
        discard(call.payload, self._cache)
        if call.started or call.future.set_running_or_notify_cancel():
            call.future._settle(exception=exc)

    def _assign_locked(self, worker: _Worker, call: _Call) -> None:
        """Make ``call`` the worker's (book-keeping only: :meth:`_send_calls_locked` sends it)."""
        inflight = worker.inflight
        head = not inflight  # it runs first: its time limit starts now
        if head:
            worker.started = time.time()
        worker.state = "busy"
        worker.seq += 1
        call.seq = worker.seq
        inflight.append(call)
        worker.queued_bytes += len(call.payload.data)
        if call.payload.buffers:
            worker.lent.update(b.name for b in call.payload.buffers if isinstance(b, SegmentRef) and not b.oneshot)
        call.worker = worker
        call.future._set_stopper(call)
        if head and call.timeout is not None:
            self._start_timer_locked(worker)

    def _start_timer_locked(self, worker: _Worker) -> None:
        """Start the time limit of the worker's head call, the one it runs now, if not started."""
        call = worker.call
        if call is not None and call.timeout is not None and call.timer is None:
            call.timer = call_later(call.timeout, lambda: self._time_out(worker, call))

    def _send_calls_locked(self, worker: _Worker, calls: list[_Call]) -> None:
        released = list(worker.released)
        worker.released.clear()
        try:
            worker.send(("calls", [(c.id, c.seq, tuple(c.payload)) for c in calls], released))
        except OSError:
            worker.kill_reason = worker.kill_reason or IsolateRecycleReason.CRASHED
            if worker.child:
                worker.child.kill()  # its reader thread settles or requeues the calls

    def _stop_call(self, worker: _Worker, call: _Call) -> bool:
        """``Future.cancel()`` of a dispatched call: skip it if it has not started, else end its process."""
        with self._lock:
            if call not in worker.inflight:
                return False
            verdict = self._skip_locked(worker, call)
            if verdict != "running":
                return verdict == "skipped"
            call.cancelled = True
            self._counts["cancelled"] += 1
            worker.kill_reason = worker.kill_reason or IsolateRecycleReason.CANCELLED
        worker.child.kill()  # type: ignore[union-attr]
        return True

    def _skip_locked(self, worker: _Worker, call: _Call) -> str:
        """Revoke ``call``, sent to ``worker``: "skipped" when it had not started (it never will;
        it is taken back and counted cancelled), else "running" or "finished" (nothing done)."""
        verdict = worker.board.revoke(call.seq)
        if verdict == "skipped":
            call.cancelled = True
            self._counts["cancelled"] += 1
            self._take_back_locked(worker, call)
            self._after_call_locked(worker)
        return verdict

    def _take_back_locked(self, worker: _Worker, call: _Call) -> None:
        worker.inflight.remove(call)
        worker.queued_bytes -= len(call.payload.data)
        worker.stolen.add(call.id)

    def _steal_locked(self, idle: _Worker) -> bool:
        """Give an idle worker a call still waiting in another worker; True if it got one."""
        for victim in sorted(self._workers, key=lambda w: -len(w.inflight)):
            if len(victim.inflight) < 2 or victim.kill_reason is not None:
                continue
            call = victim.inflight[-1]
            if call.pinned or victim.board.revoke(call.seq) != "skipped":
                continue
            self._take_back_locked(victim, call)
            self._assign_locked(idle, call)
            self._send_calls_locked(idle, [call])
            return True
        return False

    def _time_out(self, worker: _Worker, call: _Call) -> None:
        err = TimeoutError(f"call {call.name!r} exceeded its time limit of {call.timeout}s and was stopped")
        if call.future._settle(exception=err):
            with self._lock:
                if worker.call is not call:
                    return
                worker.kill_reason = worker.kill_reason or IsolateRecycleReason.TIME_LIMIT
            worker.child.kill()  # type: ignore[union-attr]

    # ------------------------------------------------------------------ control
    def resize(self, size: int) -> None:
        """Grow or shrink the pool to ``size`` processes; busy ones stop after their call."""
        _check_positive("size", size)
        with self._lock:
            self._check_open()
            self._target = size
            live = [w for w in self._workers if w.stop_reason is None and w.kill_reason is None]
            for _ in range(size - len(live)):
                self._spawn_locked()
            surplus = len(live) - size
            order = sorted(live, key=lambda w: {"idle": 0, "starting": 1}.get(w.state, 2))
            for worker in order[:max(surplus, 0)]:
                if worker.state == "idle":
                    self._stop_locked(worker, IsolateRecycleReason.SCALE_DOWN)
                else:
                    worker.stop_reason = IsolateRecycleReason.SCALE_DOWN

    def pause(self) -> None:
        """Stop starting queued calls (running calls go on)."""
        with self._lock:
            self._check_open()
            self._state = "paused"
            for worker in self._idle:
                worker.state = "paused"

    def resume(self) -> None:
        """Start queued calls again after :meth:`pause`."""
        with self._lock:
            self._check_open()
            self._state = "running"
            for worker in self._idle:
                worker.state = "idle"
            self._pump_locked()

    def kill_isolate(self, pid: int) -> None:
        """End the process ``pid`` now; its running call fails with IsolateExitedError.

        Raises ValueError if ``pid`` is not one of this pool's processes.
        """
        with self._lock:
            worker = next((w for w in self._workers if w.pid == pid), None)
            if worker is None:
                raise ValueError(f"pid {pid} is not a process of pool {self.debug_name!r}")
            worker.kill_reason = IsolateRecycleReason.KILLED
        worker.child.kill()  # type: ignore[union-attr]

    def close(self, *, cancel_pending: bool = True, timeout: float | None = None) -> None:
        """Close the pool: cancel queued calls, let running ones finish, stop every process.

        Running calls still going after ``timeout`` seconds are ended and fail with ClosedError.
        Idempotent; every future is settled, and every process's reader thread has ended (its
        last recycle callbacks run), when it returns.
        """
        with self._lock:
            if self._state == "closed":
                return
            first = self._state != "closing"
            self._state = "closing"
            readers = [w.thread for w in self._workers if w.thread is not None]
            pending = list(self._queue) if cancel_pending else []
            if cancel_pending:
                self._queue.clear()
            if first:
                for worker in list(self._workers):
                    if worker.state in ("idle", "paused") and not self._queue:
                        self._stop_locked(worker, IsolateRecycleReason.SHUTDOWN)
                    elif cancel_pending:
                        worker.stop_reason = IsolateRecycleReason.SHUTDOWN
                self._pump_locked()  # with cancel_pending=False, queued calls still run
        for call in pending:
            discard(call.payload, self._cache)
            call.future.cancel()
        if cancel_pending:  # calls sent ahead to a busy worker but not started are pending too
            with self._lock:
                waiting = [c for w in self._workers for c in list(w.inflight)[1:]]
            for call in waiting:
                call.future.cancel()
        with self._lock:
            if not self._all_stopped.wait_for(lambda: not self._workers, timeout):
                for worker in self._workers:
                    worker.kill_reason = IsolateRecycleReason.SHUTDOWN
                    if worker.child is not None:
                        worker.child.kill()
                self._all_stopped.wait_for(lambda: not self._workers, 30.0)
            self._state = "closed"
        for reader in readers:  # each left the pool before its recycle callbacks: let them finish
            if reader is not threading.current_thread():
                reader.join(30.0)
        self._cache.close()

    def __enter__(self) -> IsolatePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._state in ("closing", "closed"):
            raise ClosedError(f"pool {self.debug_name!r} is closed")

    # ------------------------------------------------------------------ introspection
    @property
    def size(self) -> int:
        return self._target

    @property
    def inner_threads(self) -> int:
        """Threads the native libraries of a process started now may use (see the constructor)."""
        if self._inner_threads is not None:
            return self._inner_threads
        assert self._cores is not None, "read at construction whenever inner_threads is not given"
        return max(1, self._cores // self._target)

    def _child_env(self) -> dict[str, str]:
        """The environment a new process gets: its native thread pools capped (see ``_threads``)."""
        return inner_thread_env(self.inner_threads)

    @property
    def closed(self) -> bool:
        return self._state in ("closing", "closed")

    def statistics(self) -> PoolStatistics:
        """A frozen snapshot of the pool's state and counters."""
        with self._lock:
            states = collections.Counter(w.state for w in self._workers)
            return PoolStatistics(
                state=self._state, size=self._target, starting=states["starting"],
                idle=states["idle"] + states["paused"], busy=states["busy"], queued=len(self._queue),
                submitted=self._counts["submitted"], completed=self._counts["completed"],
                failed=self._counts["failed"], cancelled=self._counts["cancelled"],
                recycled=self._counts["recycled"])

    def isolates(self) -> list[IsolateInfo]:
        """One row per process: pid, debug name, state, calls done, RSS, current call."""
        from ._runtime import rss_bytes

        with self._lock:
            workers = list(self._workers)
        return [IsolateInfo(w.pid, w.name, w.state, w.tasks_done, rss_bytes(w.pid) if w.pid else 0,
                            w.call.name if w.call else None, w.started) for w in workers]

    def on_recycle(self, callback: Callable[[IsolateRecycleEvent], None], remove: bool = False) -> None:
        """Call ``callback(event)`` whenever a process of the pool ends (or stop doing so)."""
        self._listen("recycle", callback, remove)

    def on_spawned(self, callback: Callable[[int], None], remove: bool = False) -> None:
        """Call ``callback(pid)`` when a new process is ready."""
        self._listen("spawned", callback, remove)

    def on_disposed(self, callback: Callable[[int], None], remove: bool = False) -> None:
        """Call ``callback(pid)`` after a process has ended."""
        self._listen("disposed", callback, remove)

    def _listen(self, kind: str, callback: Callable[[Any], None], remove: bool) -> None:
        with self._lock:
            if remove:
                self._listeners[kind].remove(callback)
            else:
                self._listeners[kind].append(callback)

    def _emit(self, kind: str, value: Any) -> None:
        from ._runtime import report_uncaught

        for callback in list(self._listeners[kind]):
            try:
                callback(value)
            except Exception as exc:  # noqa: BLE001 - a listener's error must not break the pool
                report_uncaught(exc, f"{self.debug_name} on_{kind} listener")

    def __repr__(self) -> str:
        s = self.statistics()
        return (f"<stemnb.IsolatePool {self.debug_name!r} {s.state}: size={s.size} busy={s.busy} "
                f"idle={s.idle} queued={s.queued} completed={s.completed}>")

    def _repr_html_(self) -> str:
        from ._html import render_pool

        return render_pool(self.statistics(), self.isolates(), name=self.debug_name)

