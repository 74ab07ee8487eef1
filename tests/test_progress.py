"""stemnb.progress over real futures: text outside a kernel, a widget on request, throttled redraws."""

from __future__ import annotations

import concurrent.futures
import io
import sys
import threading
import time

import pytest

import stemnb
from stemnb._dashboard_base import is_kernel
from stemnb._progress import progress, task_outcome


def finished_futures(results):
    futures = []
    for value in results:
        fut = concurrent.futures.Future()
        if isinstance(value, BaseException):
            fut.set_exception(value)
        else:
            fut.set_result(value)
        futures.append(fut)
    return futures


def test_progress_is_a_public_name():
    assert stemnb.progress is progress


def test_text_progress_blocks_until_futures_finish_outside_a_kernel():
    assert not is_kernel()
    gate = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(gate.wait) for _ in range(4)]
        out = io.StringIO()
        threading.Timer(0, gate.set).start()  # released from another thread, not slept on
        bar = progress(futures, file=out, label="work")
    assert bar.finished and bar.done == 4 and bar.failed == 0
    assert out.getvalue().endswith("work: [##############################] 4 / 4 done\n")


def test_text_progress_counts_errors_and_cancellations_as_failed():
    futures = finished_futures([1, ValueError("x")])
    cancelled = concurrent.futures.Future()
    cancelled.cancel()
    out = io.StringIO()
    bar = progress([*futures, cancelled], file=out)
    assert (bar.succeeded, bar.failed, bar.total) == (1, 2, 3)
    assert out.getvalue().splitlines()[-1].endswith("3 / 3 done, 2 failed")


def test_progress_without_wait_returns_at_once_and_finishes_later():
    fut = concurrent.futures.Future()
    out = io.StringIO()
    bar = progress(fut, file=out, wait=False)
    assert not bar.finished and bar.done == 0
    fut.set_result(None)
    assert bar.wait(timeout=30)
    assert repr(bar) == "<ProgressBar 1 / 1 done>"
    bar.close()


def test_widget_progress_fills_the_bar_and_turns_green():
    futures = finished_futures([1, 2])
    bar = progress(futures, notebook=True, label="tasks")
    assert bar.wait(timeout=30)
    box = bar.widget
    float_progress, html = box.children
    assert float_progress.value == 2 and float_progress.max == 2
    assert float_progress.bar_style == "success" and float_progress.description == "tasks"
    assert "2 / 2 done" in html.value
    bundle = bar._mimebundle()
    assert bundle["text/plain"] == "<ProgressBar tasks: 2 / 2 done>"
    assert "application/vnd.jupyter.widget-view+json" in bundle
    bar.close()


def test_widget_progress_turns_red_when_a_future_fails():
    bar = progress(finished_futures([1, RuntimeError("boom")]), notebook=True)
    assert bar.wait(timeout=30)
    assert bar.widget.children[0].bar_style == "danger"
    assert "1 failed" in bar.widget.children[1].value
    bar.close()


def test_progress_redraws_are_throttled_whatever_the_completion_rate():
    futures = [concurrent.futures.Future() for _ in range(2000)]
    out = io.StringIO()
    start = time.monotonic()
    bar = progress(futures, file=out, wait=False, interval=0.25)
    for fut in futures:
        fut.set_result(None)
    assert bar.wait(timeout=60)
    elapsed = time.monotonic() - start
    ticks = bar._refresher.ticks
    assert ticks <= elapsed / 0.25 + 2, (ticks, elapsed)
    assert out.getvalue().count("\r") == ticks
    bar.close()


def test_progress_of_an_empty_list_finishes_at_once():
    out = io.StringIO()
    bar = progress([], file=out)
    assert bar.finished and out.getvalue() == "\r[##############################] 0 / 0 done\n"


def test_task_ids_without_a_backend_are_rejected():
    with pytest.raises(ValueError, match=r"task ids \('t-1', ...\) need backend="):
        progress(["t-1"], wait=False)


def test_a_task_id_listed_twice_is_rejected():
    backend = stemnb.InMemoryResultBackend()
    try:
        with pytest.raises(ValueError, match="task id 'a' is listed more than once"):
            progress(["a", "b", "a"], backend=backend, wait=False)
    finally:
        backend.close()


