"""Running a handler: inline in the runner thread, or in an isolate of the worker's pool."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import inspect
import threading
from typing import TYPE_CHECKING, Any

from .._context import TaskContext
from .._exceptions import RemoteTraceback, TaskRevokedError, TaskTimeLimitError
from .._middleware import wrap_execute
from ._active import ActiveTask
from ._pipeline import hard_limit

if TYPE_CHECKING:
    from .._registry import TaskHandler
    from ._worker import Worker


def execute(worker: Worker, task: ActiveTask, handler: TaskHandler, args: Any) -> Any:
    """Run ``handler`` through the ``on_execute`` middleware chain; return its result or raise."""
    env = task.envelope
    context = TaskContext(env.id, env.name, env.attempt, env.headers, env.meta, task.delivery.queue, task.control)
    limit = hard_limit(env, handler.options)
    if handler.isolate:
        call = lambda: run_isolate(worker, task, handler, args, limit)  # noqa: E731
    else:
        call = lambda: run_inline(task, handler, context, args, limit)  # noqa: E731
    return wrap_execute(worker.middleware, context, call)()


def call_handler(fn: Any, context: Any, args: Any) -> Any:
    """Call ``fn(context, args)``; run it to completion on a fresh event loop when it is async."""
    result = fn(context, args)
    if inspect.isawaitable(result):
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


def run_isolate(worker: Worker, task: ActiveTask, handler: TaskHandler, args: Any, limit: float | None) -> Any:
    """Run in the worker's isolate pool; a hard ``limit`` ends only this task's process."""
    pool = worker._ensure_pool()
    env = task.envelope
    future = pool.execute(
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
    )
    task.future = future
    if task.control.terminate.is_set():  # revoked while we were submitting
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
