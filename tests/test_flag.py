"""stemnb._flag.Flag: an Event whose lock is made only when someone waits."""

from __future__ import annotations

import threading

from stemnb._flag import Flag
from stemnb.testing import eventually


def test_a_flag_sets_and_clears_like_an_event_without_making_a_lock():
    flag = Flag()
    assert not flag.is_set()
    flag.set()
    assert flag.is_set()
    assert flag.wait(0) is True  # set already: no lock made for it
    flag.clear()
    assert not flag.is_set()
    assert flag._event is None


def test_a_wait_times_out_while_unset_and_then_keeps_in_step_with_set_and_clear():
    flag = Flag()
    assert flag.wait(0.01) is False
    flag.set()
    assert flag.wait(0) is True
    flag.clear()
    assert flag.wait(0.01) is False


def test_a_waiting_thread_wakes_when_another_sets_the_flag():
    flag = Flag()
    waiting = threading.Event()
    results: list[bool] = []

    def wait() -> None:
        waiting.set()
        results.append(flag.wait(30))

    thread = threading.Thread(target=wait)
    thread.start()
    waiting.wait()
    eventually(lambda: flag._event is not None)  # the thread made its lock and waits on it
    flag.set()
    thread.join(30)
    assert results == [True]
