"""Metrics: the registry, the Prometheus text format, the worker's metrics and the HTTP endpoint."""

from __future__ import annotations

import dataclasses
import math
import re
import socket
import threading
import urllib.error
import urllib.request

import pytest
from worker_support import FAST_LIFECYCLE

import stemnb
from stemnb import (
    MetricsRegistry,
    ObservabilityConfig,
    TaskHandler,
    TaskOptions,
    WorkerEventType,
)
from stemnb._ratelimit import RateLimitDecision, RateLimiter

E = WorkerEventType
METRICS = ObservabilityConfig(metrics=True)


def report_attempt(ctx, args):
    return ctx.attempt


# -- the registry ---------------------------------------------------------------------------------
def test_counter_sums_per_label_set_and_refuses_to_go_down():
    registry = MetricsRegistry()
    counter = registry.counter("jobs_total", "Jobs.", ("task",))
    counter.inc(task="a")
    counter.inc(2, task="a")
    counter.inc(task="b")
    snap = registry.statistics()
    assert snap.value("jobs_total", task="a") == 3.0
    assert snap.value("jobs_total") == 4.0
    assert snap.family("jobs_total").get(task="b") == 1.0
    assert snap.family("jobs_total").get(task="never") is None
    with pytest.raises(ValueError, match="only goes up"):
        counter.inc(-1, task="a")


def test_metrics_refuse_labels_other_than_their_own():
    registry = MetricsRegistry()
    counter = registry.counter("jobs_total", "Jobs.", ("task", "queue"))
    with pytest.raises(ValueError, match="needs labels"):
        counter.inc(task="a")
    with pytest.raises(ValueError, match="needs labels"):
        counter.inc(task="a", queue="q", extra="x")
    with pytest.raises(ValueError, match="no label"):
        registry.statistics().value("jobs_total", nope="x")


def test_registering_a_name_again_returns_the_same_metric_and_a_clash_is_an_error():
    registry = MetricsRegistry()
    gauge = registry.gauge("depth", "Depth.", ("queue",))
    assert registry.gauge("depth", "Depth.", ("queue",)) is gauge
    with pytest.raises(ValueError, match="already registered"):
        registry.counter("depth", "Depth.", ("queue",))
    with pytest.raises(ValueError, match="already registered"):
        registry.gauge("depth", "Depth.", ("other",))
    for bad in ("1st", "has-dash", ""):
        with pytest.raises(ValueError, match="invalid metric name"):
            registry.counter(bad, "x")
    with pytest.raises(ValueError, match="invalid label name"):
        registry.counter("ok_total", "x", ("__reserved",))
    with pytest.raises(ValueError, match="reserved"):
        registry.histogram("h_seconds", "x", ("le",))


def test_histogram_counts_into_cumulative_buckets_and_a_value_on_a_bound_falls_in_that_bucket():
    registry = MetricsRegistry()
    hist = registry.histogram("wait_seconds", "Wait.", buckets=(0.1, 1.0, 10.0))
    for value in (0.05, 0.1, 0.5, 1.0, 20.0):
        hist.observe(value)
    value = registry.statistics().histogram("wait_seconds")
    assert value.buckets == ((0.1, 2), (1.0, 4), (10.0, 4), (math.inf, 5))
    assert value.count == 5 and value.sum == pytest.approx(21.65)


def test_gauges_set_by_collect_functions_are_read_at_snapshot_time():
    registry = MetricsRegistry()
    gauge = registry.gauge("level", "Level.")
    source = [1]
    registry.on_collect(lambda: gauge.set(source[0]))
    assert registry.statistics().value("level") == 1.0
    source[0] = 7
    assert registry.statistics().value("level") == 7.0


def test_a_snapshot_is_frozen_and_later_records_do_not_change_it():
    registry = MetricsRegistry()
    counter = registry.counter("jobs_total", "Jobs.")
    counter.inc()
    snap = registry.statistics()
    counter.inc()
    assert snap.value("jobs_total") == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.timestamp = 0.0  # type: ignore[misc]
    assert registry.statistics().value("jobs_total") == 2.0


