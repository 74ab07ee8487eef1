"""Fault injection for isolate tasks: crash inside the task, by signal, at pickling the result."""

from __future__ import annotations

import logging
import os
import signal
import threading

import stemnb
from stemnb import IsolateRecycleReason, TaskHandler, TaskOptions, TaskState, WorkerEventType

E = WorkerEventType


def exit_hard(ctx, args):
    os._exit(3)


def killed_by_signal_first_time(ctx, args):
    if ctx.attempt == 0:
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def unpicklable_result(ctx, args):
    return threading.Lock()


def fine(ctx, args):
    return "fine"


def test_a_task_whose_process_exits_fails_with_the_exit_code_and_the_pool_recovers(h):
    h.registry.register("exit", TaskHandler(exit_hard))
    h.registry.register("fine", TaskHandler(fine))
    worker, rec = h.worker()
    status = h.wait(h.stem.enqueue("exit", {}), 60)
    assert status.state is TaskState.FAILED and status.error["type"] == "IsolateExitedError"
    assert "exited with code 3" in status.error["message"]
    rec.wait_for(E.RECYCLED, where=lambda e: e.data["reason"] is IsolateRecycleReason.CRASHED, timeout=30)
    assert h.wait(h.stem.enqueue("fine", {}), 60).payload == "fine"


def test_a_task_killed_by_a_signal_is_retried_like_any_failure(h):
    h.registry.register("killed", TaskHandler(killed_by_signal_first_time, TaskOptions(max_retries=1)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("killed", {})
    status = h.wait(tid, 60)
    assert status.state is TaskState.SUCCEEDED and status.attempt == 1 and status.payload == "survived"
    retried = rec.of(E.RETRIED, tid)[0]
    assert isinstance(retried.error, stemnb.IsolateExitedError) and retried.error.signal == signal.SIGKILL


def test_a_result_that_cannot_be_pickled_fails_without_retries(h):
    h.registry.register("lock", TaskHandler(unpicklable_result, TaskOptions(max_retries=3)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("lock", {})
    status = h.wait(tid, 60)
    assert status.state is TaskState.FAILED and status.attempt == 0
    assert status.error["type"] == "SerializationError"
    assert h.dead_letters()[0].reason == "not-serializable"


def sleep_long(ctx, args):
    ctx.heartbeat()
    import time

    time.sleep(120)


def test_hard_shutdown_ends_running_isolate_tasks_and_requeues_them(h):
    import psutil

    h.registry.register("long", TaskHandler(sleep_long))
    worker, rec = h.worker()
    tid = h.stem.enqueue("long", {})
    rec.wait_for(E.HEARTBEAT, tid, timeout=60)
    pids = {e.data["pid"] for e in rec.of(E.CHILD_INIT)}
    worker.shutdown(stemnb.WorkerShutdownMode.HARD).result(30)
    assert h.broker.pending_count("default") == 1 and h.broker.inflight_count("default") == 0
    assert worker.pool.closed
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    status = h.backend.get(tid)
    assert status.state is TaskState.QUEUED and status.meta["requeued_by"] == worker.worker_id


class FailingBackend(stemnb.InMemoryResultBackend):
    """A real in-memory backend whose writes of one state fail a few times, like a dropped connection."""

    def __init__(self, state, failures):
        super().__init__()
        self.fail_state, self.failures = state, failures

    def set(self, task_id, state, **kw):
        if stemnb.TaskState(state) is self.fail_state and self.failures > 0:
            self.failures -= 1
            raise ConnectionError("backend unreachable")
        return super().set(task_id, state, **kw)


def test_a_failed_result_write_requeues_the_task_and_nothing_is_lost():
    from worker_support import FAST_LIFECYCLE, Recorder

    broker = stemnb.InMemoryBroker(delayed_interval=0.005, claim_interval=0.02)
    backend = FailingBackend(TaskState.SUCCEEDED, failures=2)
    registry = stemnb.TaskRegistry()
    registry.register("t", TaskHandler.inline(lambda ctx, a: "stored at last"))
    stem = stemnb.Stem(broker, backend, registry=registry)
    worker = stemnb.Worker(broker, registry, backend, concurrency=1, lifecycle=FAST_LIFECYCLE)
    rec = Recorder(worker)
    worker.start()
    try:
        tid = stem.enqueue("t", {})
        assert stem.wait_for_task(tid, 30).result().payload == "stored at last"
        assert len([e for e in rec.of(E.ERROR) if e.data.get("where") == "settle"]) == 2
        assert broker.wait_drained("default", 10)
    finally:
        worker.close()
        broker.close()


class _Flaky:
    """Fails the first ``failures`` calls of a method with ConnectionError, then sets ``back``
    at the first call that goes through."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.back = threading.Event()
        self._lock = threading.Lock()

    def call(self, real, *args, **kwargs):
        with self._lock:
            failing = self.failures > 0
            self.failures -= failing
        if failing:
            raise ConnectionError("connection reset")
        result = real(*args, **kwargs)
        self.back.set()
        return result


def _assert_one_outage_logged(caplog, what, failures=3):
    """Two warnings about ``what``: the outage's start and its end; the failures between at debug."""
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and what in r.getMessage()]
    assert len(messages) == 2 and "failed (connection reset)" in messages[0]
    assert f"works again after {failures} failed attempts" in messages[1]


def test_lease_renewals_that_fail_are_logged_once_per_outage_and_the_task_still_succeeds(caplog):
    flaky = _Flaky(3)

    class Broker(stemnb.InMemoryBroker):
        def extend_lease(self, delivery, seconds):
            return flaky.call(super().extend_lease, delivery, seconds)

    broker = Broker(default_visibility_timeout=0.1, delayed_interval=0.005, claim_interval=0.02)
    backend = stemnb.InMemoryResultBackend()
    registry = stemnb.TaskRegistry()
    registry.register("waits", TaskHandler.inline(lambda ctx, args: flaky.back.wait(30)))
    stem = stemnb.Stem(broker, backend, registry=registry)
    from worker_support import FAST_LIFECYCLE

    worker = stemnb.Worker(broker, registry, backend, concurrency=1, lifecycle=FAST_LIFECYCLE)
    with caplog.at_level(logging.DEBUG, logger="stemnb.worker"):
        worker.start()
        try:
            assert stem.wait_for_task(stem.enqueue("waits", {}), 30).result().payload is True
        finally:
            worker.close()
            broker.close()
    _assert_one_outage_logged(caplog, "renewing leases")


def test_heartbeats_that_fail_are_logged_once_per_outage_and_resume(caplog):
    flaky = _Flaky(3)

    class Backend(stemnb.InMemoryResultBackend):
        def set_worker_heartbeat(self, heartbeat, *, ttl=None):
            return flaky.call(super().set_worker_heartbeat, heartbeat, ttl=ttl)

    broker, backend = stemnb.InMemoryBroker(), Backend()
    from worker_support import FAST_LIFECYCLE

    worker = stemnb.Worker(broker, stemnb.TaskRegistry(), backend, worker_heartbeat_interval=0.01,
                           lifecycle=FAST_LIFECYCLE)
    with caplog.at_level(logging.DEBUG, logger="stemnb.worker"):
        worker.start()
        try:
            assert flaky.back.wait(30)
            assert backend.get_worker_heartbeat(worker.worker_id) is not None
        finally:
            worker.close()
            broker.close()
    _assert_one_outage_logged(caplog, "storing its heartbeat")
