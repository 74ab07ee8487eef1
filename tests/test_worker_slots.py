"""The worker's concurrency slots (a resizable semaphore)."""

from __future__ import annotations

from stemnb._worker._slots import Slots


def test_a_holder_may_keep_its_slot_for_another_task_only_within_the_current_limit():
    slots = Slots(2)
    assert slots.acquire(timeout=0) and slots.acquire(timeout=0)
    assert slots.may_keep()
    slots.set_limit(1)  # scaled down while both are held
    assert not slots.may_keep()
    slots.release()
    assert slots.may_keep() and slots.in_use == 1
    assert not slots.acquire(timeout=0)
