"""Where stemnb decides better than Stem (issue 3), one test per decision, plus bad input."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from worker_support import FAST_LIFECYCLE

import stemnb
from stemnb import TaskHandler, TaskOptions, TaskState, WorkerEventType, WorkerShutdownMode

E = WorkerEventType


class RecordingBroker(stemnb.InMemoryBroker):
    """A real in-memory broker that notes the backend state at the moment of each ack."""

    def __init__(self, backend, **kw):
        super().__init__(**kw)
        self.backend = backend
        self.states_at_ack = []

    def ack(self, delivery):
        status = self.backend.get(delivery.envelope.id)
        self.states_at_ack.append(status.state if status else None)
        return super().ack(delivery)


def test_result_is_stored_before_the_delivery_is_acked():
    backend = stemnb.InMemoryResultBackend()
    broker = RecordingBroker(backend, delayed_interval=0.005, claim_interval=0.02)
    registry = stemnb.TaskRegistry()
    registry.register("t", TaskHandler.inline(lambda ctx, a: "r"))
    stem = stemnb.Stem(broker, backend, registry=registry)
    with stemnb.Worker(broker, registry, backend, concurrency=1, lifecycle=FAST_LIFECYCLE):
        tid = stem.enqueue("t", {})
        stem.wait_for_task(tid, 10).result()
        assert broker.wait_drained("default", 10)
    assert broker.states_at_ack == [TaskState.SUCCEEDED]


def _hold(ctx, args):
    time.sleep(args["seconds"])
    return os.getpid()


def _timed(ctx, args):
    start = time.time()
    time.sleep(args["seconds"])
    return [start, time.time()]


def test_concurrency_bounds_inline_and_isolate_tasks_together(h):
    h.registry.register("inline", TaskHandler.inline(_timed))
    h.registry.register("isolated", TaskHandler(_timed))
    worker, rec = h.worker(concurrency=2, prefetch=8)
    ids = [h.stem.enqueue(name, {"seconds": 0.2}) for name in ["inline", "isolated"] * 4]
    runs = [h.wait(tid, 120).payload for tid in ids]
    # the handlers' own start/end times (one clock for every process of the machine)
    edges = sorted([(start, 1) for start, _ in runs] + [(end, -1) for _, end in runs])
    running, peak = 0, 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    assert peak == 2


def test_unparseable_rate_string_fails_at_registration():
    registry = stemnb.TaskRegistry()
    with pytest.raises(stemnb.RateLimitSpecError, match="rate_limit.*10/min"):
        @registry.task("t", rate_limit="10/min")
        def t(ctx, args):
            return None
    with pytest.raises(stemnb.RateLimitSpecError, match="group_rate_limit"):
        TaskOptions(group_rate_limit="1.5/s")
    assert "t" not in registry


def test_explicit_retry_past_the_limit_fails_and_dead_letters(h):
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: ctx.retry(countdown=0.01), TaskOptions(max_retries=1)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("t", {})
    status = h.wait(tid)
    assert status.state is TaskState.FAILED and status.attempt == 1
    assert status.error["type"] == "TaskRetryExhaustedError"
    [entry] = h.dead_letters()
    assert entry.reason == "max-retries-exhausted" and entry.id == tid


def test_a_revocation_reaches_a_running_worker_live_and_stops_an_inline_task(h):
    store = stemnb.InMemoryRevokeStore()
    started = threading.Event()

    def loop(ctx, args):
        started.set()
        while True:
            ctx.heartbeat()
            time.sleep(0.005)

    h.registry.register("loop", TaskHandler.inline(loop))
    worker, rec = h.worker(revoke_store=store)
    tid = h.stem.enqueue("loop", {})
    assert started.wait(10)
    store.upsert([stemnb.RevokeEntry("stem", tid, terminate=True, reason="stop it")])  # another process could do this
    status = h.wait(tid)
    assert status.state is TaskState.CANCELLED and status.meta["reason"] == "stop it"
    assert rec.of(E.REVOKED, tid)
    assert h.dead_letters() == []


def heartbeat_forever(ctx, args):
    while True:
        ctx.heartbeat()
        time.sleep(0.01)


def ignore_everything(ctx, args):
    ctx.heartbeat()  # announces itself, then never looks again
    time.sleep(60)


@pytest.mark.parametrize(
    ("fn", "grace"), [(heartbeat_forever, 30.0), (ignore_everything, 1.0)], ids=["cooperative", "by-ending-its-process"]
)
def test_terminate_revocation_stops_an_isolate_task(h, fn, grace):
    h.registry.register("loop", TaskHandler(fn))
    worker, rec = h.worker(lifecycle=FAST_LIFECYCLE.copy_with(force_shutdown_after=grace))
    tid = h.stem.enqueue("loop", {})
    rec.wait_for(E.HEARTBEAT, tid, timeout=60)
    worker.revoke(tid, terminate=True, reason="enough")
    status = h.wait(tid, 30)
    assert status.state is TaskState.CANCELLED
    if fn is ignore_everything:
        rec.wait_for(E.RECYCLED, where=lambda e: e.data["reason"] is stemnb.IsolateRecycleReason.CANCELLED)
    else:
        assert rec.of(E.RECYCLED) == []
    h.registry.register("fine", TaskHandler(_hold))
    assert h.wait(h.stem.enqueue("fine", {"seconds": 0}), 60).state is TaskState.SUCCEEDED


def test_hard_time_limit_ends_only_that_tasks_process(h):
    h.registry.register("slow", TaskHandler(_hold, TaskOptions(hard_time_limit=0.5)))
    h.registry.register("fine", TaskHandler(_hold))
    worker, rec = h.worker(concurrency=2)
    slow = h.stem.enqueue("slow", {"seconds": 30})
    fine = h.stem.enqueue("fine", {"seconds": 1.0})
    assert h.wait(slow, 60).state is TaskState.FAILED
    assert h.wait(fine, 60).state is TaskState.SUCCEEDED
    rec.wait_for(E.RECYCLED, where=lambda e: e.data["reason"] is stemnb.IsolateRecycleReason.TIME_LIMIT)
    assert len(rec.of(E.RECYCLED)) == 1  # only the slow task's process
    assert h.backend.get(slow).error["type"] == "TaskTimeLimitError"


def test_inline_hard_time_limit_fails_the_task_and_keeps_its_slot_until_it_returns(h):
    release = threading.Event()
    returned = threading.Event()

    def stubborn(ctx, args):
        release.wait(30)
        returned.set()

    h.registry.register("stubborn", TaskHandler.inline(stubborn, TaskOptions(hard_time_limit=0.2)))
    h.registry.register("next", TaskHandler.inline(lambda ctx, a: returned.is_set()))
    worker, rec = h.worker(concurrency=1)
    first = h.stem.enqueue("stubborn", {})
    second = h.stem.enqueue("next", {})
    assert h.wait(first).state is TaskState.FAILED
    assert h.backend.get(second).state is TaskState.QUEUED  # the only slot is still taken
    release.set()
    assert h.wait(second).payload is True


class _Unpicklable:
    def __reduce__(self):
        raise TypeError("this object refuses to be pickled")


def test_a_task_that_cannot_be_sent_to_an_isolate_fails_cleanly_and_the_pool_stays_usable(h):
    trap = _Unpicklable()
    h.registry.register("bad", TaskHandler(lambda ctx, a: trap))  # the closure cannot be pickled
    h.registry.register("good", TaskHandler(_hold))
    worker, rec = h.worker()
    bad = h.stem.enqueue("bad", {})
    status = h.wait(bad, 60)
    assert status.state is TaskState.FAILED and status.error["type"] == "SerializationError"
    assert h.dead_letters()[0].reason == "not-serializable"
    assert h.wait(h.stem.enqueue("good", {"seconds": 0}), 60).state is TaskState.SUCCEEDED


def test_a_delivery_left_by_a_dead_worker_is_redelivered_after_its_lease(h):
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: "recovered"))
    envelope = stemnb.Envelope("t", {}, visibility_timeout=0.2)
    h.broker.publish(envelope)
    dead = h.broker.consume(["default"])
    assert dead.get(5).envelope.id == envelope.id  # taken by a worker that then dies mid-task
    h.backend.set(envelope.id, TaskState.RUNNING, meta={"task": "t"})
    worker, rec = h.worker()
    status = h.wait(envelope.id, 30)
    assert status.state is TaskState.SUCCEEDED and status.payload == "recovered"
    assert rec.of(E.INTERRUPTED, envelope.id)[0].data["prior_state"] == "running"


def test_a_redelivered_task_already_terminal_is_acked_without_running_again(h):
    ran = []
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: ran.append(ctx.id)))
    envelope = stemnb.Envelope("t", {}, visibility_timeout=0.2)
    h.broker.publish(envelope)
    dead = h.broker.consume(["default"])
    assert dead.get(5).envelope.id == envelope.id  # the dead worker stored the result, then died before acking
    h.backend.set(envelope.id, TaskState.SUCCEEDED, payload="stored", meta={"task": "t"})
    worker, rec = h.worker()
    assert h.broker.wait_drained("default", 30)
    assert ran == [] and worker.counters["deduplicated"] == 1
    assert h.backend.get(envelope.id).payload == "stored"


def test_unknown_task_names_dead_letter_as_unregistered(h):
    worker, rec = h.worker()
    tid = h.stem.enqueue("nobody-home", {"x": 1})
    status = h.wait(tid)
    assert status.state is TaskState.FAILED and status.error["type"] == "UnknownTaskError"
    [entry] = h.dead_letters()
    assert entry.reason == "unregistered-task"


def test_undecodable_args_dead_letter_with_a_reason(h):
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: a))
    worker, rec = h.worker()
    envelope = stemnb.Envelope("t", {"cloudpickle": "not base64 at all!"}, headers={"stem-args-encoder": "cloudpickle"})
    h.broker.publish(envelope)
    status = h.wait(envelope.id)
    assert status.state is TaskState.FAILED and status.error["type"] == "EncodingError"
    assert h.dead_letters()[0].reason == "args-decode-failed"


def test_a_result_json_cannot_encode_fails_with_a_clear_error(h):
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: {1, 2, 3}))
    worker, rec = h.worker()
    status = h.wait(h.stem.enqueue("t", {}))
    assert status.state is TaskState.FAILED and "JSON cannot encode" in status.error["message"]
    assert h.dead_letters()[0].reason == "result-encode-failed"


def test_args_json_cannot_encode_are_refused_at_enqueue(h):
    with pytest.raises(stemnb.EncodingError, match=r"args\['when'\]"):
        h.stem.enqueue("t", {"when": object()})
    tid = h.stem.enqueue("t", {"when": object()}, args_encoder="cloudpickle")
    assert h.backend.get(tid).state is TaskState.QUEUED


def test_a_handler_raising_a_non_picklable_exception_fails_with_its_type_name(h):
    h.registry.register("t", TaskHandler(_raise_unpicklable))
    worker, rec = h.worker()
    status = h.wait(h.stem.enqueue("t", {}), 60)
    assert status.state is TaskState.FAILED
    assert status.error["type"].endswith("UnpicklableError") and "cannot travel" in status.error["message"]


class UnpicklableError(Exception):
    def __init__(self, message):
        super().__init__(message)
        self.lock = threading.Lock()


def _raise_unpicklable(ctx, args):
    raise UnpicklableError("cannot travel")


def test_sigterm_means_warm_shutdown_outside_a_notebook(h):
    lifecycle = FAST_LIFECYCLE.copy_with(install_signal_handlers=True)
    before = signal.getsignal(signal.SIGTERM)
    worker, rec = h.worker(lifecycle=lifecycle)
    assert signal.getsignal(signal.SIGTERM) is not before
    os.kill(os.getpid(), signal.SIGTERM)
    done = rec.wait_for(E.WORKER_SHUTDOWN)[0]
    assert done.data["mode"] == "warm"
    assert signal.getsignal(signal.SIGTERM) is before


def test_signal_handlers_are_not_installed_off_the_main_thread(h):
    lifecycle = FAST_LIFECYCLE.copy_with(install_signal_handlers=True)
    before = signal.getsignal(signal.SIGTERM)
    worker, rec = h.worker(lifecycle=lifecycle, start=False)
    thread = threading.Thread(target=worker.start)
    thread.start()
    thread.join()
    assert signal.getsignal(signal.SIGTERM) is before


def test_workers_stopped_in_the_order_they_started_leave_the_signal_handlers_as_they_found_them(h):
    lifecycle = FAST_LIFECYCLE.copy_with(install_signal_handlers=True)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    first, _ = h.worker(lifecycle=lifecycle)
    second, _ = h.worker(lifecycle=lifecycle)
    first.close()
    assert signal.getsignal(signal.SIGINT) is not before[0]  # the second worker still answers it
    second.close()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_a_signal_after_the_last_worker_stopped_off_the_main_thread_acts_as_before_it_started(h):
    lifecycle = FAST_LIFECYCLE.copy_with(install_signal_handlers=True)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    worker, _ = h.worker(lifecycle=lifecycle)
    stopper = threading.Thread(target=lambda: worker.shutdown().result(30))
    stopper.start()
    stopper.join()  # Python lets only the main thread set handlers: the worker's is still there
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        threading.Event().wait(30)  # the handler runs on this thread, at once
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_hard_shutdown_requeues_held_deliveries_for_another_worker(h):
    started = threading.Event()
    h.registry.register("wait", TaskHandler.inline(lambda ctx, a: started.set() or time.sleep(0.3) or "done"))
    worker, rec = h.worker(concurrency=1, prefetch=4)
    ids = [h.stem.enqueue("wait", {}) for _ in range(3)]
    assert started.wait(10)
    worker.shutdown(WorkerShutdownMode.HARD).result(10)
    second, _ = h.worker()
    for tid in ids:
        assert h.wait(tid, 30).state is TaskState.SUCCEEDED


def test_soft_shutdown_asks_running_tasks_to_stop(h):
    started = threading.Event()

    def loop(ctx, args):
        started.set()
        while True:
            ctx.heartbeat()
            time.sleep(0.005)

    h.registry.register("loop", TaskHandler.inline(loop))
    worker, rec = h.worker()
    tid = h.stem.enqueue("loop", {})
    assert started.wait(10)
    worker.shutdown(WorkerShutdownMode.SOFT).result(10)
    status = h.backend.get(tid)
    assert status.state is TaskState.CANCELLED and status.meta["reason"] == "worker soft shutdown"


def test_second_hard_shutdown_escalates_a_warm_one(h):
    release = threading.Event()
    started = threading.Event()
    h.registry.register("stuck", TaskHandler.inline(lambda ctx, a: started.set() or release.wait(30)))
    worker, rec = h.worker()
    h.stem.enqueue("stuck", {})
    assert started.wait(10)
    warm = worker.shutdown(WorkerShutdownMode.WARM)
    hard = worker.shutdown(WorkerShutdownMode.HARD)
    assert hard is warm
    hard.result(10)
    assert rec.of(E.WORKER_SHUTDOWN)[0].data["mode"] == "hard"
    release.set()
    assert h.broker.pending_count("default") == 1  # requeued for the next worker


@pytest.mark.parametrize(
    ("max_retries", "state", "attempt"), [(1, TaskState.SUCCEEDED, 1), (0, TaskState.FAILED, 0)], ids=["retries-left", "exhausted"]
)
def test_retry_recovery_policy_counts_an_interrupted_run_as_a_failure(h, max_retries, state, attempt):
    options = TaskOptions(recovery_policy="retry", max_retries=max_retries)
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: ctx.attempt, options))
    envelope = stemnb.Envelope("t", {}, visibility_timeout=0.2, max_retries=max_retries)
    h.broker.publish(envelope)
    assert h.broker.consume(["default"]).get(5).envelope.id == envelope.id  # its worker dies mid-run
    h.backend.set(envelope.id, TaskState.RUNNING, meta={"task": "t", "worker": "dead-worker"})
    worker, rec = h.worker()
    status = h.wait(envelope.id, 30)
    assert status.state is state and status.attempt == attempt
    if state is TaskState.FAILED:
        assert status.error["type"] == "TaskInterruptedError"
        assert h.dead_letters()[0].reason == "max-retries-exhausted"


def test_a_declared_rate_limit_is_honoured_without_a_configured_limiter(h):
    h.registry.register("limited", TaskHandler.inline(lambda ctx, a: time.time(), TaskOptions(rate_limit="2/s")))
    worker, rec = h.worker()
    assert worker.rate_limiter is None
    ids = [h.stem.enqueue("limited", {}) for _ in range(4)]
    ran_at = sorted(h.wait(tid).payload for tid in ids)
    limited = rec.of(E.RETRIED)
    assert limited and all(e.data["rateLimited"] and e.data["rateKey"] == "limited:global" for e in limited)
    assert isinstance(worker.rate_limiter, stemnb.TokenBucketRateLimiter)
    assert ran_at[3] - ran_at[0] >= 0.9  # four runs of a 2/s bucket that starts full: two wait ~0.5 s each


@pytest.mark.parametrize(
    "meta",
    [{"stem.expiresAt": "tomorrow"}, {"stem.timeLimit": -1}, {"stem.retryPolicy": {"max_retries": "many"}},
     {"stem.link": [{"no": "name"}]}],
    ids=["expiry", "time-limit", "retry-policy", "link"],
)
def test_a_malformed_task_meta_dead_letters_once_instead_of_looping(h, meta):
    ran = []
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: ran.append(1)))
    worker, rec = h.worker()
    envelope = stemnb.Envelope("t", {}, meta=meta)
    h.broker.publish(envelope)
    status = h.wait(envelope.id)
    assert status.state is TaskState.FAILED and status.error["type"] == "MalformedEnvelopeError"
    [entry] = h.dead_letters()
    assert entry.reason == "malformed-envelope" and ran == []


def _sum_then_retry_once(ctx, args):
    total = float(args["a"].sum())
    if ctx.attempt == 0:
        ctx.retry(countdown=0.01)
    return total


def test_a_shared_array_in_cloudpickled_args_is_read_again_on_a_retry(h):
    h.registry.register("t", TaskHandler(_sum_then_retry_once, TaskOptions(max_retries=1)))
    h.worker()
    shared = stemnb.shared_array(1000, fill=2.0)
    status = h.wait(h.stem.enqueue("t", {"a": shared}, args_encoder="cloudpickle"), 60)
    assert (status.state, status.attempt, status.payload) == (TaskState.SUCCEEDED, 1, 2000.0)


def test_with_the_in_memory_parts_a_waiter_woken_by_an_outcome_finds_its_delivery_settled(h):
    def boom(ctx, args):
        raise RuntimeError("boom")

    h.registry.register("ok", TaskHandler.inline(lambda ctx, a: "done"))
    h.registry.register("bad", TaskHandler.inline(boom))
    seen = {}

    def note(status):  # runs on the worker's thread, right after the status is stored
        if status.terminal:
            seen[status.id] = (h.broker.inflight_count("default"), len(h.dead_letters()))

    for name, settled in (("ok", (0, 0)), ("bad", (0, 1))):
        tid = h.stem.enqueue(name, {})  # the only task in the queue, watched before a worker starts
        watch = h.backend.watch(tid, note)
        worker, _ = h.worker()
        try:
            h.wait(tid)
        finally:
            watch.close()
            worker.shutdown().result(30)
        assert seen[tid] == settled, name  # acked (or dead-lettered) before anyone heard of the outcome
