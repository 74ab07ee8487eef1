"""The Redis broker passes the broker contract against the real Redis server on this machine."""

from __future__ import annotations

import uuid

import pytest
from redis_support import REDIS_URL
from redis_support import drop_namespace as _drop_namespace

from stemnb.testing.broker_contract import BrokerContract

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis



class TestRedisBrokerContract(BrokerContract):
    def make_broker(self):
        from stemnb import RedisBroker

        return RedisBroker(REDIS_URL, namespace=f"stemnb-test-{uuid.uuid4().hex[:8]}")

    @pytest.fixture
    def broker(self):
        broker = self.make_broker()
        try:
            yield broker
        finally:
            broker.close()
            _drop_namespace(broker.namespace)


def _run_child(code: str) -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"child failed ({done.returncode}):\n{done.stderr}"


def test_redis_broker_delivers_envelopes_published_by_another_process():
    from stemnb import RedisBroker

    namespace = f"stemnb-test-{uuid.uuid4().hex[:8]}"
    _run_child(
        "from stemnb import RedisBroker, Envelope\n"
        f"b = RedisBroker({REDIS_URL!r}, namespace={namespace!r})\n"
        "for i in range(20): b.publish(Envelope('t', {'i': i}, priority=i % 3))\n"
        "b.close()\n"
    )
    broker = RedisBroker(REDIS_URL, namespace=namespace)
    try:
        with broker.consume("default", prefetch=20) as consumer:
            got = [consumer.get(timeout=5) for _ in range(20)]
            for delivery in got:
                broker.ack(delivery)
        assert sorted(d.envelope.args["i"] for d in got) == list(range(20))
        assert [d.envelope.priority for d in got] == sorted(
            (d.envelope.priority for d in got), reverse=True
        )
    finally:
        broker.close()
        _drop_namespace(namespace)


def test_redis_delivery_of_a_consumer_process_that_died_is_redelivered_after_its_lease():
    from stemnb import Envelope, RedisBroker

    namespace = f"stemnb-test-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(REDIS_URL, namespace=namespace)
    try:
        env = Envelope("t", {"x": 1}, visibility_timeout=0.5)
        broker.publish(env)
        _run_child(
            "import os\n"
            "from stemnb import RedisBroker\n"
            f"b = RedisBroker({REDIS_URL!r}, namespace={namespace!r})\n"
            "d = b.consume('default').get(timeout=5)\n"
            "assert d is not None\n"
            "os._exit(0)  # die holding the lease\n"
        )
        assert broker.inflight_count("default") == 1
        with broker.consume("default") as consumer:
            again = consumer.get(timeout=10)
        assert again is not None and again.envelope.id == env.id and again.redelivered
        assert broker.ack(again) is True
    finally:
        broker.close()
        _drop_namespace(namespace)


def test_closing_the_redis_broker_ends_a_blocked_get_without_error():
    import threading

    from stemnb import RedisBroker

    namespace = f"stemnb-test-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(REDIS_URL, namespace=namespace)
    consumer = broker.consume("default")
    results: list = []
    errors: list = []

    def blocked_get():
        try:
            results.append(consumer.get())
        except Exception as exc:  # pragma: no cover - the failure being tested for
            errors.append(exc)

    thread = threading.Thread(target=blocked_get)
    thread.start()
    broker.close()
    thread.join(timeout=10)
    _drop_namespace(namespace)
    assert not thread.is_alive() and errors == [] and results == [None]


def test_redis_broker_dead_letters_an_undecodable_message_instead_of_handing_it_out():
    import time

    from stemnb import Envelope, RedisBroker

    namespace = f"stemnb-test-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(REDIS_URL, namespace=namespace)
    try:
        junk = ["{not json", 0, "", repr(time.time()), ""]  # e.g. written by a foreign producer
        broker._scripts["PUBLISH"](keys=broker._publish_keys("default"), args=junk)
        good = Envelope("t")
        broker.publish(good)
        with broker.consume("default") as consumer:
            delivery = consumer.get(timeout=5)
            assert delivery.envelope.id == good.id
            broker.ack(delivery)
        [entry] = broker.list_dead_letters("default")
        assert entry.reason == "malformed-envelope" and entry.envelope.args["raw"] == "{not json"
        assert "JSONDecodeError" in entry.meta["error"]
        assert broker.statistics("default").inflight == 0
    finally:
        broker.close()
        _drop_namespace(namespace)


def test_redis_broker_refuses_args_that_are_not_json_data():
    from stemnb import EncodingError, Envelope, RedisBroker

    namespace = f"stemnb-test-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(REDIS_URL, namespace=namespace)
    try:
        with pytest.raises(EncodingError, match="not JSON data"):
            broker.publish(Envelope("t", {"s": {1, 2}}))
        assert broker.pending_count("default") == 0
    finally:
        broker.close()
        _drop_namespace(namespace)


def test_redis_consumer_close_requeues_envelopes_it_leased_ahead_but_never_handed_out():
    from stemnb import Envelope, RedisBroker

    namespace = f"stemnb-test-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(REDIS_URL, namespace=namespace)
    try:
        for i in range(5):
            broker.publish(Envelope("t", {"i": i}))
        consumer = broker.consume("default", prefetch=5)
        first = consumer.get(timeout=5)  # leases all five in one round trip
        assert broker.inflight_count("default") == 5
        consumer.close()
        assert (broker.pending_count("default"), broker.inflight_count("default")) == (4, 1)
        assert broker.ack(first) is True
    finally:
        broker.close()
        _drop_namespace(namespace)


