"""TaskIsolatePool (reference §4.3): hard timeouts, disposal, unsendable arguments, recycling."""

from __future__ import annotations

import os
import threading
import time

import pytest

import stemnb
from stemnb import IsolateRecycleReason, TaskIsolatePool


def never_finishes(ctx, args):
    while True:
        time.sleep(1)


def quick(ctx, args):
    return args["x"] + 1


def pid_of(ctx, args):
    return os.getpid()


def context_fields(ctx, args):
    return [ctx.id, ctx.name, ctx.attempt, ctx.headers, ctx.meta, ctx.queue]


async def async_task(ctx, args):
    import asyncio

    await asyncio.sleep(0)
    return "awaited"


def test_hard_timeouts_end_only_their_process_and_the_pool_keeps_working():
    reasons = []
    with TaskIsolatePool(1, on_recycle=lambda ev: reasons.append(ev.reason)) as pool:
        for i in range(3):
            future = pool.execute(never_finishes, {}, task_id=f"t{i}", name="forever", timeout=0.3)
            with pytest.raises(TimeoutError):
                future.result(60)
        assert pool.execute(quick, {"x": 1}, task_id="t4", name="quick").result(60) == 2
    assert reasons.count(IsolateRecycleReason.TIME_LIMIT) == 3


def test_disposing_the_pool_settles_a_running_task_and_is_idempotent():
    pool = TaskIsolatePool(1)
    disposed = []
    pool.on_disposed(disposed.append)
    running = pool.execute(never_finishes, {}, task_id="r", name="forever")
    queued = pool.execute(quick, {"x": 1}, task_id="q", name="quick")
    deadline = time.monotonic() + 60
    while pool.active_count == 0 and time.monotonic() < deadline:  # polling-with-deadline: the process is starting
        time.sleep(0.01)
    pool.dispose()
    pool.dispose()
    assert running.done() and queued.done()
    with pytest.raises((stemnb.ClosedError, stemnb.IsolateExitedError)):
        running.result(0)
    assert queued.cancelled()
    assert pool.closed and disposed
    with pytest.raises(stemnb.ClosedError):
        pool.execute(quick, {"x": 1}, task_id="late", name="quick")


def test_arguments_that_cannot_be_sent_fail_that_task_and_the_pool_stays_usable():
    with TaskIsolatePool(1) as pool:
        with pytest.raises(stemnb.SerializationError):
            pool.execute(quick, {"lock": threading.Lock()}, task_id="bad", name="quick")
        assert pool.execute(quick, {"x": 41}, task_id="good", name="quick").result(60) == 42


def test_max_tasks_per_isolate_recycles_with_its_reason():
    events = []
    with TaskIsolatePool(1, max_tasks_per_isolate=1, on_recycle=events.append) as pool:
        pids = [pool.execute(pid_of, {}, task_id=f"p{i}", name="pid").result(60) for i in range(2)]
    assert pids[0] != pids[1]
    assert events[0].reason is IsolateRecycleReason.MAX_TASKS and events[0].tasks_executed == 1


def test_task_context_fields_arrive_in_the_isolate():
    with TaskIsolatePool(1) as pool:
        fields = pool.execute(
            context_fields, {}, task_id="abc", name="fields", attempt=2,
            headers={"tenant": "acme"}, meta={"k": [1]}, queue="io",
        ).result(60)
    assert fields == ["abc", "fields", 2, {"tenant": "acme"}, {"k": [1]}, "io"]


def test_async_handlers_run_to_completion_in_the_isolate():
    with TaskIsolatePool(1) as pool:
        assert pool.execute(async_task, {}, task_id="a", name="async").result(60) == "awaited"


def test_resize_and_counts():
    with TaskIsolatePool(1) as pool:
        pool.resize(2)
        assert pool.size == 2
        pool.resize(1)
        assert pool.size == 1
        assert pool.statistics().size == 1
