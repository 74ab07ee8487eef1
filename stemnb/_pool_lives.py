"""The lives of an :class:`~stemnb.IsolatePool`'s processes: start, read, book outcomes, end.

A base of ``IsolatePool``. Each process has one thread here: it starts the process, waits for it to
connect, then reads its messages (output for the caller's cell, call outcomes) until it ends; at the
end it settles the call that was running, requeues those that never started, and starts a
replacement. Everything these methods touch is the pool's state, under the pool's lock; they call
back into the pool's dispatching (``_pump_locked``, ``_steal_locked``) to keep processes fed.
"""

from __future__ import annotations

import collections
import pickle
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ._exceptions import ClosedError, IsolateExitedError
from ._frames import GATE, LINGER, FrameReader
from ._output import capture_origin
from ._pool_helpers import _outcome
from ._pool_records import _Call, _Worker, send_buffer_bytes
from ._pool_types import IsolateRecycleEvent, IsolateRecycleReason
from ._process import start_child, wait_connected
from ._shm import SegmentCache, sweep_pid

_MAX_SPAWN_FAILURES = 3

_settling = threading.local()  # .on: this reader thread is settling a call's future, outside the lock


def take_settling() -> bool:
    """Whether the calling thread is a pool's reader settling a call's future right now, outside
    every pool lock: a done-callback may then go on with blocking work in it (see
    ``stemnb._worker._relay``). The first caller takes it: callbacks run by that work see False."""
    if getattr(_settling, "on", False):
        _settling.on = False
        return True
    return False


