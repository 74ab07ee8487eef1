"""The control plane (reference §4.4: Stem's CLI worker tests), leases and worker heartbeats."""

from __future__ import annotations

import logging
import threading
import time

import pytest

import stemnb
from stemnb import ControlClient, TaskHandler, TaskState, WorkerEventType

E = WorkerEventType


def test_stats_of_an_idle_worker(h):
    worker, rec = h.worker(consumer_name="idle-1")
    [reply] = ControlClient(h.broker).stats(worker_id="idle-1", timeout=5)
    stats = reply["response"]
    assert stats["worker_id"] == "idle-1" and stats["inflight"] == 0 and stats["active"] == []
    assert stats["queues"] == ["default"] and stats["concurrency"] == 1
    assert stats["counters"]["succeeded"] == 0


def test_shutdown_command_stops_the_worker(h):
    worker, rec = h.worker(consumer_name="stop-me")
    [reply] = ControlClient(h.broker).shutdown("soft", worker_id="stop-me", timeout=5)
    assert reply["status"] == "ok" and reply["response"]["mode"] == "soft"
    assert rec.wait_for(E.WORKER_SHUTDOWN)[0].data["mode"] == "soft"
    assert worker.state is stemnb.WorkerState.STOPPED


def test_pause_and_resume_stop_and_restart_consumption(h):
    ran = []
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: ran.append(ctx.id)))
    seen = []
    consumed = threading.Condition()

    class Count(stemnb.Middleware):
        def on_consume(self, delivery):
            with consumed:
                seen.append(delivery.envelope.id)
                consumed.notify_all()

    worker, rec = h.worker(consumer_name="pauser", middleware=[Count()])
    client = ControlClient(h.broker)
    client.pause_queue("default", worker_id="pauser", timeout=5)
    [status] = client.queue_status(worker_id="pauser", timeout=5)
    assert status["response"]["paused"] == ["default"]
    tid = h.stem.enqueue("t", {})
    with consumed:
        assert consumed.wait_for(lambda: seen.count(tid) >= 2, 10)  # received, put back, received again
    assert ran == [] and h.backend.get(tid).state is TaskState.QUEUED
    client.resume_queue("default", worker_id="pauser", timeout=5)
    assert h.wait(tid).state is TaskState.SUCCEEDED and ran == [tid]


def test_stats_and_inspect_include_the_active_task(h):
    release = threading.Event()
    started = threading.Event()
    h.registry.register("busy", TaskHandler.inline(lambda ctx, a: started.set() or release.wait(10)))
    worker, rec = h.worker(consumer_name="busy-1")
    tid = h.stem.enqueue("busy", {})
    assert started.wait(10)
    client = ControlClient(h.broker)
    [stats] = client.stats(worker_id="busy-1", timeout=5)
    [inspect] = client.inspect(worker_id="busy-1", timeout=5)
    release.set()
    active = stats["response"]["active"]
    assert [(a["id"], a["task"], a["isolate"]) for a in active] == [(tid, "busy", False)]
    assert [a["id"] for a in inspect["response"]["active"]] == [tid]
    assert h.wait(tid).state is TaskState.SUCCEEDED


def test_revoke_command_persists_the_entry_and_reaches_every_worker(h):
    store = stemnb.InMemoryRevokeStore()
    one, rec_one = h.worker(revoke_store=store, consumer_name="one")
    two, rec_two = h.worker(revoke_store=store, consumer_name="two")
    [reply] = ControlClient(h.broker).revoke("some-task", reason="duplicate", worker_id="one", timeout=5)
    assert reply["response"]["revoked"] == ["some-task"]
    assert store.get("stem", "some-task").reason == "duplicate"
    assert two._revocations.revocation_for("some-task") is not None  # live, through the store


