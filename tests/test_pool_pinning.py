"""Calls queued behind a given call (``IsolatePool._submit(behind=...)``) and taken back (``_withdraw``).

The task worker stages its next task this way (``stemnb/_worker/_staging.py``): the call waits in
the process of the call ahead of it and starts the moment that one ends; until then the worker
may take it back, and it never runs.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import time

import pytest

import stemnb


def _gated(report, tag):
    """Tell the test this call runs (and its pid), then wait until the test opens the gate."""
    gate = stemnb.ReceivePort()
    report.send((tag, os.getpid(), gate.send_port))
    gate.receive(30)
    gate.close()
    return os.getpid()


def _report(report, tag):
    report.send((tag, os.getpid()))
    return os.getpid()


def _behind(pool, behind, fn, *args, timeout=None):
    return pool._submit(fn, args, {}, timeout=timeout, debug_name=fn.__name__, behind=behind)


def test_a_call_queued_behind_another_runs_right_after_it_in_its_process_though_another_is_idle(port):
    with stemnb.IsolatePool(2) as pool:
        pool.run(abs, 1).result(30), pool.run(abs, 2).result(30)  # both processes up
        ahead = pool.run(_gated, port.send_port, "ahead")
        _, pid, gate = port.receive(30)
        pinned = _behind(pool, ahead, _report, port.send_port, "pinned")
        assert pinned.running() and pool.statistics().idle == 1  # sent to the busy process, not the idle one
        gate.send(None)
        assert ahead.result(30) == pid
        assert port.receive(30) == ("pinned", pid)
        assert pinned.result(30) == pid


def test_a_call_to_queue_behind_one_that_already_ended_is_not_run_and_comes_back_cancelled(pool, port):
    done = pool.run(abs, -1)
    assert done.result(30) == 1
    late = _behind(pool, done, _report, port.send_port, "never")
    assert late.cancelled()
    assert pool.run(_report, port.send_port, "after").result(30) == port.receive(30)[1]  # "never" sent nothing
    assert pool.statistics().submitted == 2


def test_may_pin_tells_whether_a_call_sent_behind_another_would_be_taken(port):
    with stemnb.IsolatePool(1, max_tasks_per_isolate=3) as pool:
        done = pool.run(abs, -1)
        assert done.result(30) == 1
        ahead = pool.run(_gated, port.send_port, "ahead")
        _, _, gate = port.receive(30)
        assert pool._may_pin(ahead)  # running, the last call of its process, which may take one more
        assert not pool._may_pin(done)  # ended
        assert not pool._may_pin(stemnb.Future())  # not a call of this pool
        last = _behind(pool, ahead, abs, -2)
        assert not pool._may_pin(ahead)  # a call waits behind it already
        assert not pool._may_pin(last)  # its process has its third and last call
        gate.send(None)
        assert last.result(30) == 2


def test_a_withdrawn_call_never_runs_and_its_process_goes_on(port):
    with stemnb.IsolatePool(1) as pool:
        ahead = pool.run(_gated, port.send_port, "ahead")
        _, pid, gate = port.receive(30)
        pinned = _behind(pool, ahead, _report, port.send_port, "never")
        assert pool._withdraw(pinned)
        assert pinned.cancelled()
        with pytest.raises(cf.CancelledError):
            pinned.result(1)
        gate.send(None)
        assert ahead.result(30) == pid  # not ended by the withdrawal
        assert pool.run(_report, port.send_port, "after").result(30) == pid
        assert port.receive(30) == ("after", pid)  # "never" sent nothing before it
        assert pool.statistics().cancelled == 1


def test_withdraw_leaves_a_running_call_alone(port):
    with stemnb.IsolatePool(1) as pool:
        running = pool.run(_gated, port.send_port, "running")
        _, pid, gate = port.receive(30)
        assert not pool._withdraw(running)
        gate.send(None)
        assert running.result(30) == pid
        assert not pool._withdraw(running)  # nor a finished one


def test_a_queued_call_can_be_withdrawn_too(port):
    with stemnb.IsolatePool(1) as pool:
        ahead = pool.run(_gated, port.send_port, "ahead")
        _, pid, gate = port.receive(30)
        queued = pool.run(abs, -3)
        assert not queued.running() and pool._withdraw(queued) and queued.cancelled()
        gate.send(None)
        assert ahead.result(30) == pid


def _sleep_then_pid(seconds):
    time.sleep(seconds)  # the work itself: the call ahead takes longer than the limit of the next
    return os.getpid()


def test_the_time_limit_of_a_queued_call_counts_from_its_start():
    with stemnb.IsolatePool(1) as pool:
        pool.run(abs, 1).result(30)  # the process is up: "ahead" runs at once
        ahead = pool.run(_sleep_then_pid, 1.0)
        pinned = _behind(pool, ahead, os.getpid, timeout=0.5)
        assert pinned.result(30) == ahead.result(30)  # waited 1 s behind it, within its 0.5 s limit


def test_a_queued_call_whose_process_dies_runs_in_another(port):
    with stemnb.IsolatePool(1) as pool:
        ahead = pool.run(_gated, port.send_port, "ahead")
        _, pid, _gate = port.receive(30)
        pinned = _behind(pool, ahead, os.getpid)
        pool.kill_isolate(pid)
        with pytest.raises(stemnb.IsolateExitedError):
            ahead.result(30)
        assert pinned.result(30) not in (pid, None)


def test_no_call_is_queued_behind_one_in_a_process_about_to_be_recycled(port):
    with stemnb.IsolatePool(1, max_tasks_per_isolate=1) as pool:
        ahead = pool.run(_gated, port.send_port, "ahead")
        _, pid, gate = port.receive(30)
        assert _behind(pool, ahead, os.getpid).cancelled()  # the process ends after "ahead"
        gate.send(None)
        assert ahead.result(30) == pid


def test_calls_sent_ahead_to_a_busy_process_never_take_it_past_max_tasks_per_isolate(port):
    with stemnb.IsolatePool(1, max_tasks_per_isolate=2) as pool:
        first = pool.run(_gated, port.send_port, "first")
        _, pid, gate = port.receive(30)
        rest = [pool.run(os.getpid) for _ in range(5)]  # a backlog: some are sent ahead
        gate.send(None)
        pids = [first.result(30)] + [f.result(30) for f in rest]
    assert max(pids.count(p) for p in set(pids)) <= 2, pids
