"""Running a handler: inline in the runner thread, or in an isolate of the worker's pool."""

from __future__ import annotations

import concurrent.futures as cf
import inspect
import threading
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from .._context import TaskContext
from .._exceptions import RemoteTraceback, TaskRevokedError, TaskTimeLimitError
from .._middleware import wrap_execute, wraps_execute
from . import _pipeline
from ._active import ActiveTask

if TYPE_CHECKING:
    from .._registry import TaskHandler
    from ._worker import Worker


def execute(worker: Worker, task: ActiveTask, handler: TaskHandler, args: Any) -> Any:
    """Run ``handler`` through the ``on_execute`` middleware chain; return its result or raise."""
    env = task.envelope
    context = TaskContext(env.id, env.name, env.attempt, env.headers, env.meta, task.delivery.queue, task.control)
    limit = _pipeline.hard_limit(env, handler.options)
    if handler.isolate:
        call = lambda: run_isolate(worker, task, handler, args, limit)  # noqa: E731
    else:
        call = lambda: run_inline(task, handler, context, args, limit)  # noqa: E731
    return wrap_execute(worker.middleware, context, call)()


def call_handler(fn: Any, context: Any, args: Any) -> Any:
    """Call ``fn(context, args)``; run it to completion on a fresh event loop when it is async."""
    result = fn(context, args)
    if inspect.isawaitable(result):
        import asyncio  # only async handlers need an event loop

        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def run_inline(task: ActiveTask, handler: TaskHandler, context: Any, args: Any, limit: float | None) -> Any:
    """Run inline. With a hard ``limit`` the run happens on a helper thread: past the limit the
    task fails with TaskTimeLimitError and is asked to stop cooperatively; the thread keeps its
    concurrency slot until it really returns (a thread cannot be killed)."""
    if limit is None:
        return call_handler(handler.fn, context, args)
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["result"] = call_handler(handler.fn, context, args)
        except BaseException as exc:  # noqa: BLE001 - handed back to the runner
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=target, name=f"stemnb-task-{task.id}", daemon=True)
    thread.start()
    if not done.wait(limit):
        task.control.request_terminate("hard time limit")
        task.lingering = thread
        raise TaskTimeLimitError(f"task {task.id} ({task.envelope.name}) exceeded its hard time limit of {limit:g} s")
    if "error" in box:
        raise box["error"]
    return box.get("result")


def send_ahead(worker: Worker, task: ActiveTask, handler: TaskHandler, args: Any, *, behind: Any = None) -> None:
    """Send an isolate task to its process now, before its ``running`` status is stored.

    The status write and the start of the handler then overlap instead of following each
    other. Only for isolate tasks that no ``on_execute`` middleware wraps (middleware must see
    the call start) and that are not being revoked; a task that cannot be sent is left for
    :func:`execute`, which reports the error as the task's failure. ``behind``: the future of
    a running task, to start this one in its process the moment it ends (see ``_staging``).
    """
    if task.future is not None or not handler.isolate or task.control.terminate.is_set():
        return
    if wraps_execute(worker.middleware):
        return
    try:
        _submit(worker, task, handler, args, _pipeline.hard_limit(task.envelope, handler.options), behind)
    except Exception:  # noqa: BLE001, S110 - execute() sends it again and reports the error there
        pass


def take_back(task: ActiveTask) -> None:
    """Undo :func:`send_ahead` when the status write failed: the call is cancelled (its process
    ended if it already started) and the task can be given back to the broker."""
    future, task.future = task.future, None
    if future is not None:
        future.cancel()


def _submit(worker: Worker, task: ActiveTask, handler: TaskHandler, args: Any, limit: float | None,
            behind: Any = None) -> None:
    pool = worker._ensure_pool()
    env = task.envelope
    task.future = pool.execute(
        handler.fn,
        args,
        task_id=env.id,
        name=env.name,
        attempt=env.attempt,
        headers=env.headers,
        meta=env.meta,
        queue=task.delivery.queue,
        control_port=worker._signals.send_port(),
        timeout=limit,
        behind=behind,
    )


def awaited(task: ActiveTask, handler: TaskHandler) -> Generator[Any, None, None]:
    """Yield the call :func:`execute` would wait for, for the chain's driver to wait for instead
    (see ``_relay``): that of an isolate task :func:`send_ahead` sent, while it runs and is not
    being revoked. Yields nothing otherwise (then :func:`execute` waits, as it would anyway)."""
    future = task.future
    if future is not None and handler.isolate and not future.done() and not task.control.terminate.is_set():
        yield future


def run_isolate(worker: Worker, task: ActiveTask, handler: TaskHandler, args: Any, limit: float | None) -> Any:
    """Run in the worker's isolate pool (unless :func:`send_ahead` sent it already); a hard
    ``limit`` ends only this task's process."""
    if task.future is None:
        _submit(worker, task, handler, args, limit)
    future = task.future
    if task.control.terminate.is_set() and not future.done():  # revoked while we were submitting
        worker._revocations.schedule_kill(task)
    try:
        return future.result()
    except cf.CancelledError:
        if task.control.terminate.is_set():
            raise TaskRevokedError(f"task {task.id} was revoked: {task.control.reason}") from None
        raise
    except TimeoutError as exc:
        if isinstance(exc.__cause__, RemoteTraceback) or isinstance(exc, TaskTimeLimitError):
            raise  # the task itself raised TimeoutError
        raise TaskTimeLimitError(
            f"task {task.id} ({task.envelope.name}) exceeded its hard time limit of {limit:g} s"
        ) from None
