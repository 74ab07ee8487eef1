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


async def async_heartbeats_until_revoked(ctx, args):
    import asyncio

    while True:
        ctx.heartbeat()
        await asyncio.sleep(0.01)


def test_terminate_reaches_an_async_isolate_task_and_later_tasks_in_the_same_process():
    from worker_support import FAST_LIFECYCLE, Harness

    h = Harness()
    try:
        h.registry.register("loop", stemnb.TaskHandler(async_heartbeats_until_revoked))
        worker, rec = h.worker(lifecycle=FAST_LIFECYCLE.copy_with(force_shutdown_after=30))
        for _ in range(2):  # the second run reuses the process: its control port must still work
            tid = h.stem.enqueue("loop", {})
            rec.wait_for(stemnb.WorkerEventType.HEARTBEAT, tid, timeout=60)
            worker.revoke(tid, terminate=True)
            assert h.wait(tid, 20).state is stemnb.TaskState.CANCELLED
        assert rec.of(stemnb.WorkerEventType.RECYCLED) == []  # stopped cooperatively, never killed
    finally:
        h.close()


def extend_then_finish(ctx, args):
    ctx.extend_lease(5)
    ctx.heartbeat()
    return "extended"


def test_extend_lease_from_inside_an_isolate_renews_the_delivery():
    from worker_support import Harness

    h = Harness()
    try:
        h.registry.register("ext", stemnb.TaskHandler(extend_then_finish))
        worker, rec = h.worker()
        tid = h.stem.enqueue("ext", {})
        assert h.wait(tid, 60).payload == "extended"
        assert worker._leases.renewals >= 1
    finally:
        h.close()


class Tenant(str):
    """A str subclass: not plain (pickled by reference to this test module)."""


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def echo_fields(ctx, args):
    return [type(ctx.headers["tenant"]).__name__, args["p"].x if "p" in args else args, ctx.id]


def test_plain_and_non_plain_requests_both_arrive_whole():
    from stemnb._task_pool import _plain_request

    port = stemnb.ReceivePort()
    try:
        plain = (echo_fields, {"a": [1, 2.5]}, "id", "t", 0, {"tenant": "acme"}, {"k": [1]}, "q", port.send_port)
        assert _plain_request(plain)
        assert not _plain_request((*plain[:5], {"tenant": Tenant("acme")}, *plain[6:]))
        assert not _plain_request((plain[0], {"p": Point(3)}, *plain[2:]))
        assert not _plain_request((*plain[:4], True, *plain[5:]))  # a bool attempt is no plain int
    finally:
        port.close()
    with TaskIsolatePool(1) as pool:
        assert pool.execute(echo_fields, {"a": 1}, task_id="i1", name="t", headers={"tenant": "acme"}).result(60) == [
            "str", {"a": 1}, "i1"]
        assert pool.execute(echo_fields, {"p": Point(7)}, task_id="i2", name="t",
                            headers={"tenant": Tenant("acme")}).result(60) == ["Tenant", 7, "i2"]
