"""The worker event hub: callbacks, blocking and async iteration, containment of listener errors."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from stemnb._events import EventHub, WorkerEvent, WorkerEventType


def event(kind=WorkerEventType.COMPLETED, task_id="t"):
    return WorkerEvent(kind, "w", task_id=task_id)


def test_listen_delivers_and_cancel_stops():
    hub, got = EventHub(), []
    sub = hub.listen(got.append)
    hub.emit(event())
    sub.cancel()
    sub.cancel()
    hub.emit(event())
    assert len(got) == 1


def test_a_failing_listener_is_logged_and_others_still_run(caplog):
    hub, got = EventHub(), []
    hub.listen(lambda e: 1 / 0)
    hub.listen(got.append)
    with caplog.at_level(logging.ERROR, logger="stemnb.worker"):
        hub.emit(event())
    assert got and "listener failed" in caplog.text


def test_blocking_iteration_ends_when_the_hub_closes():
    hub = EventHub()
    events = iter(hub)  # subscribed from here on
    hub.emit(event(task_id="a"))
    hub.emit(event(task_id="b"))
    hub.close()
    assert [e.task_id for e in events] == ["a", "b"]


def test_async_for_receives_events_from_other_threads():
    hub = EventHub()

    async def main():
        seen = []

        events = aiter(hub)  # subscribed from here on

        async def consume_it():
            async for e in events:
                seen.append(e.task_id)
                if len(seen) == 2:
                    return

        task = asyncio.create_task(consume_it())
        threading.Thread(target=lambda: [hub.emit(event(task_id=str(i))) for i in range(2)]).start()
        await asyncio.wait_for(task, 5)
        return seen

    assert asyncio.run(main()) == ["0", "1"]


def test_listening_after_close_gets_nothing():
    hub = EventHub()
    hub.close()
    got = []
    hub.listen(got.append)
    hub.emit(event())
    assert got == [] and list(hub) == []


def test_a_listener_for_some_types_receives_only_those():
    hub, got = EventHub(), []
    hub.listen(got.append, types=[WorkerEventType.FAILED, "completed"])
    for kind in (WorkerEventType.RECEIVED, WorkerEventType.COMPLETED, WorkerEventType.FAILED):
        hub.emit(event(kind))
    assert [e.type for e in got] == [WorkerEventType.COMPLETED, WorkerEventType.FAILED]


def test_the_hub_wants_only_the_types_someone_listens_to():
    hub = EventHub()
    assert not hub.wants(WorkerEventType.RECEIVED)
    typed = hub.listen(lambda e: None, types=[WorkerEventType.WORKER_STOPPING])
    assert hub.wants(WorkerEventType.WORKER_STOPPING) and not hub.wants(WorkerEventType.RECEIVED)
    everything = hub.listen(lambda e: None)
    assert hub.wants(WorkerEventType.RECEIVED)
    everything.cancel()
    assert not hub.wants(WorkerEventType.RECEIVED)
    typed.cancel()
    assert not hub.wants(WorkerEventType.WORKER_STOPPING)
    events = iter(hub)  # an iterator takes every type
    assert hub.wants(WorkerEventType.RECEIVED)
    hub.close()
    assert list(events) == []


def test_listening_to_a_type_that_does_not_exist_is_refused_by_name():
    with pytest.raises(ValueError, match="'finished' is not a WorkerEventType"):
        EventHub().listen(lambda e: None, types=["finished"])


def test_the_hub_knows_whether_a_callers_callback_listens():
    hub = EventHub()
    assert not hub.has_callbacks
    it = iter(hub)  # an iterator runs no code of the caller's in the emitting thread
    own = hub._listen(lambda e: None, None, quick=True)  # stemnb's own, which never waits
    assert not hub.has_callbacks
    sub = hub.listen(lambda e: None, types=[WorkerEventType.FAILED])
    assert hub.has_callbacks
    sub.cancel()
    sub.cancel()  # idempotent
    assert not hub.has_callbacks
    own.cancel()
    hub.close()
    assert list(it) == []