def test_progress_counts_tasks_that_finished_before_it_started():
    backend = stemnb.InMemoryResultBackend()
    try:
        backend.set("done", stemnb.TaskState.SUCCEEDED)
        bar = progress(["done"], backend=backend, file=io.StringIO())
        assert bar.finished and bar.succeeded == 1
    finally:
        backend.close()


def test_items_that_are_not_futures_or_task_ids_are_rejected():
    with pytest.raises(TypeError, match="got int: 3"):
        progress([3])
    with pytest.raises(TypeError, match="got int"):
        progress(3)


def test_too_fast_an_interval_is_rejected():
    with pytest.raises(ValueError, match="at least 0.1 s"):
        progress([], interval=0.01)


def test_widget_progress_without_ipywidgets_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", None)
    with pytest.raises(ImportError, match=r'pip install "stemnb\[notebook\]"'):
        progress(finished_futures([1]), notebook=True)


def test_task_outcome_reads_enum_and_string_states():
    class Status:
        def __init__(self, state):
            self.state = state

    assert task_outcome(None) is None
    assert task_outcome(Status("running")) is None
    assert task_outcome(Status("SUCCEEDED")) is True
    assert task_outcome(Status("failed")) is False


def test_progress_over_task_ids_follows_a_real_result_backend():
    backend = stemnb.InMemoryResultBackend()
    try:
        for task_id in ("a", "b", "c"):
            backend.set(task_id, stemnb.TaskState.RUNNING)
        out = io.StringIO()
        bar = progress(["a", "b", "c"], backend=backend, file=out, wait=False, interval=0.1)
        assert not bar.finished
        backend.set("a", stemnb.TaskState.SUCCEEDED)
        backend.set("b", stemnb.TaskState.FAILED)
        backend.set("c", stemnb.TaskState.RETRIED)  # not terminal: still counted as pending
        backend.set("c", stemnb.TaskState.SUCCEEDED)
        assert bar.wait(timeout=30)
        assert (bar.succeeded, bar.failed) == (2, 1)
        assert out.getvalue().endswith("3 / 3 done, 1 failed\n")
        bar.close()
    finally:
        backend.close()


def test_notebook_names_resolve_without_importing_ipython_or_ipywidgets():
    import subprocess

    code = ("import sys, stemnb\n"
            "stemnb.progress, stemnb.ProgressBar, stemnb.PoolDashboard, stemnb.WorkerDashboard\n"
            "heavy = [m for m in ('IPython', 'ipywidgets', 'numpy') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.redis
def test_progress_over_task_ids_follows_a_real_redis_backend():
    import uuid

    from redis_support import REDIS_URL as url

    namespace = f"stemnb-test-progress-{uuid.uuid4().hex[:8]}"
    backend = stemnb.RedisResultBackend(url, namespace=namespace)
    try:
        backend.set("r1", stemnb.TaskState.RUNNING)
        bar = progress(["r1", "r2"], backend=backend, file=io.StringIO(), wait=False)
        backend.set("r2", stemnb.TaskState.FAILED)
        backend.set("r1", stemnb.TaskState.SUCCEEDED)
        assert bar.wait(timeout=30)
        assert (bar.succeeded, bar.failed) == (1, 1)
        bar.close()
    finally:
        for task_id in ("r1", "r2"):
            backend.forget(task_id)
        backend.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_in_a_real_kernel_progress_displays_its_widget_once_with_a_text_fallback(tmp_path):
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[
        new_code_cell("import concurrent.futures, stemnb\n"
                      "futures = [concurrent.futures.Future() for _ in range(3)]\n"
                      "bar = stemnb.progress(futures, label='tasks')\n"
                      "bar"),  # shown by progress() already: not a second time
        new_code_cell("for f in futures:\n    f.set_result(None)\n"
                      "bar.wait(timeout=60)\nprint(bar.done, bar.widget.children[0].bar_style)"),
        new_code_cell("bar"),  # a later cell shows it again
    ])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    first, second, third = (cell.outputs for cell in nb.cells)
    assert len(first) == 1 and first[0].output_type == "display_data"
    data = first[0].data
    assert "application/vnd.jupyter.widget-view+json" in data
    assert data["text/plain"] == "<ProgressBar tasks: 0 / 3 done>"
    assert "0 / 3 done" in data["text/html"]
    assert second[0].text == "3 success\n"
    assert len(third) == 1 and "application/vnd.jupyter.widget-view+json" in third[0].data
