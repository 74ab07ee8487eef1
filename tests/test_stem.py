"""The Stem producer: enqueue, options merging, waiting for results; Worker construction."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

import stemnb
from stemnb import TaskHandler, TaskOptions, TaskRetryPolicy, TaskState


def test_enqueue_writes_queued_and_publishes_with_handler_defaults(h):
    h.registry.register("t", TaskHandler(lambda c, a: 1, TaskOptions(queue="io", priority=5, max_retries=2)))
    tid = h.stem.enqueue("t", {"x": 1})
    status = h.backend.get(tid)
    assert status.state is TaskState.QUEUED and status.meta == {"task": "t", "queue": "io"}
    envelope = h.broker.consume(["io"]).get(5).envelope
    assert (envelope.id, envelope.queue, envelope.priority, envelope.max_retries) == (tid, "io", 5, 2)
    assert envelope.headers["stem-args-encoder"] == "json"


def test_enqueue_options_override_handler_defaults(h):
    h.registry.register("t", TaskHandler(lambda c, a: 1, TaskOptions(queue="io", max_retries=2)))
    tid = h.stem.enqueue("t", {}, queue="cpu", priority=9, countdown=30, max_retries=0)
    assert h.broker.delayed_count("cpu") == 1 and h.broker.pending_count("io") == 0
    assert h.backend.get(tid).meta["queue"] == "cpu"


def test_enqueue_meta_carries_limits_policy_and_expiry(h):
    h.registry.register("t", TaskHandler(lambda c, a: 1))
    h.stem.enqueue("t", {}, time_limit=4, soft_time_limit=2, retry_policy=TaskRetryPolicy(max_retries=7),
                   expires=60, ignore_result=True)
    envelope = h.broker.consume(["default"]).get(5).envelope
    meta = envelope.meta
    assert meta["stem.timeLimit"] == 4 and meta["stem.softTimeLimit"] == 2 and meta["stem.ignoreResult"] is True
    assert meta["stem.retryPolicy"]["max_retries"] == 7 and envelope.max_retries == 7
    assert meta["stem.expiresAt"] == pytest.approx(time.time() + 60, abs=5)


def test_unknown_enqueue_options_are_refused(h):
    with pytest.raises(TypeError, match="colour"):
        h.stem.enqueue("t", {}, colour="red")


def test_wait_for_task_times_out_and_can_be_awaited(h):
    tid = h.stem.enqueue("never-run", {})
    with pytest.raises(TimeoutError, match=tid):
        h.stem.wait_for_task(tid, timeout=0.05).result()

    h.registry.register("t", TaskHandler.inline(lambda c, a: "awaited"))
    h.worker()

    async def main():
        return await h.stem.wait_for_task(h.stem.enqueue("t", {}), timeout=10)

    assert asyncio.run(main()).payload == "awaited"


@pytest.mark.parametrize(("timeout", "error"), [(-1, ValueError), (float("nan"), ValueError), ("5", TypeError)])
def test_a_bad_wait_timeout_is_refused_at_the_call(h, timeout, error):
    tid = h.stem.enqueue("never-run", {})
    with pytest.raises(error, match="timeout"):
        h.stem.wait_for_task(tid, timeout=timeout)
    assert not h.backend.__dict__.get("_close_hooks")  # the refused wait left nothing registered


def test_wait_for_task_ends_with_closed_error_when_the_backend_closes_first(h):
    tid = h.stem.enqueue("never-run", {})
    waiting = h.stem.wait_for_task(tid)  # no timeout: before, this waited for good
    h.backend.close()
    with pytest.raises(stemnb.ClosedError, match=f"closed while waiting for task {tid}"):
        waiting.result(timeout=5)
    with pytest.raises(stemnb.ClosedError):
        h.stem.wait_for_task(tid)  # a closed backend refuses a new wait at the call


def test_a_settled_wait_for_task_leaves_no_close_callback_behind(h):
    h.registry.register("t", TaskHandler.inline(lambda c, a: 1))
    h.worker()
    for _ in range(3):
        h.stem.wait_for_task(h.stem.enqueue("t", {}), timeout=10).result()
    with pytest.raises(TimeoutError):
        h.stem.wait_for_task("never", timeout=0.01).result()
    assert h.backend.__dict__["_close_hooks"] == {}


def test_cloudpickle_args_and_results_round_trip(h):
    def handler(ctx, args):
        return {"sum": sum(args)}  # args is a set: not JSON

    h.registry.register("t", TaskHandler.inline(handler, result_encoder="cloudpickle"))
    h.worker()
    tid = h.stem.enqueue("t", {1, 2, 3}, args_encoder="cloudpickle")
    assert h.wait(tid).payload == {"sum": 6}


def test_result_raises_task_error_for_failures(h):
    h.registry.register("bad", TaskHandler.inline(lambda c, a: 1 / 0))
    h.worker()
    with pytest.raises(stemnb.TaskError, match="ZeroDivisionError"):
        h.stem.result(h.stem.enqueue("bad", {}), timeout=10)


def test_producer_type_checks():
    with pytest.raises(TypeError, match="Broker"):
        stemnb.Stem(object())


def test_worker_accepts_every_seed_parameter_and_derives_prefetch(h):
    worker = stemnb.Worker(
        h.broker, h.registry, h.backend,
        enqueuer=h.stem, rate_limiter=stemnb.TokenBucketRateLimiter(), middleware=[],
        revoke_store=stemnb.InMemoryRevokeStore(),
        unique_task_coordinator=stemnb.UniqueTaskCoordinator(stemnb.InMemoryLockStore()),
        retry_strategy=stemnb.ExponentialJitterRetryStrategy(), queue="q", subscription=None,
        consumer_name="w", concurrency=3, prefetch_multiplier=4, prefetch=None, heartbeat_interval=5,
        worker_heartbeat_interval=7, heartbeat_transport=stemnb.NoopHeartbeatTransport(), heartbeat_namespace="ns",
        autoscale=stemnb.WorkerAutoscaleConfig(), lifecycle=stemnb.WorkerLifecycleConfig(),
        observability=stemnb.ObservabilityConfig(), signer=None,
        encoder_registry=stemnb.TaskPayloadEncoderRegistry(), result_encoder="json", args_encoder="json",
        additional_encoders=[],
    )
    assert worker.prefetch == 12 and worker.primary_queue == "q" and worker.worker_id == "w"
    assert worker.worker_heartbeat_interval == 7 and worker.namespace == "ns"
    worker.close()
    default = stemnb.Worker(h.broker, h.registry, h.backend)
    assert default.concurrency == (os.cpu_count() or 1) and default.prefetch == default.concurrency * 2
    assert default.heartbeat_interval == 10.0 and default.worker_heartbeat_interval == 10.0
    default.close()


def test_worker_refuses_bad_parts_and_values(h):
    with pytest.raises(TypeError, match="broker"):
        stemnb.Worker(object(), h.registry, h.backend)
    with pytest.raises(ValueError, match="concurrency"):
        stemnb.Worker(h.broker, h.registry, h.backend, concurrency=0)
    with pytest.raises(ValueError, match="heartbeat_interval"):
        stemnb.Worker(h.broker, h.registry, h.backend, heartbeat_interval=-1)


def test_worker_start_returns_at_once_and_cannot_restart(h):
    worker, rec = h.worker(start=False)
    assert worker.start() is worker and worker.start() is worker
    worker.shutdown().result(10)
    with pytest.raises(stemnb.ClosedError, match="stopped"):
        worker.start()
    assert worker.shutdown().done()


def test_non_dict_args_need_the_cloudpickle_encoder(h):
    with pytest.raises(stemnb.EncodingError, match="args must be a dict for the 'json' encoder, got list"):
        h.stem.enqueue("t", [1, 2, 3])
    assert h.stem.enqueue("t", [1, 2, 3], args_encoder="cloudpickle")


def test_a_pending_wait_holds_few_objects_for_the_garbage_collector(h):
    """A producer waits for thousands of tasks at once; each wait lives until its task ends, and
    every object it holds is traced by the collector's passes (36 objects before, enough for
    1,000 waits to set off a full collection of the process)."""
    import gc

    ids = [h.stem.enqueue("never-run", {}) for _ in range(200)]
    h.stem.wait_for_task(ids[0], timeout=60).cancel()  # the backend's watch machinery made already
    gc.collect()
    before = len(gc.get_objects())
    waits = [h.stem.wait_for_task(tid, timeout=60) for tid in ids]
    gc.collect()
    per_wait = (len(gc.get_objects()) - before) / len(waits)
    assert per_wait <= 20, per_wait
    for wait in waits:
        wait.cancel()
    assert h.backend.__dict__["_close_hooks"] == {}  # a cancelled wait withdrew everything
