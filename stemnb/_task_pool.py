"""``TaskIsolatePool``: runs task handlers in the processes of a :class:`stemnb.IsolatePool`.

A task runs as one pool call. Inside the process it gets a :class:`TaskContext` whose signals
(heartbeat, progress, extend_lease, enqueue) travel over a stemnb ``SendPort`` to the worker;
``enqueue`` waits for the worker's reply on a ``ReceivePort``. The first signal also tells the
worker the process's own control port, through which a terminate-revocation arrives, so the
task's next heartbeat / progress raises :class:`TaskRevokedError`.

What the pool adds over Stem's (reference §3): a hard time limit ends only that task's process
and is reported as ``IsolateRecycleReason.TIME_LIMIT``; closing the pool settles every in-flight
task; arguments that cannot be sent fail that task at once and the pool stays usable; the memory
limit is each process's real RSS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from ._context import TaskContext, TaskControl
from ._future import Future
from ._plain import is_plain
from ._pool import IsolatePool
from ._pool_types import IsolateInfo, IsolateRecycleEvent, PoolStatistics
from ._priority import DEFAULT_NICE
from ._serialize import plain_function, received_function

ENQUEUE_REPLY_TIMEOUT = 60.0
FLUSH_TIMEOUT = 10.0


class _HandlerPool(IsolatePool):
    """The pool under a TaskIsolatePool. Its readers sleep as soon as they have nothing to read: the
    worker's own threads want the GIL between results, and it stages each isolate's next task ahead
    anyway (with lingering readers a task worker ran 3-8 % fewer tasks per second)."""

    _reader_linger = 0.0


class TaskIsolatePool:
    """A pool of ``size`` processes for task handlers (Stem's TaskIsolatePool), ``nice`` steps
    below the caller's CPU priority (see :class:`stemnb.IsolatePool`).

    Raises ValueError for a size or limit below 1, or ``nice`` outside 0-19.
    """

    def __init__(
        self,
        size: int,
        *,
        max_tasks_per_isolate: int | None = None,
        max_memory_per_isolate: int | None = None,
        debug_name: str | None = None,
        on_recycle: Callable[[IsolateRecycleEvent], Any] | None = None,
        on_spawned: Callable[[int], Any] | None = None,
        on_disposed: Callable[[int], Any] | None = None,
        nice: int = DEFAULT_NICE,
    ) -> None:
        self._pool = _HandlerPool(
            max(1, size),
            debug_name=debug_name,
            max_tasks_per_isolate=max_tasks_per_isolate,
            max_memory_per_isolate=max_memory_per_isolate,
            nice=nice,
        )
        for kind, callback in (("recycle", on_recycle), ("spawned", on_spawned), ("disposed", on_disposed)):
            if callback is not None:
                getattr(self._pool, f"on_{kind}")(callback)

    # -- running ------------------------------------------------------------------------------
    def execute(
        self,
        fn: Callable[[Any, Any], Any],
        args: Any,
        *,
        task_id: str,
        name: str,
        attempt: int = 0,
        headers: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
        queue: str = "default",
        control_port: Any = None,
        timeout: float | None = None,
        behind: Future | None = None,
    ) -> Future:
        """Run ``fn(context, args)`` in a pool process; return a Future of its result.

        ``timeout`` is a hard limit that ends the process (the Future raises TimeoutError).
        ``future.cancel()`` ends the process of a running task. ``behind``, the Future of a
        task this pool runs, sends this one to that task's process, to start the moment it
        ends; when that process cannot take it (that task ended, or its process is about to
        be recycled) the task is not run and the Future is returned cancelled. :meth:`withdraw`
        takes a task back until it starts. Raises SerializationError at once when the task
        cannot be sent, and ClosedError when the pool is closed.
        """
        sent = plain_function(fn)  # a notebook handler as its blob: the request stays plain
        headers, meta = dict(headers or {}), dict(meta or {})
        request = (fn if sent is None else sent, args, task_id, name, attempt, headers, meta, queue, control_port)
        return self._pool._submit(run_task, (request,), {}, timeout=timeout, debug_name=f"{name}[{task_id}]",
                                  behind=behind, plain=sent is not None and _plain_request(request))

    def may_stage_behind(self, future: Future) -> bool:
        """Whether a task sent ``behind=future`` now would be taken: that task's process runs it
        last and may take one more. A look without the pool's lock, so :meth:`execute` may
        still return a cancelled Future; False spares building a task that would not go."""
        return self._pool._may_pin(future)

    def withdraw(self, future: Future) -> bool:
        """Take back a task that has not started: it never runs and ``future`` is cancelled.
        Returns False, and does nothing, once it has started (or ended)."""
        return self._pool._withdraw(future)

    # -- sizing and recycling -----------------------------------------------------------------
    @property
    def size(self) -> int:
        """The target number of processes."""
        return self._pool.size

    @property
    def closed(self) -> bool:
        """Whether the pool was closed."""
        return self._pool.closed

    @property
    def active_count(self) -> int:
        """Processes running a task now."""
        return self._pool.statistics().busy

    @property
    def total_count(self) -> int:
        """Processes alive (idle, busy or starting)."""
        stats = self._pool.statistics()
        return stats.idle + stats.busy + stats.starting

    def resize(self, size: int) -> None:
        """Grow or shrink to ``size``; busy processes leave after their task (SCALE_DOWN)."""
        self._pool.resize(max(1, size))

    def update_recycle_policy(self, *, max_tasks_per_isolate: int | None = None, max_memory_per_isolate: int | None = None) -> None:
        """Change the recycle thresholds for later tasks."""
        self._pool.max_tasks_per_isolate = max_tasks_per_isolate
        self._pool.max_memory_per_isolate = max_memory_per_isolate

    def statistics(self) -> PoolStatistics:
        """The pool's counters (:class:`stemnb.PoolStatistics`)."""
        return self._pool.statistics()

    def isolates(self) -> list[IsolateInfo]:
        """One row per process (:class:`stemnb.IsolateInfo`)."""
        return self._pool.isolates()

    def on_recycle(self, callback: Callable[[IsolateRecycleEvent], Any], remove: bool = False) -> None:
        """Call ``callback(IsolateRecycleEvent)`` whenever a process is ended (``remove=True`` stops it)."""
        self._pool.on_recycle(callback, remove)

    def on_spawned(self, callback: Callable[[int], Any], remove: bool = False) -> None:
        """Call ``callback(pid)`` whenever a process starts."""
        self._pool.on_spawned(callback, remove)

    def on_disposed(self, callback: Callable[[int], Any], remove: bool = False) -> None:
        """Call ``callback(pid)`` whenever a process is gone."""
        self._pool.on_disposed(callback, remove)

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self, *, cancel_pending: bool = True, timeout: float | None = None) -> None:
        """Close the pool; every in-flight task's Future is settled when this returns.

        Running tasks get ``timeout`` seconds (None: until done) before their processes are
        ended (their Futures then raise ClosedError). Idempotent.
        """
        self._pool.close(cancel_pending=cancel_pending, timeout=timeout)

    def dispose(self) -> None:
        """Close now: queued tasks are cancelled, running ones end with ClosedError."""
        self.close(cancel_pending=True, timeout=0)

    def __enter__(self) -> TaskIsolatePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def __repr__(self) -> str:
        return f"<stemnb.TaskIsolatePool size={self.size} closed={self.closed}>"


