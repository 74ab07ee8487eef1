"""WorkerDashboard on a real Worker (in-memory broker and backend), checked through its widget state."""

from __future__ import annotations

import threading

import pytest

import stemnb
from stemnb.testing import eventually

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def setup():
    broker = stemnb.InMemoryBroker()
    backend = stemnb.InMemoryResultBackend()
    registry = stemnb.TaskRegistry()
    release = threading.Event()

    def add(context, args):
        return args["a"] + args["b"]

    def boom(context, args):
        raise ValueError("bad input <x>")

    def halfway(context, args):
        context.progress(0.5)
        while not release.wait(0.02):
            context.heartbeat()  # a revocation ends the task here
        return "done"

    registry.register("add", stemnb.TaskHandler(add, isolate=False))
    registry.register("boom", stemnb.TaskHandler(boom, isolate=False))
    registry.register("halfway", stemnb.TaskHandler(halfway, isolate=False))
    worker = stemnb.Worker(broker, registry, backend, concurrency=2)
    stem = stemnb.Stem(broker, backend, registry=registry)
    yield worker, stem, backend, release
    release.set()
    worker.close()
    backend.close()
    broker.close()


@pytest.fixture
def dash(setup):
    worker = setup[0]
    worker.start()
    d = stemnb.WorkerDashboard(worker, start=False)
    yield d
    d.close()


def state_of(backend, task_id):
    status = backend.get(task_id)
    return None if status is None else status.state.value


def test_worker_dashboard_is_public_and_shows_the_queue(setup, dash):
    assert stemnb.WorkerDashboard is type(dash)
    dash.refresh()
    assert len(dash.queues.children) == 1
    name, depth, button = dash.queues.children[0].children
    assert "default" in name.value and "depth <b>0</b>" in depth.value
    assert button.description == "pause"
    assert setup[0].worker_id in dash.title.value and "running" in dash.title.value


def test_queue_pause_button_pauses_the_queue_and_shows_it(setup, dash):
    worker, stem, backend, _ = setup
    dash.refresh()
    button = dash.queues.children[0].children[2]
    button.click()
    assert worker.paused_queues() == ["default"]
    assert button.description == "resume"
    assert ">paused<" in dash.queues.children[0].children[1].value
    task_id = stem.enqueue("add", {"a": 1, "b": 2})
    button.click()
    assert worker.paused_queues() == []
    eventually(lambda: state_of(backend, task_id) == "succeeded", timeout=60)


def test_recent_events_list_completions_and_failures_with_error_text(setup, dash):
    worker, stem, backend, _ = setup
    ok = stem.enqueue("add", {"a": 1, "b": 2})
    bad = stem.enqueue("boom", {}, max_retries=0)
    eventually(lambda: state_of(backend, ok) == "succeeded" and state_of(backend, bad) == "failed",
               timeout=60)
    eventually(lambda: len(dash.recent) >= 2, timeout=30)
    dash.refresh()
    table = dash.events_table.value
    assert ">completed<" in table and ">failed<" in table
    assert "ValueError: bad input &lt;x&gt;" in table
    assert ok in table and bad in table
    assert "succeeded <b>1</b>" in dash.summary.value


def test_inflight_task_shows_its_progress_and_revoke_stops_it(setup, dash):
    worker, stem, backend, _ = setup
    task_id = stem.enqueue("halfway", {})
    eventually(lambda: dash.progress.get(task_id) == 0.5, timeout=60)
    dash.refresh()
    assert len(dash.tasks.children) == 1
    label, bar, revoke = dash.tasks.children[0].children
    assert "halfway" in label.value and bar.value == 0.5
    revoke.click()
    eventually(lambda: state_of(backend, task_id) == "cancelled", timeout=60)
    eventually(lambda: any(e.task_id == task_id for e in dash.recent), timeout=30)
    dash.refresh()
    assert dash.tasks.children == ()
    assert ">revoked<" in dash.events_table.value


def test_scale_button_changes_the_concurrency(setup, dash):
    worker = setup[0]
    dash.concurrency_input.value = 1
    dash.scale_button.click()
    assert worker.active_concurrency == 1
    dash.refresh()
    assert "concurrency <b>1</b>" in dash.summary.value


def test_shutdown_button_stops_the_worker_and_the_dashboard_shows_closed(setup):
    worker = setup[0]
    worker.start()
    dash = stemnb.WorkerDashboard(worker, interval=0.1)
    try:
        dash.shutdown_button.click()
        eventually(lambda: worker.state.value == "stopped", timeout=60)
        eventually(lambda: dash.target_closed and not dash.refreshing, timeout=30)
        assert ">closed<" in dash.title.value
        assert dash.scale_button.disabled and dash.shutdown_button.disabled
        assert repr(dash).endswith("(closed)")
    finally:
        dash.close()


def test_text_form_shows_queues_and_counters(setup, dash):
    dash.refresh()
    text = repr(dash)
    assert text.startswith(f"<WorkerDashboard of Worker '{setup[0].worker_id}' state=running")
    assert "default" in text
    assert dash._repr_mimebundle_()["text/plain"] == text


def test_worker_reprs_render_from_the_worker_itself(setup):
    worker = setup[0]
    worker.start()
    from stemnb import _html

    assert "Worker " + worker.worker_id in worker._repr_html_()
    assert _html.worker_text(worker).startswith(f"<Worker '{worker.worker_id}' state=running")
