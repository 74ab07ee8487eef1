"""Stem's worker checklist (reference §4.1), ported: each test is one behaviour of worker_test.dart."""

from __future__ import annotations

import base64
import logging
import os
import threading
import time

import pytest
from worker_support import FAST_LIFECYCLE

import stemnb
from stemnb import (
    TaskHandler,
    TaskOptions,
    TaskState,
    WorkerEventType,
    WorkerShutdownMode,
)
from stemnb._ratelimit import RateLimiter

E = WorkerEventType


# -- module-level task functions (isolate tasks are pickled by reference) --------------------------
def double_with_progress(ctx, args):
    ctx.progress(0.5, {"pid": os.getpid()})
    return args["value"] * 2


def report_pid(ctx, args):
    return os.getpid()


def sleep_then_succeed(ctx, args):
    time.sleep(args.get("seconds", 0.15))
    return "slept"


def slow_on_first_attempt(ctx, args):
    if ctx.attempt == 0:
        time.sleep(30)
    return ctx.attempt


def echo_meta_sum(ctx, args):
    return sum(ctx.meta["chordResults"])


# 1
def test_worker_executes_task_and_records_success(h):
    h.registry.register("add", TaskHandler.inline(lambda ctx, a: a["a"] + a["b"]))
    worker, rec = h.worker()
    tid = h.stem.enqueue("add", {"a": 2, "b": 3})
    rec.wait_for(E.COMPLETED, tid)
    status = h.wait(tid)
    assert status.state is TaskState.SUCCEEDED and status.payload == 5


# 2
def test_worker_log_records_carry_workflow_metadata(h, caplog):
    h.registry.register("noop", TaskHandler.inline(lambda ctx, a: None))
    worker, rec = h.worker()
    with caplog.at_level(logging.INFO, logger="stemnb.worker"):
        tid = h.stem.enqueue("noop", {}, meta={"stem.workflow.runId": "run-1", "stem.workflow.step": "fetch"})
        rec.wait_for(E.POSTRUN, tid)
    records = [r for r in caplog.records if getattr(r, "task_id", None) == tid]
    messages = [r.getMessage() for r in records]
    assert "Task noop started" in messages and "Task noop succeeded" in messages
    for record in records:
        assert record.workflowRunId == "run-1" and record.workflowStep == "fetch"


# 3
def test_worker_dispatches_chord_callback_with_member_results(h):
    h.registry.register("value", TaskHandler.inline(lambda ctx, a: a["v"]))
    h.registry.register("total", TaskHandler.inline(echo_meta_sum))
    worker, rec = h.worker()
    chord = h.stem.chord([stemnb.signature("value", {"v": 2}), stemnb.signature("value", {"v": 5})], "total")
    status = chord.wait(10).result()
    assert status.state is TaskState.SUCCEEDED and status.payload == 7
    assert status.meta["chordResults"] == [2, 5]


# 4
def test_worker_releases_unique_lock_after_completion(h):
    from stemnb import InMemoryLockStore, UniqueTaskCoordinator

    coordinator = UniqueTaskCoordinator(InMemoryLockStore())
    stem = stemnb.Stem(h.broker, h.backend, registry=h.registry, unique_task_coordinator=coordinator)
    h.registry.register("once", TaskHandler.inline(lambda ctx, a: "done", TaskOptions(unique=True, unique_for=60)))
    worker, rec = h.worker(enqueuer=stem, unique_task_coordinator=coordinator)
    first = stem.enqueue("once", {"k": 1})
    assert h.wait(first).state is TaskState.SUCCEEDED
    second = stem.enqueue("once", {"k": 1})
    assert second != first
    assert h.wait(second).state is TaskState.SUCCEEDED


def test_unique_task_enqueued_twice_while_queued_returns_the_same_id(h):
    from stemnb import InMemoryLockStore, UniqueTaskCoordinator

    coordinator = UniqueTaskCoordinator(InMemoryLockStore())
    stem = stemnb.Stem(h.broker, h.backend, registry=h.registry, unique_task_coordinator=coordinator)
    h.registry.register("once", TaskHandler.inline(lambda ctx, a: "done", TaskOptions(unique=True, unique_for=60)))
    assert stem.enqueue("once", {"k": 1}) == stem.enqueue("once", {"k": 1})


