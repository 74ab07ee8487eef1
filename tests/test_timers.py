"""The timer threads (``stemnb._timers``): order, periodic runs, cancellation that forgets at once,
the sweep of cancelled entries, close, and what a busy worker keeps alive."""

from __future__ import annotations

import gc
import logging
import threading
import weakref

import pytest

from stemnb import _timers
from stemnb._timers import SWEEP_MIN, Timers, call_later
from stemnb.testing import eventually

FAR = 3600.0  # a deadline no test reaches


@pytest.fixture
def timers():
    t = Timers(name="stemnb-test-timers")
    yield t
    t.close()


class Marker:
    """An object a callback refers to, to see whether a timer keeps it alive."""


def test_callbacks_run_in_deadline_order_whatever_order_they_were_scheduled_in(timers):
    ran: list[str] = []
    done = threading.Event()
    timers.call_later(0.03, lambda: (ran.append("third"), done.set()))
    timers.call_later(0.0, lambda: ran.append("first"))
    timers.call_later(0.01, lambda: ran.append("second"))
    assert done.wait(10)
    assert ran == ["first", "second", "third"]


def test_a_periodic_callback_runs_until_it_is_cancelled_from_inside_itself(timers):
    runs: list[int] = []
    stopped = threading.Event()
    handle = None

    def tick() -> None:
        runs.append(1)
        if len(runs) == 3:
            handle.cancel()
            stopped.set()

    handle = timers.call_every(0.001, tick, name="tick")
    assert stopped.wait(10)
    sentinel = threading.Event()
    timers.call_later(0.02, sentinel.set)  # a later timer: tick would have run again before it
    assert sentinel.wait(10)
    assert len(runs) == 3
    assert timers.pending == 0


def test_call_every_refuses_an_interval_that_is_not_positive(timers):
    with pytest.raises(ValueError, match="interval must be > 0"):
        timers.call_every(0, lambda: None)


def _schedule_holding_a_marker(schedule, delay, then=lambda: None):
    """Schedule a callback that refers to a new Marker; return the handle and a weak reference."""
    marker = Marker()
    return schedule(delay, lambda: (marker, then())), weakref.ref(marker)


def test_a_cancelled_callback_never_runs_and_what_it_refers_to_is_freed_at_once(timers):
    ran = threading.Event()
    handle, alive = _schedule_holding_a_marker(timers.call_later, 0.01, ran.set)
    handle.cancel()
    handle.cancel()  # idempotent
    gc.collect()
    assert alive() is None
    later = threading.Event()
    timers.call_later(0.05, later.set)
    assert later.wait(10)
    assert not ran.is_set()


def test_cancelled_entries_are_swept_so_the_heap_holds_only_live_timers(timers):
    live = [timers.call_later(FAR, lambda: None) for _ in range(10)]
    for _ in range(20):
        for handle in [timers.call_every(FAR, lambda: None) for _ in range(100)]:
            handle.cancel()
    assert timers.pending == 10
    assert len(timers._heap) <= 2 * SWEEP_MIN + len(live)
    fired = threading.Event()
    timers.call_later(0.0, fired.set)  # the thread still serves the swept heap
    assert fired.wait(10)


def test_a_failing_callback_is_logged_and_the_thread_goes_on(timers, caplog):
    caplog.set_level(logging.ERROR, logger="stemnb.timers")
    after = threading.Event()
    timers.call_later(0.0, lambda: 1 / 0, name="broken")
    timers.call_later(0.01, after.set)
    assert after.wait(10)
    assert any("timer 'broken' failed" in r.getMessage() and r.exc_info for r in caplog.records)


def test_close_withdraws_pending_callbacks_and_later_ones_come_back_cancelled():
    timers = Timers(name="stemnb-test-close")
    pending, alive = _schedule_holding_a_marker(timers.call_later, FAR)
    timers.close()
    timers.close()  # idempotent
    gc.collect()
    assert pending.cancelled and alive() is None
    assert not timers._thread.is_alive()
    late = timers.call_later(0.0, lambda: None)
    assert late.cancelled and timers.pending == 0


def test_close_from_inside_a_callback_ends_the_thread_without_a_deadlock():
    timers = Timers(name="stemnb-test-self-close")
    closed = threading.Event()
    timers.call_later(0.0, lambda: (timers.close(), closed.set()))
    assert closed.wait(10)
    timers._thread.join(10)
    assert not timers._thread.is_alive()


def test_the_process_wide_call_later_runs_on_its_own_thread():
    seen: list[str] = []
    done = threading.Event()
    call_later(0.0, lambda: (seen.append(threading.current_thread().name), done.set()))
    assert done.wait(10)
    assert seen == ["stemnb-timers"]
    assert _timers._process_timers is not None and _timers._process_timers.pending >= 0


def test_a_busy_worker_keeps_no_finished_task_alive_through_its_timers(h):
    """Every task schedules a lease renewal (and a heartbeat) and cancels it when settled; the
    cancelled timers must not keep the finished tasks, their envelopes and arguments alive."""
    from stemnb._worker._active import ActiveTask

    h.registry.register("echo", _echo_handler())
    worker, _ = h.worker(concurrency=2, heartbeat_interval=30.0)
    ids = [h.stem.enqueue("echo", args={"blob": "x" * 1000, "i": i}) for i in range(300)]
    for task_id in ids:
        assert h.wait(task_id).state.value == "succeeded"
    eventually(lambda: len(worker._active) == 0, timeout=30)  # stored first, then acked and released
    gc.collect()
    held = [obj for obj in gc.get_objects() if isinstance(obj, ActiveTask)]
    assert len(held) <= 4, f"{len(held)} finished tasks still referenced"
    assert len(worker._timers._heap) <= 2 * SWEEP_MIN + worker._timers.pending


def _echo_handler():
    import stemnb

    return stemnb.TaskHandler(lambda context, args: args["i"], isolate=False)