def _plain_request(request: tuple) -> bool:
    """Whether a task's request (its function already sent plain) is plain (see ``_plain``):
    its ids, name and queue are checked by type, the rest by the plain-object walk."""
    _, args, task_id, name, attempt, headers, meta, queue, port = request
    return (
        type(task_id) is str and type(name) is str and type(queue) is str and type(attempt) is int
        and is_plain((args, headers, meta, port))
    )


# -- inside the pool process ----------------------------------------------------------------------
def run_task(request: tuple) -> Any:
    """The pool call: build the remote context and run the handler (async handlers to completion)."""
    fn, args, task_id, name, attempt, headers, meta, queue, control_port = request
    fn = received_function(fn)
    control = RemoteControl(task_id, control_port)
    context = TaskContext(task_id, name, attempt, headers, meta, queue, control)
    from ._worker._execution import call_handler

    try:
        return call_handler(fn, context, args)
    finally:
        _terminations.pop(task_id, None)
        control.flush()


_terminations: dict[str, str] = {}
_inbox: Any = None
_inbox_lock = threading.Lock()


def _process_inbox() -> Any:
    """This process's control port (created once): terminate requests land in ``_terminations``."""
    global _inbox
    with _inbox_lock:
        if _inbox is None:
            _inbox = listening_port("task-control", _on_control)
        return _inbox