def test_prometheus_text_has_help_type_escaped_labels_and_histogram_series():
    registry = MetricsRegistry()
    registry.counter("jobs_total", 'Jobs with a back\\slash\nand a newline.', ("task",)).inc(task='we"ird\\na\nme')
    registry.gauge("level", "Level.").set(2.5)
    registry.histogram("wait_seconds", "Wait.", ("q",), buckets=(0.5, 1.0)).observe(0.25, q="a")
    registry.counter("unused_total", "Never incremented.", ("task",))
    assert registry.prometheus_text() == (
        "# HELP jobs_total Jobs with a back\\\\slash\\nand a newline.\n"
        "# TYPE jobs_total counter\n"
        'jobs_total{task="we\\"ird\\\\na\\nme"} 1.0\n'
        "# HELP level Level.\n"
        "# TYPE level gauge\n"
        "level 2.5\n"
        "# HELP wait_seconds Wait.\n"
        "# TYPE wait_seconds histogram\n"
        'wait_seconds_bucket{q="a",le="0.5"} 1\n'
        'wait_seconds_bucket{q="a",le="1.0"} 1\n'
        'wait_seconds_bucket{q="a",le="+Inf"} 1\n'
        'wait_seconds_sum{q="a"} 0.25\n'
        'wait_seconds_count{q="a"} 1\n'
        "# HELP unused_total Never incremented.\n"
        "# TYPE unused_total counter\n"
    )


def test_concurrent_increments_from_many_threads_are_all_counted():
    registry = MetricsRegistry()
    counter = registry.counter("hits_total", "Hits.", ("t",))
    hist = registry.histogram("d_seconds", "D.", ("t",))
    start = threading.Barrier(8)

    def hammer(i):
        start.wait()
        for _ in range(2000):
            counter.inc(t=str(i % 2))
            hist.observe(0.01, t="x")

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = registry.statistics()
    assert snap.value("hits_total") == 16000.0 and snap.value("hits_total", t="0") == 8000.0
    assert snap.histogram("d_seconds").count == 16000


# -- the worker's metrics -------------------------------------------------------------------------
def test_a_worker_without_metrics_has_none_and_nothing_listens_to_its_events(h):
    worker = stemnb.Worker(h.broker, h.registry, h.backend, concurrency=1, lifecycle=FAST_LIFECYCLE)
    try:
        assert worker.metrics is None
        assert not worker.events.has_listeners
    finally:
        worker.close()
    with pytest.raises(ValueError, match="metrics_port"):
        ObservabilityConfig(metrics_port=70000)
    assert ObservabilityConfig(metrics_port=0).metrics_enabled


def _wait_settled(rec, task_id, state):
    """Wait for the task's last POSTRUN: the metrics listener (registered first) has seen it all."""
    rec.wait_for(E.POSTRUN, task_id, where=lambda e: e.data["state"] == state)


def test_worker_metrics_count_successes_retries_failures_and_dead_letters_by_task(h):
    def flaky(ctx, args):
        if ctx.attempt == 0:
            raise RuntimeError("first attempt fails")
        return "ok"

    def always(ctx, args):
        raise RuntimeError("always")

    h.registry.register("ok", TaskHandler.inline(report_attempt))
    h.registry.register("flaky", TaskHandler.inline(flaky, TaskOptions(max_retries=1)))
    h.registry.register("always", TaskHandler.inline(always, TaskOptions(max_retries=1)))
    worker, rec = h.worker(observability=METRICS)
    oks = [h.stem.enqueue("ok", {}) for _ in range(3)]
    flaky_id, always_id, unknown_id = (h.stem.enqueue(n, {}) for n in ("flaky", "always", "nobody-home"))
    for tid in oks:
        _wait_settled(rec, tid, "succeeded")
    _wait_settled(rec, flaky_id, "succeeded")
    _wait_settled(rec, always_id, "failed")
    _wait_settled(rec, unknown_id, "failed")

    snap = worker.metrics.statistics()
    q = {"queue": "default"}
    assert snap.value("stem_tasks_started_total", task="ok", **q) == 3
    assert snap.value("stem_tasks_succeeded_total", task="ok", **q) == 3
    assert snap.value("stem_tasks_started_total", task="flaky") == 2
    assert snap.value("stem_tasks_retried_total", task="flaky") == 1
    assert snap.value("stem_tasks_succeeded_total", task="flaky") == 1
    assert snap.value("stem_tasks_retried_total", task="always") == 1
    assert snap.value("stem_tasks_failed_total", task="always", reason="max-retries-exhausted") == 1
    assert snap.value("stem_tasks_dead_lettered_total", task="always", reason="max-retries-exhausted") == 1
    assert snap.value("stem_tasks_failed_total", task="nobody-home", reason="unregistered-task") == 1
    assert snap.value("stem_tasks_started_total", task="nobody-home") == 0
    # the labelled totals agree with the worker's own counters
    for name in ("started", "succeeded", "retried", "failed", "dead_lettered"):
        assert snap.value(f"stem_tasks_{name}_total") == worker.counters[name], name
    # one duration per attempt that ran, by outcome; none for the task that never ran
    duration = "stem_task_duration_seconds"
    assert snap.histogram(duration, task="ok", outcome="succeeded").count == 3
    assert snap.histogram(duration, task="flaky", outcome="retried").count == 1
    assert snap.histogram(duration, task="flaky", outcome="succeeded").count == 1
    assert snap.histogram(duration, task="always", outcome="failed").count == 1
    assert snap.histogram(duration, task="nobody-home").count == 0
    assert snap.histogram(duration).count == worker.counters["started"]
    assert snap.histogram("stem_task_latency_seconds").count == worker.counters["started"]
    assert snap.histogram("stem_task_latency_seconds", task="flaky").count == 2


