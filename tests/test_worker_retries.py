"""Retry policies and the context-enqueue integration (reference §4.2), plus the isolate request protocol."""

from __future__ import annotations

import os

import pytest

import stemnb
from stemnb import TaskHandler, TaskOptions, TaskRetryPolicy, TaskState, WorkerEventType

E = WorkerEventType


def _fail_first(ctx, args):
    if ctx.attempt == 0:
        raise RuntimeError("first attempt fails")
    return ctx.attempt


def test_handler_retry_policy_beats_the_worker_strategy(h):
    policy = TaskRetryPolicy(default_delay=0.025, jitter=False)
    h.registry.register("t", TaskHandler.inline(_fail_first, TaskOptions(max_retries=1, retry_policy=policy)))
    worker, rec = h.worker(retry_strategy=stemnb.ExponentialJitterRetryStrategy(base=5, max_delay=10))
    tid = h.stem.enqueue("t", {})
    retried = rec.wait_for(E.RETRIED, tid)[0]
    assert retried.data["delay"] == pytest.approx(0.025)
    assert h.wait(tid).state is TaskState.SUCCEEDED


def test_per_enqueue_retry_policy_beats_the_handler_policy(h):
    handler_policy = TaskRetryPolicy(default_delay=0.08, jitter=False)
    h.registry.register("t", TaskHandler.inline(_fail_first, TaskOptions(max_retries=1, retry_policy=handler_policy)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("t", {}, retry_policy=TaskRetryPolicy(default_delay=0.015, jitter=False))
    assert rec.wait_for(E.RETRIED, tid)[0].data["delay"] == pytest.approx(0.015)
    status = h.wait(tid)
    assert status.state is TaskState.SUCCEEDED
    retried_status_delay = [e.data["delay"] for e in rec.of(E.RETRIED, tid)]
    assert retried_status_delay == [pytest.approx(0.015)]


def test_dont_auto_retry_for_wins_over_auto_retry_for(h):
    def bad_arg(ctx, args):
        raise ValueError("bad argument")

    policy = TaskRetryPolicy(auto_retry_for=[RuntimeError], dont_auto_retry_for=[ValueError])
    h.registry.register("t", TaskHandler.inline(bad_arg, TaskOptions(max_retries=3, retry_policy=policy)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("t", {})
    status = h.wait(tid)
    assert status.state is TaskState.FAILED and status.attempt == 0
    assert rec.of(E.RETRIED, tid) == []
    assert h.dead_letters()[0].reason == "not-retryable"


def test_context_retry_schedules_a_new_attempt_that_succeeds(h):
    def asks(ctx, args):
        if ctx.attempt == 0:
            ctx.retry(countdown=0.01)
        return "second time lucky"

    h.registry.register("t", TaskHandler.inline(asks, TaskOptions(max_retries=1)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("t", {})
    status = h.wait(tid)
    assert status.state is TaskState.SUCCEEDED and status.attempt == 1
    assert rec.of(E.RETRIED, tid)[0].data["reason"] == "retry-requested"


@pytest.mark.parametrize("failures", range(6))
def test_task_succeeds_exactly_when_failures_fit_in_max_retries(h, failures):
    max_retries = 3

    def flaky(ctx, args):
        if ctx.attempt < args["failures"]:
            raise RuntimeError(f"failure {ctx.attempt}")
        return "ok"

    h.registry.register("t", TaskHandler.inline(flaky, TaskOptions(max_retries=max_retries)))
    worker, rec = h.worker()
    status = h.wait(h.stem.enqueue("t", {"failures": failures}))
    expected = TaskState.SUCCEEDED if failures <= max_retries else TaskState.FAILED
    assert status.state is expected


def spawn_child(ctx, args):
    return ctx.enqueue("child", {"n": args["n"]}, headers={"tenant": "acme"})


def child_task(ctx, args):
    return {"n": args["n"] * 10, "parent": ctx.meta["stem.parentTaskId"], "pid": os.getpid()}


def test_isolate_task_enqueues_a_child_through_the_worker(h):
    h.registry.register("parent", TaskHandler(spawn_child))
    h.registry.register("child", TaskHandler.inline(child_task))
    worker, rec = h.worker(concurrency=2)
    parent = h.stem.enqueue("parent", {"n": 4})
    child_id = h.wait(parent, 60).payload
    child = h.wait(child_id, 60)
    assert child.payload["n"] == 40 and child.payload["parent"] == parent


def spawn_children(ctx, args):
    return ctx.enqueue_many("child", [{"n": {n} if n == "bad" else n} for n in args["ns"]], {"queue": "default"})


@pytest.mark.parametrize("isolate", [True, False], ids=["isolate", "inline"])
def test_a_task_enqueues_many_children_in_order_each_recording_its_parent(h, isolate):
    h.registry.register("parent", TaskHandler(spawn_children, isolate=isolate))
    h.registry.register("child", TaskHandler.inline(child_task))
    worker, rec = h.worker(concurrency=2)
    parent = h.stem.enqueue("parent", {"ns": [1, 2, 3]})
    child_ids = h.wait(parent, 60).payload
    assert len(child_ids) == len(set(child_ids)) == 3
    children = [h.wait(child_id, 60).payload for child_id in child_ids]
    assert [(c["n"], c["parent"]) for c in children] == [(10, parent), (20, parent), (30, parent)]


def test_one_child_that_cannot_be_encoded_enqueues_none_and_fails_the_parent(h):
    h.registry.register("parent", TaskHandler(spawn_children))
    h.registry.register("child", TaskHandler.inline(child_task))
    worker, rec = h.worker()
    pending_before = h.broker.pending_count("default")
    status = h.wait(h.stem.enqueue("parent", {"ns": [1, 2, "bad"]}), 60)
    assert status.state is TaskState.FAILED
    assert status.error["type"] == "EncodingError" and "task #2" in status.error["message"]
    assert h.broker.pending_count("default") == pending_before == 0


@pytest.mark.parametrize("n", [0, 1, 7, 123])
def test_enqueue_execute_round_trip_is_stable(h, n):
    h.registry.register("echo", TaskHandler.inline(lambda ctx, a: a))
    worker, rec = h.worker()
    args = {"n": n, "nested": {"list": list(range(n % 5)), "s": "x" * n}}
    assert h.wait(h.stem.enqueue("echo", args)).payload == args


def test_link_runs_after_success_and_link_error_after_failure(h):
    h.registry.register("ok", TaskHandler.inline(lambda ctx, a: "fine"))
    h.registry.register("boom", TaskHandler.inline(lambda ctx, a: 1 / 0))
    h.registry.register("after", TaskHandler.inline(lambda ctx, a: ("after", ctx.meta["stem.parentTaskId"], ctx.meta["stem.parentState"])))
    worker, rec = h.worker()
    ok_id = h.stem.enqueue("ok", {}, link=stemnb.signature("after"), link_error=stemnb.signature("after"))
    boom_id = h.stem.enqueue("boom", {}, link=stemnb.signature("after"), link_error=stemnb.signature("after"))
    assert h.wait(ok_id).state is TaskState.SUCCEEDED
    assert h.wait(boom_id).state is TaskState.FAILED
    completed = rec.wait_for(E.COMPLETED, where=lambda e: e.name == "after", count=2)
    results = sorted(tuple(e.data["result"]) for e in completed)
    assert results == sorted([("after", ok_id, "succeeded"), ("after", boom_id, "failed")])


def test_ignore_result_stores_success_without_payload(h):
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: "big result", TaskOptions(ignore_result=True)))
    worker, rec = h.worker()
    status = h.wait(h.stem.enqueue("t", {}))
    assert status.state is TaskState.SUCCEEDED and status.payload is None


def test_expired_task_never_runs_and_is_cancelled(h):
    ran = []
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: ran.append(1)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("t", {}, expires=0)
    status = h.wait(tid)
    assert status.state is TaskState.CANCELLED and status.meta["expired"] is True
    assert ran == []


def test_enqueueing_the_same_task_id_again_overwrites_the_result(h):
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: a["v"]))
    worker, rec = h.worker()
    tid = stemnb.new_task_id()
    assert h.wait(h.stem.enqueue("t", {"v": 1}, task_id=tid)).payload == 1
    rec.wait_for(E.POSTRUN, tid)
    h.stem.enqueue("t", {"v": 2}, task_id=tid)
    rec.wait_for(E.POSTRUN, tid, count=2)
    assert h.stem.get_status(tid).payload == 2


# -- the isolate request protocol (Stem's isolate_messages_test) ------------------------------------
def _returns_ok(ctx, args):
    return "ok"


def _asks_retry(ctx, args):
    ctx.retry(countdown=1.0, max_retries=3)


def _raises(ctx, args):
    raise LookupError("nope")


def test_task_pool_reports_success_retry_request_and_failure():
    with stemnb.TaskIsolatePool(1) as pool:
        ok = pool.execute(_returns_ok, {}, task_id="a", name="ok")
        assert ok.result(60) == "ok"
        retry = pool.execute(_asks_retry, {}, task_id="b", name="retry")
        with pytest.raises(stemnb.TaskRetryRequest) as info:
            retry.result(60)
        assert info.value.countdown == 1.0 and info.value.max_retries == 3
        failure = pool.execute(_raises, {}, task_id="c", name="fail")
        with pytest.raises(LookupError, match="nope"):
            failure.result(60)


def test_worker_configs_have_stem_defaults_and_copy_with():
    auto = stemnb.WorkerAutoscaleConfig()
    assert (auto.enabled, auto.min_concurrency, auto.max_concurrency) == (False, 1, None)
    assert (auto.tick, auto.idle_period, auto.scale_up_cooldown, auto.scale_down_cooldown) == (2.0, 30.0, 5.0, 10.0)
    assert auto.copy_with(min_concurrency=3).min_concurrency == 3
    life = stemnb.WorkerLifecycleConfig()
    assert (life.install_signal_handlers, life.soft_grace_period, life.force_shutdown_after) == (True, 30.0, 10.0)
    assert life.copy_with(max_tasks_per_isolate=5).max_tasks_per_isolate == 5
    assert stemnb.WorkerAutoscaleConfig(tick=0.05, idle_period=0, backlog_per_isolate=0).tick == 1.0


def test_async_inline_handlers_run_and_events_can_be_consumed_with_async_for(h):
    import asyncio

    async def handler(ctx, args):
        await asyncio.sleep(0)
        ctx.progress(1.0)
        return args["x"] * 3

    h.registry.register("triple", TaskHandler.inline(handler))
    worker, rec = h.worker()

    async def main():
        seen = []
        events = aiter(worker.events)  # subscribed from here on

        async def watch():
            async for event in events:
                if event.type is not E.WORKER_HEARTBEAT:  # the worker's own, due at any moment
                    seen.append(event.type)
                if event.type is E.COMPLETED:
                    return

        watcher = asyncio.create_task(watch())
        status = await h.stem.wait_for_task(h.stem.enqueue("triple", {"x": 5}), timeout=10)
        await asyncio.wait_for(watcher, 10)
        return status, seen

    status, seen = asyncio.run(main())
    assert status.payload == 15
    assert seen[-3:] == [E.PRERUN, E.PROGRESS, E.COMPLETED]
