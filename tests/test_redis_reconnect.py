"""Pub/sub connections that Redis drops (a restart, an idle proxy, ``CLIENT KILL``): every listener
listens again, and what it missed meanwhile still reaches the backend's watchers, the revoke
store's watchers, a consumer's broadcasts, and a worker's control plane, on the real server.

The tests cut a listener's connection with ``CLIENT KILL ID`` and hold its next subscription at
a gate (a wrapper around the function that makes it), so "meanwhile" is a fixed stretch of the
test, not a race.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import uuid

import pytest
from redis_support import REDIS_URL
from redis_support import drop_namespace as _drop

import stemnb
from stemnb import _redis_watch
from stemnb._redis_watch import ChannelListener

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis


class Gate:
    """Wraps the making of a listener's subscription: counts each one that succeeded, and while
    ``hold()`` is on, blocks every new one until ``release()`` (``entered`` is set when one waits)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._real = _redis_watch._subscribed_connection
        self._cond = threading.Condition()
        self._held = False
        self.entered = threading.Event()
        self.made: list[str] = []  # the ``what`` of every subscription made
        self.refusals = 0  # how many attempts to fail before the next one succeeds
        monkeypatch.setattr(_redis_watch, "_subscribed_connection", self._make)

    def _make(self, redis_client, channels, timeout, what):
        with self._cond:
            if self._held:
                self.entered.set()
                self._cond.wait_for(lambda: not self._held, 30)
            if self.refusals > 0:
                self.refusals -= 1
                raise redis.ConnectionError("refused by the test")
        session = self._real(redis_client, channels, timeout, what)
        with self._cond:
            self.made.append(what)
            self._cond.notify_all()
        return session

    def hold(self) -> None:
        with self._cond:
            self._held = True
            self.entered.clear()

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    def wait_made(self, count: int, timeout: float = 30.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.made) >= count, timeout), self.made


@pytest.fixture
def gate(monkeypatch):
    g = Gate(monkeypatch)
    yield g
    g.release()


def kill_listeners(redis_client, what: str | None = None) -> int:
    """Cut the connections of stemnb's listeners (of one ``what``, or all); return how many."""
    names = {f"stemnb-{what}"} if what else None
    killed = 0
    for entry in redis_client.client_list():
        name = entry.get("name", "")
        if name.startswith("stemnb-") and (names is None or name in names):
            killed += redis_client.client_kill_filter(_id=entry["id"])
    return killed


def _channel() -> str:
    return f"stemnb-test-{uuid.uuid4().hex[:8]}"


# -- the listener -------------------------------------------------------------------------------
def test_a_listener_whose_connection_is_cut_listens_again_and_tells_its_owner(redis_client, gate, caplog):
    channel, got = _channel(), queue.Queue()
    calls: list[str] = []
    back = threading.Event()
    listener = ChannelListener(
        redis_client, channel, lambda ch, data: got.put((ch, data)), "test-cut",
        on_lost=lambda: calls.append("lost"), on_resubscribed=lambda: (calls.append("back"), back.set()),
    )
    try:
        with caplog.at_level(logging.WARNING, logger="stemnb.redis"):
            assert kill_listeners(redis_client, "test-cut") == 1
            assert back.wait(30)
        assert calls == ["lost", "back"] and listener.reconnects == 1 and listener.alive
        redis_client.publish(channel, "after")
        assert got.get(timeout=10) == (channel.encode(), b"after")
        assert "lost its connection" in caplog.text and "listening again after" in caplog.text
    finally:
        listener.close()


def test_a_listener_keeps_trying_while_redis_refuses_it(redis_client, gate):
    channel, got = _channel(), queue.Queue()
    listener = ChannelListener(redis_client, channel, lambda ch, data: got.put(data), "test-refused")
    try:
        gate.refusals = 3
        kill_listeners(redis_client, "test-refused")
        gate.wait_made(2)  # the first subscription, then the one after three refusals
        assert gate.refusals == 0 and listener.reconnects == 1
        redis_client.publish(channel, "m")
        assert got.get(timeout=10) == b"m"
    finally:
        listener.close()


def test_an_owner_that_cannot_catch_up_gets_another_connection_and_another_try(redis_client, gate):
    channel, got = _channel(), queue.Queue()
    attempts: list[int] = []
    caught_up = threading.Event()

    def catch_up() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise redis.ConnectionError("lost again while catching up")
        caught_up.set()

    listener = ChannelListener(redis_client, channel, lambda ch, data: got.put(data), "test-catch-up", on_resubscribed=catch_up)
    try:
        kill_listeners(redis_client, "test-catch-up")
        assert caught_up.wait(30)
        assert len(attempts) == 2 and len(gate.made) == 3 and listener.reconnects == 1
        redis_client.publish(channel, "m")
        assert got.get(timeout=10) == b"m"
    finally:
        listener.close()


