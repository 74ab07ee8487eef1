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


def test_enqueue_many_enqueues_one_task_per_args_in_order(h):
    h.worker(concurrency=2)
    ids = h.stem.enqueue_many("add", [{"x": i} for i in range(20)], priority=3)
    assert len(set(ids)) == 20
    assert [h.wait(i).payload for i in ids] == list(range(20))


def test_enqueue_many_with_one_unencodable_item_enqueues_nothing(h):
    with pytest.raises(stemnb.EncodingError, match=r"task #2 \('add'\)"):
        h.stem.enqueue_many("add", [{"x": 0}, {"x": 1}, {"x": {1, 2}}, {"x": 3}])
    assert h.broker.pending_count("default") == 0
    assert h.backend.list_statuses() == []


def test_enqueue_many_refuses_a_shared_task_id(h):
    with pytest.raises(ValueError, match="do not pass task_id"):
        h.stem.enqueue_many("add", [{"x": 1}], task_id="same")


def test_enqueue_many_of_nothing_enqueues_nothing(h):
    assert h.stem.enqueue_many("add", []) == []
    assert h.broker.pending_count("default") == 0


def test_a_batch_runs_its_members_and_reports_their_states(h):
    batch = h.stem.batch([signature("add", {"x": i}) for i in range(3)] + ["boom"], batch_id="b1")
    assert batch.created and batch.batch_id == "b1" and len(batch.ids) == 4
    before = h.stem.inspect_batch("b1")
    assert before.counts == {"queued": 4} and not before.done
    h.worker(concurrency=2)
    statuses = batch.wait(10).result()
    assert [s.state for s in statuses] == [TaskState.SUCCEEDED] * 3 + [TaskState.FAILED]
    after = batch.status()
    assert after.done and not after.succeeded
    assert after.counts == {"succeeded": 3, "failed": 1}
    assert after.ids == batch.ids


def test_submitting_a_batch_id_again_enqueues_nothing_and_returns_the_first_batch(h):
    first = h.stem.batch([signature("add", {"x": 1}), signature("add", {"x": 2})], batch_id="again")
    second = h.stem.batch([signature("add", {"x": 99})], batch_id="again")
    assert not second.created and second.ids == first.ids
    assert h.broker.pending_count("default") == 2
    h.worker()
    assert [s.payload for s in second.wait(10).result()] == [1, 2]


def test_a_batch_with_unencodable_args_records_nothing(h):
    with pytest.raises(stemnb.EncodingError):
        h.stem.batch([signature("add", {"x": 1}), signature("add", {"x": {1}})], batch_id="bad")
    assert h.stem.inspect_batch("bad") is None
    assert h.broker.pending_count("default") == 0
    assert h.stem.batch([signature("add", {"x": 1})], batch_id="bad").created  # the id is still free


def test_inspect_batch_of_an_unknown_id_or_a_plain_group_is_none(h):
    group = h.stem.group([signature("add", {"x": 1})])
    assert h.stem.inspect_batch("nope") is None
    assert h.stem.inspect_batch(group.group_id) is None


def test_a_batch_needs_members(h):
    with pytest.raises(ValueError, match="at least one member"):
        h.stem.batch([])
