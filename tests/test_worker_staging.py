"""Staging (``stemnb/_worker/_staging.py``): the next isolate task waits in the process of a running
one, to start the moment it ends; the worker's guarantees hold as without it."""

from __future__ import annotations

import os
import threading
import time

import pytest
from worker_support import FAST_LIFECYCLE

import stemnb
from stemnb import TaskHandler, TaskState, WorkerShutdownMode
from stemnb._worker import _handover
from stemnb._worker._pipeline import Run
from stemnb.testing import eventually


def _watch_staging(worker):
    """Note the tasks the worker stages, each once; ``staged`` is set at the first."""
    staged = threading.Event()
    count = []
    stage = worker._staging.stage

    def counting(run):
        nxt = stage(run)
        if nxt is not None and nxt.task.id not in count:  # (a second call returns the same one)
            count.append(nxt.task.id)
            staged.set()
        return nxt

    worker._staging.stage = counting
    return staged, count


def _span(ctx, args):
    start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
    total = sum(range(20_000))
    return [os.getpid(), start, time.monotonic(), total]


def test_a_backlog_of_isolate_tasks_is_staged_and_never_runs_two_at_once_in_one_slot(h):
    h.registry.register("span", TaskHandler(_span, isolate=True))
    ids = [h.stem.enqueue("span", {}) for _ in range(30)]
    worker, _ = h.worker(start=False, concurrency=1, prefetch_multiplier=4)
    _, staged = _watch_staging(worker)
    worker.start()
    spans = [h.wait(tid, timeout=60).payload for tid in ids]
    assert staged, "no task was staged"
    ordered = sorted(spans, key=lambda s: s[1])
    for before, after in zip(ordered, ordered[1:], strict=False):
        assert after[1] >= before[2], f"two handlers ran at once under concurrency=1: {before} {after}"
    eventually(lambda: worker.stats()["counters"]["succeeded"] == 30, timeout=30)  # counted after storing


def test_the_statuses_of_a_staged_task_go_queued_running_succeeded(h):
    h.registry.register("span", TaskHandler(_span, isolate=True))
    ids = [h.stem.enqueue("span", {}) for _ in range(10)]
    history: dict[str, list[TaskState]] = {tid: [] for tid in ids}
    watches = [h.backend.watch_status(tid, lambda st: history[st.id].append(st.state)) for tid in ids]
    worker, _ = h.worker(start=False, concurrency=1, prefetch_multiplier=4)
    _, staged = _watch_staging(worker)
    worker.start()
    for tid in ids:
        h.wait(tid, timeout=60)
    for watch in watches:
        watch.close()
    assert staged
    for tid in ids:
        assert history[tid] == [TaskState.QUEUED, TaskState.RUNNING, TaskState.SUCCEEDED], (tid, history[tid])


def _gated(ctx, args):
    gate = stemnb.ReceivePort()
    args["report"].send((args["tag"], gate.send_port))
    gate.receive(60)
    gate.close()
    return args["tag"]


def test_a_staged_task_does_not_wait_behind_a_long_task_once_another_slot_is_free(h, port):
    h.registry.register("gated", TaskHandler(_gated, isolate=True))
    encoder = stemnb.CloudpickleTaskPayloadEncoder()
    h.stem = stemnb.Stem(h.broker, h.backend, registry=h.registry, args_encoder=encoder)

    def enqueue(tag):
        return h.stem.enqueue("gated", {"report": port.send_port, "tag": tag})

    worker, _ = h.worker(start=False, concurrency=2, prefetch_multiplier=2, args_encoder=encoder)
    staged, order = _watch_staging(worker)
    worker.start()
    enqueue("w1"), enqueue("w2")
    gates = dict(port.receive(30) for _ in range(2))  # both slots held, both processes up
    ids = {tag: enqueue(tag) for tag in ("long", "short")}
    eventually(lambda: worker._consumer.buffered() == 2, timeout=30)  # leased, waiting for a slot
    gates["w1"].send(None)
    gates.update([port.receive(30)])  # "long" took w1's slot, in w1's process ...
    assert staged.wait(30) and order == [ids["short"]]  # ... and "short" waits behind it there
    gates["w2"].send(None)  # w2's slot frees: "short" is taken back and runs there, not behind "long"
    tag, gate = port.receive(30)
    assert tag == "short" and h.backend.get(ids["long"]).state is TaskState.RUNNING
    gate.send(None)
    assert h.wait(ids["short"], timeout=30).state is TaskState.SUCCEEDED
    gates["long"].send(None)
    assert h.wait(ids["long"], timeout=30).state is TaskState.SUCCEEDED


