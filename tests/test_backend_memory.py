"""The in-memory result backend passes the result-backend contract, plus checks of its own."""

from __future__ import annotations

import pytest

from stemnb import ClosedError, InMemoryResultBackend, TaskState, WorkerHeartbeat
from stemnb.testing.backend_contract import ResultBackendContract


class TestInMemoryResultBackendContract(ResultBackendContract):
    def make_backend(self) -> InMemoryResultBackend:
        return InMemoryResultBackend()


class FakeClock:
    """A settable clock, so TTL checks need no waiting."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_in_memory_backend_default_ttls_match_stem():
    backend = InMemoryResultBackend()
    assert (backend.default_ttl, backend.group_ttl, backend.heartbeat_ttl) == (86400, 86400, 60)


def test_in_memory_backend_expires_statuses_groups_and_heartbeats_by_clock():
    clock = FakeClock()
    backend = InMemoryResultBackend(clock=clock)
    backend.set("t", TaskState.SUCCEEDED)
    backend.init_group("g", 1)
    backend.set_worker_heartbeat(WorkerHeartbeat("w"))
    clock.now += 59.9
    assert backend.get_worker_heartbeat("w") is not None
    clock.now += 0.2
    assert backend.get_worker_heartbeat("w") is None and backend.get("t") is not None
    clock.now += 86_400
    assert backend.get("t") is None and backend.get_group("g") is None
    assert backend.claim_chord("g") is False


def test_in_memory_backend_sweeps_expired_entries_on_later_writes():
    clock = FakeClock()
    backend = InMemoryResultBackend(clock=clock)
    for i in range(100):
        backend.set(f"t{i}", TaskState.SUCCEEDED, ttl=1)
    clock.now += 2
    backend.set("fresh", TaskState.QUEUED)
    assert len(backend._statuses) == 1


def test_in_memory_backend_watcher_error_is_contained(caplog):
    backend = InMemoryResultBackend()
    seen = []

    def broken(status):
        raise RuntimeError("watcher bug")

    backend.watch("t", broken)
    backend.watch("t", seen.append)
    backend.set("t", TaskState.RUNNING)
    assert [s.state for s in seen] == [TaskState.RUNNING]
    assert "watcher" in caplog.text


def test_in_memory_backend_refuses_use_after_close():
    backend = InMemoryResultBackend()
    backend.close()
    backend.close()
    with pytest.raises(ClosedError):
        backend.set("t", TaskState.QUEUED)


def test_in_memory_backend_rejects_bad_ttl_configuration():
    with pytest.raises(ValueError, match="ttl"):
        InMemoryResultBackend(heartbeat_ttl=0)


def test_wait_for_accepts_a_single_state_name():
    backend = InMemoryResultBackend()
    backend.set("t", TaskState.RUNNING)
    assert backend.wait_for("t", "running", timeout=0).state is TaskState.RUNNING
    with pytest.raises(ValueError, match="unknown task state 'done'"):
        backend.wait_for("t", "done", timeout=0)


def test_in_memory_backend_expiry_index_stays_bounded_when_statuses_are_rewritten():
    clock = FakeClock()
    backend = InMemoryResultBackend(clock=clock)
    for i in range(20_000):
        backend.set(f"t{i % 10}", TaskState.RUNNING)
    assert len(backend._expiry) <= 2 * 10 + 1024 + 1
    clock.now += 86_401
    backend.set("fresh", TaskState.QUEUED)
    assert [s.id for s in backend.list_statuses()] == ["fresh"]


def test_watchers_of_statuses_set_while_holding_are_called_when_the_hold_ends_in_order_even_on_error():
    backend = InMemoryResultBackend()
    calls = []
    backend.watch("a", lambda s: calls.append(("a", s.state.value)))
    backend.watch("b", lambda s: calls.append(("b", s.state.value)))
    with backend._holding_watchers():
        backend.set("a", "running")
        with backend._holding_watchers():  # nested: the outermost hold calls them
            backend.set("b", "succeeded")
        assert calls == [] and backend.get("b").state.value == "succeeded"  # stored at once
        backend.set("a", "succeeded")
    assert calls == [("a", "running"), ("b", "succeeded"), ("a", "succeeded")]
    calls.clear()
    with pytest.raises(RuntimeError):
        with backend._holding_watchers():
            backend.set("a", "failed")
            raise RuntimeError("the broker step failed")
    assert calls == [("a", "failed")]  # stored, so its watchers hear of it
    backend.set("b", "failed")
    assert calls == [("a", "failed"), ("b", "failed")]  # no hold: called at once again
