"""The worker event hub: callbacks, blocking and async iteration, containment of listener errors."""

from __future__ import annotations

import asyncio
import logging
import threading

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
    out = []
    ready = threading.Event()

    def consume():
        it = iter(hub)
        ready.set()
        out.extend(e.task_id for e in it)

    thread = threading.Thread(target=consume)
    thread.start()
    ready.wait(5)
    # the generator registers on first next(); emit until it has seen one
    while not out and thread.is_alive():
        hub.emit(event(task_id="a"))
        thread.join(0.01)
    hub.close()
    thread.join(5)
    assert not thread.is_alive() and out[0] == "a"


def test_async_for_receives_events_from_other_threads():
    hub = EventHub()

    async def main():
        seen = []

        async def consume():
            async for e in hub:
                seen.append(e.task_id)
                if len(seen) == 2:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
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