def test_no_task_is_taken_from_the_buffer_to_stage_behind_one_whose_process_takes_no_more(h, port):
    h.registry.register("gated", TaskHandler(_gated, isolate=True))
    encoder = stemnb.CloudpickleTaskPayloadEncoder()
    h.stem = stemnb.Stem(h.broker, h.backend, registry=h.registry, args_encoder=encoder)
    lifecycle = FAST_LIFECYCLE.copy_with(max_tasks_per_isolate=1)  # each process ends after its task
    worker, _ = h.worker(start=False, prefetch_multiplier=2, args_encoder=encoder, lifecycle=lifecycle)
    taken = []
    next_run = _handover.next_run

    def counting(w):
        run = next_run(w)
        taken.append(None if run is None else run.task.id)
        return run

    _handover.next_run = counting
    try:
        worker.start()
        first = h.stem.enqueue("gated", {"report": port.send_port, "tag": "first"})
        _, gate = port.receive(30)
        second = h.stem.enqueue("gated", {"report": port.send_port, "tag": "second"})
        eventually(lambda: worker._consumer.buffered() == 1, timeout=30)
        (task,) = worker._active.by_task_id(first)
        assert worker._staging.stage(Run(task, task.handler, {})) is None
        assert taken == [] and worker._consumer.buffered() == 1  # the pool would refuse: not even looked at
        gate.send(None)
        _, gate = port.receive(30)  # "second" runs in a fresh process
        gate.send(None)
        assert h.wait(second, timeout=30).payload == "second"
        assert h.wait(first, timeout=30).payload == "first"
    finally:
        _handover.next_run = next_run


def _staged_behind_a_gated_task(h, port):
    """Start a one-slot worker whose running task waits at a gate while the next task ("waiting")
    is staged behind it; return ``(worker, running id, waiting id, staged ids, gate)``."""
    h.registry.register("gated", TaskHandler(_gated, isolate=True))
    h.registry.register("tag", TaskHandler(lambda ctx, args: args["tag"], isolate=True))
    encoder = stemnb.CloudpickleTaskPayloadEncoder()
    h.stem = stemnb.Stem(h.broker, h.backend, registry=h.registry, args_encoder=encoder)
    h.stem.enqueue("tag", {"tag": "warm-up"})  # starts the process, so the next ones can be staged
    running = h.stem.enqueue("gated", {"report": port.send_port, "tag": "running"})
    waiting = h.stem.enqueue("tag", {"tag": "waiting"})
    worker, _ = h.worker(start=False, concurrency=1, prefetch_multiplier=3, args_encoder=encoder)
    staged, order = _watch_staging(worker)
    worker.start()
    _, gate = port.receive(30)
    assert staged.wait(30)
    return worker, running, waiting, order, gate


def test_staging_behind_a_run_again_gives_the_task_staged_there_and_stages_no_other(h, port):
    worker, running, waiting, order, gate = _staged_behind_a_gated_task(h, port)
    h.stem.enqueue("tag", {"tag": "third"})  # a next task is leased: a second staging would take it
    eventually(lambda: worker._consumer.buffered() == 1, timeout=30)
    (task,) = worker._active.by_task_id(running)
    again = worker._staging.stage(Run(task, task.handler, {}))
    assert again is not None and again.task.id == waiting
    assert order == [waiting] and worker._consumer.buffered() == 1
    gate.send(None)
    assert h.wait(waiting, timeout=30).payload == "waiting"


@pytest.mark.parametrize("mode", [WorkerShutdownMode.WARM, WorkerShutdownMode.HARD])
def test_shutdown_requeues_a_staged_task_that_has_not_started(h, port, mode):
    worker, running, waiting, _, gate = _staged_behind_a_gated_task(h, port)
    done = worker.shutdown(mode)
    if mode is WorkerShutdownMode.WARM:
        gate.send(None)
    done.result(30)
    assert h.backend.get(waiting).state is TaskState.QUEUED  # never started
    expected = {WorkerShutdownMode.WARM: 1, WorkerShutdownMode.HARD: 2}[mode]
    assert h.broker.pending_count("default") == expected  # nothing lost: back in the queue
    if mode is WorkerShutdownMode.WARM:
        assert h.backend.get(running).state is TaskState.SUCCEEDED


def test_a_staged_task_revoked_before_it_starts_never_runs(h, port):
    worker, running, waiting, order, gate = _staged_behind_a_gated_task(h, port)
    assert order == [waiting]
    worker.revoke(waiting)
    assert not worker._staging.started()  # taken back at once: it had not started
    gate.send(None)
    assert h.wait(running, timeout=30).state is TaskState.SUCCEEDED
    status = h.wait(waiting, timeout=30)
    assert status.state is TaskState.CANCELLED and status.meta.get("revoked") is True