class ProcessLives:
    """The pool's per-process threads and their book-keeping (see the module's docstring)."""

    #: seconds each reader thread lingers for its process's next message (0: it sleeps at once)
    _reader_linger: float = LINGER

    # the pool's state, set by IsolatePool.__init__
    debug_name: str
    max_tasks_per_isolate: int | None
    max_memory_per_isolate: int | None
    _config: dict[str, Any]
    _lock: threading.RLock
    _state: str
    _target: int
    _queue: collections.deque[_Call]
    _workers: list[_Worker]
    _idle: list[_Worker]
    _worker_ids: Iterator[int]
    _cache: SegmentCache
    _counts: collections.Counter[str]
    _spawn_failures: int
    _all_stopped: threading.Condition

    if TYPE_CHECKING:  # the pool's dispatching and events, which these methods call back into

        def _pump_locked(self) -> None: ...

        def _child_env(self) -> dict[str, str]: ...

        def _steal_locked(self, idle: _Worker) -> bool: ...

        def _start_timer_locked(self, worker: _Worker) -> None: ...

        def _fail_call(self, call: _Call, exc: BaseException) -> None: ...

        def _emit(self, kind: str, value: Any) -> None: ...

    def _spawn_locked(self) -> None:
        worker = _Worker(f"{self.debug_name}-{next(self._worker_ids)}")
        self._workers.append(worker)
        worker.thread = threading.Thread(target=self._serve_worker, args=(worker,), daemon=True,
                                         name=f"stemnb-{worker.name}")
        worker.thread.start()

    def _serve_worker(self, worker: _Worker) -> None:
        try:
            config = {**self._config, "claim": worker.board.for_child()}
            worker.child = start_child("pool", config, name=worker.name, env=self._child_env()).result()
            worker.ahead_limit = send_buffer_bytes(wait_connected(worker.child)) // 2
        except BaseException as exc:  # noqa: BLE001
            self._spawn_failed(worker, exc)
            return
        self._emit("spawned", worker.pid)
        with self._lock:
            closing = self._state in ("closing", "closed") and not self._queue  # else close() left calls to run
            if worker.stop_reason is not None or closing:
                self._stop_locked(worker, worker.stop_reason or IsolateRecycleReason.SHUTDOWN)
            else:
                worker.state = "idle"
                self._idle.append(worker)
                self._pump_locked()
        self._read(worker)
        self._worker_ended(worker)

    def _read(self, worker: _Worker) -> None:
        conn = worker.child.conn  # type: ignore[union-attr]
        assert conn is not None, "a worker is read only once it has connected"
        reader = FrameReader(conn, linger=self._reader_linger, gate=GATE)
        while True:
            try:
                frames = reader.read()
            except (EOFError, OSError):
                return
            try:
                self._handle(worker, [pickle.loads(frame) for frame in frames])
            except Exception as exc:  # noqa: BLE001 - this thread must live until the process ends
                from ._runtime import report_uncaught

                report_uncaught(exc, f"{self.debug_name} reader of {worker.name}")
                worker.kill_reason = worker.kill_reason or IsolateRecycleReason.CRASHED
                worker.child.kill()  # type: ignore[union-attr]  # its end settles or requeues its calls

    def _handle(self, worker: _Worker, msgs: list[tuple]) -> None:
        """Act on a worker's messages in order; consecutive outcomes are booked together."""
        done: list[tuple] = []
        for msg in msgs:
            if msg[0] != "out":
                done.append(msg)
                continue
            if done:
                self._finished(worker, done)
                done = []
            self._output(worker, msg[2], msg[3])
        if done:
            self._finished(worker, done)

    def _output(self, worker: _Worker, stream: str, text: str) -> None:
        """Show a worker's output where its call came from; output is best effort, never fatal."""
        call = worker.call
        origin = call.origin if call is not None and call.origin is not None else capture_origin()
        try:
            origin.write(stream, text)
        except Exception:  # noqa: BLE001 - a closed or broken stream loses the text, not the call
            pass

    def _finished(self, worker: _Worker, msgs: list[tuple]) -> None:
        """Book the outcomes a worker reported, feed it, then settle their futures (outside the lock)."""
        writable = self._config["writable_arrays"]
        outcomes = [_outcome(msg, writable, worker.released.append) for msg in msgs]  # before the lock
        settle: list[tuple[_Call, Any, bool, str]] = []
        with self._lock:
            for msg, (value, failed) in zip(msgs, outcomes, strict=True):
                kind, call_id = msg[0], msg[1]
                for name in msg[-1]:
                    worker.lent.discard(name)
                    self._cache.release(name)
                if call_id in worker.stolen:  # a call taken back earlier reports its skip
                    worker.stolen.discard(call_id)
                    continue
                call = worker.inflight.popleft() if worker.inflight else None
                if call is None or call.id != call_id:
                    if call is not None:
                        worker.inflight.appendleft(call)  # leave it to the worker's end to settle or requeue
                    raise RuntimeError(f"pool {self.debug_name!r} lost track of call {call_id}")  # a bug, loudly
                worker.queued_bytes -= len(call.payload.data)
                if kind == "skipped":
                    continue
                worker.tasks_done += 1
                worker.rss = (msg[6] if kind == "err" else msg[3]) or worker.rss
                what = "failed" if failed else "completed"
                self._counts[what] += 1  # counted before the future wakes its waiter
                settle.append((call, value, failed, what))
            if settle:
                self._spawn_failures = 0
            worker.started = time.time() if worker.inflight else None
            self._start_timer_locked(worker)  # the next call sent ahead runs now
            self._after_call_locked(worker)
        for call, value, failed, what in settle:
            if call.timer is not None:
                call.timer.cancel()
            _settling.on = True
            try:
                settled = call.future._settle(exception=value) if failed else call.future._settle(value)
            finally:
                _settling.on = False
            if not settled:
                with self._lock:  # cancelled or timed out meanwhile: that path counted it
                    self._counts[what] -= 1

    def _after_call_locked(self, worker: _Worker) -> None:
        """Book-keeping once a worker has one call fewer: recycle it, idle it or feed it."""
        if worker.inflight or worker.kill_reason is not None or worker.state in ("recycling", "dead"):
            self._pump_locked()
            return
        reason = self._recycle_reason(worker)
        if reason is not None:
            self._stop_locked(worker, reason)
        elif not (self._state == "running" and not self._queue and self._steal_locked(worker)):
            worker.state = "paused" if self._state == "paused" else "idle"
            self._idle.append(worker)
        self._pump_locked()

    def _count_outcome(self, settled: bool, what: str) -> None:
        if settled:
            with self._lock:
                self._counts[what] += 1

    def _recycle_reason(self, worker: _Worker) -> IsolateRecycleReason | None:
        if worker.stop_reason is not None:
            return worker.stop_reason
        if self._state in ("closing", "closed") and not self._queue:
            return IsolateRecycleReason.SHUTDOWN
        if self.max_tasks_per_isolate is not None and worker.tasks_done >= self.max_tasks_per_isolate:
            return IsolateRecycleReason.MAX_TASKS
        if self.max_memory_per_isolate is not None and worker.rss >= self.max_memory_per_isolate:
            return IsolateRecycleReason.MEMORY
        return None

    def _stop_locked(self, worker: _Worker, reason: IsolateRecycleReason) -> None:
        """Ask an idle worker to exit; its reader thread sees the end."""
        worker.stop_reason = reason
        worker.state = "recycling"
        if worker in self._idle:
            self._idle.remove(worker)
        try:
            worker.send(("stop",))
        except OSError:
            pass

    def _worker_ended(self, worker: _Worker) -> None:
        child = worker.child
        assert child is not None
        exitcode = child.join(10.0)
        with self._lock:
            calls = list(worker.inflight)
            worker.inflight.clear()
            worker.queued_bytes = 0
            if worker in self._idle:
                self._idle.remove(worker)
            for name in worker.lent:
                self._cache.release(name)  # its mapping is gone with it
            worker.lent.clear()
            reason = worker.kill_reason or worker.stop_reason or IsolateRecycleReason.CRASHED
            worker.state = "dead"
            running = calls[0] if calls and worker.board.last_claimed() >= calls[0].seq else None
            for call in reversed([c for c in calls if c is not running and not c.cancelled]):
                self._queue.appendleft(call)  # never started: it runs elsewhere
        worker.board.destroy()
        sweep_pid(child.pid)
        if running is not None:
            if running.timer is not None:
                running.timer.cancel()
            if not running.cancelled:
                err = self._death_error(worker, reason, exitcode)
                self._count_outcome(running.future._settle(exception=err), "failed")
        event = IsolateRecycleEvent(reason, child.pid, worker.tasks_done, worker.rss or None, exitcode)
        with self._lock:  # only now, with its call settled, does the worker leave the pool
            self._workers.remove(worker)
            self._counts["recycled"] += 1
            if reason is IsolateRecycleReason.CRASHED and worker.tasks_done == 0 and running is None:
                self._spawn_failures += 1  # it died before doing anything: do not respawn forever
            if self._spawn_failures >= _MAX_SPAWN_FAILURES and not self._workers:
                self._fail_queue_locked(IsolateExitedError.for_exit(
                    f"every process of pool {self.debug_name!r} died at start; the last", child.pid, exitcode))
            elif self._state == "running" or self._state == "paused":
                while len(self._workers) < self._target:
                    self._spawn_locked()
            elif self._queue and not self._workers:
                self._fail_queue_locked(ClosedError(f"pool {self.debug_name!r} was closed"))
            if not self._workers:
                self._all_stopped.notify_all()
            self._pump_locked()
        self._emit("recycle", event)
        self._emit("disposed", child.pid)

    def _fail_queue_locked(self, exc: BaseException) -> None:
        """Settle every queued call with ``exc`` (no process is left to run them)."""
        for call in self._queue:
            self._fail_call(call, exc)
        self._queue.clear()

    def _death_error(self, worker: _Worker, reason: IsolateRecycleReason, exitcode: int | None) -> BaseException:
        if reason is IsolateRecycleReason.SHUTDOWN:
            return ClosedError(f"pool {self.debug_name!r} was closed while the call was running")
        if reason is IsolateRecycleReason.KILLED:
            return IsolateExitedError(f"isolate {worker.name!r} (pid {worker.pid}) was killed by kill_isolate()",
                                      exitcode=exitcode, pid=worker.pid)
        return IsolateExitedError.for_exit(f"isolate {worker.name!r}", worker.pid, exitcode)

    def _spawn_failed(self, worker: _Worker, exc: BaseException) -> None:
        worker.board.destroy()
        with self._lock:
            self._workers.remove(worker)
            self._spawn_failures += 1
            give_up = self._spawn_failures >= _MAX_SPAWN_FAILURES or self._state not in ("running", "paused")
            failed = list(self._queue) if give_up and not self._workers else []
            if failed:
                self._queue.clear()
            if not give_up:
                self._spawn_locked()
            if not self._workers:
                self._all_stopped.notify_all()
        for call in failed:
            self._fail_call(call, IsolateExitedError(f"could not start a pool process: {exc}"))