def test_closing_a_listener_that_waits_to_listen_again_ends_its_thread(redis_client, gate):
    lost = threading.Event()
    listener = ChannelListener(redis_client, _channel(), lambda ch, data: None, "test-close", on_lost=lost.set)
    gate.hold()
    kill_listeners(redis_client, "test-close")
    assert lost.wait(30) and gate.entered.wait(30)
    closer = threading.Thread(target=listener.close)
    closer.start()
    gate.release()  # the subscription it was making is dropped, not kept
    closer.join(30)
    listener._thread.join(30)
    assert not closer.is_alive() and not listener._thread.is_alive() and not listener.alive
    assert not any(e.get("name") == "stemnb-test-close" for e in redis_client.client_list())


# -- the result backend's feed ---------------------------------------------------------------------
@pytest.fixture
def backend():
    namespace = f"stemnb-test-{uuid.uuid4().hex[:8]}"
    b = stemnb.RedisResultBackend(REDIS_URL, namespace=namespace)
    yield b
    b.close()
    _drop(namespace)


def test_a_status_written_while_the_feed_was_away_reaches_its_waiting_watcher(redis_client, gate, backend):
    backend.set("t1", "running")
    seen: queue.Queue = queue.Queue()
    backend.watch_terminal("t1", seen.put)
    gate.hold()
    assert kill_listeners(redis_client, "redis-backend") == 1
    assert gate.entered.wait(30)
    backend.set("t1", "succeeded", payload=7)  # published while nobody of ours listens
    gate.release()
    status = seen.get(timeout=30)
    assert status.state is stemnb.TaskState.SUCCEEDED and status.payload == 7
    backend.set("t1", "succeeded", payload=8)  # and the feed hears new statuses again
    assert seen.get(timeout=30).payload == 8


def test_a_watch_made_while_the_feed_is_away_gets_the_current_status_once_it_is_back(redis_client, gate, backend):
    backend.set("t2", "queued")
    backend.watch_terminal("t2", lambda status: None)  # starts the feed
    gate.hold()
    kill_listeners(redis_client, "redis-backend")
    assert gate.entered.wait(30)
    backend.set("t2", "failed", error={"message": "boom"})
    seen: queue.Queue = queue.Queue()
    backend.watch_terminal("t2", seen.put)  # the feed trusts nothing it saw before the cut
    gate.release()
    status = seen.get(timeout=30)
    assert status.state is stemnb.TaskState.FAILED and status.error == {"message": "boom"}


def test_a_watcher_of_every_status_gets_the_latest_it_missed_and_then_each_new_one_once(redis_client, gate, backend):
    backend.set("t3", "queued")
    seen: queue.Queue = queue.Queue()
    backend.watch("t3", seen.put)
    gate.hold()
    kill_listeners(redis_client, "redis-backend")
    assert gate.entered.wait(30)
    backend.set("t3", "running", meta={"step": 1})
    backend.set("t3", "running", meta={"step": 2})
    gate.release()
    assert seen.get(timeout=30).meta == {"step": 2}  # the latest; the one before it is gone for good
    backend.set("t3", "succeeded", payload=1)
    assert seen.get(timeout=30).state is stemnb.TaskState.SUCCEEDED
    backend.set("t3", "succeeded", payload=2)
    assert seen.get(timeout=30).payload == 2  # nothing was handed over twice in between


# -- the revoke store -------------------------------------------------------------------------------
def test_a_revocation_made_while_the_store_was_away_reaches_its_watchers(redis_client, gate):
    namespace = f"stemnb-test-{uuid.uuid4().hex[:8]}"
    store = stemnb.RedisRevokeStore(REDIS_URL, namespace=namespace)
    writer = stemnb.RedisRevokeStore(REDIS_URL, namespace=namespace)
    try:
        every, one = queue.Queue(), queue.Queue()
        store.watch(every.put)
        store.watch(one.put, namespace="stem")
        gate.hold()
        kill_listeners(redis_client, "redis-revoke")
        assert gate.entered.wait(30)
        writer.upsert([stemnb.RevokeEntry("stem", "t9", terminate=True, reason="missed")])
        writer.upsert([stemnb.RevokeEntry("other", "t8", reason="elsewhere")])
        gate.release()
        assert sorted((e.namespace, e.task_id) for e in (every.get(timeout=30), every.get(timeout=30))) == [
            ("other", "t8"), ("stem", "t9")
        ]
        entry = one.get(timeout=30)
        assert (entry.task_id, entry.terminate, entry.reason) == ("t9", True, "missed")
    finally:
        writer.close()
        store.close()
        _drop(namespace)


