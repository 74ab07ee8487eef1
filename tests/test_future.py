"""stemnb.Future behaves as a concurrent.futures.Future for every standard-library helper."""

from __future__ import annotations

import concurrent.futures as cf
import threading

import pytest

from stemnb import Future


def settle_later(future: Future, value: object, gate: threading.Event) -> threading.Thread:
    """Settle ``future`` with ``value`` from another thread once ``gate`` is set."""

    def run() -> None:
        gate.wait()
        future._settle(value)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_result_waits_for_a_value_set_from_another_thread():
    future: Future = Future()
    gate = threading.Event()
    thread = settle_later(future, 42, gate)
    gate.set()
    assert future.result() == 42
    thread.join()


def test_result_with_a_timeout_raises_timeouterror_while_pending():
    with pytest.raises(cf.TimeoutError):
        Future().result(timeout=0)


def test_wait_and_as_completed_see_settled_stemnb_futures():
    futures = [Future() for _ in range(3)]
    gate = threading.Event()
    threads = [settle_later(f, i, gate) for i, f in enumerate(futures)]
    done, pending = cf.wait(futures, timeout=0)
    assert not done and len(pending) == 3
    gate.set()
    assert sorted(f.result() for f in cf.as_completed(futures)) == [0, 1, 2]
    done, pending = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
    assert len(done) == 3 and not pending
    for thread in threads:
        thread.join()


def test_wait_first_exception_returns_on_a_settled_exception():
    ok, bad = Future(), Future()
    bad._settle(exception=ValueError("boom"))
    done, pending = cf.wait([ok, bad], return_when=cf.FIRST_EXCEPTION)
    assert done == {bad} and pending == {ok}
    with pytest.raises(ValueError, match="boom"):
        bad.result()


def test_settle_happens_once_and_runs_done_callbacks_once():
    future: Future = Future()
    seen: list[object] = []
    future.add_done_callback(lambda f: seen.append(f.result()))
    assert future._settle("first")
    assert not future._settle("second")
    assert not future._settle(exception=RuntimeError("late"))
    assert future.result() == "first" and seen == ["first"]


def test_a_cancelled_future_is_not_settled_afterwards():
    future: Future = Future()
    assert future.cancel()
    assert not future._settle(1)
    assert future.cancelled()
    with pytest.raises(cf.CancelledError):
        future.result()


def test_many_threads_waiting_on_one_future_all_wake():
    future: Future = Future()
    results: list[object] = []
    waiters = [threading.Thread(target=lambda: results.append(future.result())) for _ in range(8)]
    for thread in waiters:
        thread.start()
    future._settle("go")
    for thread in waiters:
        thread.join()
    assert results == ["go"] * 8


def test_a_settled_pool_future_is_freed_by_reference_counting_alone():
    """A settled future keeps nothing that refers back to it, so its result (maybe a large shared-memory
    array whose segment the pool wants back) goes as soon as the caller drops it, not at the next GC."""
    import gc
    import weakref

    import stemnb

    gc.disable()
    try:
        with stemnb.IsolatePool(1) as pool:
            future = pool.run(abs, -1)
            assert future.result(30) == 1
            cancelled = pool.run(abs, -2)
            cancelled.cancel()
            limited = pool.run(abs, -3, timeout=3600)  # its timer is cancelled, not yet due
            assert limited.result(30) == 3
        refs = [weakref.ref(future), weakref.ref(cancelled), weakref.ref(limited)]
        del future, cancelled, limited
        assert [ref() for ref in refs] == [None, None, None]
    finally:
        gc.enable()


def test_a_future_waited_on_only_by_result_is_two_objects_for_the_garbage_collector():
    """Thousands of futures are in flight at once in a pool's burst: each object the collector traces
    per future is paid again in every collection while they live."""
    import gc

    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        futures = [Future(debug_name="f") for _ in range(1000)]
        for i, future in enumerate(futures):
            future._settle(i)
        assert [f.result() for f in futures] == list(range(1000))
        assert len(gc.get_objects()) - before <= 2 * 1000 + 10  # the future and its condition (an RLock)
    finally:
        gc.enable()


def test_a_cancel_wakes_as_completed_and_a_done_callback_added_before_it():
    future: Future = Future()
    seen: list[bool] = []
    future.add_done_callback(lambda f: seen.append(f.cancelled()))
    gate = threading.Event()
    finished: list[cf.Future] = []

    def collect() -> None:
        gate.set()
        finished.extend(cf.as_completed([future]))

    thread = threading.Thread(target=collect)
    thread.start()
    gate.wait()
    assert future.cancel()
    assert future.set_running_or_notify_cancel() is False  # tells the waiters, as an executor would
    thread.join()
    assert finished == [future] and seen == [True]