# 5
def test_worker_emits_task_signals_in_order(h):
    h.registry.register("noop", TaskHandler.inline(lambda ctx, a: None))
    worker, rec = h.worker()
    tid = h.stem.enqueue("noop", {})
    rec.wait_for(E.POSTRUN, tid)
    order = [e.type for e in rec.events if e.task_id == tid]
    assert order == [E.RECEIVED, E.PRERUN, E.COMPLETED, E.POSTRUN]
    assert rec.of(E.POSTRUN, tid)[0].data["state"] == "succeeded"


# 6
def test_worker_heartbeat_fires_at_its_interval_and_is_stored(h):
    worker, rec = h.worker(worker_heartbeat_interval=0.1)
    rec.wait_for(E.WORKER_HEARTBEAT, count=3)
    beat = h.backend.get_worker_heartbeat(worker.worker_id)
    assert beat is not None and beat.namespace == "stem"
    assert beat.extras["pid"] == os.getpid() and beat.extras["concurrency"] == 1


# 7
def test_autoscaler_scales_up_under_backlog_and_back_down_when_idle(h):
    release = threading.Event()
    h.registry.register("block", TaskHandler.inline(lambda ctx, a: release.wait(20)))
    config = stemnb.WorkerAutoscaleConfig(
        enabled=True, min_concurrency=1, max_concurrency=4, tick=0.15, idle_period=0.3,
        scale_up_cooldown=0.01, scale_down_cooldown=0.01,
    )
    worker, rec = h.worker(concurrency=4, autoscale=config)
    assert worker.active_concurrency == 1
    ids = [h.stem.enqueue("block", {}) for _ in range(6)]
    rec.wait_for(E.SCALED, where=lambda e: e.data["to"] >= 3)
    release.set()
    for tid in ids:
        assert h.wait(tid).state is TaskState.SUCCEEDED
    rec.wait_for(E.SCALED, where=lambda e: e.data["to"] == 1 and e.data["reason"] == "idle")
    assert worker.active_concurrency == 1


# 8
def test_worker_lifecycle_signals_cover_init_ready_stopping_shutdown(h):
    worker, rec = h.worker()
    worker.shutdown(WorkerShutdownMode.SOFT).result(10)
    kinds = [e.type for e in rec.events]
    assert kinds[:2] == [E.WORKER_INIT, E.WORKER_READY]
    stopping = rec.of(E.WORKER_STOPPING)[0]
    done = rec.of(E.WORKER_SHUTDOWN)[0]
    assert stopping.data["mode"] == "soft" and done.data["mode"] == "soft"
    assert kinds.index(E.WORKER_STOPPING) < kinds.index(E.WORKER_SHUTDOWN)


# 9
def test_child_init_and_shutdown_events_name_the_same_process(h):
    h.registry.register("pid", TaskHandler(report_pid))
    worker, rec = h.worker()
    tid = h.stem.enqueue("pid", {})
    assert h.wait(tid, 60).state is TaskState.SUCCEEDED
    worker.shutdown(WorkerShutdownMode.WARM).result(30)
    started = {e.data["pid"] for e in rec.of(E.CHILD_INIT)}
    ended = {e.data["pid"] for e in rec.of(E.CHILD_SHUTDOWN)}
    assert started and started == ended