# -- broadcasts and a whole worker --------------------------------------------------------------------
def test_a_consumer_hears_broadcasts_again_after_its_connection_is_cut(redis_client, gate):
    broker = stemnb.RedisBroker(REDIS_URL, namespace=f"stemnb-test-{uuid.uuid4().hex[:8]}")
    try:
        consumer = broker.consume("default", broadcasts=["news"])
        made = len(gate.made)
        kill_listeners(redis_client, "redis-broadcast")
        gate.wait_made(made + 1)
        broker.broadcast("news", stemnb.Envelope("after", {}))
        delivery = consumer.get(timeout=10)
        assert delivery is not None and delivery.envelope.name == "after" and delivery.queue == "news"
        consumer.close()
    finally:
        broker.close()
        _drop(broker.namespace)


def test_a_worker_and_its_producer_carry_on_after_redis_drops_every_subscriber(redis_client, gate):
    namespace = f"stemnb-test-{uuid.uuid4().hex[:8]}"
    broker = stemnb.RedisBroker(REDIS_URL, namespace=namespace, claim_interval=0.05)
    backend = stemnb.RedisResultBackend(REDIS_URL, namespace=namespace)
    store = stemnb.RedisRevokeStore(REDIS_URL, namespace=namespace)
    registry = stemnb.TaskRegistry()
    registry.register("add", stemnb.TaskHandler.inline(lambda ctx, args: args["x"] + 1))
    stem = stemnb.Stem(broker, backend, registry=registry)
    lifecycle = stemnb.WorkerLifecycleConfig(install_signal_handlers=False)
    worker = stemnb.Worker(broker, registry, backend, revoke_store=store, concurrency=1, lifecycle=lifecycle,
                           consumer_name="w-reconnect")
    worker.start()
    try:
        assert stem.wait_for_task(stem.enqueue("add", {"x": 1}), 30).result().payload == 2
        listening = len(gate.made)  # control broadcasts, revocations, the status feed
        assert listening >= 3
        assert kill_listeners(redis_client) >= 3
        gate.wait_made(2 * listening)
        assert stem.wait_for_task(stem.enqueue("add", {"x": 2}), 30).result().payload == 3
        replies = stemnb.ControlClient(broker, namespace=worker.namespace).ping(timeout=10, expected=1)
        assert [r["worker_id"] for r in replies] == ["w-reconnect"]
    finally:
        worker.close()
        store.close()
        broker.close()
        backend.close()
        _drop(namespace)


def test_a_worker_rides_out_a_redis_restart_that_lost_its_running_tasks():
    """Redis dies while two tasks run (their results cannot be stored, their deliveries not even
    given back), then comes back empty: the worker frees their slots and prefetch room and runs
    what is enqueued next; its control plane answers again."""
    from redis_support import PrivateServer
    from worker_support import FAST_LIFECYCLE, Recorder

    server = PrivateServer()
    started, proceed = threading.Semaphore(0), threading.Event()

    def hold(ctx, args):
        started.release()
        proceed.wait(30)
        return args["x"]

    broker = stemnb.RedisBroker(server.url, namespace="restart", claim_interval=0.05)
    backend = stemnb.RedisResultBackend(server.url, namespace="restart")
    registry = stemnb.TaskRegistry()
    registry.register("hold", stemnb.TaskHandler.inline(hold))
    registry.register("add", stemnb.TaskHandler.inline(lambda ctx, args: args["x"] + 1))
    stem = stemnb.Stem(broker, backend, registry=registry)
    worker = stemnb.Worker(broker, registry, backend, concurrency=2, prefetch_multiplier=1,
                           lifecycle=FAST_LIFECYCLE, consumer_name="w-restart")
    recorder = Recorder(worker)
    gave_up = threading.Semaphore(0)
    watcher = _OnLog("could not requeue task", gave_up.release)
    logging.getLogger("stemnb.worker").addHandler(watcher)
    worker.start()
    try:
        for x in range(2):
            stem.enqueue("hold", {"x": x})
        assert started.acquire(timeout=30) and started.acquire(timeout=30)
        server.kill()
        proceed.set()
        recorder.wait_for(stemnb.WorkerEventType.ERROR, where=lambda e: e.data.get("where") == "settle",
                          count=2, timeout=30)
        assert gave_up.acquire(timeout=30) and gave_up.acquire(timeout=30)  # giving them back failed too
        server.start()
        ids = [stem.enqueue("add", {"x": x}) for x in range(4)]
        assert [stem.wait_for_task(i, 30).result().payload for i in ids] == [1, 2, 3, 4]
        replies = stemnb.ControlClient(broker, namespace=worker.namespace).ping(timeout=10, expected=1)
        assert [r["worker_id"] for r in replies] == ["w-restart"]
    finally:
        logging.getLogger("stemnb.worker").removeHandler(watcher)
        proceed.set()
        worker.close()
        broker.close()
        backend.close()
        server.close()


