"""Relaying (``stemnb/_worker/_relay.py``): a runner's chain goes on in the pool reader thread that
settles the call it waits for; anywhere else, the runner thread goes on with it."""

from __future__ import annotations

import os
import threading
from concurrent.futures import CancelledError

import pytest

import stemnb
from stemnb import Middleware, TaskHandler, WorkerEventType
from stemnb._pool_lives import take_settling
from stemnb._worker._relay import run_chain
from stemnb.testing import eventually


def _pid() -> int:
    return os.getpid()


def _held(report) -> int:
    """Report a gate port on ``report``, wait until the test sends to it, return this pid."""
    gate = stemnb.ReceivePort()
    report.send(gate.send_port)
    gate.receive(60)
    gate.close()
    return os.getpid()


def _open_every_gate(port) -> None:
    """Release every call held by :func:`_held` that reported on ``port``, now and from now on."""
    port.listen(lambda gate: gate.send(None))


def _chain(pool, steps: int, where: list[str]):
    """Yield ``steps`` pool calls one after the other, noting the thread each step runs in."""
    for _ in range(steps):
        where.append(threading.current_thread().name)
        future = pool.run(_pid)
        yield future
        assert future.result() > 0
    where.append(threading.current_thread().name)


def test_a_chain_goes_on_in_the_reader_threads_that_settle_its_calls(pool):
    where: list[str] = []
    run_chain(_chain(pool, 6, where))
    me = threading.current_thread().name
    assert where[0] == me  # the first step runs where the chain was started
    assert len(where) == 7
    assert any(name != me for name in where[1:]), f"every step ran in the runner thread: {where}"


def test_a_call_done_before_the_chain_waits_goes_on_in_the_runner_thread(pool):
    done = pool.run(_pid)
    done.result(timeout=30)
    where: list[str] = []

    def chain():
        yield done
        where.append(threading.current_thread().name)

    run_chain(chain())
    assert where == [threading.current_thread().name]


def test_a_cancelled_call_wakes_the_runner_thread_to_go_on(pool, port):
    where: list[str] = []
    seen: list[BaseException] = []

    def chain():
        future = pool.run(_held, port.send_port)  # never released: it is cancelled
        threading.Thread(target=future.cancel, name="canceller").start()
        yield future
        where.append(threading.current_thread().name)
        with pytest.raises(CancelledError) as info:
            future.result()
        seen.append(info.value)

    run_chain(chain())
    assert where == [threading.current_thread().name]
    assert seen and isinstance(seen[0], CancelledError)
    assert pool.run(_pid).result(timeout=30) > 0  # the pool replaced the ended process


def test_what_a_chain_raises_in_a_reader_thread_is_raised_in_the_runner_thread(pool):
    def chain():
        yield pool.run(_pid)
        raise ValueError("a bug in the chain")

    with pytest.raises(ValueError, match="a bug in the chain"):
        run_chain(chain())


def test_a_chain_that_never_waits_ends_at_once():
    ran: list[int] = []

    def chain():
        ran.append(1)
        return
        yield  # pragma: no cover - makes this a generator

    run_chain(chain())
    assert ran == [1]


def test_only_the_first_callback_of_a_settled_call_may_go_on_in_the_reader_thread(pool, port):
    taken: list[bool] = []
    done = threading.Event()
    future = pool.run(_held, port.send_port)  # cannot end before the callbacks are added

    def first(f):
        taken.append(take_settling())
        taken.append(take_settling())  # taken already: work it does must not go on here again

    future.add_done_callback(first)
    future.add_done_callback(lambda f: done.set())
    port.receive(30).send(None)
    assert done.wait(30)
    assert taken == [True, False]
    assert take_settling() is False  # never outside a reader's settling


def _gated(ctx, args):
    return _held(args["report"])


def _gated_tasks(h):
    """Register ``gated`` (held until the test opens its gate) and ``boom``; args travel by
    cloudpickle, so a task can carry the port it reports its gate on."""
    h.registry.register("gated", TaskHandler(_gated, isolate=True))
    h.registry.register("boom", TaskHandler(lambda ctx, args: 1 / 0, isolate=True))
    encoder = stemnb.CloudpickleTaskPayloadEncoder()
    h.stem = stemnb.Stem(h.broker, h.backend, registry=h.registry, args_encoder=encoder)
    return encoder