def test_revoke_with_terminate_cancels_an_inline_task_that_heartbeats(h):
    started = threading.Event()

    def loop(ctx, args):
        started.set()
        while True:
            ctx.heartbeat()
            time.sleep(0.005)

    h.registry.register("loop", TaskHandler.inline(loop))
    worker, rec = h.worker(consumer_name="t1")
    tid = h.stem.enqueue("loop", {})
    assert started.wait(10)
    ControlClient(h.broker).revoke(tid, terminate=True, worker_id="t1", timeout=5)
    assert h.wait(tid).state is TaskState.CANCELLED


def test_broadcast_ping_reaches_every_worker(h):
    h.worker(consumer_name="a")
    h.worker(consumer_name="b")
    replies = ControlClient(h.broker).ping(timeout=5, expected=2)
    assert sorted(r["worker_id"] for r in replies) == ["a", "b"]


def test_unknown_control_command_replies_with_an_error(h):
    h.worker(consumer_name="x")
    [reply] = ControlClient(h.broker).send("reboot-the-moon", worker_id="x", timeout=5)
    assert reply["status"] == "error" and "unknown control command" in reply["error"]


def test_lease_is_renewed_while_a_long_task_runs(h):
    runs = []

    def long(ctx, args):
        runs.append(ctx.id)
        time.sleep(2.0)  # four leases long
        return "done"

    h.registry.register("long", TaskHandler.inline(long, stemnb.TaskOptions(visibility_timeout=0.5)))
    worker, rec = h.worker(concurrency=2)
    tid = h.stem.enqueue("long", {})
    assert h.wait(tid).state is TaskState.SUCCEEDED
    assert runs == [tid] and worker._leases.renewals >= 3


def test_task_heartbeat_events_follow_heartbeat_interval(h):
    release = threading.Event()
    h.registry.register("wait", TaskHandler.inline(lambda ctx, a: release.wait(10)))
    worker, rec = h.worker(heartbeat_interval=0.05)
    tid = h.stem.enqueue("wait", {})
    rec.wait_for(E.HEARTBEAT, tid, count=3)
    release.set()
    assert h.wait(tid).state is TaskState.SUCCEEDED
    assert all(e.data["explicit"] is False for e in rec.of(E.HEARTBEAT, tid))


def test_heartbeat_transport_receives_worker_heartbeats(h):
    transport = stemnb.InMemoryHeartbeatTransport()
    got = []
    arrived = threading.Event()
    transport.listen(lambda topic, beat: (got.append((topic, beat.worker_id)), arrived.set()))
    h.worker(consumer_name="hb", heartbeat_transport=transport, worker_heartbeat_interval=0.05, heartbeat_namespace="lab")
    assert arrived.wait(10)
    assert got[0] == ("stem:heartbeat:lab", "hb")


def test_soft_time_limit_emits_a_timeout_event_without_stopping_the_task(h):
    h.registry.register("slowish", TaskHandler.inline(lambda ctx, a: time.sleep(1.0) or "finished",
                                                      stemnb.TaskOptions(soft_time_limit=0.05)))
    worker, rec = h.worker()
    tid = h.stem.enqueue("slowish", {})
    timeout = rec.wait_for(E.TIMEOUT, tid)[0]
    assert timeout.data == {"level": "soft", "limit": 0.05}
    assert h.wait(tid).payload == "finished"


def autoscaled_task(ctx, args):
    time.sleep(args["seconds"])
    return "ok"


def test_autoscaler_resizes_the_isolate_pool(h):
    h.registry.register("work", TaskHandler(autoscaled_task))
    config = stemnb.WorkerAutoscaleConfig(
        enabled=True, min_concurrency=1, max_concurrency=2, tick=0.15, idle_period=0.3,
        scale_up_cooldown=0.01, scale_down_cooldown=0.01,
    )
    worker, rec = h.worker(concurrency=2, autoscale=config)
    ids = [h.stem.enqueue("work", {"seconds": 0.3}) for _ in range(6)]
    rec.wait_for(E.SCALED, where=lambda e: e.data["to"] == 2, timeout=60)
    for tid in ids:
        assert h.wait(tid, 120).state is TaskState.SUCCEEDED
    rec.wait_for(E.SCALED, where=lambda e: e.data["to"] == 1, timeout=60)
    assert worker.pool.size == 1


