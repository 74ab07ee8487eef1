"""IsolatePool and stemnb.run: real processes, real pickling, real crashes."""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import stemnb
from stemnb import IsolateRecycleReason


def _started_then(port, value, seconds):
    """Tell the test the call is running, then work for a while (the test decides when to stop it)."""
    port.send(os.getpid())
    time.sleep(seconds)
    return value


def test_run_returns_the_result_of_a_lambda(pool):
    assert pool.run(lambda x, y=1: x * 10 + y, 4, y=2).result(30) == 42


def _echo(value):
    return value


def test_results_of_every_builtin_scalar_type_and_of_their_subclasses_come_back_as_themselves(pool):
    values = [7, 2.5, 1j, True, "text", b"raw", None, 10**40, signal.Signals.SIGTERM, os.sep]
    results = [pool.run(_echo, v).result(30) for v in values]
    assert results == values
    assert [type(r) for r in results] == [type(v) for v in values]  # the enum stays an enum


def test_run_returns_a_stemnb_future_that_is_a_concurrent_future(pool):
    fut = pool.run(abs, -3)
    assert isinstance(fut, stemnb.Future) and isinstance(fut, cf.Future)
    assert fut.result(30) == 3


def test_closures_see_the_values_they_captured(pool):
    base = {"k": 7}

    def add(x):
        return x + base["k"]

    assert pool.run(add, 1).result(30) == 8