def listening_port(debug_name: str, callback: Callable[[Any], None]) -> Any:
    """A ReceivePort calling ``callback`` on stemnb's event thread.

    Made on a helper thread: ``listen`` binds to the event loop running in the calling thread,
    and an async task's loop (``asyncio.run``) is gone once the task returns.
    """
    from ._ports import ReceivePort

    box: dict[str, Any] = {}

    def make() -> None:
        try:
            port = ReceivePort(debug_name=debug_name)
            port.listen(callback)
            box["port"] = port
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=make, name=f"stemnb-{debug_name}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["port"]


def _on_control(message: Any) -> None:
    if isinstance(message, tuple) and message and message[0] == "terminate":
        _terminations[message[1]] = message[2]


class RemoteControl(TaskControl):
    """A task context's control inside a pool process: signals go to the worker's port."""

    def __init__(self, task_id: str, to_worker: Any) -> None:
        self.task_id = task_id
        self.to_worker = to_worker
        self._announced = False

    def _announce(self) -> None:
        if not self._announced and self.to_worker is not None:
            self._announced = True
            self.to_worker.send(("hello", self.task_id, _process_inbox().send_port))

    def _send(self, message: tuple) -> None:
        if self.to_worker is None:
            return
        self._announce()
        self.to_worker.send(message)

    def flush(self) -> None:
        """Wait until the worker handled every signal this task sent (they travel apart from
        the result, so without this a last progress report could arrive after the result)."""
        if not self._announced:
            return
        from ._ports import ReceivePort

        with ReceivePort(debug_name=f"flush-{self.task_id}") as reply:
            self.to_worker.send(("flush", self.task_id, reply.send_port))
            try:
                reply.receive(timeout=FLUSH_TIMEOUT)
            except TimeoutError:
                pass  # the worker is gone or stuck; the result still goes back

    def heartbeat(self) -> None:
        self._send(("heartbeat", self.task_id))

    def progress(self, fraction: float, data: Mapping[str, Any] | None) -> None:
        self._send(("progress", self.task_id, fraction, data))

    def extend_lease(self, seconds: float) -> None:
        self._send(("extend_lease", self.task_id, seconds))

    def enqueue(self, name: str, args: Any, options: Any, headers: Any, meta: Any) -> str:
        return self._ask_worker("enqueue", name, args, options, headers, meta)

    def enqueue_many(self, name: str, args_list: list[Any], options: Any, headers: Any, meta: Any) -> list[str]:
        return self._ask_worker("enqueue_many", name, args_list, options, headers, meta)

    def _ask_worker(self, kind: str, *request: Any) -> Any:
        """Send ``(kind, task id, reply port, *request)`` to the worker, return its answer or
        raise the error it sent back."""
        if self.to_worker is None:
            raise RuntimeError("this task context cannot enqueue (no worker port)")
        from ._ports import ReceivePort

        with ReceivePort(debug_name=f"{kind}-reply-{self.task_id}") as reply:
            self._send((kind, self.task_id, reply.send_port, *request))
            ok, value = reply.receive(timeout=ENQUEUE_REPLY_TIMEOUT)
        if not ok:
            raise value
        return value

    def revoked(self) -> str | None:
        self._announce()  # so that a terminate request can reach this process
        return _terminations.get(self.task_id)
