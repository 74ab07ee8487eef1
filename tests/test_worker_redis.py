"""The worker on the real Redis broker and backend, including a worker process killed mid-task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid

import pytest
from redis_support import REDIS_URL
from redis_support import drop_namespace as _drop
from worker_support import FAST_LIFECYCLE, Recorder

import stemnb
from stemnb import TaskHandler, TaskOptions, TaskState, WorkerEventType

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis

E = WorkerEventType


class RedisHarness:
    def __init__(self) -> None:
        self.namespace = f"stemnb-worker-test-{uuid.uuid4().hex[:8]}"
        self.broker = stemnb.RedisBroker(REDIS_URL, namespace=self.namespace, claim_interval=0.05)
        self.backend = stemnb.RedisResultBackend(REDIS_URL, namespace=self.namespace)
        self.registry = stemnb.TaskRegistry()
        self.stem = stemnb.Stem(self.broker, self.backend, registry=self.registry)
        self.workers: list[stemnb.Worker] = []

    def worker(self, **kwargs):
        kwargs.setdefault("concurrency", 1)
        kwargs.setdefault("lifecycle", FAST_LIFECYCLE)
        kwargs.setdefault("enqueuer", self.stem)
        kwargs.setdefault("retry_strategy", stemnb.ExponentialJitterRetryStrategy(base=0.01, max_delay=0.05))
        worker = stemnb.Worker(self.broker, self.registry, self.backend, **kwargs)
        rec = Recorder(worker)
        self.workers.append(worker)
        worker.start()
        return worker, rec

    def wait(self, task_id, timeout=30.0):
        return self.stem.wait_for_task(task_id, timeout).result()

    def close(self):
        for worker in self.workers:
            worker.close()
        self.broker.close()
        self.backend.close()
        _drop(self.namespace)


@pytest.fixture
def rh():
    harness = RedisHarness()
    yield harness
    harness.close()


def double_with_progress(ctx, args):
    ctx.progress(1.0, {"pid": os.getpid()})
    return args["value"] * 2


def test_success_retry_and_dead_letter_through_redis(rh):
    def flaky(ctx, args):
        if ctx.attempt == 0:
            raise RuntimeError("once")
        return "ok"

    rh.registry.register("ok", TaskHandler.inline(lambda ctx, a: a["x"] + 1))
    rh.registry.register("flaky", TaskHandler.inline(flaky, TaskOptions(max_retries=1)))
    rh.registry.register("bad", TaskHandler.inline(lambda ctx, a: 1 / 0))
    rh.worker()
    ok, flaky_id, bad = rh.stem.enqueue("ok", {"x": 1}), rh.stem.enqueue("flaky", {}), rh.stem.enqueue("bad", {})
    assert rh.wait(ok).payload == 2
    assert rh.wait(flaky_id).attempt == 1
    assert rh.wait(bad).state is TaskState.FAILED
    assert [e.reason for e in rh.broker.list_dead_letters("default")] == ["max-retries-exhausted"]


def test_isolate_task_reports_progress_through_redis(rh):
    rh.registry.register("double", TaskHandler(double_with_progress))
    worker, rec = rh.worker()
    tid = rh.stem.enqueue("double", {"value": 21})
    assert rh.wait(tid, 60).payload == 42
    assert rec.of(E.PROGRESS, tid)[0].data["pid"] != os.getpid()


def test_chord_on_the_redis_backend(rh):
    rh.registry.register("v", TaskHandler.inline(lambda ctx, a: a["v"]))
    rh.registry.register("sum", TaskHandler.inline(lambda ctx, a: sum(ctx.meta["chordResults"])))
    rh.worker(concurrency=2)
    chord = rh.stem.chord([stemnb.signature("v", {"v": i}) for i in range(4)], "sum")
    assert chord.wait(30).result().payload == 6


def test_control_broadcast_over_redis(rh):
    rh.worker(consumer_name="r1")
    rh.worker(consumer_name="r2")
    replies = stemnb.ControlClient(rh.broker).ping(timeout=10, expected=2)
    assert sorted(r["worker_id"] for r in replies) == ["r1", "r2"]


_DYING_WORKER = textwrap.dedent(
    """
    import os, sys, time
    import stemnb
    broker = stemnb.RedisBroker({url!r}, namespace={ns!r})
    backend = stemnb.RedisResultBackend({url!r}, namespace={ns!r})
    registry = stemnb.TaskRegistry()

    def slow(ctx, args):
        print("started", flush=True)
        time.sleep(120)

    registry.register("work", stemnb.TaskHandler.inline(slow))
    lifecycle = stemnb.WorkerLifecycleConfig(install_signal_handlers=False)
    stemnb.Worker(broker, registry, backend, concurrency=1, lifecycle=lifecycle).start()
    time.sleep(120)
    """
)


def test_a_worker_process_killed_mid_task_leaves_its_task_to_another_worker(rh):
    ran_here = []
    rh.registry.register(
        "work",
        TaskHandler.inline(lambda ctx, a: ran_here.append(ctx.id) or "recovered", TaskOptions(visibility_timeout=1.0)),
    )
    tid = rh.stem.enqueue("work", {})
    code = _DYING_WORKER.format(url=REDIS_URL, ns=rh.namespace)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "started"  # it holds the task, renewing the lease
        assert rh.backend.get(tid).state is TaskState.RUNNING
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
        child.stdout.close()
    worker, rec = rh.worker()
    status = rh.wait(tid, 60)
    assert status.state is TaskState.SUCCEEDED and status.payload == "recovered"
    assert ran_here == [tid]
    [interrupted] = rec.of(E.INTERRUPTED, tid)
    assert interrupted.data["prior_state"] == "running" and interrupted.data["prior_worker"] != worker.worker_id


_REVOKER = textwrap.dedent(
    """
    import stemnb
    store = stemnb.RedisRevokeStore({url!r}, namespace={ns!r})
    store.upsert([stemnb.RevokeEntry("stem", {tid!r}, terminate=True, reason="from another process")])
    store.close()
    """
)


def test_a_revocation_written_by_another_process_stops_a_running_task(rh):
    import threading
    import time

    store = stemnb.RedisRevokeStore(REDIS_URL, namespace=rh.namespace)
    started = threading.Event()

    def loop(ctx, args):
        started.set()
        while True:
            ctx.heartbeat()
            time.sleep(0.005)

    rh.registry.register("loop", TaskHandler.inline(loop))
    try:
        rh.worker(revoke_store=store)
        tid = rh.stem.enqueue("loop", {})
        assert started.wait(30)
        code = _REVOKER.format(url=REDIS_URL, ns=rh.namespace, tid=tid)
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        status = rh.wait(tid, 30)
        assert status.state is TaskState.CANCELLED and status.meta["reason"] == "from another process"
    finally:
        for worker in rh.workers:
            worker.close()
        store.close()


def test_worker_heartbeats_are_published_on_redis(rh):
    import json

    listener = redis.Redis.from_url(REDIS_URL).pubsub()
    listener.subscribe("stem:heartbeat:hb-redis")
    assert listener.get_message(timeout=5)["type"] == "subscribe"
    transport = stemnb.RedisHeartbeatTransport(REDIS_URL)
    try:
        rh.worker(consumer_name="hb-r", heartbeat_transport=transport, worker_heartbeat_interval=0.05,
                  heartbeat_namespace="hb-redis")
        message = listener.get_message(timeout=10)
        while message is not None and message["type"] != "message":
            message = listener.get_message(timeout=10)
        beat = json.loads(message["data"])
        assert beat["worker_id"] == "hb-r" and beat["namespace"] == "hb-redis"
        assert rh.backend.get_worker_heartbeat("hb-r") is not None
    finally:
        for worker in rh.workers:
            worker.close()
        transport.close()
        listener.close()


def test_a_finished_task_hands_its_slot_to_the_next_with_one_write_and_running_comes_first(rh):
    seen = []

    def peek(ctx, args):
        seen.append(rh.backend.get(ctx.id).state)  # stored before the handler starts
        return ctx.id

    rh.registry.register("peek", TaskHandler.inline(peek))
    ids = [rh.stem.enqueue("peek", {}) for _ in range(12)]  # leased ahead once the worker starts
    worker = stemnb.Worker(rh.broker, rh.registry, rh.backend, concurrency=2, lifecycle=FAST_LIFECYCLE)
    rh.workers.append(worker)
    fused = []
    write = worker._paired.set_then_ack_then_running
    worker._paired.set_then_ack_then_running = lambda *args: fused.append(args) or write(*args)
    worker.start()
    assert [rh.wait(t).payload for t in ids] == ids
    assert seen == [TaskState.RUNNING] * 12
    assert fused  # some tasks were started in the slot of the one before
    assert rh.broker.inflight_count("default") == 0  # acked in the script that stored the result
    worker.shutdown(stemnb.WorkerShutdownMode.WARM).result(30)
    assert worker.counters["started"] == worker.counters["succeeded"] == 12


def test_an_isolate_task_handed_a_slot_starts_while_the_fused_write_goes_out(rh):
    started = stemnb.ReceivePort()
    tell = started.send_port

    def report(ctx, args):
        tell.send(ctx.id)
        return ctx.id

    rh.registry.register("report", TaskHandler(report, isolate=True))
    ids = [rh.stem.enqueue("report", {}) for _ in range(8)]  # leased ahead once the worker starts
    worker = stemnb.Worker(rh.broker, rh.registry, rh.backend, concurrency=1, lifecycle=FAST_LIFECYCLE)
    rh.workers.append(worker)
    ran_first = []
    write = worker._paired.set_then_ack_then_running

    def fused(done, delivery, running):
        # the next task runs before this write returns: wait for its handler's own message
        while (seen := started.receive(timeout=30)) != running.id:
            assert seen in ids
        ran_first.append(running.id)
        return write(done, delivery, running)

    worker._paired.set_then_ack_then_running = fused
    worker.start()
    assert [rh.wait(t).payload for t in ids] == ids
    started.close()
    assert ran_first and set(ran_first) <= set(ids[1:])  # every fused write: its next task had started
    assert [rh.backend.get(t).state for t in ids] == [TaskState.SUCCEEDED] * 8
    assert rh.broker.inflight_count("default") == 0


def test_tasks_sent_one_at_a_time_are_taken_at_once_not_at_the_next_claim_interval(rh):
    # a settle that found the queue empty once overruled the consumer's fresher wake-up, and the
    # next task waited for claim_interval; with a 60 s interval any such wait fails the test
    broker = stemnb.RedisBroker(REDIS_URL, namespace=rh.namespace, claim_interval=60)
    worker = stemnb.Worker(broker, rh.registry, rh.backend, concurrency=2, lifecycle=FAST_LIFECYCLE)
    rh.workers.append(worker)
    rh.registry.register("one", TaskHandler.inline(lambda ctx, args: args["i"]))
    worker.start()
    try:
        for i in range(400):
            assert rh.stem.wait_for_task(rh.stem.enqueue("one", {"i": i}), 30).result().payload == i
    finally:
        worker.close()
        broker.close()


def test_enqueue_many_pipelines_tasks_through_redis_in_order(rh):
    rh.registry.register("v", TaskHandler.inline(lambda ctx, a: a["v"]))
    ids = rh.stem.enqueue_many("v", [{"v": i} for i in range(600)])  # more than one pipelined chunk
    assert len(set(ids)) == 600
    assert rh.broker.pending_count("default") == 600
    assert {rh.backend.get(i).state for i in ids} == {TaskState.QUEUED}
    rh.worker(concurrency=2)
    assert [rh.wait(i).payload for i in ids[:5]] + [rh.wait(ids[-1]).payload] == [0, 1, 2, 3, 4, 599]


def test_enqueue_many_reloads_scripts_that_redis_lost(rh):
    rh.registry.register("v", TaskHandler.inline(lambda ctx, a: a["v"]))
    rh.stem.enqueue_many("v", [{"v": 0}, {"v": 1}])
    redis.Redis.from_url(REDIS_URL).script_flush()
    ids = rh.stem.enqueue_many("v", [{"v": 2}, {"v": 3}])
    assert rh.broker.pending_count("default") == 4
    rh.worker()
    assert [rh.wait(i).payload for i in ids] == [2, 3]


def test_a_batch_is_submitted_once_per_id_on_redis(rh):
    rh.registry.register("v", TaskHandler.inline(lambda ctx, a: a["v"]))
    first = rh.stem.batch([stemnb.signature("v", {"v": i}) for i in range(3)], batch_id=f"{rh.namespace}-b")
    again = rh.stem.batch([stemnb.signature("v", {"v": 7})], batch_id=f"{rh.namespace}-b")
    assert first.created and not again.created and again.ids == first.ids
    rh.worker(concurrency=2)
    assert [s.payload for s in first.wait(30).result()] == [0, 1, 2]
    assert rh.stem.inspect_batch(first.batch_id).counts == {"succeeded": 3}