def test_functions_defined_in_a_file_less_main_work_as_in_a_notebook():
    script = textwrap.dedent("""
        import stemnb
        def triple(x):
            return 3 * x
        with stemnb.IsolatePool(1) as p:
            print(p.run(triple, 5).result(60), p.run(lambda: __name__).result(60))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "15"
    assert "resource_tracker" not in out.stderr


def test_starting_processes_does_not_start_multiprocessings_resource_tracker_but_user_code_still_can():
    script = textwrap.dedent("""
        from multiprocessing import resource_tracker, shared_memory
        import stemnb
        with stemnb.IsolatePool(2) as p:
            p.run(abs, -1).result(60)
            print("mp tracker started:", resource_tracker._resource_tracker._pid is not None)
            shm = shared_memory.SharedMemory(create=True, size=16)  # the user's own use starts it
            shm.close()
            shm.unlink()
            print("mp tracker started:", resource_tracker._resource_tracker._pid is not None)
            print(p.run(abs, -2).result(60))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["mp tracker started: False", "mp tracker started: True", "2"]
    assert "resource_tracker" not in out.stderr and "leaked" not in out.stderr


def test_a_pool_process_loads_neither_ports_nor_the_exit_registry_until_its_calls_need_them(pool):
    # each process pays for every module it imports (memory, start time); a plain call needs none of these
    loaded = set(pool.run(lambda: list(sys.modules)).result(60))  # by value: importing this file would load more
    heavy = {"stemnb._ports", "stemnb._hub", "stemnb._exits", "stemnb._isolate", "stemnb._isolate_supervisor", "asyncio", "numpy"}
    assert loaded & heavy == set()


def test_the_first_run_loads_neither_ports_nor_the_exit_registry_in_the_caller():
    # cold start: a notebook's first stemnb.run should not pay for spawn's machinery
    script = textwrap.dedent("""
        import sys, stemnb
        assert stemnb.run(abs, -3).result(60) == 3
        print(sorted(m for m in ("stemnb._ports", "stemnb._hub", "stemnb._exits", "asyncio") if m in sys.modules))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_future_is_awaitable(pool):
    async def main():
        return await pool.run(sum, [1, 2, 3])

    assert asyncio.run(main()) == 6


def test_remote_exception_reraises_with_original_type_and_remote_traceback(pool):
    def fails():
        raise KeyError("missing-key")

    with pytest.raises(KeyError) as info:
        pool.run(fails).result(30)
    cause = info.value.__cause__
    assert isinstance(cause, stemnb.RemoteTraceback)
    assert "fails" in cause.tb and "missing-key" in cause.tb


class _Unrebuildable(Exception):
    def __init__(self, a, b):  # pickle calls cls(*args) with one arg: rebuilding fails
        super().__init__(f"{a}-{b}")


def test_exception_that_cannot_be_rebuilt_arrives_as_remote_error(pool):
    def fails():
        raise _Unrebuildable(1, 2)

    with pytest.raises(stemnb.RemoteError) as info:
        pool.run(fails).result(30)
    assert info.value.type_name.endswith("_Unrebuildable")
    assert "1-2" in info.value.message and "fails" in info.value.traceback


def test_unpicklable_argument_raises_at_the_call_site_naming_it(pool):
    with pytest.raises(stemnb.SerializationError, match=r"argument 1 \(lock\)"):
        pool.run(print, 1, threading.Lock())
    assert pool.run(abs, -1).result(30) == 1


def test_unpicklable_result_fails_only_that_call(pool):
    with pytest.raises(stemnb.SerializationError, match="result"):
        pool.run(threading.Lock).result(30)
    assert pool.run(abs, -2).result(30) == 2


def test_non_callable_fn_is_a_type_error(pool):
    with pytest.raises(TypeError, match="callable"):
        pool.run(42)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_pool_size_is_a_value_error(bad):
    with pytest.raises(ValueError, match="size"):
        stemnb.IsolatePool(bad)


@pytest.mark.parametrize("bad", [0, -3, float("nan"), float("inf")])
def test_a_timeout_that_is_not_positive_and_finite_is_a_value_error(pool, bad):
    with pytest.raises(ValueError, match="timeout"):
        pool.run(abs, 1, timeout=bad)
    assert pool.statistics().submitted == 0


@pytest.mark.parametrize("bad", ["1", True, [1]])
def test_a_timeout_that_is_not_a_number_is_a_type_error(pool, bad):
    with pytest.raises(TypeError, match="timeout"):
        pool.run(abs, 1, timeout=bad)
    assert pool.statistics().submitted == 0


def test_a_timeout_may_be_a_timedelta(pool):
    import datetime

    assert pool.run(abs, -2, timeout=datetime.timedelta(seconds=30)).result(30) == 2


def test_timeout_ends_the_running_call_and_spares_the_others(pool, port):
    other = pool.run(_started_then, port.send_port, "other", 1.0)
    port.receive(30)
    slow = pool.run(time.sleep, 60, timeout=0.5)
    with pytest.raises(TimeoutError, match="time limit"):
        slow.result(30)
    assert other.result(30) == "other"
    assert pool.run(abs, -5).result(30) == 5


def test_cancel_stops_a_running_call_by_ending_its_process(pool, port):
    events = []
    pool.on_recycle(events.append)
    fut = pool.run(_started_then, port.send_port, None, 60)
    pid = port.receive(30)
    assert fut.running() and fut.cancel()
    assert fut.cancelled()
    with pytest.raises(cf.CancelledError):
        fut.result(1)
    _wait_for(lambda: any(e.reason is IsolateRecycleReason.CANCELLED and e.pid == pid for e in events))
    assert pid not in {r.pid for r in pool.isolates()}
    assert pool.run(abs, -3).result(30) == 3


def _gated(report, tag):
    """Send the test a port, then wait until the test sends to it."""
    gate = stemnb.ReceivePort()
    report.send((tag, gate.send_port))
    gate.receive(30)
    gate.close()
    return tag


def _report(report, tag):
    report.send(tag)
    return tag


def test_calls_queued_behind_a_busy_process_are_sent_ahead_together_and_a_cancelled_one_never_runs(port):
    with stemnb.IsolatePool(1) as pool:
        a = pool.run(_gated, port.send_port, "a")
        _, gate_a = port.receive(30)
        b = pool.run(_gated, port.send_port, "b")
        c = pool.run(_report, port.send_port, "c")
        d = pool.run(_report, port.send_port, "d")
        assert not (b.running() or c.running() or d.running())  # nothing is sent to a busy process on submit
        gate_a.send(None)
        assert a.result(30) == "a"
        _, gate_b = port.receive(30)
        assert b.running() and c.running() and not d.running()  # c waits inside the process, d in the queue
        assert c.cancel() and c.cancelled()
        gate_b.send(None)
        assert (b.result(30), d.result(30)) == ("b", "d")
        assert port.receive(30) == "d"
        with pytest.raises(TimeoutError):
            port.receive(0.2)  # c never ran


def test_a_cancelled_queued_call_does_not_cost_the_pool_its_process(port):
    with stemnb.IsolatePool(1) as pool:
        a = pool.run(_gated, port.send_port, "a")
        _, gate = port.receive(30)
        queued = pool.run(abs, -5)
        assert queued.cancel()
        gate.send(None)
        assert a.result(30) == "a"
        assert pool.run(abs, -2).result(30) == 2  # the process freed by "a" still takes calls
        assert pool.statistics().cancelled == 1


def test_an_idle_process_takes_back_a_call_waiting_inside_a_busy_one(port):
    with stemnb.IsolatePool(2) as pool:
        x1 = pool.run(_gated, port.send_port, "x1")
        x2 = pool.run(_gated, port.send_port, "x2")
        gates = dict(port.receive(30) for _ in range(2))
        b = pool.run(_gated, port.send_port, "b")
        c = pool.run(_report, port.send_port, "c")
        d = pool.run(_report, port.send_port, "d")
        gates["x1"].send(None)
        assert x1.result(30) == "x1"
        _, gate_b = port.receive(30)  # b runs where x1 ran, c waits behind it there
        gates["x2"].send(None)
        assert (x2.result(30), d.result(30)) == ("x2", "d")
        assert c.result(30) == "c"  # done while b still waits: the idle process took it back
        assert not b.done()
        gate_b.send(None)
        assert b.result(30) == "b"


def test_cancel_of_a_queued_call_never_runs_it(pool, port):
    blockers = [pool.run(_started_then, port.send_port, i, 0.5) for i in range(2)]
    port.receive(30), port.receive(30)
    queued = pool.run(_started_then, port.send_port, "never", 0)
    assert queued.cancel()
    assert [b.result(30) for b in blockers] == [0, 1]
    assert pool.run(abs, -1).result(30) == 1
    with pytest.raises(TimeoutError):
        port.receive(0.2)


@pytest.mark.parametrize(
    ("fn", "args", "exitcode"),
    [(os._exit, (7,), 7), (os.kill, None, -signal.SIGKILL), ("segfault", None, -signal.SIGSEGV)],
    ids=["os_exit", "sigkill", "segfault"],
)
def test_a_crashed_process_fails_only_its_call_with_its_exit_status(pool, fn, args, exitcode):
    if fn == "segfault":
        def fn():
            import ctypes
            ctypes.string_at(0)
        args = ()
    elif args is None:
        def fn():
            os.kill(os.getpid(), signal.SIGKILL)
        args = ()
    with pytest.raises(stemnb.IsolateExitedError) as info:
        pool.run(fn, *args).result(30)
    assert info.value.exitcode == exitcode
    if exitcode < 0:
        assert info.value.signal == -exitcode
    assert pool.run(abs, -9).result(30) == 9


def test_map_keeps_input_order_across_chunks(pool):
    assert list(pool.map(lambda x: x * x, range(50), chunksize=7)) == [x * x for x in range(50)]


def test_map_raises_the_first_failure_when_reached(pool):
    def inv(x):
        return 1 / x

    it = pool.map(inv, [1, 2, 0, 4], chunksize=1)
    assert next(it) == 1.0 and next(it) == 0.5
    with pytest.raises(ZeroDivisionError):
        next(it)


def test_imap_unordered_yields_every_result(pool):
    assert sorted(pool.imap_unordered(lambda x: -x, range(20), chunksize=3)) == sorted(-x for x in range(20))


def test_map_over_several_iterables_passes_one_item_of_each_and_stops_at_the_shortest(pool):
    # as the builtin map and Executor.map do
    out = list(pool.map(lambda a, b, c: a * b + c, range(10), range(100, 107), [1] * 9, chunksize=3))
    assert out == [a * b + c for a, b, c in zip(range(10), range(100, 107), [1] * 9, strict=False)]
    assert len(out) == 7


def test_imap_unordered_over_several_iterables_yields_every_result(pool):
    got = sorted(pool.imap_unordered(pow, [2, 3, 4], [5, 6, 7], chunksize=2))
    assert got == sorted(map(pow, [2, 3, 4], [5, 6, 7]))


def test_map_over_several_iterables_keeps_tuples_as_single_items_with_one_iterable(pool):
    # one iterable: each item is one argument, even when it is a tuple
    assert list(pool.map(len, [(1, 2), (3,), ()], chunksize=2)) == [2, 1, 0]


def test_bad_chunksize_is_a_value_error(pool):
    with pytest.raises(ValueError, match="chunksize"):
        pool.map(abs, [1], chunksize=0)


def test_max_tasks_per_isolate_recycles_the_process():
    events = []
    with stemnb.IsolatePool(1, max_tasks_per_isolate=1) as p:
        p.on_recycle(events.append)
        first = p.run(os.getpid).result(30)
        second = p.run(os.getpid).result(30)
    assert first != second
    assert events[0].reason is IsolateRecycleReason.MAX_TASKS and events[0].tasks_executed == 1


def test_max_memory_per_isolate_recycles_by_real_rss():
    events = []
    with stemnb.IsolatePool(1, max_memory_per_isolate=1) as p:
        p.on_recycle(events.append)
        first = p.run(os.getpid).result(30)
        second = p.run(os.getpid).result(30)
    assert first != second
    assert events[0].reason is IsolateRecycleReason.MEMORY and events[0].memory_bytes > 1


def _rss_growth(mb):
    from stemnb._runtime import rss_bytes

    before = rss_bytes()
    block = bytearray(mb << 20)
    block[:: 4096] = b"x" * len(block[:: 4096])  # touch every page
    return before, rss_bytes(), rss_bytes(os.getpid())


def test_a_pool_process_reads_its_own_rss_each_time_it_asks(pool):
    before, after, by_pid = pool.run(_rss_growth, 64).result(30)
    assert after - before >= 60 << 20
    assert abs(by_pid - after) < 8 << 20  # the kept-open statm and a fresh read agree


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_reads_its_own_rss_not_its_parents():
    from stemnb._runtime import rss_bytes

    parent = rss_bytes()  # opens the parent's statm, which the child inherits
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            _, after, by_pid = _rss_growth(96)
            os.write(write, f"{after} {by_pid}".encode())
        finally:
            os._exit(0)
    os.close(write)
    after, by_pid = map(int, os.read(read, 100).split())
    os.close(read)
    os.waitpid(pid, 0)
    assert after >= parent + (64 << 20) and abs(after - by_pid) < 8 << 20  # not the parent's figure
    assert rss_bytes() < after


def test_close_returns_once_every_reader_thread_has_run_its_last_callbacks():
    slow = threading.Event()
    p = stemnb.IsolatePool(1)
    p.on_disposed(lambda pid: slow.wait(0.3))  # a slow callback, run by the reader after it left
    assert p.run(abs, -1).result(30) == 1
    readers = [w.thread for w in p._workers]
    p.close()
    assert readers and not any(t.is_alive() for t in readers)


def test_resize_grows_and_shrinks_the_pool(pool):
    pool.resize(3)
    _wait_for(lambda: pool.statistics().idle == 3)
    pool.resize(1)
    _wait_for(lambda: len(pool.isolates()) == 1)
    assert pool.size == 1
    assert pool.run(abs, -4).result(30) == 4


def test_statistics_and_isolates_describe_the_pool(pool, port):
    fut = pool.run(_started_then, port.send_port, "x", 0.3)
    pid = port.receive(30)
    rows = {r.pid: r for r in pool.isolates()}
    assert rows[pid].state == "busy" and rows[pid].current_call == "_started_then"
    assert rows[pid].rss_bytes > 0 and rows[pid].call_started is not None
    fut.result(30)
    stats = pool.statistics()
    assert stats.size == 2 and stats.submitted >= 1 and stats.completed >= 1 and stats.state == "running"


def test_pause_holds_queued_calls_until_resume(pool):
    pool.pause()
    fut = pool.run(abs, -6)
    with pytest.raises(cf.TimeoutError):
        fut.result(0.3)
    assert pool.statistics().queued == 1
    pool.resume()
    assert fut.result(30) == 6


def test_kill_isolate_fails_its_running_call(pool, port):
    fut = pool.run(_started_then, port.send_port, None, 60)
    pid = port.receive(30)
    pool.kill_isolate(pid)
    with pytest.raises(stemnb.IsolateExitedError, match="kill_isolate"):
        fut.result(30)
    with pytest.raises(ValueError, match="not a process"):
        pool.kill_isolate(1)


def test_close_cancels_queued_calls_settles_running_ones_and_is_idempotent(port):
    p = stemnb.IsolatePool(1)
    running = p.run(_started_then, port.send_port, "done", 0.3)
    port.receive(30)
    queued = p.run(abs, -1)
    p.close()
    p.close()
    assert running.result(1) == "done"
    assert queued.cancelled()
    with pytest.raises(stemnb.ClosedError):
        p.run(abs, 1)
    assert p.closed and p.statistics().state == "closed"


def test_close_with_timeout_ends_calls_that_keep_running(port):
    p = stemnb.IsolatePool(1)
    running = p.run(_started_then, port.send_port, None, 60)
    port.receive(30)
    p.close(timeout=0.2)
    with pytest.raises(stemnb.ClosedError, match="closed while the call was running"):
        running.result(1)


def test_no_child_process_is_left_after_close():
    import psutil

    p = stemnb.IsolatePool(2)
    pids = {p.run(os.getpid).result(30), p.run(os.getpid).result(30)} | {r.pid for r in p.isolates()}
    p.close()
    assert all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE for pid in pids)


def test_worker_output_reaches_the_callers_stdout(pool, capsys):
    def chatty():
        print("hello from the worker")
        print("to stderr", file=sys.stderr)
        return 1

    assert pool.run(chatty).result(30) == 1
    out, err = capsys.readouterr()
    assert "hello from the worker" in out and "to stderr" in err


def test_calls_nest_inside_isolates(pool):
    def outer(n):
        import stemnb as s
        return s.run(lambda: n + 1).result(60)

    assert pool.run(outer, 1).result(60) == 2


def test_stemnb_run_uses_one_reused_default_pool():
    assert stemnb.run(lambda: 5).result(30) == 5
    assert stemnb.default_pool() is stemnb.default_pool()


def test_async_functions_are_awaited_in_the_worker(pool):
    async def coro(x):
        await asyncio.sleep(0)
        return x + 1

    assert pool.run(coro, 1).result(30) == 2


def test_large_arrays_travel_through_shared_memory_and_arrive_read_only(pool):
    np = pytest.importorskip("numpy")
    a = np.arange(1_000_000, dtype=np.float64)
    assert pool.run(np.sum, a).result(30) == a.sum()
    back = pool.run(np.ones, 500_000).result(30)
    assert back.shape == (500_000,) and not back.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        back[0] = 2
    del back


def _wait_for(predicate, timeout=30.0):
    """Poll ``predicate`` until true (a bounded wait on state another thread changes)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"condition not met within {timeout}s")


def test_close_without_cancelling_right_after_start_runs_every_queued_call():
    pool = stemnb.IsolatePool(1)
    futures = [pool.run(pow, 2, n) for n in range(1, 6)]  # queued while the process still starts
    pool.close(cancel_pending=False)
    assert [f.result(0) for f in futures] == [2, 4, 8, 16, 32]
    assert pool.statistics().state == "closed"


def test_close_without_cancelling_runs_the_queued_calls_first(port):
    p = stemnb.IsolatePool(1)
    running = p.run(_started_then, port.send_port, "first", 0.2)
    port.receive(30)
    queued = p.run(abs, -2)
    p.close(cancel_pending=False)
    assert running.done() and queued.done()
    assert (running.result(0), queued.result(0)) == ("first", 2)


def test_close_returns_only_once_every_running_call_is_settled(port):
    for _ in range(3):
        p = stemnb.IsolatePool(1)
        running = p.run(_started_then, port.send_port, None, 60)
        port.receive(30)
        p.close(timeout=0.05)
        assert running.done(), "close() returned before settling the call it ended"


def test_processes_that_die_at_start_fail_the_queue_instead_of_respawning_forever(monkeypatch):
    import stemnb._worker_loop as loop

    p = stemnb.IsolatePool(1)
    try:
        assert p.run(abs, -1).result(60) == 1
        # make every new process die at start: its claim board path points nowhere
        monkeypatch.setattr("stemnb._claim.ClaimBoard.for_child", lambda self: (self._lock.name, "/nonexistent/board"))
        pid = p.isolates()[0].pid
        p.kill_isolate(pid)
        fut = p.run(abs, -2)
        with pytest.raises(stemnb.IsolateExitedError, match="died at start"):
            fut.result(120)
        assert p.statistics().recycled < 10
    finally:
        monkeypatch.undo()
        p.close(timeout=30)
    del loop


def test_calls_sent_ahead_to_a_process_that_dies_fail_cleanly_when_no_new_process_can_start(port, monkeypatch):
    with stemnb.IsolatePool(1) as pool:
        x = pool.run(_gated, port.send_port, "x")
        _, gate_x = port.receive(30)
        y = pool.run(_gated, port.send_port, "y")
        ahead, queued = pool.run(abs, -1), pool.run(abs, -2)
        gate_x.send(None)
        assert x.result(30) == "x"
        port.receive(30)  # y runs; the next call waits inside the process, the last in the queue
        assert ahead.running() and not queued.running()
        # from now on a new process cannot even be started (its start-up data does not pickle)
        monkeypatch.setattr("stemnb._claim.ClaimBoard.for_child", lambda self: (threading.Lock(), "/nowhere"))
        pool.kill_isolate(pool.isolates()[0].pid)
        for fut in (y, ahead, queued):
            with pytest.raises(stemnb.IsolateExitedError):
                fut.result(60)


class BrokenStream:
    def write(self, text):
        raise ValueError("I/O operation on closed file")

    def flush(self):
        raise ValueError("I/O operation on closed file")


def test_a_pool_starts_its_processes_while_the_callers_stdout_is_broken(monkeypatch):
    monkeypatch.setattr(sys, "stdout", BrokenStream())
    monkeypatch.setattr(sys, "stderr", BrokenStream())
    with stemnb.IsolatePool(1) as pool:
        assert pool.run(abs, -3).result(30) == 3


def test_a_broken_stdout_in_the_caller_loses_output_but_not_the_call(pool, monkeypatch):
    def chatty():
        print("lost")
        return "kept"

    monkeypatch.setattr(sys, "stdout", BrokenStream())
    assert pool.run(chatty).result(30) == "kept"
    monkeypatch.undo()
    assert pool.run(abs, -7).result(30) == 7


def _niceness() -> int:
    return os.nice(0)


def test_pool_processes_run_nice_steps_below_their_caller_and_zero_keeps_its_priority():
    mine = os.nice(0)
    with stemnb.IsolatePool(1) as default, stemnb.IsolatePool(1, nice=0) as same, stemnb.IsolatePool(1, nice=12) as low:
        assert default.nice == 5 and default.run(_niceness).result(60) == min(19, mine + 5)
        assert same.run(_niceness).result(60) == mine
        assert low.run(_niceness).result(60) == min(19, mine + 12)


@pytest.mark.parametrize(("bad", "error"), [(-1, ValueError), (20, ValueError), (2.5, TypeError), (True, TypeError), ("5", TypeError)])
def test_a_nice_outside_zero_to_nineteen_is_refused_naming_it(bad, error):
    with pytest.raises(error, match="nice"):
        stemnb.IsolatePool(1, nice=bad)


def _wait_for_go(parent: stemnb.SendPort) -> int:
    """Tell the test this call runs and hand it a port; return once the test sends to it."""
    with stemnb.ReceivePort("go") as go:
        parent.send(go.send_port)
        go.receive(timeout=60)
    return 0


def _big_result(size: int) -> bytes:
    return b"r" * size


@pytest.mark.timeout(120)
def test_large_calls_are_not_sent_ahead_to_a_process_that_is_filling_its_results_pipe(port):
    """A busy process reads its next calls only between calls, and may be blocked writing results
    that the pool's reader has yet to take. Writing a large call to it ahead of time (under the
    pool's lock, which that reader needs) would leave both waiting for ever."""
    with stemnb.IsolatePool(1) as pool:
        first = pool.run(_wait_for_go, port.send_port)
        go_first = port.receive(timeout=30)
        second = pool.run(_wait_for_go, port.send_port)
        results = [pool.run(_big_result, 300_000) for _ in range(8)]  # 2.4 MB of results, in band
        go_first.send("go")  # the process now reads `second` and the 8 calls behind it
        go_second = port.receive(timeout=30)  # `second` runs, the 8 wait in the process
        large = [pool.run(len, b"a" * 1_000_000) for _ in range(2)]  # queued: a backlog of large calls
        go_second.send("go")
        assert first.result(30) == second.result(30) == 0
        assert [len(r.result(30)) for r in results] == [300_000] * 8
        assert [f.result(30) for f in large] == [1_000_000] * 2


def test_a_busy_process_is_sent_no_more_calls_than_its_claim_boards_ring_tells_apart():
    """Calls taken back from a process stay in it, to be skipped, while new ones are sent: the
    numbers of all it holds must fit the ring of revoked numbers its claim board keeps."""
    from stemnb._claim import RING
    from stemnb._pool_records import _Worker

    with stemnb.IsolatePool(1) as pool:
        worker = _Worker("probe")  # it has started no call yet: every number it was sent is pending
        try:
            worker.seq = RING - 10
            assert pool._room(worker) == 9
            worker.seq = RING - 1
            assert pool._room(worker) == 0
        finally:
            worker.board.destroy()
