"""Paired writes (a task's status, then a broker step) in one script on the real Redis server."""

from __future__ import annotations

import queue
import uuid

import pytest
from redis_support import REDIS_URL
from redis_support import drop_namespace as _drop

import stemnb
from stemnb import Envelope, TaskState, TaskStatus
from stemnb._paired import InProcessPairedWrites, PairedWrites, paired_writes
from stemnb._redis_paired import RedisPairedWrites

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis


@pytest.fixture
def parts():
    namespace = f"stemnb-test-{uuid.uuid4().hex[:8]}"
    broker = stemnb.RedisBroker(REDIS_URL, namespace=namespace)
    backend = stemnb.RedisResultBackend(REDIS_URL, namespace=namespace)
    yield broker, backend
    broker.close()
    backend.close()
    _drop(namespace)


def _other_database(url: str) -> str:
    base, _, db = url.rpartition("/")
    return f"{base}/{(int(db or 0) + 1) % 16}"


def _lease(broker: stemnb.RedisBroker) -> stemnb.Delivery:
    broker.publish(Envelope("t", {}))
    with broker.consume("default") as consumer:
        delivery = consumer.get(timeout=5)
    assert delivery is not None
    return delivery


def test_parts_on_one_redis_database_write_in_one_script(parts):
    assert isinstance(paired_writes(*parts), RedisPairedWrites)


def test_parts_on_different_databases_or_mixed_write_in_two_calls_and_in_memory_ones_hand_over(parts):
    broker, backend = parts
    elsewhere = stemnb.RedisResultBackend(_other_database(REDIS_URL), namespace=backend.namespace)
    try:
        assert type(paired_writes(broker, elsewhere)) is PairedWrites
        assert type(paired_writes(stemnb.InMemoryBroker(), elsewhere)) is PairedWrites
    finally:
        elsewhere.close()
    in_memory = paired_writes(stemnb.InMemoryBroker(), stemnb.InMemoryResultBackend())
    assert type(in_memory) is InProcessPairedWrites and in_memory.fuses_running
    assert not PairedWrites.fuses_running


def test_a_backend_subclass_that_overrides_set_gets_its_override_called(parts):
    broker, backend = parts
    calls = []

    class Recording(stemnb.RedisResultBackend):
        def set(self, task_id, state, **kwargs):
            calls.append(task_id)
            return super().set(task_id, state, **kwargs)

    recording = Recording(REDIS_URL, namespace=backend.namespace)
    try:
        paired = paired_writes(broker, recording)
        assert type(paired) is PairedWrites
        paired.set_then_publish(TaskStatus("x", TaskState.QUEUED), Envelope("t", {}, id="x"))
        assert calls == ["x"]
    finally:
        recording.close()


def test_set_then_publish_stores_queued_and_publishes_the_envelope(parts):
    broker, backend = parts
    envelope = Envelope("t", {"a": 1})
    stored = paired_writes(broker, backend).set_then_publish(
        TaskStatus(envelope.id, TaskState.QUEUED, meta={"task": "t"}), envelope
    )
    assert stored.state is TaskState.QUEUED
    assert backend.get(envelope.id).meta == {"task": "t"}
    with broker.consume("default") as consumer:
        assert consumer.get(timeout=5).envelope.args == {"a": 1}


def test_set_then_ack_stores_the_status_and_settles_the_lease(parts):
    broker, backend = parts
    delivery = _lease(broker)
    seen: queue.Queue = queue.Queue()
    with backend.watch(delivery.envelope.id, seen.put):
        paired_writes(broker, backend).set_then_ack(
            TaskStatus(delivery.envelope.id, TaskState.SUCCEEDED, payload=3), delivery
        )
        status = backend.wait_for(delivery.envelope.id, timeout=5)
        watched = seen.get(timeout=5)  # the watcher runs on the listener thread: wait for it, not for wait_for
    assert status.payload == 3 and watched.state is TaskState.SUCCEEDED
    assert broker.inflight_count("default") == 0 and broker.ack(delivery) is False


def test_set_then_dead_letter_stores_failed_and_keeps_the_entry(parts):
    broker, backend = parts
    delivery = _lease(broker)
    error = {"type": "E", "message": "m", "traceback": ""}
    paired_writes(broker, backend).set_then_dead_letter(
        TaskStatus(delivery.envelope.id, TaskState.FAILED, error=error), delivery, "boom", {"k": 1}
    )
    assert backend.get(delivery.envelope.id).state is TaskState.FAILED
    entry = broker.get_dead_letter("default", delivery.envelope.id)
    assert entry.reason == "boom" and entry.meta == {"k": 1}
    assert broker.inflight_count("default") == 0


def test_a_status_write_that_fails_in_redis_leaves_the_delivery_unacked(parts):
    broker, backend = parts
    delivery = _lease(broker)
    redis.Redis.from_url(REDIS_URL).set(f"{backend.namespace}:tasks", "not a sorted set")
    status = TaskStatus(delivery.envelope.id, TaskState.SUCCEEDED)
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        paired_writes(broker, backend).set_then_ack(status, delivery)
    assert broker.inflight_count("default") == 1
    assert broker.ack(delivery) is True  # the lease was still held


def test_an_unencodable_status_is_refused_before_anything_is_written(parts):
    broker, backend = parts
    envelope = Envelope("t", {})
    with pytest.raises(stemnb.EncodingError):
        paired_writes(broker, backend).set_then_publish(
            TaskStatus(envelope.id, TaskState.QUEUED, payload={1, 2}), envelope
        )
    assert backend.get(envelope.id) is None and broker.pending_count("default") == 0


def test_an_ack_through_paired_writes_refills_the_consumer_in_the_same_round_trip(parts):
    broker, backend = parts
    for i in range(3):
        broker.publish(Envelope("t", {"i": i}))
    with broker.consume("default", prefetch=2) as consumer:
        first = consumer.get(timeout=5)
        assert first.envelope.args == {"i": 0}
        held_ahead = consumer.get_leased()  # leased ahead with the first (prefetch 2)
        assert held_ahead.envelope.args == {"i": 1}
        assert consumer.get_leased() is None
        paired_writes(broker, backend).set_then_ack(TaskStatus(first.envelope.id, TaskState.SUCCEEDED), first)
        refill = consumer.get_leased()
        assert refill is not None and refill.envelope.args == {"i": 2}
        assert broker.inflight_count("default") == 2  # still within the prefetch
        assert consumer.get_leased() is None


@pytest.mark.parametrize("running", [False, True], ids=["ack", "ack-then-running"])
def test_a_paired_ack_that_fails_in_redis_stops_counting_the_delivery_against_the_prefetch(parts, running):
    broker, backend = parts
    for i in range(2):
        broker.publish(Envelope("t", {"i": i}))
    consumer = broker.consume("default", prefetch=1)
    try:
        first = consumer.get(timeout=5)
        client = redis.Redis.from_url(REDIS_URL)
        client.set(f"{backend.namespace}:tasks", "not a sorted set")
        writes = paired_writes(broker, backend)
        done = TaskStatus(first.envelope.id, TaskState.SUCCEEDED)
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            if running:
                writes.set_then_ack_then_running(done, first, TaskStatus("next", TaskState.RUNNING))
            else:
                writes.set_then_ack(done, first)
        client.delete(f"{backend.namespace}:tasks")
        client.close()
        second = consumer.get(timeout=5)  # the failed one is left to its lease, not held for good
        assert second is not None and second.envelope.args == {"i": 1}
        assert broker.inflight_count("default") == 2 and broker.ack(first) is True
    finally:
        consumer.close()
