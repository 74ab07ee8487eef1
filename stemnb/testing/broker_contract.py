"""The broker contract suite (a port of Stem's ``runBrokerContractTests``).

Subclass :class:`BrokerContract` in a test module whose class name starts with ``Test`` and
implement :meth:`~BrokerContract.make_broker`; pytest then runs every check against your broker::

    from stemnb.testing.broker_contract import BrokerContract

    class TestMyBroker(BrokerContract):
        def make_broker(self):
            return MyBroker(...)

Capability flags (class attributes) switch optional checks off, as Stem's ``verify*`` flags do.
Every test uses fresh queue names, so suites can share one external server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from .._broker import Broker, Consumer
from .._envelope import Delivery, Envelope
from .._exceptions import ClosedError
from ._helpers import join, unique_name

__all__ = ["BrokerContract"]


class BrokerContract:
    """Mixin holding the broker contract; supply :meth:`make_broker`."""

    #: Check that higher priority is delivered first (needs ``supports_priority``).
    verify_priority_ordering: bool = True
    #: Check that a broadcast reaches every subscribed consumer.
    verify_broadcast_fanout: bool = True
    #: Check eta/countdown delivery (needs ``supports_delayed``).
    verify_delayed_delivery: bool = True
    #: Lease length used by the lease tests, seconds.
    visibility_timeout: float = 0.3
    #: How long a test waits for a delivery that must come, seconds.
    receive_timeout: float = 5.0
    #: Delay used by the delayed-delivery and replay-delay tests, seconds.
    delay: float = 0.3

    def make_broker(self) -> Broker:
        """Return a new, empty broker for one test."""
        raise NotImplementedError("subclasses of BrokerContract implement make_broker()")

    @pytest.fixture
    def broker(self) -> Iterator[Broker]:
        broker = self.make_broker()
        try:
            yield broker
        finally:
            broker.close()

    @pytest.fixture
    def queue(self) -> str:
        return unique_name("q")

    def _get(self, consumer: Consumer) -> Delivery:
        delivery = consumer.get(timeout=self.receive_timeout)
        assert delivery is not None, f"no delivery within {self.receive_timeout} s"
        return delivery

    # -- basic lifecycle ---------------------------------------------------------------------
    def test_published_envelope_is_delivered_and_ack_removes_it(self, broker, queue):
        env = Envelope(
            "contract.task", {"x": 1, "nested": [1, "a"]}, queue=queue, headers={"h": "v"}
        )
        broker.publish(env)
        with broker.consume(queue) as consumer:
            delivery = self._get(consumer)
            assert delivery.envelope == env
            assert delivery.queue == queue
            assert broker.ack(delivery) is True
            assert consumer.get(timeout=0.05) is None
        assert broker.pending_count(queue) == 0
        assert broker.inflight_count(queue) == 0

    def test_publish_honours_queue_override(self, broker, queue):
        other = unique_name("other")
        broker.publish(Envelope("contract.task", queue=queue), queue=other)
        assert broker.pending_count(queue) == 0
        with broker.consume(other) as consumer:
            delivery = self._get(consumer)
            assert delivery.envelope.queue == other
            broker.ack(delivery)

    def test_pending_and_inflight_counts_follow_the_lifecycle(self, broker, queue):
        broker.publish(Envelope("contract.task", queue=queue))
        broker.publish(Envelope("contract.task", queue=queue))
        assert (broker.pending_count(queue), broker.inflight_count(queue)) == (2, 0)
        with broker.consume(queue, prefetch=2) as consumer:
            first = self._get(consumer)
            # a consumer may lease ahead within its prefetch, so only the sum is fixed here
            assert broker.pending_count(queue) + broker.inflight_count(queue) == 2
            assert broker.inflight_count(queue) >= 1
            second = self._get(consumer)
            assert (broker.pending_count(queue), broker.inflight_count(queue)) == (0, 2)
            broker.ack(first)
            assert (broker.pending_count(queue), broker.inflight_count(queue)) == (0, 1)
            broker.ack(second)
        assert (broker.pending_count(queue), broker.inflight_count(queue)) == (0, 0)

    def test_nack_with_requeue_redelivers(self, broker, queue):
        env = Envelope("contract.task", queue=queue)
        broker.publish(env)
        with broker.consume(queue) as consumer:
            assert broker.nack(self._get(consumer), requeue=True) is True
            again = self._get(consumer)
            assert again.envelope.id == env.id
            broker.ack(again)

    def test_nack_without_requeue_drops_the_envelope(self, broker, queue):
        broker.publish(Envelope("contract.task", queue=queue))
        with broker.consume(queue) as consumer:
            assert broker.nack(self._get(consumer), requeue=False) is True
            assert consumer.get(timeout=0.05) is None
        assert broker.pending_count(queue) + broker.inflight_count(queue) == 0

    # -- dead letters ------------------------------------------------------------------------
    def test_dead_letter_can_be_listed_fetched_and_purged(self, broker, queue):
        env = Envelope("contract.task", {"v": 1}, queue=queue)
        broker.publish(env)
        with broker.consume(queue) as consumer:
            assert broker.dead_letter(self._get(consumer), "boom", {"why": "test"}) is True
        assert broker.inflight_count(queue) == 0
        [entry] = broker.list_dead_letters(queue)
        assert (entry.envelope, entry.reason, entry.meta) == (env, "boom", {"why": "test"})
        assert broker.get_dead_letter(queue, env.id) == entry
        assert broker.get_dead_letter(queue, "no-such-id") is None
        assert broker.purge_dead_letters(queue) == 1
        assert broker.list_dead_letters(queue) == []

    def test_dead_letters_are_listed_newest_first_and_paged(self, broker, queue):
        envs = [Envelope("contract.task", {"i": i}, queue=queue) for i in range(3)]
        with broker.consume(queue) as consumer:
            for env in envs:
                broker.publish(env)
                broker.dead_letter(self._get(consumer), f"r{env.args['i']}")
        listed = broker.list_dead_letters(queue)
        assert [e.envelope.id for e in listed] == [e.id for e in reversed(envs)]
        assert [e.envelope.id for e in broker.list_dead_letters(queue, limit=1, offset=1)] == [
            envs[1].id
        ]

    def test_replay_requeues_dead_letters(self, broker, queue):
        env = Envelope("contract.task", {"v": 2}, queue=queue)
        broker.publish(env)
        with broker.consume(queue) as consumer:
            broker.dead_letter(self._get(consumer), "boom")
            replayed = broker.replay_dead_letters(queue)
            assert [e.id for e in replayed] == [env.id]
            assert broker.list_dead_letters(queue) == []
            again = self._get(consumer)
            assert (again.envelope.id, again.envelope.args) == (env.id, env.args)
            broker.ack(again)

    def test_replay_honours_a_delay(self, broker, queue):
        if not self.verify_delayed_delivery:
            pytest.skip("delayed delivery not verified for this broker")
        broker.publish(Envelope("contract.task", queue=queue))
        with broker.consume(queue) as consumer:
            broker.dead_letter(self._get(consumer), "boom")
            started = time.time()
            broker.replay_dead_letters(queue, delay=self.delay)
            assert consumer.get(timeout=0) is None
            again = self._get(consumer)
            assert time.time() >= started + self.delay - 0.02
            broker.ack(again)

    # -- concurrency ---------------------------------------------------------------------------
    def test_waiting_consumers_do_not_block_publish(self, broker, queue):
        consumers = [broker.consume(queue) for _ in range(3)]
        received: list[Delivery] = []
        lock = threading.Lock()

        def take(consumer: Consumer) -> None:
            delivery = consumer.get(timeout=self.receive_timeout)
            if delivery is not None:
                with lock:
                    received.append(delivery)
                broker.ack(delivery)

        threads = [threading.Thread(target=take, args=(c,)) for c in consumers]
        for thread in threads:
            thread.start()
        for i in range(3):
            broker.publish(Envelope("contract.task", {"i": i}, queue=queue))
        for thread in threads:
            thread.join()
        for consumer in consumers:
            consumer.close()
        assert sorted(d.envelope.args["i"] for d in received) == [0, 1, 2]

    def test_concurrent_consumers_receive_each_envelope_exactly_once(self, broker, queue):
        count = 300
        ids = set()
        for i in range(count):
            env = Envelope("contract.task", {"i": i}, queue=queue)
            ids.add(env.id)
            broker.publish(env)
        seen: list[str] = []
        lock = threading.Lock()

        def drain(consumer: Consumer) -> None:
            while (delivery := consumer.get(timeout=0.2)) is not None:
                with lock:
                    seen.append(delivery.envelope.id)
                assert broker.ack(delivery)

        consumers = [broker.consume(queue, prefetch=3) for _ in range(4)]
        threads = [threading.Thread(target=drain, args=(c,)) for c in consumers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for consumer in consumers:
            consumer.close()
        assert len(seen) == count and set(seen) == ids

    def test_prefetch_bounds_unsettled_deliveries_per_consumer(self, broker, queue):
        for _ in range(3):
            broker.publish(Envelope("contract.task", queue=queue))
        with broker.consume(queue, prefetch=2) as consumer:
            first, second = self._get(consumer), self._get(consumer)
            assert consumer.get(timeout=0.05) is None
            broker.ack(first)
            third = self._get(consumer)
            broker.ack(second)
            broker.ack(third)

    def test_closing_a_consumer_wakes_a_blocked_get(self, broker, queue):
        consumer = broker.consume(queue)
        result: list[object] = []
        thread = threading.Thread(target=lambda: result.append(consumer.get()))
        thread.start()
        consumer.close()
        thread.join(timeout=self.receive_timeout)
        assert not thread.is_alive()
        assert result == [None] and consumer.closed

    def test_consumer_of_several_queues_receives_from_each(self, broker, queue):
        other = unique_name("other")
        broker.publish(Envelope("contract.a", queue=queue))
        broker.publish(Envelope("contract.b", queue=other))
        with broker.consume([queue, other], prefetch=2) as consumer:
            got = [self._get(consumer), self._get(consumer)]
            assert sorted(d.queue for d in got) == sorted([queue, other])
            for delivery in got:
                broker.ack(delivery)

    # -- maintenance ---------------------------------------------------------------------------
    def test_purge_clears_pending_envelopes(self, broker, queue):
        for _ in range(3):
            broker.publish(Envelope("contract.task", queue=queue))
        assert broker.purge(queue) == 3
        assert broker.pending_count(queue) == 0
        with broker.consume(queue) as consumer:
            assert consumer.get(timeout=0.05) is None

    def test_statistics_snapshot_counts_every_kind_of_envelope(self, broker, queue):
        for _ in range(3):
            broker.publish(Envelope("contract.task", queue=queue))
        if broker.supports_delayed:
            broker.publish(Envelope("contract.task", queue=queue, not_before=time.time() + 60))
        with broker.consume(queue, prefetch=2) as consumer:
            broker.dead_letter(self._get(consumer), "boom")
            held = self._get(consumer)
            stats = broker.statistics(queue)
            broker.ack(held)
        delayed = 1 if broker.supports_delayed else 0
        assert (stats.queue, stats.pending, stats.delayed) == (queue, 1, delayed)
        assert (stats.inflight, stats.dead_letters) == (1, 1)
        assert broker.dead_letter_count(queue) == 1

    def test_join_returns_once_the_queue_is_drained(self, broker, queue):
        broker.publish(Envelope("contract.task", queue=queue))
        consumer = broker.consume(queue)

        def work() -> None:
            delivery = consumer.get(timeout=self.receive_timeout)
            if delivery is not None:
                broker.ack(delivery)

        thread = threading.Thread(target=work)
        thread.start()
        join(broker, queue, timeout=self.receive_timeout)
        thread.join()
        consumer.close()
        assert broker.pending_count(queue) + broker.inflight_count(queue) == 0

    def test_join_times_out_naming_the_counts(self, broker, queue):
        broker.publish(Envelope("contract.task", queue=queue))
        with pytest.raises(TimeoutError, match="1 ready"):
            join(broker, queue, timeout=0.05)

    # -- leases --------------------------------------------------------------------------------
    def test_unacked_delivery_reappears_after_its_lease_expires(self, broker, queue):
        env = Envelope("contract.task", queue=queue, visibility_timeout=self.visibility_timeout)
        broker.publish(env)
        with broker.consume(queue, prefetch=2) as consumer:
            first = self._get(consumer)
            again = self._get(consumer)
            assert again.envelope.id == env.id and again.redelivered
            assert time.time() >= first.lease_expires_at - 0.02
            assert broker.ack(first) is False  # the lease was lost to the redelivery
            assert broker.ack(again) is True

    def test_deliveries_of_a_vanished_consumer_are_redelivered_and_acked_once(self, broker, queue):
        count = 60
        vt = self.visibility_timeout
        ids = []
        for i in range(count):
            env = Envelope("contract.task", {"i": i}, queue=queue, visibility_timeout=vt)
            ids.append(env.id)
            broker.publish(env)
        crashed = broker.consume(queue, prefetch=10)
        lost = [self._get(crashed) for _ in range(10)]  # taken, never settled: a dead worker
        crashed.close()
        acked: dict[str, int] = {}
        lock = threading.Lock()

        deadline = time.monotonic() + self.receive_timeout + vt * 4

        def work(consumer: Consumer) -> None:
            while len(acked) < count and time.monotonic() < deadline:
                delivery = consumer.get(timeout=0.05)
                if delivery is not None and broker.ack(delivery):
                    with lock:
                        acked[delivery.envelope.id] = acked.get(delivery.envelope.id, 0) + 1

        consumers = [broker.consume(queue, prefetch=2) for _ in range(3)]
        threads = [threading.Thread(target=work, args=(c,)) for c in consumers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for consumer in consumers:
            consumer.close()
        assert sorted(acked) == sorted(ids) and set(acked.values()) == {1}
        assert all(broker.ack(d) is False for d in lost)

    def test_extend_lease_delays_redelivery_until_the_new_deadline(self, broker, queue):
        env = Envelope("contract.task", queue=queue, visibility_timeout=self.visibility_timeout)
        broker.publish(env)
        with broker.consume(queue, prefetch=2) as consumer:
            first = self._get(consumer)
            assert broker.extend_lease(first, self.visibility_timeout * 3) is True
            extended = first.lease_expires_at
            again = self._get(consumer)
            assert time.time() >= extended - 0.02
            broker.ack(again)

    def test_extend_lease_rejects_non_positive_seconds(self, broker, queue):
        broker.publish(Envelope("contract.task", queue=queue))
        with broker.consume(queue) as consumer:
            delivery = self._get(consumer)
            with pytest.raises(ValueError, match="seconds"):
                broker.extend_lease(delivery, 0)
            broker.ack(delivery)

    # -- delays and priorities -----------------------------------------------------------------
    def test_delayed_envelope_stays_invisible_until_due(self, broker, queue):
        if not (self.verify_delayed_delivery and broker.supports_delayed):
            pytest.skip("delayed delivery not supported")
        due = time.time() + self.delay
        broker.publish(Envelope("contract.task", queue=queue, not_before=due))
        assert broker.pending_count(queue) == 0
        with broker.consume(queue) as consumer:
            assert consumer.get(timeout=0) is None
            delivery = self._get(consumer)
            assert time.time() >= due - 0.02
            broker.ack(delivery)

    def test_higher_priority_is_delivered_first_fifo_within_a_priority(self, broker, queue):
        if not (self.verify_priority_ordering and broker.supports_priority):
            pytest.skip("priority ordering not supported")
        order = [(0, "a"), (5, "b"), (9, "c"), (5, "d"), (0, "e")]
        for priority, tag in order:
            broker.publish(Envelope("contract.task", {"tag": tag}, queue=queue, priority=priority))
        with broker.consume(queue, prefetch=len(order)) as consumer:
            got = [self._get(consumer) for _ in order]
        assert [d.envelope.args["tag"] for d in got] == ["c", "b", "d", "a", "e"]

    def test_broadcast_reaches_every_subscribed_consumer(self, broker, queue):
        if not self.verify_broadcast_fanout:
            pytest.skip("broadcast fan-out not verified for this broker")
        channel = unique_name("bc")
        consumers = [broker.consume(queue, broadcasts=[channel]) for _ in range(3)]
        env = Envelope("contract.control", {"cmd": "ping"}, queue=channel)
        assert broker.broadcast(channel, env) == 3
        for consumer in consumers:
            delivery = self._get(consumer)
            assert delivery.broadcast and delivery.envelope == env
            assert broker.ack(delivery) is True
            consumer.close()

    # -- bad input and lifecycle ---------------------------------------------------------------
    def test_publish_rejects_a_non_envelope(self, broker):
        with pytest.raises(TypeError, match="Envelope"):
            broker.publish({"name": "contract.task"})

    def test_consume_rejects_bad_prefetch_and_empty_queues(self, broker, queue):
        with pytest.raises(ValueError, match="prefetch"):
            broker.consume(queue, prefetch=0)
        with pytest.raises(ValueError, match="queue"):
            broker.consume([])

    def test_closed_broker_refuses_publish_and_stops_consumers(self, broker, queue):
        consumer = broker.consume(queue)
        broker.close()
        broker.close()  # idempotent
        assert consumer.get(timeout=1) is None and consumer.closed
        with pytest.raises(ClosedError):
            broker.publish(Envelope("contract.task", queue=queue))