# 10
def test_retry_event_names_the_error_and_postrun_reports_both_states(h):
    def flaky(ctx, args):
        if ctx.attempt == 0:
            raise RuntimeError("first run fails")
        return "ok"

    h.registry.register("flaky", TaskHandler.inline(flaky, TaskOptions(max_retries=2)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("flaky", {})
    assert h.wait(tid).state is TaskState.SUCCEEDED
    retried = rec.wait_for(E.RETRIED, tid)[0]
    assert retried.data["reason"] == "RuntimeError" and isinstance(retried.error, RuntimeError)
    states = [e.data["state"] for e in rec.of(E.POSTRUN, tid)]
    assert states == ["retried", "succeeded"]


# 11
def test_worker_consumes_every_subscribed_queue(h):
    h.registry.register("noop", TaskHandler.inline(lambda ctx, a: ctx.queue))
    worker, rec = h.worker(subscription=stemnb.RoutingSubscription(("default", "priority")))
    a = h.stem.enqueue("noop", {}, queue="default")
    b = h.stem.enqueue("noop", {}, queue="priority")
    assert {rec.wait_for(E.COMPLETED, a)[0].queue, rec.wait_for(E.COMPLETED, b)[0].queue} == {"default", "priority"}


# 12
def test_warm_shutdown_lets_a_running_isolate_task_finish(h):
    h.registry.register("sleep", TaskHandler(sleep_then_succeed))
    worker, rec = h.worker()
    tid = h.stem.enqueue("sleep", {"seconds": 0.15})
    rec.wait_for(E.PRERUN, tid, timeout=60)
    worker.shutdown(WorkerShutdownMode.WARM).result(60)
    assert h.backend.get(tid).state is TaskState.SUCCEEDED


# 13
def test_max_tasks_per_isolate_one_runs_each_task_in_a_fresh_process(h):
    h.registry.register("pid", TaskHandler(report_pid))
    lifecycle = FAST_LIFECYCLE.copy_with(max_tasks_per_isolate=1)
    worker, rec = h.worker(lifecycle=lifecycle)
    first = h.wait(h.stem.enqueue("pid", {}), 60).payload
    second = h.wait(h.stem.enqueue("pid", {}), 60).payload
    assert first != second
    assert any(e.data["reason"] is stemnb.IsolateRecycleReason.MAX_TASKS for e in rec.of(E.RECYCLED))


# 14
def test_memory_limit_of_one_byte_recycles_after_every_task(h):
    h.registry.register("pid", TaskHandler(report_pid))
    lifecycle = FAST_LIFECYCLE.copy_with(max_memory_per_isolate_bytes=1)
    worker, rec = h.worker(lifecycle=lifecycle)
    first = h.wait(h.stem.enqueue("pid", {}), 60).payload
    second = h.wait(h.stem.enqueue("pid", {}), 60).payload
    assert first != second
    memory = [e for e in rec.of(E.RECYCLED) if e.data["reason"] is stemnb.IsolateRecycleReason.MEMORY]
    assert memory and memory[0].data["memory_bytes"] > 1


def _signer():
    key = base64.b64encode(b"k" * 32).decode()
    return stemnb.PayloadSigner.from_env({"STEM_SIGNING_KEYS": f"primary:{key}", "STEM_SIGNING_ACTIVE_KEY": "primary"})


# 15
def test_signed_tasks_succeed_end_to_end(h):
    signer = _signer()
    stem = stemnb.Stem(h.broker, h.backend, registry=h.registry, signer=signer)
    h.registry.register("noop", TaskHandler.inline(lambda ctx, a: a["x"]))
    worker, rec = h.worker(signer=signer, enqueuer=stem)
    tid = stem.enqueue("noop", {"x": 1})
    assert h.wait(tid).payload == 1
    assert h.dead_letters() == []


# 16
def test_tampered_signature_fails_and_dead_letters(h):
    signer = _signer()
    ran = []
    h.registry.register("noop", TaskHandler.inline(lambda ctx, a: ran.append(a)))
    worker, rec = h.worker(signer=signer)
    signed = signer.sign(stemnb.Envelope("noop", {"amount": 1}))
    tampered = signed.replace(args={"amount": 1000})
    h.broker.publish(tampered)
    rec.wait_for(E.FAILED, tampered.id)
    assert h.wait(tampered.id).state is TaskState.FAILED
    [entry] = h.dead_letters()
    assert entry.reason == "signature-invalid" and entry.id == tampered.id
    assert ran == []
    assert worker.counters["signature_invalid"] == 1 and worker.counters["dead_lettered"] == 1


# 17
def test_retry_then_succeed_counts_attempts_from_zero(h):
    def flaky(ctx, args):
        if ctx.attempt == 0:
            raise RuntimeError("boom")
        return ctx.attempt

    h.registry.register("flaky", TaskHandler.inline(flaky, TaskOptions(max_retries=1)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("flaky", {})
    status = h.wait(tid)
    assert status.state is TaskState.SUCCEEDED and status.attempt == 1 and status.payload == 1
    assert rec.of(E.RETRIED, tid)
    assert h.dead_letters() == []


# 18
def test_signed_retry_is_resigned_and_succeeds(h):
    signer = _signer()
    stem = stemnb.Stem(h.broker, h.backend, registry=h.registry, signer=signer)

    def flaky(ctx, args):
        if ctx.attempt == 0:
            raise RuntimeError("boom")
        return "ok"

    h.registry.register("flaky", TaskHandler.inline(flaky, TaskOptions(max_retries=1)))
    worker, rec = h.worker(signer=signer, enqueuer=stem)
    tid = stem.enqueue("flaky", {})
    status = h.wait(tid)
    assert status.state is TaskState.SUCCEEDED and status.attempt == 1
    assert h.dead_letters() == []


# 19
def test_max_retries_exhausted_fails_and_dead_letters_once(h):
    def always(ctx, args):
        raise RuntimeError("always")

    h.registry.register("always", TaskHandler.inline(always, TaskOptions(max_retries=1)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("always", {})
    rec.wait_for(E.FAILED, tid)
    status = h.wait(tid)
    assert status.state is TaskState.FAILED and status.attempt == 1
    assert status.error["type"] == "RuntimeError" and status.error["message"] == "always"
    assert [e.data["state"] for e in rec.of(E.POSTRUN, tid)] == ["retried", "failed"]
    [entry] = h.dead_letters()
    assert entry.reason == "max-retries-exhausted"
    assert rec.of(E.DEAD_LETTERED, tid)[0].data["reason"] == "max-retries-exhausted"


# 20
def test_task_runs_inside_an_isolate_and_reports_progress_from_there(h):
    h.registry.register("double", TaskHandler(double_with_progress))
    worker, rec = h.worker()
    tid = h.stem.enqueue("double", {"value": 7})
    assert h.wait(tid, 60).payload == 14
    [progress] = rec.of(E.PROGRESS, tid)
    assert progress.progress == 0.5 and progress.data["pid"] != os.getpid()


# 21
def test_hard_time_limit_ends_the_isolate_task_and_retries_it(h):
    h.registry.register("slow", TaskHandler(slow_on_first_attempt, TaskOptions(hard_time_limit=0.5, max_retries=1)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("slow", {})
    status = h.wait(tid, 60)
    assert status.state is TaskState.SUCCEEDED and status.attempt == 1 and status.payload == 1
    retried = rec.of(E.RETRIED, tid)[0]
    assert isinstance(retried.error, stemnb.TaskTimeLimitError) and isinstance(retried.error, TimeoutError)
    assert h.dead_letters() == []


# 22
def test_task_revoked_in_the_store_before_start_is_cancelled(h):
    store = stemnb.InMemoryRevokeStore()
    ran = []
    h.registry.register("noop", TaskHandler.inline(lambda ctx, a: ran.append(1)))
    tid = stemnb.new_task_id()
    store.upsert([stemnb.RevokeEntry("stem", tid, terminate=True, reason="operator")])
    worker, rec = h.worker(revoke_store=store)
    h.stem.enqueue("noop", {}, task_id=tid)
    revoked = rec.wait_for(E.REVOKED, tid)[0]
    assert revoked.data["reason"] == "operator"
    assert h.wait(tid).state is TaskState.CANCELLED and ran == []


class _DenySecondCall(RateLimiter):
    """A real limiter wrapper that records keys; the second call for a key is denied once."""

    def __init__(self):
        self.inner = stemnb.TokenBucketRateLimiter()
        self.keys = []

    def acquire(self, key, rate, *, tokens=1, meta=None):
        self.keys.append(key)
        return self.inner.acquire(key, rate, tokens=tokens, meta=meta)


class _BrokenLimiter(RateLimiter):
    def acquire(self, key, rate, *, tokens=1, meta=None):
        raise ConnectionError("limiter backend down")


# 23
def test_group_rate_limit_key_is_shared_across_task_types(h):
    options = TaskOptions(group_rate_limit="1/s")
    h.registry.register("a", TaskHandler.inline(lambda ctx, a: "a", options))
    h.registry.register("b", TaskHandler.inline(lambda ctx, a: "b", options))
    limiter = _DenySecondCall()
    worker, rec = h.worker(rate_limiter=limiter)
    first = h.stem.enqueue("a", {}, headers={"tenant": "acme"})
    second = h.stem.enqueue("b", {}, headers={"tenant": "acme"})
    assert h.wait(first).state is TaskState.SUCCEEDED
    assert h.wait(second).state is TaskState.SUCCEEDED
    limited = rec.wait_for(E.RETRIED, where=lambda e: e.data.get("groupRateLimited"))[0]
    assert limited.data["groupKey"] == "group:acme"
    assert set(limiter.keys) == {"group:acme"}
    assert worker.counters["rate_limited"] >= 1


# 24
def test_group_limiter_failure_fails_open_by_default(h):
    h.registry.register("a", TaskHandler.inline(lambda ctx, a: "ran", TaskOptions(group_rate_limit="5/s")))
    worker, rec = h.worker(rate_limiter=_BrokenLimiter())
    tid = h.stem.enqueue("a", {})
    assert h.wait(tid).payload == "ran"
    assert rec.of(E.ERROR)[0].data["where"] == "rate-limiter"
    assert worker.counters["rate_limiter_degraded"] == 1


# 25
def test_group_limiter_failure_fails_closed_when_asked(h):
    ran = []
    options = TaskOptions(group_rate_limit="5/s", group_rate_limiter_failure_mode="fail_closed")
    h.registry.register("a", TaskHandler.inline(lambda ctx, a: ran.append(1), options))
    worker, rec = h.worker(rate_limiter=_BrokenLimiter())
    tid = h.stem.enqueue("a", {})
    rec.wait_for(E.RETRIED, tid, where=lambda e: e.data.get("rateLimiterFailed"))
    worker.shutdown(WorkerShutdownMode.HARD).result(10)
    assert h.backend.get(tid).state in (TaskState.RETRIED, TaskState.QUEUED)
    assert ran == []


class _CountConsumes(stemnb.Middleware):
    def __init__(self):
        self.seen = []
        self.cond = threading.Condition()

    def on_consume(self, delivery):
        with self.cond:
            self.seen.append(delivery.envelope.id)
            self.cond.notify_all()

    def wait_count(self, task_id, n, timeout=10):
        with self.cond:
            assert self.cond.wait_for(lambda: self.seen.count(task_id) >= n, timeout)


# 26
def test_queue_pause_survives_a_worker_restart(h):
    store = stemnb.InMemoryRevokeStore()
    h.registry.register("noop", TaskHandler.inline(lambda ctx, a: "done"))
    worker_a, _ = h.worker(revoke_store=store, consumer_name="worker-a")
    [reply] = stemnb.ControlClient(h.broker).pause_queue("default", worker_id="worker-a", timeout=5)
    assert reply["status"] == "ok" and reply["response"]["paused"] == ["default"]
    worker_a.shutdown(WorkerShutdownMode.WARM).result(10)

    counter = _CountConsumes()
    worker_b, rec = h.worker(revoke_store=store, consumer_name="worker-b", middleware=[counter])
    tid = h.stem.enqueue("noop", {})
    counter.wait_count(tid, 3)  # received three times, re-published each time, never run
    assert h.backend.get(tid).state is TaskState.QUEUED
    [reply] = stemnb.ControlClient(h.broker).resume_queue("default", worker_id="worker-b", timeout=5)
    assert reply["status"] == "ok"
    assert h.wait(tid).state is TaskState.SUCCEEDED


# 27
def test_control_command_emits_received_and_completed_events(h):
    worker, rec = h.worker(consumer_name="w-ctl")
    [reply] = stemnb.ControlClient(h.broker).ping(worker_id="w-ctl", timeout=5)
    assert reply["status"] == "ok" and reply["response"]["queue"] == worker.primary_queue
    received = rec.wait_for(E.CONTROL_RECEIVED)[0]
    completed = rec.wait_for(E.CONTROL_COMPLETED)[0]
    assert received.data["command"] == "ping"
    assert completed.data["status"] == "ok" and completed.data["response"]["queue"] == "default"
    assert rec.events.index(received) < rec.events.index(completed)


# -- Worker.wait: block until the worker stopped, however it was stopped -------------------------
def test_wait_blocks_until_a_shutdown_finishes_and_then_returns_true(h):
    worker, rec = h.worker()
    assert worker.wait(0) is False  # running: not stopped yet
    waited = []
    waiter = threading.Thread(target=lambda: waited.append(worker.wait(30)))
    waiter.start()
    worker.shutdown(WorkerShutdownMode.SOFT).result(10)
    waiter.join(30)
    assert waited == [True] and worker.state is stemnb.WorkerState.STOPPED


def test_wait_ends_when_a_control_command_stops_the_worker(h):
    worker, rec = h.worker(consumer_name="stop-by-command")
    [reply] = stemnb.ControlClient(h.broker).shutdown("warm", worker_id="stop-by-command", timeout=5)
    assert reply["status"] == "ok"
    assert worker.wait(30) is True
    assert rec.of(E.WORKER_SHUTDOWN)[0].data["mode"] == "warm"


def test_wait_returns_true_at_once_for_a_worker_closed_before_it_started(h):
    worker, rec = h.worker(start=False)
    worker.close()
    assert worker.wait(0) is True


def test_a_worker_builds_only_the_events_of_the_types_someone_listens_to(h, monkeypatch):
    import stemnb._worker._worker as worker_module

    built: list[WorkerEventType] = []
    real = worker_module.WorkerEvent

    def recording(**fields):
        built.append(fields["type"])
        return real(**fields)

    monkeypatch.setattr(worker_module, "WorkerEvent", recording)
    h.registry.register("noop", TaskHandler.inline(lambda ctx, args: "ok"))
    worker = stemnb.Worker(h.broker, h.registry, h.backend, concurrency=1, lifecycle=FAST_LIFECYCLE)
    h.workers.append(worker)
    completed: list[stemnb.WorkerEvent] = []
    arrived = threading.Event()
    worker.events.listen(lambda e: (completed.append(e), arrived.set()), types=[E.COMPLETED])
    worker.start()
    tid = h.stem.enqueue("noop", {})
    assert h.wait(tid).state is TaskState.SUCCEEDED
    assert arrived.wait(10)
    assert [e.task_id for e in completed] == [tid]
    assert set(built) == {E.COMPLETED}  # no RECEIVED, PRERUN, POSTRUN... was even made


def test_settled_tasks_leave_no_reference_cycles_for_the_garbage_collector(h):
    import gc

    from stemnb._worker._active import ActiveTask
    from stemnb.testing import eventually

    h.registry.register("inline", TaskHandler(lambda ctx, args: args["n"], isolate=False))
    h.registry.register("isolated", TaskHandler(lambda ctx, args: args["n"], isolate=True))
    worker, _ = h.worker(concurrency=2, prefetch_multiplier=2)
    h.wait(h.stem.enqueue("isolated", {"n": 0}), timeout=60)  # the pool is up
    gc.collect()
    gc.disable()
    try:
        ids = [h.stem.enqueue("inline" if n % 2 else "isolated", {"n": n}) for n in range(40)]
        assert [h.wait(tid, timeout=60).payload for tid in ids] == list(range(40))
        eventually(lambda: len(worker._active) == 0, timeout=30)  # every task released
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = [o for o in gc.garbage if isinstance(o, ActiveTask)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert left == [], f"{len(left)} settled tasks were freed only by the garbage collector"


def test_each_status_of_a_task_gets_its_own_meta_with_the_same_fields(h):
    h.registry.register("add", TaskHandler.inline(lambda ctx, a: a["a"] + a["b"]))
    seen: list[stemnb.TaskStatus] = []
    tid = h.stem.enqueue("add", {"a": 2, "b": 3})
    watch = h.backend.watch(tid, seen.append)
    h.worker()
    h.wait(tid)
    watch.close()
    running, done = [s for s in seen if s.state is TaskState.RUNNING][0], seen[-1]
    assert done.state is TaskState.SUCCEEDED
    assert running.meta == done.meta and running.meta["worker"] and running.meta["task"] == "add"
    running.meta["changed"] = True  # a watcher that changes one status's meta changes no other's
    assert "changed" not in done.meta


def _isolate_niceness(ctx, args):
    return os.nice(0)


@pytest.mark.parametrize("nice", [None, 0, 9])
def test_a_workers_isolates_run_isolate_nice_steps_below_the_worker(h, nice):
    mine = os.nice(0)
    lifecycle = FAST_LIFECYCLE if nice is None else FAST_LIFECYCLE.replace(isolate_nice=nice)
    steps = 5 if nice is None else nice  # the default
    h.registry.register("niceness", TaskHandler(_isolate_niceness, isolate=True))
    h.worker(lifecycle=lifecycle)
    assert h.wait(h.stem.enqueue("niceness", {}), timeout=60).payload == min(19, mine + steps)


def test_an_isolate_nice_outside_zero_to_nineteen_is_refused():
    with pytest.raises(ValueError, match="nice"):
        stemnb.WorkerLifecycleConfig(isolate_nice=20)
    with pytest.raises(TypeError, match="nice"):
        stemnb.WorkerLifecycleConfig(isolate_nice="5")
