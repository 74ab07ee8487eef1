"""An isolate task is sent to its process while its ``running`` status is being stored.

The write and the start overlap (``_pipeline.start``); the outcome is still stored after
``running``, a failed write takes the sent call back, and middleware that wraps execution still
sees every run start inside it.
"""

from __future__ import annotations

import stemnb
from stemnb import TaskHandler, TaskState, WorkerEventType
from stemnb.testing import eventually


class GatedBackend(stemnb.InMemoryResultBackend):
    """Stores ``running`` only once ``before_running(status)`` returned; records every state."""

    def __init__(self, before_running):
        super().__init__()
        self.before_running = before_running
        self.states: list[TaskState] = []

    def set_status(self, status, *, ttl=None):
        if status.state is TaskState.RUNNING:
            self.before_running(status)
        self.states.append(status.state)
        return super().set_status(status, ttl=ttl)


def _harness_with(h, backend):
    h.backend = backend
    h.stem = stemnb.Stem(h.broker, backend, registry=h.registry)
    return h


def test_an_isolate_task_starts_while_its_running_status_is_being_stored(h):
    started = stemnb.ReceivePort()
    tell = started.send_port
    seen = []
    _harness_with(h, GatedBackend(lambda status: seen.append(started.receive(timeout=30))))

    def handler(ctx, args):
        tell.send(("started", ctx.id))
        return "done"

    h.registry.register("t", TaskHandler(handler, isolate=True))
    tid = h.stem.enqueue("t", {})
    h.worker()
    status = h.wait(tid, timeout=30)
    started.close()
    assert status.state is TaskState.SUCCEEDED and status.payload == "done"
    assert seen == [("started", tid)]  # the handler ran before the running write went through
    assert h.backend.states == [TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCEEDED]  # the outcome comes after


def test_an_inline_task_still_starts_only_after_running_is_stored(h):
    _harness_with(h, GatedBackend(lambda status: None))
    h.registry.register("t", TaskHandler.inline(lambda ctx, args: h.backend.get(ctx.id).state.value))
    tid = h.stem.enqueue("t", {})
    h.worker()
    assert h.wait(tid).payload == "running"


def test_a_failed_running_write_ends_the_call_sent_ahead_and_the_task_runs_again(h):
    started = stemnb.ReceivePort()
    tell = started.send_port
    writes = []

    def before_running(status):
        handler_port = started.receive(timeout=30)  # the task runs, sent ahead of this write
        writes.append(status.id)
        if len(writes) == 1:
            raise ConnectionError("backend unreachable")
        handler_port.send("go")

    _harness_with(h, GatedBackend(before_running))

    def handler(ctx, args):
        own = stemnb.ReceivePort()
        tell.send(own.send_port)
        own.receive(timeout=60)  # the first run never gets this: its process is ended
        own.close()
        return "second run"

    h.registry.register("t", TaskHandler(handler, isolate=True))
    tid = h.stem.enqueue("t", {})
    worker, recorder = h.worker()
    status = h.wait(tid, timeout=60)
    started.close()
    assert status.state is TaskState.SUCCEEDED and status.payload == "second run"
    assert writes == [tid, tid]
    recycled = recorder.wait_for(WorkerEventType.RECYCLED)
    assert recycled[0].data["reason"] is stemnb.IsolateRecycleReason.CANCELLED
    assert worker._pool.statistics().cancelled == 1
    eventually(lambda: len(worker._active) == 0, timeout=30)  # an outcome is stored before its ack
    assert h.broker.inflight_count("default") == 0 and h.broker.pending_count("default") == 0


class ShortCircuit(stemnb.Middleware):
    """Answers every task itself, never calling the handler."""

    def on_execute(self, context, call_next):
        return "answered by middleware"


def test_a_task_wrapped_by_on_execute_middleware_is_not_sent_before_the_middleware_runs(h):
    h.registry.register("t", TaskHandler(lambda ctx, args: "handler ran", isolate=True))
    tid = h.stem.enqueue("t", {})
    worker, _ = h.worker(middleware=[ShortCircuit()])
    assert h.wait(tid).payload == "answered by middleware"
    pool = worker._pool
    assert pool is None or pool.statistics().submitted == 0  # nothing went to an isolate


def test_a_middleware_without_its_own_on_execute_does_not_stop_sending_ahead():
    class Quiet(stemnb.Middleware):
        def on_consume(self, delivery):
            pass

    assert not stemnb._middleware.wraps_execute([Quiet()])
    assert stemnb._middleware.wraps_execute([Quiet(), ShortCircuit()])
