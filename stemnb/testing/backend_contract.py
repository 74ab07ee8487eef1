"""The result-backend contract suite (a port of Stem's result backend contract tests).

Subclass :class:`ResultBackendContract` in a ``Test*`` class and implement
:meth:`~ResultBackendContract.make_backend`. Capability flags switch optional checks off.
Every test uses fresh ids, so suites can share one external server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from .._backend import ResultBackend, TaskState, TaskStatus, WorkerHeartbeat
from .._encoders import RESULT_ENCODER_META, TaskPayloadEncoderRegistry
from .._exceptions import ClosedError
from ._helpers import eventually, unique_name

__all__ = ["ResultBackendContract"]


class ResultBackendContract:
    """Mixin holding the result-backend contract; supply :meth:`make_backend`."""

    verify_task_status_expiry: bool = True
    verify_group_expiry: bool = True
    verify_chord_claiming: bool = True
    verify_worker_heartbeats: bool = True
    verify_heartbeat_expiry: bool = True
    #: TTL used by the expiry checks, seconds.
    short_ttl: float = 0.2
    #: How long a check waits for something that must happen, seconds.
    wait_timeout: float = 5.0

    def make_backend(self) -> ResultBackend:
        """Return a new result backend for one test."""
        raise NotImplementedError("subclasses of ResultBackendContract implement make_backend()")

    @pytest.fixture
    def backend(self) -> Iterator[ResultBackend]:
        backend = self.make_backend()
        try:
            yield backend
        finally:
            backend.close()

    @pytest.fixture
    def task_id(self) -> str:
        return unique_name("task")

    # -- statuses ------------------------------------------------------------------------------
    def test_set_then_get_returns_the_status(self, backend, task_id):
        stored = backend.set(
            task_id, TaskState.SUCCEEDED, payload={"v": [1, 2]}, meta={"task": "t"}, attempt=2
        )
        got = backend.get(task_id)
        assert got == stored
        assert (got.state, got.payload, got.meta, got.attempt) == (
            TaskState.SUCCEEDED,
            {"v": [1, 2]},
            {"task": "t"},
            2,
        )
        assert got.terminal
        assert backend.get(unique_name("missing")) is None

    def test_an_encoded_binary_payload_round_trips_with_its_encoder_meta(self, backend, task_id):
        registry = TaskPayloadEncoderRegistry()
        value = {"blob": bytes(range(256)), "shape": (2, 3)}
        payload = registry.get("cloudpickle").encode(value, what="result")
        backend.set(
            task_id, TaskState.SUCCEEDED, payload=payload, meta={RESULT_ENCODER_META: "cloudpickle"}
        )
        got = backend.get(task_id)
        assert got.meta[RESULT_ENCODER_META] == "cloudpickle"
        assert registry.get(got.meta[RESULT_ENCODER_META]).decode(got.payload) == value

    def test_set_accepts_state_names(self, backend, task_id):
        assert backend.set(task_id, "running").state is TaskState.RUNNING

    def test_set_rejects_unknown_states_and_bad_ttls(self, backend, task_id):
        with pytest.raises(ValueError, match="unknown task state"):
            backend.set(task_id, "exploded")
        with pytest.raises(ValueError, match="ttl"):
            backend.set(task_id, TaskState.QUEUED, ttl=0)

    def test_overwriting_a_status_clears_its_error(self, backend, task_id):
        error = {"type": "ValueError", "message": "bad", "traceback": "..."}
        backend.set(task_id, TaskState.RETRIED, error=error)
        assert backend.get(task_id).error == error
        backend.set(task_id, TaskState.SUCCEEDED, payload=1)
        assert backend.get(task_id).error is None

    def test_watch_emits_updates_in_sequence(self, backend, task_id):
        seen: list[TaskState] = []
        done = threading.Event()

        def on_status(status: TaskStatus) -> None:
            seen.append(status.state)
            if status.terminal:
                done.set()

        with backend.watch(task_id, on_status):
            for state in ("queued", "running", "retried", "running", "succeeded"):
                backend.set(task_id, state)
            assert done.wait(self.wait_timeout)
        assert [s.value for s in seen] == ["queued", "running", "retried", "running", "succeeded"]

    def test_watch_status_hands_over_the_current_status_then_later_ones(self, backend, task_id):
        backend.set(task_id, TaskState.RUNNING)
        seen: list[TaskState] = []
        done = threading.Event()

        def on_status(status: TaskStatus) -> None:
            seen.append(status.state)
            if status.terminal:
                done.set()

        with backend.watch_status(task_id, on_status):
            assert seen[:1] == [TaskState.RUNNING]  # handed over before watch_status returned
            backend.set(task_id, TaskState.SUCCEEDED)
            assert done.wait(self.wait_timeout)
        assert seen[-1] is TaskState.SUCCEEDED

    def test_watch_status_of_an_unknown_task_waits_for_its_first_status(self, backend, task_id):
        seen: list[TaskStatus] = []
        arrived = threading.Event()

        def on_status(status: TaskStatus) -> None:
            seen.append(status)
            arrived.set()

        with backend.watch_status(task_id, on_status):
            assert seen == []
            backend.set(task_id, TaskState.QUEUED)
            # wait for this watch itself: another watcher (wait_for) may be told first
            assert arrived.wait(self.wait_timeout)
        assert seen and seen[0].state is TaskState.QUEUED

    def test_watch_terminal_hands_over_only_terminal_statuses_the_current_one_included(self, backend, task_id):
        backend.set(task_id, TaskState.RUNNING)
        seen: list[TaskStatus] = []
        done = threading.Event()

        def on_status(status: TaskStatus) -> None:
            seen.append(status)
            done.set()

        with backend.watch_terminal(task_id, on_status):
            assert seen == []  # the current status is not terminal
            for state in ("retried", "running", "failed"):
                backend.set(task_id, state)
            assert done.wait(self.wait_timeout)
        assert [s.state for s in seen] == [TaskState.FAILED]
        with backend.watch_terminal(task_id, seen.append):
            assert [s.state for s in seen] == [TaskState.FAILED, TaskState.FAILED]  # handed over at once

    def test_closed_watch_receives_nothing_more(self, backend, task_id):
        seen: list[TaskStatus] = []
        watch = backend.watch(task_id, seen.append)
        watch.close()
        watch.close()
        backend.set(task_id, TaskState.QUEUED)
        assert backend.wait_for(task_id, [TaskState.QUEUED], timeout=self.wait_timeout)
        assert seen == []

    def test_wait_for_returns_a_state_set_from_another_thread(self, backend, task_id):
        backend.set(task_id, TaskState.RUNNING)
        setter = threading.Thread(target=backend.set, args=(task_id, TaskState.FAILED))
        setter.start()
        status = backend.wait_for(task_id, timeout=self.wait_timeout)
        setter.join()
        assert status is not None and status.state is TaskState.FAILED

    def test_wait_for_returns_at_once_when_already_terminal(self, backend, task_id):
        backend.set(task_id, TaskState.CANCELLED)
        assert backend.wait_for(task_id, timeout=0).state is TaskState.CANCELLED

    def test_wait_for_returns_none_after_the_timeout(self, backend, task_id):
        backend.set(task_id, TaskState.RUNNING)
        assert backend.wait_for(task_id, timeout=0.05) is None

    def test_closing_the_backend_ends_a_wait_with_closed_error(self, task_id):
        backend = self.make_backend()
        backend.set(task_id, TaskState.RUNNING)
        outcome: list[BaseException | TaskStatus | None] = []

        def wait() -> None:
            try:
                outcome.append(backend.wait_for(task_id, timeout=60))
            except BaseException as exc:  # noqa: BLE001 - the outcome under test
                outcome.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        backend.close()  # before or after the wait began: it ends either way
        waiter.join(self.wait_timeout)
        assert not waiter.is_alive(), "wait_for() went on waiting on a closed backend"
        assert len(outcome) == 1 and isinstance(outcome[0], ClosedError)

    def test_when_closed_callbacks_run_once_on_close_and_at_once_after_it(self):
        backend = self.make_backend()
        calls: list[str] = []
        backend.when_closed(lambda: calls.append("first"))
        backend.when_closed(lambda: calls.append("cancelled")).close()
        backend.when_closed(lambda: 1 / 0)  # logged; the others still run
        backend.close()
        backend.close()
        backend.when_closed(lambda: calls.append("late"))
        assert calls == ["first", "late"]

    def test_list_statuses_filters_and_pages_newest_first(self, backend):
        task = unique_name("name")
        ids = [unique_name("t") for _ in range(3)]
        for i, tid in enumerate(ids):
            state = TaskState.SUCCEEDED if i != 1 else TaskState.FAILED
            backend.set(tid, state, meta={"task": task, "queue": "q1"})
        listed = backend.list_statuses(task=task)
        assert [s.id for s in listed] == list(reversed(ids))
        assert [s.id for s in backend.list_statuses(task=task, state="failed")] == [ids[1]]
        assert [s.id for s in backend.list_statuses(task=task, limit=1, offset=1)] == [ids[1]]
        assert backend.list_statuses(task=task, queue="other") == []

    def test_forget_deletes_a_status(self, backend, task_id):
        backend.set(task_id, TaskState.SUCCEEDED)
        assert backend.forget(task_id) is True
        assert backend.get(task_id) is None
        assert backend.forget(task_id) is False

    def test_set_honours_its_ttl(self, backend, task_id):
        if not self.verify_task_status_expiry:
            pytest.skip("status expiry not verified")
        backend.set(task_id, TaskState.SUCCEEDED, ttl=self.short_ttl)
        assert backend.get(task_id) is not None
        eventually(lambda: backend.get(task_id) is None, self.wait_timeout)

    def test_expire_shortens_a_status_ttl(self, backend, task_id):
        if not self.verify_task_status_expiry:
            pytest.skip("status expiry not verified")
        backend.set(task_id, TaskState.SUCCEEDED)
        assert backend.expire(task_id, self.short_ttl) is True
        eventually(lambda: backend.get(task_id) is None, self.wait_timeout)
        assert backend.expire(unique_name("missing"), 1.0) is False

    # -- groups and chords -------------------------------------------------------------------
    def test_group_lifecycle_collects_member_results(self, backend):
        gid = unique_name("group")
        group = backend.init_group(gid, 2, meta={"callback": "cb"})
        assert (group.expected, group.results, group.meta) == (2, {}, {"callback": "cb"})
        first = TaskStatus(unique_name("m"), TaskState.SUCCEEDED, payload=2)
        second = TaskStatus(unique_name("m"), TaskState.SUCCEEDED, payload=5)
        assert not backend.add_group_result(gid, first).is_complete
        group = backend.add_group_result(gid, second)
        assert group.is_complete and group.succeeded and group.completed == 2
        assert {s.payload for s in backend.get_group(gid).results.values()} == {2, 5}

    def test_init_group_resets_an_existing_group(self, backend):
        gid = unique_name("group")
        backend.init_group(gid, 1)
        backend.add_group_result(gid, TaskStatus(unique_name("m"), TaskState.SUCCEEDED))
        assert backend.claim_chord(gid) is True
        group = backend.init_group(gid, 3)
        assert (group.expected, group.results) == (3, {})
        assert backend.claim_chord(gid) is True

    def test_an_exclusive_init_group_leaves_an_existing_group_as_it_is(self, backend):
        gid = unique_name("group")
        created = backend.init_group(gid, 2, meta={"first": True}, exclusive=True)
        assert created is not None and created.expected == 2
        backend.add_group_result(gid, TaskStatus(unique_name("m"), TaskState.SUCCEEDED))
        assert backend.init_group(gid, 5, meta={"first": False}, exclusive=True) is None
        group = backend.get_group(gid)
        assert (group.expected, group.meta, group.completed) == (2, {"first": True}, 1)

    def test_exclusive_init_group_admits_exactly_one_of_racing_creators(self, backend):
        gid = unique_name("group")
        barrier = threading.Barrier(8)
        created: list[bool] = []

        def create(i: int) -> None:
            barrier.wait()
            created.append(backend.init_group(gid, i + 1, exclusive=True) is not None)

        threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert created.count(True) == 1

    def test_add_group_result_to_an_unknown_group_returns_none(self, backend):
        status = TaskStatus(unique_name("m"), TaskState.SUCCEEDED)
        assert backend.add_group_result(unique_name("nogroup"), status) is None
        assert backend.get_group(unique_name("nogroup")) is None

    def test_init_group_rejects_a_negative_size(self, backend):
        with pytest.raises(ValueError, match="expected"):
            backend.init_group(unique_name("group"), -1)

    def test_group_expires_after_its_ttl(self, backend):
        if not self.verify_group_expiry:
            pytest.skip("group expiry not verified")
        gid = unique_name("group")
        backend.init_group(gid, 1, ttl=self.short_ttl)
        assert backend.get_group(gid) is not None
        eventually(lambda: backend.get_group(gid) is None, self.wait_timeout)

    def test_claim_chord_admits_exactly_one_claimant(self, backend):
        if not self.verify_chord_claiming:
            pytest.skip("chord claiming not verified")
        gid = unique_name("group")
        backend.init_group(gid, 1)
        barrier = threading.Barrier(8)
        wins: list[bool] = []
        lock = threading.Lock()

        def claim() -> None:
            barrier.wait()
            won = backend.claim_chord(gid)
            with lock:
                wins.append(won)

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(wins) == [False] * 7 + [True]
        assert backend.claim_chord(unique_name("nogroup")) is False

    # -- worker heartbeats -------------------------------------------------------------------
    def test_worker_heartbeats_are_stored_listed_and_updated(self, backend):
        if not self.verify_worker_heartbeats:
            pytest.skip("worker heartbeats not verified")
        namespace = unique_name("ns")
        a, b = unique_name("w"), unique_name("w")
        backend.set_worker_heartbeat(WorkerHeartbeat(a, namespace, inflight=1, queues={"q": 1}))
        backend.set_worker_heartbeat(WorkerHeartbeat(b, namespace))
        assert backend.get_worker_heartbeat(a).queues == {"q": 1}
        assert sorted(h.worker_id for h in backend.list_worker_heartbeats(namespace)) == sorted(
            [a, b]
        )
        backend.set_worker_heartbeat(WorkerHeartbeat(a, namespace, inflight=4))
        assert backend.get_worker_heartbeat(a).inflight == 4
        assert backend.get_worker_heartbeat(unique_name("w")) is None

    def test_a_removed_worker_heartbeat_is_no_longer_live(self, backend):
        if not self.verify_worker_heartbeats:
            pytest.skip("worker heartbeats not verified")
        namespace = unique_name("ns")
        gone, kept = unique_name("w"), unique_name("w")
        backend.set_worker_heartbeat(WorkerHeartbeat(gone, namespace))
        backend.set_worker_heartbeat(WorkerHeartbeat(kept, namespace))
        assert backend.remove_worker_heartbeat(gone) is True
        assert backend.get_worker_heartbeat(gone) is None
        assert [h.worker_id for h in backend.list_worker_heartbeats(namespace)] == [kept]
        assert backend.remove_worker_heartbeat(gone) is False

    def test_worker_heartbeats_expire_after_their_ttl(self, backend):
        if not (self.verify_worker_heartbeats and self.verify_heartbeat_expiry):
            pytest.skip("heartbeat expiry not verified")
        worker = unique_name("w")
        backend.set_worker_heartbeat(WorkerHeartbeat(worker), ttl=self.short_ttl)
        assert backend.get_worker_heartbeat(worker) is not None
        eventually(lambda: backend.get_worker_heartbeat(worker) is None, self.wait_timeout)