def test_closing_a_consumer_ends_its_broadcast_listener_and_its_connection_before_returning():
    import threading

    from stemnb import Envelope, RedisBroker

    broker = RedisBroker(REDIS_URL, namespace=f"stemnb-test-{uuid.uuid4().hex[:8]}")
    try:
        before = set(threading.enumerate())
        consumer = broker.consume("default", broadcasts=["news"])
        broker.broadcast("news", Envelope("hello", {}))
        assert consumer.get(timeout=5).envelope.name == "hello"
        listeners = [t for t in set(threading.enumerate()) - before if t.name == "stemnb-redis-broadcast-watch"]
        connection = consumer._listener._session.conn
        consumer.close()
        assert listeners and not any(t.is_alive() for t in listeners)  # woken, not left to its poll
        assert connection._sock is None  # its connection is closed too
    finally:
        broker.close()
        _drop_namespace(broker.namespace)


def _break_queue_info(broker, queue="default"):
    """Make the queue's per-delivery info hash a string: every settle script of the queue then
    fails inside Redis (WRONGTYPE), a real failed round trip."""
    info_key = broker._queue_keys(queue)[4]
    client = redis.Redis.from_url(REDIS_URL)
    try:
        saved = client.dump(info_key)
        client.delete(info_key)
        client.set(info_key, "broken")
    finally:
        client.close()
    return info_key, saved


@pytest.mark.parametrize("settle", ["ack", "nack", "dead_letter"])
def test_a_settle_that_fails_in_redis_stops_counting_the_delivery_against_the_prefetch(settle):
    from stemnb import Envelope, RedisBroker

    broker = RedisBroker(REDIS_URL, namespace=f"stemnb-test-{uuid.uuid4().hex[:8]}")
    try:
        for i in range(2):
            broker.publish(Envelope("t", {"i": i}))
        consumer = broker.consume("default", prefetch=1)
        first = consumer.get(timeout=5)
        info_key, saved = _break_queue_info(broker)
        call = {"ack": lambda: broker.ack(first), "nack": lambda: broker.nack(first, requeue=True),
                "dead_letter": lambda: broker.dead_letter(first, "test")}[settle]
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            call()
        client = redis.Redis.from_url(REDIS_URL)
        client.delete(info_key)
        client.restore(info_key, 0, saved)
        client.close()
        second = consumer.get(timeout=5)  # the failed one is left to its lease, not held for good
        assert second is not None and second.envelope.args == {"i": 1}
        assert broker.ack(second) is True
        consumer.close()
    finally:
        broker.close()
        _drop_namespace(broker.namespace)


@pytest.fixture
def fresh_broker():
    """A Redis broker in a namespace of its own, closed and dropped after the test."""
    from stemnb import RedisBroker

    broker = RedisBroker(REDIS_URL, namespace=f"stemnb-test-{uuid.uuid4().hex[:8]}")
    try:
        yield broker
    finally:
        broker.close()
        _drop_namespace(broker.namespace)


def test_a_consumer_of_several_queues_takes_the_best_envelope_across_them_in_one_round_trip(fresh_broker):
    from stemnb import Envelope

    broker = fresh_broker
    for queue, priority, tag in [("a", 0, "a0"), ("b", 9, "b9"), ("a", 5, "a5"), ("b", 5, "b5"), ("b", 0, "b0")]:
        broker.publish(Envelope("t", {"tag": tag}, queue=queue, priority=priority))
    with broker.consume(["a", "b"], prefetch=5) as consumer:
        first = consumer.get(timeout=5)  # leases all five in one take
        assert broker.inflight_count("a") + broker.inflight_count("b") == 5
        got = [first] + [consumer.get(timeout=5) for _ in range(4)]
        # priority first, then publish order across the queues
        assert [d.envelope.args["tag"] for d in got] == ["b9", "a5", "b5", "a0", "b0"]
        assert [d.queue for d in got] == ["b", "a", "b", "a", "b"]
        assert all(broker.ack(d) for d in got)
    assert broker.pending_count("a") == broker.pending_count("b") == 0


def test_a_take_of_more_than_is_ready_leases_what_there_is_and_leaves_the_rest_delayed(fresh_broker):
    import time

    from stemnb import Envelope

    broker = fresh_broker
    broker.publish(Envelope("t", {"i": 1}))
    broker.publish(Envelope("t", {"i": 2}, not_before=time.time() + 3600))
    with broker.consume("default", prefetch=8) as consumer:
        assert consumer.get(timeout=5).envelope.args == {"i": 1}
        assert consumer.get(timeout=0.2) is None  # the other is not due
        counts = broker.statistics("default")
        assert (counts.pending, counts.delayed, counts.inflight) == (0, 1, 1)


def test_a_queue_nobody_consumes_keeps_a_bounded_wake_list(fresh_broker, redis_client):
    from stemnb import Envelope

    for i in range(300):
        fresh_broker.publish(Envelope("t", {"i": i}))
    wake = fresh_broker._queue_keys("default", "wake")[-1]
    assert 64 <= redis_client.llen(wake) <= 128
    assert fresh_broker.pending_count("default") == 300