def _noting_outcome_writes(worker) -> list[str]:
    """Note the thread of every fused write (a finished task's outcome with the next one's start)."""
    threads: list[str] = []
    fused = worker._paired.set_then_ack_then_running

    def noting(status, delivery, running):
        threads.append(threading.current_thread().name)
        return fused(status, delivery, running)

    worker._paired.set_then_ack_then_running = noting
    return threads


def test_a_worker_settles_every_task_exactly_once_when_reader_threads_go_on_with_its_chains(h, port):
    encoder = _gated_tasks(h)
    ids = [h.stem.enqueue("gated" if i % 3 else "boom", {"report": port.send_port}) for i in range(60)]
    worker, recorder = h.worker(start=False, concurrency=2, prefetch_multiplier=2, args_encoder=encoder)
    writes = _noting_outcome_writes(worker)
    worker.start()
    recorder.wait_for(WorkerEventType.PRERUN, count=2, timeout=60)  # both slots wait at their gates
    _open_every_gate(port)
    states = [h.wait(tid, timeout=60).state.value for tid in ids]
    assert states.count("succeeded") == 40 and states.count("failed") == 20
    eventually(lambda: len(worker._active) == 0, timeout=30)  # an outcome is stored before its ack and count
    counters = worker.stats()["counters"]
    assert counters["succeeded"] == 40 and counters["failed"] == 20
    assert h.broker.pending_count("default") == 0 and h.broker.inflight_count("default") == 0
    assert any("-runner-" not in name for name in writes), f"no outcome was stored by a reader thread: {writes}"


class _Quiet(Middleware):
    """A middleware that overrides nothing that matters here: its presence is the point."""

    def on_consume(self, delivery) -> None:
        pass


@pytest.mark.parametrize("user_code", ["event callback", "middleware"])
def test_with_an_event_callback_or_middleware_the_runner_threads_store_every_outcome(h, port, user_code):
    # user code that runs inside a step might wait for another task: only a runner may hold it
    encoder = _gated_tasks(h)
    ids = [h.stem.enqueue("gated", {"report": port.send_port}) for _ in range(20)]
    kwargs = {"middleware": [_Quiet()]} if user_code == "middleware" else {}
    worker, recorder = h.worker(start=False, concurrency=2, prefetch_multiplier=2, args_encoder=encoder, **kwargs)
    if user_code == "event callback":
        seen: list[str] = []
        task_events = [WorkerEventType.RECEIVED, WorkerEventType.PRERUN, WorkerEventType.COMPLETED, WorkerEventType.POSTRUN]
        worker.events.listen(lambda event: seen.append(threading.current_thread().name), types=task_events)
    writes = _noting_outcome_writes(worker)
    worker.start()
    recorder.wait_for(WorkerEventType.PRERUN, count=2, timeout=60)
    _open_every_gate(port)
    assert [h.wait(tid, timeout=60).state.value for tid in ids] == ["succeeded"] * 20
    assert writes and all("-runner-" in name for name in writes), writes
    if user_code == "event callback":
        assert len(seen) == 80 and all("-runner-" in name for name in seen), seen


def test_an_outcome_write_that_fails_in_a_reader_thread_gives_the_tasks_back_and_work_goes_on(h, port):
    encoder = _gated_tasks(h)
    ids = [h.stem.enqueue("gated", {"report": port.send_port}) for _ in range(12)]
    worker, recorder = h.worker(start=False, concurrency=2, prefetch_multiplier=2, args_encoder=encoder)
    fused = worker._paired.set_then_ack_then_running
    failed: list[str] = []

    def failing_once(status, delivery, running):
        if not failed:
            failed.append(threading.current_thread().name)
            raise ConnectionError("the backend went away for a moment")
        return fused(status, delivery, running)

    worker._paired.set_then_ack_then_running = failing_once
    worker.start()
    recorder.wait_for(WorkerEventType.PRERUN, count=2, timeout=60)  # both slots wait at their gates
    _open_every_gate(port)
    statuses = [h.wait(tid, timeout=60) for tid in ids]
    assert failed and "-runner-" not in failed[0], f"the failing write ran in {failed}"
    assert [s.state.value for s in statuses] == ["succeeded"] * 12  # the two tasks given back ran again
    errors = recorder.wait_for(WorkerEventType.ERROR, where=lambda e: e.data.get("where") == "settle", timeout=30)
    assert "the backend went away" in str(errors[0].error)
    eventually(lambda: len(worker._active) == 0, timeout=30)
    assert h.broker.pending_count("default") == 0 and h.broker.inflight_count("default") == 0