def test_a_task_revoked_before_it_runs_counts_as_revoked_without_a_duration(h):
    store = stemnb.InMemoryRevokeStore()
    h.registry.register("noop", TaskHandler.inline(report_attempt))
    tid = stemnb.new_task_id()
    store.upsert([stemnb.RevokeEntry("stem", tid, terminate=True, reason="operator")])
    worker, rec = h.worker(revoke_store=store, observability=METRICS)
    h.stem.enqueue("noop", {}, task_id=tid)
    _wait_settled(rec, tid, "cancelled")
    snap = worker.metrics.statistics()
    assert snap.value("stem_tasks_revoked_total", task="noop") == 1
    assert snap.value("stem_tasks_started_total") == 0
    assert snap.histogram("stem_task_duration_seconds").count == 0


class _DenyFirst(RateLimiter):
    """Denies the first call, then allows every call."""

    def __init__(self):
        self.calls = 0

    def acquire(self, key, rate, *, tokens=1, meta=None):
        self.calls += 1
        return RateLimitDecision(allowed=self.calls > 1, retry_after=0.01)


def test_a_rate_limited_delivery_counts_as_rate_limited_not_as_a_retry(h):
    h.registry.register("limited", TaskHandler.inline(report_attempt, TaskOptions(rate_limit="100/s")))
    worker, rec = h.worker(rate_limiter=_DenyFirst(), observability=METRICS)
    tid = h.stem.enqueue("limited", {})
    _wait_settled(rec, tid, "succeeded")
    snap = worker.metrics.statistics()
    assert snap.value("stem_tasks_rate_limited_total", task="limited") == 1
    assert snap.value("stem_tasks_retried_total") == 0
    assert snap.value("stem_tasks_started_total", task="limited") == 1


def test_gauges_report_inflight_concurrency_and_the_isolate_pool_size(h):
    release = threading.Event()
    h.registry.register("block", TaskHandler.inline(lambda ctx, a: release.wait(30)))
    h.registry.register("iso", TaskHandler(report_attempt))
    worker, rec = h.worker(concurrency=2, observability=METRICS)
    snap = worker.metrics.statistics()
    assert snap.value("stem_worker_isolates") == 0 and snap.value("stem_worker_concurrency") == 2
    blocked = h.stem.enqueue("block", {})
    rec.wait_for(E.PRERUN, blocked)
    assert worker.metrics.statistics().value("stem_worker_inflight") == 1
    release.set()
    _wait_settled(rec, blocked, "succeeded")
    iso = h.stem.enqueue("iso", {})
    _wait_settled(rec, iso, "succeeded")
    snap = worker.metrics.statistics()
    assert snap.value("stem_worker_isolates") == worker.pool.size >= 1
    assert snap.value("stem_tasks_succeeded_total", task="iso") == 1


def test_queue_depth_is_sampled_on_the_worker_heartbeat(h):
    release = threading.Event()
    h.registry.register("block", TaskHandler.inline(lambda ctx, a: release.wait(30)))
    worker, rec = h.worker(observability=METRICS, worker_heartbeat_interval=3600)
    rec.wait_for(E.WORKER_HEARTBEAT)  # the first beat, at start: nothing queued yet
    assert worker.metrics.statistics().family("stem_queue_depth").get(queue="default") == 0
    blocked = h.stem.enqueue("block", {})
    rec.wait_for(E.PRERUN, blocked)  # holds the only slot (prefetch 1): the next three wait
    for _ in range(3):
        h.stem.enqueue("block", {})
    from stemnb._worker._heartbeat import beat

    beat(worker)  # what the heartbeat timer runs
    assert worker.metrics.statistics().value("stem_queue_depth", queue="default") == 3
    release.set()


_SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})? (\S+)\Z')