class _OnLog(logging.Handler):
    """Calls ``callback`` for each record whose message contains ``text``."""

    def __init__(self, text: str, callback) -> None:
        super().__init__(logging.DEBUG)
        self.text, self.callback = text, callback

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.callback()


def test_no_task_is_lost_when_a_persistent_redis_is_killed_and_restarted_under_load(tmp_path):
    """Redis (append-only, fsync always) is SIGKILLed while a worker runs a backlog, then started
    again from its file. Results that could not be stored meanwhile, and deliveries that could
    not be given back, come back through their leases: every task ends succeeded, once, and
    the waits registered before the kill are all answered."""
    from redis_support import PrivateServer
    from worker_support import FAST_LIFECYCLE, Recorder

    server = PrivateServer(aof_dir=str(tmp_path))
    broker = stemnb.RedisBroker(server.url, namespace="aof", claim_interval=0.05, default_visibility_timeout=1.0)
    backend = stemnb.RedisResultBackend(server.url, namespace="aof")
    registry = stemnb.TaskRegistry()
    runs: dict[int, int] = {}
    runs_lock = threading.Lock()

    def work(ctx, args):
        with runs_lock:
            runs[args["i"]] = runs.get(args["i"], 0) + 1
        threading.Event().wait(0.01)  # a task that takes a little while, so some run at the kill
        return args["i"]

    registry.register("work", stemnb.TaskHandler.inline(work))
    stem = stemnb.Stem(broker, backend, registry=registry)
    worker = stemnb.Worker(broker, registry, backend, concurrency=2, lifecycle=FAST_LIFECYCLE)
    recorder = Recorder(worker)
    try:
        ids = [stem.enqueue("work", {"i": i}) for i in range(60)]
        waits = [stem.wait_for_task(task_id, 60) for task_id in ids]
        worker.start()
        recorder.wait_for(stemnb.WorkerEventType.COMPLETED, count=20, timeout=30)
        server.kill()
        server.start()
        statuses = [wait.result(timeout=90) for wait in waits]
        assert [s.state for s in statuses] == [stemnb.TaskState.SUCCEEDED] * 60
        assert [s.payload for s in statuses] == list(range(60))
        assert sorted(runs) == list(range(60))  # every task ran; a few ran twice, none is lost
        assert broker.pending_count("default") == 0 and broker.inflight_count("default") == 0
        assert broker.dead_letter_count("default") == 0
    finally:
        worker.close()
        broker.close()
        backend.close()
        server.close()


def _sleep_a_little(ctx, args):
    import time

    time.sleep(args["seconds"])
    return args["seconds"]


@pytest.mark.parametrize("mode", ["WARM", "SOFT", "HARD"])
def test_a_worker_shuts_down_completely_while_redis_is_down(mode):
    """Shutdown hands running and prefetched tasks back where it can; where Redis cannot take
    them, their leases bring them back later. It never stops half-way with threads, a control
    loop or isolates left behind."""
    from redis_support import PrivateServer
    from worker_support import FAST_LIFECYCLE, Recorder

    server = PrivateServer()
    broker = stemnb.RedisBroker(server.url, namespace="down", claim_interval=0.05)
    backend = stemnb.RedisResultBackend(server.url, namespace="down")
    registry = stemnb.TaskRegistry()
    registry.register("sleep", stemnb.TaskHandler(_sleep_a_little))
    stem = stemnb.Stem(broker, backend, registry=registry)
    worker = stemnb.Worker(broker, registry, backend, concurrency=2, lifecycle=FAST_LIFECYCLE)
    recorder = Recorder(worker)
    worker.start()
    try:
        for _ in range(6):
            stem.enqueue("sleep", {"seconds": 0.3})
        recorder.wait_for(stemnb.WorkerEventType.PRERUN, count=2, timeout=60)
        server.kill()
        worker.shutdown(stemnb.WorkerShutdownMode[mode]).result(timeout=60)
        assert worker.state is stemnb.WorkerState.STOPPED
        left = [t.name for t in threading.enumerate() if worker.worker_id in t.name and t.is_alive()]
        assert left == []
        assert worker._pool is None or worker._pool.closed
    finally:
        worker.close()
        broker.close()
        backend.close()
        server.close()


