"""The in-memory broker passes the broker contract, plus checks of its own."""

from __future__ import annotations

import threading
import time

import pytest

from stemnb import Envelope, InMemoryBroker
from stemnb.testing.broker_contract import BrokerContract


class TestInMemoryBrokerContract(BrokerContract):
    def make_broker(self) -> InMemoryBroker:
        return InMemoryBroker()


def test_in_memory_broker_rejects_non_positive_intervals():
    with pytest.raises(ValueError, match="claim_interval"):
        InMemoryBroker(claim_interval=0)
    with pytest.raises(ValueError, match="default_visibility_timeout"):
        InMemoryBroker(default_visibility_timeout=-1)


def test_in_memory_broker_uses_default_visibility_when_envelope_sets_none():
    with InMemoryBroker(default_visibility_timeout=12.0) as broker:
        broker.publish(Envelope("t"))
        with broker.consume("default") as consumer:
            before = time.time()
            delivery = consumer.get(timeout=1)
            assert before + 12.0 <= delivery.lease_expires_at <= time.time() + 12.0


def test_in_memory_consumer_takes_the_best_priority_across_its_queues():
    with InMemoryBroker() as broker:
        broker.publish(Envelope("low", queue="a", priority=1))
        broker.publish(Envelope("high", queue="b", priority=8))
        with broker.consume(["a", "b"], prefetch=2) as consumer:
            assert [consumer.get(1).envelope.name for _ in range(2)] == ["high", "low"]


def test_in_memory_lease_reclaim_happens_without_a_waiting_consumer():
    with InMemoryBroker() as broker:
        broker.publish(Envelope("t", visibility_timeout=0.1))
        consumer = broker.consume("default")
        delivery = consumer.get(timeout=1)
        consumer.close()
        assert broker.inflight_count("default") == 1
        assert broker.wait_drained("default", timeout=0.3) is False  # reclaimed, so now pending
        assert (broker.pending_count("default"), broker.inflight_count("default")) == (1, 0)
        assert broker.ack(delivery) is False


def test_in_memory_delayed_publish_wakes_a_consumer_sleeping_without_deadline():
    with InMemoryBroker() as broker, broker.consume("default") as consumer:
        got: list = []
        thread = threading.Thread(target=lambda: got.append(consumer.get(timeout=5)))
        thread.start()
        broker.publish(Envelope("t", not_before=time.time() + 0.1))
        thread.join()
        assert got[0] is not None and got[0].envelope.name == "t"


def test_in_memory_closed_consumer_still_lets_its_deliveries_be_acked():
    with InMemoryBroker() as broker:
        broker.publish(Envelope("t"))
        consumer = broker.consume("default")
        delivery = consumer.get(timeout=1)
        consumer.close()
        assert broker.ack(delivery) is True
        assert broker.inflight_count("default") == 0


def test_in_memory_broker_stress_many_threads_publish_and_consume_concurrently():
    total = 2000
    with InMemoryBroker() as broker:
        consumers = [broker.consume("default", prefetch=4) for _ in range(4)]
        seen: list[int] = []
        lock = threading.Lock()

        def consume(consumer):
            while (d := consumer.get(timeout=0.5)) is not None:
                with lock:
                    seen.append(d.envelope.args["i"])
                broker.ack(d)

        def produce(start):
            for i in range(start, total, 4):
                broker.publish(Envelope("t", {"i": i}, priority=i % 10))

        threads = [threading.Thread(target=consume, args=(c,)) for c in consumers]
        threads += [threading.Thread(target=produce, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(seen) == list(range(total))


def test_in_memory_lease_index_stays_bounded_under_steady_traffic():
    with InMemoryBroker() as broker, broker.consume("default", prefetch=4) as consumer:
        for _ in range(5000):
            broker.publish(Envelope("t"))
            delivery = consumer.get(timeout=1)
            broker.extend_lease(delivery, 60)
            broker.ack(delivery)
        queue = broker._queues["default"]
        assert len(queue.leases) <= 1024 + 2


def test_in_memory_get_leased_leases_a_ready_envelope_at_once_within_the_prefetch():
    broker = InMemoryBroker()
    for i in range(3):
        broker.publish(Envelope("t", {"i": i}))
    broker.publish(Envelope("t", {"i": "later"}, not_before=time.time() + 3600))
    with broker.consume("default", prefetch=2) as consumer:
        first, second = consumer.get_leased(), consumer.get_leased()
        assert [first.envelope.args["i"], second.envelope.args["i"]] == [0, 1]
        assert consumer.get_leased() is None  # the prefetch is full: nothing more is leased
        assert broker.inflight_count("default") == 2
        assert broker.ack(first) is True
        third = consumer.get_leased()
        assert third.envelope.args["i"] == 2
        broker.ack(second)
        assert consumer.get_leased() is None  # only the delayed one is left
        broker.ack(third)
    assert consumer.get_leased() is None  # closed
    assert broker.pending_count("default") == 0 and broker.delayed_count("default") == 1


def test_the_base_consumer_hands_out_nothing_from_get_leased():
    from stemnb._broker import Consumer

    class OneAtATime(Consumer):  # leases only in get(), as a broker across the network may
        queues = ("default",)
        closed = False

        def get(self, timeout=None):
            return None

        def close(self):
            pass

    assert OneAtATime().get_leased() is None