def test_set_concurrency_validates_and_resizes(h):
    worker, rec = h.worker(concurrency=3)
    worker.set_concurrency(2)
    assert worker.active_concurrency == 2
    with pytest.raises(ValueError, match="1 to 3"):
        worker.set_concurrency(4)
    with pytest.raises(ValueError):
        worker.set_concurrency(0)


class FlakyConsumeBroker(stemnb.InMemoryBroker):
    """A real in-memory broker whose consumers of task queues (or, with ``control=True``, of a
    worker's control queue) fail their first few gets, like a dropped connection."""

    def __init__(self, failures, control=False, **kw):
        super().__init__(**kw)
        self.failures = failures
        self.control = control

    def consume(self, queues, **kw):
        consumer = super().consume(queues, **kw)
        if ("control.worker" in str(queues)) != self.control:
            return consumer
        broker, original = self, consumer.get

        def get(timeout=None):
            if broker.failures > 0:
                broker.failures -= 1
                raise ConnectionError("connection reset")
            return original(timeout)

        consumer.get = get
        return consumer


def test_consume_errors_are_reported_and_the_worker_recovers():
    broker = FlakyConsumeBroker(3, delayed_interval=0.005, claim_interval=0.02)
    backend = stemnb.InMemoryResultBackend()
    registry = stemnb.TaskRegistry()
    registry.register("t", TaskHandler.inline(lambda ctx, a: "ok"))
    stem = stemnb.Stem(broker, backend, registry=registry)
    from worker_support import FAST_LIFECYCLE, Recorder

    worker = stemnb.Worker(broker, registry, backend, concurrency=1, lifecycle=FAST_LIFECYCLE)
    rec = Recorder(worker)
    worker.start()
    try:
        tid = stem.enqueue("t", {})
        assert stem.wait_for_task(tid, 30).result().payload == "ok"
        errors = [e for e in rec.of(E.ERROR) if e.data.get("where") == "consume"]
        assert len(errors) == 3 and isinstance(errors[0].error, ConnectionError)
    finally:
        worker.close()
        broker.close()


def test_expired_revocations_no_longer_apply_and_are_pruned(h):
    store = stemnb.InMemoryRevokeStore()
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: "ran"))
    tid = stemnb.new_task_id()
    store.upsert([stemnb.RevokeEntry("stem", tid, reason="old", expires_at=time.time() - 1)])
    worker, rec = h.worker(revoke_store=store)
    assert h.wait(h.stem.enqueue("t", {}, task_id=tid)).payload == "ran"
    assert worker._revocations.prune() == 1 and worker._revocations.describe() == []


def test_a_revocation_with_expires_lapses_and_is_pruned_from_the_store(h):
    store = stemnb.InMemoryRevokeStore()
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: "ran"))
    worker, rec = h.worker(revoke_store=store)
    tid = stemnb.new_task_id()
    worker.revoke(tid, reason="for a minute", expires=60)
    [entry] = store.list(worker.namespace)
    assert entry.task_id == tid and entry.expires_at == pytest.approx(time.time() + 60, abs=5)
    assert worker._revocations.revocation_for(tid).reason == "for a minute"
    assert worker._revocations.prune(now=entry.expires_at + 1) == 1  # as the minute-by-minute prune does
    assert store.list(worker.namespace) == []
    assert h.wait(h.stem.enqueue("t", {}, task_id=tid)).payload == "ran"


