"""Fault injection: a call fails at every stage of its life, and the pool keeps working."""

from __future__ import annotations

import ctypes
import os
import signal
import threading

import pytest

import stemnb

pytestmark = pytest.mark.timeout(120)

WAIT = 30


# ---------------------------------------------------------------------- faulty pieces
def _fail_to_rebuild() -> None:
    raise RuntimeError("refusing to be unpickled")


class BreaksOnUnpickle:
    """Pickles fine; rebuilding it raises (in whichever process loads it)."""

    def __reduce__(self):
        return (_fail_to_rebuild, ())


def _rebuild_outside_workers() -> str:
    from stemnb._runtime import role

    if role() == "root":
        raise RuntimeError("refusing to be unpickled by the caller")
    return "fine in a worker"


class BreaksOnUnpickleInTheCaller:
    def __reduce__(self):
        return (_rebuild_outside_workers, ())


class NeedsTwoArguments(Exception):
    """An exception that pickles but cannot be rebuilt (its ``__init__`` takes two arguments)."""

    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a} and {b}")


def square(x: int) -> int:
    return x * x


def identity(x):
    return x


def raise_value_error() -> None:
    raise ValueError("inside the call")


def kill_self(sig: int) -> None:
    os.kill(os.getpid(), sig)


def segfault() -> None:
    ctypes.string_at(0)


def exit_3() -> None:
    os._exit(3)


def return_a_lock() -> threading.Lock:
    return threading.Lock()


def return_unloadable() -> BreaksOnUnpickleInTheCaller:
    return BreaksOnUnpickleInTheCaller()


def raise_unrebuildable() -> None:
    raise NeedsTwoArguments("left", "right")


# ---------------------------------------------------------------------- checks per stage
def check_pickle(pool: stemnb.IsolatePool) -> None:
    with pytest.raises(stemnb.SerializationError, match=r"argument 0 \(lock\)"):
        pool.run(identity, threading.Lock())


def check_unpickle_in_worker(pool: stemnb.IsolatePool) -> None:
    with pytest.raises(stemnb.SerializationError, match="unpickle the arguments") as info:
        pool.run(identity, BreaksOnUnpickle()).result(WAIT)
    assert "refusing to be unpickled" in str(info.value)


def check_inside_call(pool: stemnb.IsolatePool) -> None:
    with pytest.raises(ValueError, match="inside the call") as info:
        pool.run(raise_value_error).result(WAIT)
    assert isinstance(info.value.__cause__, stemnb.RemoteTraceback)
    assert "raise_value_error" in info.value.__cause__.tb


def check_sigkill(pool: stemnb.IsolatePool) -> None:
    with pytest.raises(stemnb.IsolateExitedError) as info:
        pool.run(kill_self, signal.SIGKILL).result(WAIT)
    assert info.value.signal == signal.SIGKILL and "SIGKILL" in str(info.value)


def check_sigsegv(pool: stemnb.IsolatePool) -> None:
    with pytest.raises(stemnb.IsolateExitedError) as info:
        pool.run(segfault).result(WAIT)
    assert info.value.signal == signal.SIGSEGV


def check_os_exit(pool: stemnb.IsolatePool) -> None:
    with pytest.raises(stemnb.IsolateExitedError) as info:
        pool.run(exit_3).result(WAIT)
    assert info.value.exitcode == 3 and info.value.signal is None


def check_unpicklable_result(pool: stemnb.IsolatePool) -> None:
    with pytest.raises(stemnb.SerializationError, match="result"):
        pool.run(return_a_lock).result(WAIT)


def check_result_that_cannot_be_unpickled_here(pool: stemnb.IsolatePool) -> None:
    with pytest.raises(stemnb.SerializationError, match="unpickle the result"):
        pool.run(return_unloadable).result(WAIT)


def check_exception_that_cannot_be_unpickled(pool: stemnb.IsolatePool) -> None:
    with pytest.raises(stemnb.RemoteError) as info:
        pool.run(raise_unrebuildable).result(WAIT)
    err = info.value
    assert err.type_name.endswith("NeedsTwoArguments")
    assert err.message == "left and right"
    assert "raise_unrebuildable" in err.traceback


FAULTS = {
    "at-pickle": check_pickle,
    "at-unpickle-in-the-worker": check_unpickle_in_worker,
    "inside-the-call": check_inside_call,
    "by-sigkill": check_sigkill,
    "by-sigsegv": check_sigsegv,
    "by-os-exit": check_os_exit,
    "unpicklable-result": check_unpicklable_result,
    "result-unpickle-fails-in-the-caller": check_result_that_cannot_be_unpickled_here,
    "exception-that-cannot-be-unpickled": check_exception_that_cannot_be_unpickled,
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failing_call_raises_a_clear_error_and_the_pool_still_runs_calls(pool, fault):
    FAULTS[fault](pool)
    assert pool.run(square, 7).result(WAIT) == 49
    assert [pool.run(square, i).result(WAIT) for i in range(4)] == [0, 1, 4, 9]


def test_every_fault_in_a_row_leaves_one_pool_working(pool):
    for check in FAULTS.values():
        check(pool)
    assert sorted(pool.map(square, range(10))) == [i * i for i in range(10)]
    stats = pool.statistics()
    assert stats.size == 2 and stats.queued == 0
