"""Soak: 10,000 tasks of mixed outcomes at concurrency = cores; every task ends exactly once."""

from __future__ import annotations

import collections
import os
import time

import psutil
import pytest
from worker_support import Harness

import stemnb
from stemnb import TaskHandler, TaskOptions, TaskState, WorkerEventType

E = WorkerEventType
TERMINAL_EVENTS = {E.COMPLETED, E.FAILED, E.REVOKED}


def isolated_square(ctx, args):
    if args["n"] % 7 == 0:
        raise ArithmeticError(f"{args['n']} is unlucky")
    return args["n"] ** 2


def isolated_stuck(ctx, args):
    time.sleep(60)


def _flaky(ctx, args):
    if ctx.attempt == 0:
        raise RuntimeError("transient")
    return "recovered"


@pytest.mark.slow
def test_ten_thousand_mixed_tasks_each_end_in_exactly_one_terminal_state():
    h = Harness()
    try:
        _soak(h)
    finally:
        h.close()


@pytest.mark.slow
@pytest.mark.redis
def test_ten_thousand_mixed_tasks_on_redis_each_end_in_exactly_one_terminal_state():
    # on Redis a finished task hands its slot to the next one with one write (the worker's
    # _handover): the same outcomes, exactly once each
    from redis_support import REDIS_URL, drop_namespace

    namespace = f"stemnb-soak-{os.getpid()}-{time.monotonic_ns()}"
    h = Harness()
    h.broker.close()
    h.backend.close()
    h.broker = stemnb.RedisBroker(REDIS_URL, namespace=namespace, claim_interval=0.05)
    h.backend = stemnb.RedisResultBackend(REDIS_URL, namespace=namespace)
    h.stem = stemnb.Stem(h.broker, h.backend, registry=h.registry)
    try:
        _soak(h)
    finally:
        h.close()
        drop_namespace(namespace)


def _soak(h: Harness) -> None:
    cores = os.cpu_count() or 1
    reg = h.registry
    reg.register("ok", TaskHandler.inline(lambda ctx, a: a["n"]))
    reg.register("fail", TaskHandler.inline(lambda ctx, a: 1 / 0))
    reg.register("flaky", TaskHandler.inline(_flaky, TaskOptions(max_retries=1)))
    reg.register("asks", TaskHandler.inline(lambda ctx, a: ctx.retry(countdown=0), TaskOptions(max_retries=1)))
    reg.register("iso", TaskHandler(isolated_square))
    reg.register("stuck", TaskHandler(isolated_stuck, TaskOptions(hard_time_limit=0.3)))
    worker, rec = h.worker(concurrency=cores, prefetch_multiplier=2, heartbeat_interval=0)
    pids = set()
    worker.events.listen(lambda e: pids.add(e.data["pid"]) if e.type is E.CHILD_INIT else None)

    expected: dict[str, TaskState] = {}
    for n in range(10_000):
        kind = n % 20
        if n % 50 == 0:
            tid = h.stem.enqueue("iso", {"n": n})
            expected[tid] = TaskState.FAILED if n % 7 == 0 else TaskState.SUCCEEDED
        elif n == 5_001 or n == 9_001:
            expected[h.stem.enqueue("stuck", {})] = TaskState.FAILED
        elif kind == 1:
            expected[h.stem.enqueue("fail", {})] = TaskState.FAILED
        elif kind == 2:
            expected[h.stem.enqueue("flaky", {})] = TaskState.SUCCEEDED
        elif kind == 3:
            expected[h.stem.enqueue("asks", {})] = TaskState.FAILED
        elif kind == 4:
            expected[h.stem.enqueue("ok", {"n": n}, expires=0)] = TaskState.CANCELLED
        elif kind == 5:
            tid = stemnb.new_task_id()
            worker.revoke(tid, reason="soak")
            expected[h.stem.enqueue("ok", {"n": n}, task_id=tid)] = TaskState.CANCELLED
        elif kind == 6:
            expected[h.stem.enqueue("missing-task", {})] = TaskState.FAILED
        else:
            expected[h.stem.enqueue("ok", {"n": n})] = TaskState.SUCCEEDED

    assert h.broker.wait_drained("default", timeout=280), "tasks left in the broker"
    rec.wait_for(E.POSTRUN, count=len(expected) + _retries(expected, h), timeout=60)
    worker.shutdown(stemnb.WorkerShutdownMode.WARM).result(60)

    terminal = collections.Counter(e.task_id for e in rec.events if e.type in TERMINAL_EVENTS)
    wrong = {tid: (h.backend.get(tid).state, want) for tid, want in expected.items() if h.backend.get(tid).state is not want}
    assert not wrong, list(wrong.items())[:5]
    assert set(terminal) == set(expected) and set(terminal.values()) == {1}
    failures = sum(1 for s in expected.values() if s is TaskState.FAILED)
    assert len(h.broker.list_dead_letters("default", limit=20_000)) == failures
    assert h.broker.inflight_count("default") == 0 and worker.inflight == 0
    assert worker.pool.closed and pids
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []


def _retries(expected: dict[str, TaskState], h: Harness) -> int:
    # every flaky and asks task ran twice: one POSTRUN for the retry, one for the end
    return sum(1 for tid in expected if h.backend.get(tid).meta.get("task") in ("flaky", "asks"))