@pytest.mark.parametrize(
    ("expires", "error"),
    [(0, ValueError), (-1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
     ("60", TypeError), (True, TypeError)],
)
def test_a_revocation_with_a_bad_expiry_is_refused(h, expires, error):
    worker, _ = h.worker()
    with pytest.raises(error, match="expires"):
        worker.revoke("t1", expires=expires)
    assert worker._revocations.revocation_for("t1") is None  # nothing was revoked


def test_the_revoke_command_carries_an_expiry_to_the_store(h):
    store = stemnb.InMemoryRevokeStore()
    h.worker(revoke_store=store, consumer_name="one")
    [reply] = ControlClient(h.broker).revoke("some-task", expires=30, worker_id="one", timeout=5)
    assert reply["status"] == "ok" and reply["response"]["expires"] == 30
    assert store.get("stem", "some-task").expires_at == pytest.approx(time.time() + 30, abs=5)


def test_broadcast_tasks_run_on_every_subscribed_worker(h):
    ran = []
    lock = threading.Lock()
    both = threading.Event()

    def record(ctx, args):
        with lock:
            ran.append(ctx.id)
            if len(ran) == 2:
                both.set()

    h.registry.register("announce", TaskHandler.inline(record))
    subscription = stemnb.RoutingSubscription(("default",), broadcasts=("news",))
    h.worker(subscription=subscription)
    h.worker(subscription=subscription)
    envelope = stemnb.Envelope("announce", {})
    assert h.broker.broadcast("news", envelope) == 2  # start() subscribes before it returns
    assert both.wait(10) and ran == [envelope.id, envelope.id]


def test_higher_priority_tasks_run_first(h):
    order = []
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: order.append(a["p"])))
    ids = [h.stem.enqueue("t", {"p": p}, priority=p) for p in (1, 9, 5, 0)]
    h.worker(concurrency=1, prefetch=1)  # started after the enqueues: it sees them all
    for tid in ids:
        assert h.wait(tid).state is TaskState.SUCCEEDED
    assert order == [9, 5, 1, 0]


def test_countdown_delays_the_run(h):
    h.registry.register("t", TaskHandler.inline(lambda ctx, a: time.time()))
    worker, rec = h.worker()
    before = time.time()
    tid = h.stem.enqueue("t", {}, countdown=0.3)
    assert h.wait(tid).payload >= before + 0.3


def test_a_stopped_worker_withdraws_its_heartbeat(h):
    worker, rec = h.worker(consumer_name="leaving", worker_heartbeat_interval=60)
    rec.wait_for(E.WORKER_HEARTBEAT)  # its first heartbeat is stored as it starts
    other = stemnb.WorkerHeartbeat("staying", worker.namespace)
    h.backend.set_worker_heartbeat(other)
    assert h.backend.get_worker_heartbeat("leaving") is not None
    worker.shutdown(stemnb.WorkerShutdownMode.WARM).result(30)
    assert h.backend.get_worker_heartbeat("leaving") is None  # not left to expire in 60 s
    assert [hb.worker_id for hb in h.backend.list_worker_heartbeats(worker.namespace)] == ["staying"]


def test_the_control_plane_waits_out_a_broker_that_fails_and_answers_again(caplog):
    broker = FlakyConsumeBroker(3, control=True, delayed_interval=0.005, claim_interval=0.02)
    backend = stemnb.InMemoryResultBackend()
    from worker_support import FAST_LIFECYCLE

    worker = stemnb.Worker(broker, stemnb.TaskRegistry(), backend, concurrency=1, lifecycle=FAST_LIFECYCLE,
                           consumer_name="flaky-control")
    with caplog.at_level(logging.DEBUG, logger="stemnb.worker"):
        worker.start()
        try:
            replies = stemnb.ControlClient(broker, namespace=worker.namespace).ping(timeout=30, expected=1)
            assert [r["worker_id"] for r in replies] == ["flaky-control"]
        finally:
            worker.close()
            broker.close()
    assert broker.failures == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "reading control commands" in r.getMessage()]
    assert len(warnings) == 2  # the outage's start and end; the failures between go to debug
    assert "reading control commands failed (connection reset)" in warnings[0].getMessage()
    assert "works again after 3 failed attempts" in warnings[1].getMessage()