def _parse(text: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], float]]]:
    """Parse Prometheus text 0.0.4 strictly: every line is HELP, TYPE or a sample of a typed family."""
    assert text.endswith("\n")
    types: dict[str, str] = {}
    samples = []
    for line in text.splitlines():
        if line.startswith("# HELP "):
            assert len(line.split(" ", 3)) == 4, line
        elif line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram") and name not in types, line
            types[name] = kind
        else:
            match = _SAMPLE.match(line)
            assert match, line
            name, labels, value = match.group(1), match.group(2) or "{}", match.group(3)
            family = re.sub(r"_(bucket|sum|count)\Z", "", name) if name not in types else name
            assert family in types, f"sample before its TYPE: {line}"
            pairs = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', labels))
            samples.append((name, pairs, float(value)))
    return types, samples


def test_worker_prometheus_text_parses_back_line_by_line(h):
    def always(ctx, args):
        raise RuntimeError("always")

    h.registry.register("ok", TaskHandler.inline(report_attempt))
    h.registry.register("always", TaskHandler.inline(always))
    worker, rec = h.worker(observability=METRICS)
    ids = [h.stem.enqueue("ok", {}) for _ in range(2)]
    failing = h.stem.enqueue("always", {})
    for tid in ids:
        _wait_settled(rec, tid, "succeeded")
    _wait_settled(rec, failing, "failed")
    text = worker.metrics.prometheus_text()
    types, samples = _parse(text)
    assert types["stem_tasks_succeeded_total"] == "counter"
    assert types["stem_worker_inflight"] == "gauge"
    assert types["stem_task_duration_seconds"] == "histogram"
    assert 'stem_tasks_succeeded_total{task="ok",queue="default"} 2.0' in text.splitlines()
    line = 'stem_tasks_dead_lettered_total{task="always",queue="default",reason="max-retries-exhausted"} 1.0'
    assert line in text.splitlines()
    buckets = [(s[1]["le"], s[2]) for s in samples
               if s[0] == "stem_task_duration_seconds_bucket" and s[1]["task"] == "ok"]
    counts = [c for _, c in buckets]
    assert counts == sorted(counts) and buckets[-1] == ("+Inf", 2.0)
    [count] = [s[2] for s in samples if s[0] == "stem_task_duration_seconds_count" and s[1]["task"] == "ok"]
    assert count == 2.0


# -- the HTTP endpoint ----------------------------------------------------------------------------
def test_metrics_endpoint_serves_prometheus_text_on_the_port_it_picked(h):
    h.registry.register("ok", TaskHandler.inline(report_attempt))
    worker, rec = h.worker(observability=ObservabilityConfig(metrics_port=0))
    server = worker.metrics.server
    assert server is not None and server.port > 0 and server.url == f"http://127.0.0.1:{server.port}/metrics"
    tid = h.stem.enqueue("ok", {})
    _wait_settled(rec, tid, "succeeded")
    with urllib.request.urlopen(server.url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        body = response.read().decode("utf-8")
    types, samples = _parse(body)
    assert ("stem_tasks_succeeded_total", {"task": "ok", "queue": "default"}, 1.0) in samples
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=10)
    assert err.value.code == 404
    err.value.close()
    assert worker.metrics.serve() is server  # serving again returns the running endpoint


def test_metrics_endpoint_closes_with_the_worker_and_leaves_no_thread(h):
    worker, rec = h.worker(observability=ObservabilityConfig(metrics_port=0))
    server = worker.metrics.server
    thread, port = server.thread, server.port
    assert thread.is_alive()
    worker.close()
    assert server.closed and not thread.is_alive()
    assert thread not in threading.enumerate()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert worker.metrics.statistics().value("stem_worker_inflight") == 0  # still readable
    with pytest.raises(stemnb.ClosedError):
        worker.metrics.serve()


def test_metrics_endpoint_of_a_worker_never_started_closes_with_close(h):
    worker = stemnb.Worker(h.broker, h.registry, h.backend, concurrency=1, lifecycle=FAST_LIFECYCLE,
                           observability=ObservabilityConfig(metrics_port=0))
    server = worker.metrics.server
    with urllib.request.urlopen(server.url, timeout=10) as response:
        assert response.status == 200
    worker.close()
    assert server.closed and not server.thread.is_alive()


def test_a_metrics_port_already_taken_fails_the_worker_construction(h):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            stemnb.Worker(h.broker, h.registry, h.backend, concurrency=1, lifecycle=FAST_LIFECYCLE,
                          observability=ObservabilityConfig(metrics_port=port))


def test_worker_metrics_can_serve_on_demand_when_no_port_was_configured(h):
    worker, rec = h.worker(observability=METRICS)
    assert worker.metrics.server is None
    server = worker.metrics.serve(0)
    with urllib.request.urlopen(server.url, timeout=10) as response:
        _parse(response.read().decode("utf-8"))
    worker.close()
    assert not server.thread.is_alive()
