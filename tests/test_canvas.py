"""Canvas: chains (worker-driven), groups and chords, including failures."""

from __future__ import annotations

import pytest
from worker_support import Harness

import stemnb
from stemnb import TaskHandler, TaskState, signature


@pytest.fixture
def h():
    harness = Harness()
    harness.registry.register("add", TaskHandler.inline(lambda ctx, a: a["x"] + ctx.meta.get("chainPrevResult", 0)))
    harness.registry.register("boom", TaskHandler.inline(lambda ctx, a: 1 / 0))
    harness.registry.register("sum", TaskHandler.inline(lambda ctx, a: sum(ctx.meta["chordResults"])))
    yield harness
    harness.close()


def test_chain_passes_each_result_to_the_next_step(h):
    h.worker()
    chain = h.stem.chain([signature("add", {"x": 1}), signature("add", {"x": 10}), signature("add", {"x": 100})])
    assert len(chain.ids) == 3
    status = chain.wait(10).result()
    assert status.state is TaskState.SUCCEEDED and status.payload == 111


def test_chain_step_failure_cancels_the_remaining_steps(h):
    h.worker()
    chain = h.stem.chain([signature("add", {"x": 1}), "boom", signature("add", {"x": 5})])
    last = chain.wait(10).result()
    assert last.state is TaskState.CANCELLED and last.error["type"] == "ChainError"
    assert h.backend.get(chain.ids[1]).state is TaskState.FAILED


def test_chain_is_driven_by_the_worker_not_the_producer(h):
    chain = h.stem.chain([signature("add", {"x": 1}), signature("add", {"x": 2})])
    # the producer does nothing more; a worker started later finishes the chain
    h.worker()
    assert h.wait(chain.ids[-1]).payload == 3


def test_group_collects_member_results_in_order(h):
    h.worker(concurrency=2)
    group = h.stem.group([signature("add", {"x": i}) for i in range(5)])
    statuses = group.wait(10).result()
    assert [s.payload for s in statuses] == [0, 1, 2, 3, 4]
    stored = h.backend.get_group(group.group_id)
    assert stored.is_complete and stored.succeeded


def test_chord_with_a_failed_member_fails_its_callback_without_running_it(h):
    worker, rec = h.worker()
    chord = h.stem.chord([signature("add", {"x": 1}), "boom"], "sum")
    status = chord.wait(10).result()
    assert status.state is TaskState.FAILED and status.error["type"] == "ChordError"
    assert not [e for e in rec.events if e.name == "sum"]


def test_chord_callback_is_dispatched_once_by_competing_workers(h):
    h.worker(consumer_name="w1")
    h.worker(consumer_name="w2")
    chord = h.stem.chord([signature("add", {"x": i}) for i in range(6)], "sum")
    assert chord.wait(10).result().payload == 15
    assert len(h.backend.list_statuses(task="sum")) == 1


def test_signatures_validate_and_round_trip():
    sig = signature("t", {"a": 1}, queue="io", countdown=2)
    assert stemnb.Signature.from_dict(sig.to_dict()) == sig
    with pytest.raises(TypeError, match="link"):
        stemnb.Signature("t", options={"link": "x"})
    with pytest.raises(ValueError):
        stemnb.Signature("")
    with pytest.raises(ValueError, match="at least one"):
        stemnb.Canvas(None).chain([])