@pytest.mark.parametrize("with_revoke_store", [False, True], ids=["broker", "revoke-store"])
def test_a_worker_that_cannot_reach_redis_at_start_raises_and_leaves_nothing_running(with_revoke_store):
    from redis_support import PrivateServer
    from worker_support import FAST_LIFECYCLE

    server = PrivateServer()
    broker = stemnb.RedisBroker(server.url, namespace="nostart")
    backend = stemnb.RedisResultBackend(server.url, namespace="nostart")
    store = stemnb.RedisRevokeStore(server.url, namespace="nostart") if with_revoke_store else None
    server.kill()
    worker = stemnb.Worker(broker, stemnb.TaskRegistry(), backend, revoke_store=store, concurrency=2,
                           lifecycle=FAST_LIFECYCLE)
    try:
        with pytest.raises(redis.ConnectionError) as raised:
            worker.start()
        if sys.version_info >= (3, 11):  # exception notes
            assert any("did not start" in note for note in raised.value.__notes__)
        assert worker.state is stemnb.WorkerState.STOPPED and worker.shutdown().done()
        assert [t.name for t in threading.enumerate() if worker.worker_id in t.name and t.is_alive()] == []
        with pytest.raises(stemnb.ClosedError):
            worker.start()  # a stopped worker is not started again: make a new one
    finally:
        worker.close()
        for part in (store, broker, backend):
            if part is not None:
                part.close()
        server.close()


def _fails_every_seventh(ctx, args):
    import random
    import time

    time.sleep(random.random() * 0.005)
    if args["i"] % 7 == 0:
        raise ValueError(f"task {args['i']} fails")
    return args["i"]


def test_a_soak_through_three_redis_restarts_ends_every_task_in_exactly_one_terminal_state(tmp_path):
    """1,000 isolate tasks, one in seven failing (retried once, then dead-lettered), while Redis
    (append-only, fsync always) is SIGKILLed and restarted after 250, 500 and 750 tasks have
    finished: each ends succeeded or failed as its input says, and nothing is left queued,
    leased or behind."""
    from redis_support import PrivateServer
    from worker_support import FAST_LIFECYCLE, Recorder

    server = PrivateServer(aof_dir=str(tmp_path))
    broker = stemnb.RedisBroker(server.url, namespace="soak", claim_interval=0.05, default_visibility_timeout=1.0)
    backend = stemnb.RedisResultBackend(server.url, namespace="soak")
    registry = stemnb.TaskRegistry()
    registry.register("work", stemnb.TaskHandler(_fails_every_seventh, options=stemnb.TaskOptions(max_retries=1)))
    stem = stemnb.Stem(broker, backend, registry=registry)
    worker = stemnb.Worker(
        broker, registry, backend, concurrency=2, lifecycle=FAST_LIFECYCLE,
        retry_strategy=stemnb.ExponentialJitterRetryStrategy(base=0.01, max_delay=0.05),
    )
    recorder = Recorder(worker)
    try:
        ids = stem.enqueue_many("work", [{"i": i} for i in range(1000)])
        waits = [stem.wait_for_task(task_id, 120) for task_id in ids]
        worker.start()
        for finished in (250, 500, 750):
            recorder.wait_for(stemnb.WorkerEventType.COMPLETED, count=finished, timeout=120)
            server.kill()
            server.start()
        statuses = [wait.result(timeout=120) for wait in waits]
        for i, status in enumerate(statuses):
            if i % 7 == 0:
                assert status.state is stemnb.TaskState.FAILED and f"task {i} fails" in str(status.error)
            else:
                assert status.state is stemnb.TaskState.SUCCEEDED and status.payload == i
        failing = sum(1 for i in range(1000) if i % 7 == 0)
        assert broker.dead_letter_count("default") == failing
        assert broker.pending_count("default") == 0 and broker.inflight_count("default") == 0
    finally:
        worker.close()
        broker.close()
        backend.close()
        server.close()
