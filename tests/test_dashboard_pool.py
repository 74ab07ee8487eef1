"""PoolDashboard on a real IsolatePool, checked through its widget state (headless)."""

from __future__ import annotations

import time

import pytest

import stemnb
from stemnb.testing import eventually

pytestmark = pytest.mark.timeout(120)


def block(seconds: float) -> None:
    time.sleep(seconds)  # the workload of a busy isolate; the tests never wait on it


def announce_then_block(port, seconds: float) -> None:
    port.send("started")
    time.sleep(seconds)


def square(x: int) -> int:
    return x * x


@pytest.fixture
def pool():
    p = stemnb.IsolatePool(1, debug_name="dash")
    yield p
    p.close(timeout=10)


@pytest.fixture
def dash(pool):
    d = stemnb.PoolDashboard(pool, start=False)
    yield d
    d.close()


def cells(dash, index=0):
    row = dash.rows.children[index]
    return [c.value for c in row.children[:-1]]


def test_pool_dashboard_is_public_and_shows_one_row_per_isolate(pool, dash):
    assert stemnb.PoolDashboard is type(dash)
    eventually(lambda: pool.statistics().idle == 1, timeout=60)
    dash.refresh()
    assert len(dash.rows.children) == 1
    name, pid, state, tasks, rss, call = cells(dash)
    assert pid == str(pool.isolates()[0].pid)
    assert ">idle<" in state and tasks == "0" and call == "-"
    assert rss.endswith("MiB")
    assert "IsolatePool dash" in dash.title.value and "running" in dash.title.value


def test_busy_isolate_row_shows_the_current_call_and_its_elapsed_time(pool, dash):
    fut = pool.run(block, 60, debug_name="slowcall")
    try:
        eventually(lambda: pool.statistics().busy == 1, timeout=60)
        dash.refresh()
        assert ">busy<" in cells(dash)[2]
        assert cells(dash)[5].startswith("slowcall (")
    finally:
        fut.cancel()


def test_pause_button_pauses_and_resumes_the_pool(pool, dash):
    dash.refresh()
    assert dash.pause_button.description == "pause"
    dash.pause_button.click()
    assert pool.statistics().state == "paused"
    assert dash.pause_button.description == "resume"
    queued = pool.run(square, 7)
    dash.refresh()
    assert "queued <b>1</b>" in dash.summary.value
    dash.pause_button.click()
    assert queued.result(timeout=60) == 49
    dash.refresh()
    assert dash.pause_button.description == "pause"


def test_resize_button_resizes_the_pool_and_rows_follow(pool, dash):
    dash.size_input.value = 2
    dash.resize_button.click()
    assert pool.size == 2
    eventually(lambda: len(pool.isolates()) == 2, timeout=60)
    dash.refresh()
    assert len(dash.rows.children) == 2


def test_kill_button_ends_that_isolate_and_fails_its_call(pool, dash):
    started = stemnb.ReceivePort()
    fut = pool.run(announce_then_block, started.send_port, 60)
    assert started.receive(timeout=60) == "started"  # the call runs: killing now fails it
    started.close()
    dash.refresh()
    killed_pid = int(cells(dash)[1])
    dash.rows.children[0].children[-1].click()
    with pytest.raises(stemnb.IsolateExitedError):
        fut.result(timeout=60)
    eventually(lambda: [i.pid for i in pool.isolates()] not in ([], [killed_pid]), timeout=60)
    dash.refresh()
    assert killed_pid not in [int(cells(dash, i)[1]) for i in range(len(dash.rows.children))
                              if cells(dash, i)[1] != "None"]


def test_a_failing_button_shows_its_error_in_the_dashboard(pool, dash):
    eventually(lambda: pool.statistics().idle == 1, timeout=60)
    dash.refresh()
    stale_pid = pool.isolates()[0].pid
    pool.kill_isolate(stale_pid)
    eventually(lambda: stale_pid not in [i.pid for i in pool.isolates()], timeout=60)
    dash.rows.children[0].children[-1].click()  # the row has not been refreshed yet
    assert dash.error.layout.display is None
    assert "ValueError" in dash.error.value and f"pid {stale_pid} is not a process" in dash.error.value
    dash.pause_button.click()  # the next action that works clears the error line
    assert dash.error.value == "" and dash.error.layout.display == "none"


def test_throughput_sparkline_counts_completed_calls(pool, dash):
    dash.refresh()
    assert [f.result(timeout=60) for f in [pool.run(square, i) for i in range(5)]] == [0, 1, 4, 9, 16]
    eventually(lambda: pool.statistics().completed == 5, timeout=60)
    dash.refresh()
    assert dash._rates and dash._rates[-1] > 0
    assert "completed <b>5</b>" in dash.summary.value
    assert "stemnb-sparkline" in dash.summary.value


def test_dashboard_that_outlives_its_pool_shows_closed_without_raising(pool):
    dash = stemnb.PoolDashboard(pool, interval=0.1)
    try:
        assert dash.refreshing
        pool.close(timeout=10)
        eventually(lambda: not dash.refreshing, timeout=30)
        assert dash.target_closed
        assert ">closed<" in dash.title.value
        assert dash.pause_button.disabled and dash.resize_button.disabled
        dash.refresh()  # no error after the pool is gone
        assert "(closed)" in repr(dash)
    finally:
        dash.close()


def test_background_refresher_updates_without_explicit_refresh(pool):
    dash = stemnb.PoolDashboard(pool, interval=0.1)
    try:
        assert [f.result(timeout=60) for f in [pool.run(square, 3)]] == [9]
        eventually(lambda: "completed <b>1</b>" in dash.summary.value, timeout=30)
    finally:
        dash.close()
    assert dash.closed and not dash.refreshing
    dash.close()  # idempotent


def test_text_form_lists_the_isolates(pool, dash):
    eventually(lambda: pool.statistics().idle == 1, timeout=60)
    dash.refresh()
    text = repr(dash)
    assert text.startswith("<PoolDashboard of IsolatePool 'dash' state=running size=1")
    assert str(pool.isolates()[0].pid) in text
    bundle = dash._repr_mimebundle_()
    assert bundle["text/plain"] == text
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_interval_below_a_tenth_of_a_second_is_rejected(pool):
    with pytest.raises(ValueError, match="at least 0.1 s"):
        stemnb.PoolDashboard(pool, interval=0.01)
