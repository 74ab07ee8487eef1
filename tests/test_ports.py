"""ReceivePort, RawReceivePort and SendPort, across real processes."""

from __future__ import annotations

import asyncio
import pickle
import threading

import pytest

import stemnb
from stemnb._shm import session_segments

pytestmark = pytest.mark.timeout(120)

WAIT = 30  # seconds a test waits for a message that must come


# ---------------------------------------------------------------------- functions run remotely
def send_range(port: stemnb.SendPort, n: int) -> int:
    for i in range(n):
        port.send(i)
    return n


def reply_with_pid(port: stemnb.SendPort) -> int:
    import os

    port.send(("hello from", os.getpid()))
    return os.getpid()


def echo_through_own_port(parent: stemnb.SendPort) -> str:
    """Inside a pool worker: make a port, hand it to the parent, answer what arrives on it."""
    with stemnb.ReceivePort("nested") as mine:
        parent.send(mine.send_port)
        question = mine.receive(timeout=WAIT)
        parent.send(f"answer to {question}")
    return "done"


def send_mixed_sizes(port: stemnb.SendPort, n: int) -> int:
    import numpy as np

    for i in range(n):
        port.send(np.full(1 << 16, i, dtype=np.float64) if i % 3 == 0 else i)  # 512 KiB or tiny
    return n


def _refuse_in_root() -> None:
    from stemnb._runtime import role

    if role() == "root":
        raise RuntimeError("cannot be rebuilt in the parent")


class LoadsOnlyInWorkers:
    def __reduce__(self):
        return (_refuse_in_root, ())


def poison_then_send(poisoned: stemnb.SendPort, port: stemnb.SendPort) -> str:
    poisoned.send(("not a control request", LoadsOnlyInWorkers()))
    port.send("after the poison")
    return "sent"


def send_unloadable_then_fine(port: stemnb.SendPort) -> None:
    port.send(LoadsOnlyInWorkers())
    port.send("fine")


def mutate_and_return(message: dict) -> dict:
    message["items"].append("worker")
    return message


# ---------------------------------------------------------------------- receiving
def test_receive_returns_messages_in_the_order_they_were_sent(port):
    for i in range(5):
        port.send_port.send(i)
    assert [port.receive(timeout=WAIT) for _ in range(5)] == [0, 1, 2, 3, 4]


def test_iterating_a_port_yields_messages_until_it_is_closed(port):
    def producer() -> None:
        for i in range(3):
            port.send_port.send(i)
        port.send_port.send("stop")

    threading.Thread(target=producer).start()
    seen = []
    for message in port:
        if message == "stop":
            port.close()
            continue
        seen.append(message)
    assert seen == [0, 1, 2]


def test_async_for_reads_messages_sent_from_another_process():
    async def main() -> list[int]:
        port = stemnb.ReceivePort("async")
        fut = stemnb.run(send_range, port.send_port, 20)
        seen = []
        async for message in port:
            seen.append(message)
            if len(seen) == 20:
                port.close()
        assert await fut == 20
        return seen

    assert asyncio.run(main()) == list(range(20))


def test_async_for_ends_when_the_port_is_closed_from_another_thread():
    async def main() -> list[str]:
        port = stemnb.ReceivePort()
        port.send_port.send("a")
        seen = []
        async for message in port:
            seen.append(message)
            threading.Thread(target=port.close).start()
        return seen

    assert asyncio.run(main()) == ["a"]


def test_first_resolves_with_the_next_message_and_closes_the_port():
    port = stemnb.ReceivePort()
    first = port.first()
    assert not first.done()
    stemnb.run(reply_with_pid, port.send_port).result(WAIT)
    kind, pid = first.result(WAIT)
    assert kind == "hello from" and pid > 0
    assert port.closed


def test_first_can_be_awaited():
    async def main() -> str:
        port = stemnb.ReceivePort()
        port.send_port.send("x")
        return await port.first()

    assert asyncio.run(main()) == "x"


def test_listen_runs_callbacks_on_the_running_event_loop():
    async def main() -> tuple[list[int], set[int]]:
        loop_thread = threading.get_ident()
        done = asyncio.get_running_loop().create_future()
        seen: list[int] = []
        threads: set[int] = set()
        port = stemnb.ReceivePort("listened")

        def on_message(message: int) -> None:
            seen.append(message)
            threads.add(threading.get_ident())
            if len(seen) == 10:
                port.close()
                done.set_result(None)

        port.listen(on_message)
        await stemnb.run(send_range, port.send_port, 10)
        await asyncio.wait_for(done, WAIT)
        assert threads == {loop_thread}
        return seen, threads

    seen, _ = asyncio.run(main())
    assert seen == list(range(10))


def test_listen_without_a_running_loop_calls_back_on_the_stemnb_events_thread(port):
    got = []
    finished = threading.Event()

    def on_message(message: int) -> None:
        got.append((message, threading.current_thread().name))
        if len(got) == 3:
            finished.set()

    port.listen(on_message)
    stemnb.run(send_range, port.send_port, 3).result(WAIT)
    assert finished.wait(WAIT)
    assert [m for m, _ in got] == [0, 1, 2]
    assert {name for _, name in got} == {"stemnb-events"}


def test_a_listened_port_cannot_also_be_read_or_listened_twice(port):
    port.listen(lambda message: None)
    with pytest.raises(RuntimeError, match="listened"):
        port.receive(timeout=1)
    with pytest.raises(RuntimeError, match="already being listened"):
        port.listen(lambda message: None)


def test_raw_receive_port_calls_its_handler_for_every_message():
    got: list[int] = []
    finished = threading.Event()

    def handler(message: int) -> None:
        got.append(message)
        if len(got) == 5:
            finished.set()

    raw = stemnb.RawReceivePort(handler, debug_name="raw")
    try:
        stemnb.run(send_range, raw.send_port, 5).result(WAIT)
        assert finished.wait(WAIT)
        assert got == [0, 1, 2, 3, 4]
    finally:
        raw.close()


def test_raw_receive_port_handler_can_be_replaced():
    first: list[str] = []
    second: list[str] = []
    handled = {"one": threading.Event(), "two": threading.Event()}

    def record(into: list[str]):
        def handler(message: str) -> None:
            into.append(message)
            handled[message].set()

        return handler

    raw = stemnb.RawReceivePort(record(first))
    try:
        raw.send_port.send("one")
        assert handled["one"].wait(WAIT)
        raw.handler = record(second)
        raw.send_port.send("two")
        assert handled["two"].wait(WAIT)
        assert (first, second) == (["one"], ["two"])
    finally:
        raw.close()


# ---------------------------------------------------------------------- send ports
def test_send_ports_of_one_receive_port_are_equal_and_hash_alike(port):
    copy = pickle.loads(pickle.dumps(port.send_port))
    assert copy == port.send_port
    assert hash(copy) == hash(port.send_port)
    assert {copy, port.send_port} == {port.send_port}
    other = stemnb.ReceivePort()
    try:
        assert other.send_port != port.send_port
    finally:
        other.close()


def test_a_pickled_send_port_still_reaches_its_receive_port(port):
    copy = pickle.loads(pickle.dumps(port.send_port))
    copy.send("via copy")
    assert port.receive(timeout=WAIT) == "via copy"


def test_a_receive_port_itself_cannot_be_sent(port):
    with pytest.raises(stemnb.SerializationError, match="send_port"):
        port.send_port.send({"oops": port})


def test_messages_are_copies_the_receiver_cannot_change_the_senders_object(port):
    original = {"items": [1, 2]}
    port.send_port.send(original)
    original["items"].append(3)  # after sending: the message is unaffected
    received = port.receive(timeout=WAIT)
    assert received == {"items": [1, 2]}
    received["items"].append("receiver")
    assert original == {"items": [1, 2, 3]}


def test_a_message_sent_to_a_worker_is_a_copy():
    original = {"items": ["parent"]}
    back = stemnb.run(mutate_and_return, original).result(WAIT)
    assert back == {"items": ["parent", "worker"]}
    assert original == {"items": ["parent"]}


def test_one_senders_thousand_messages_arrive_in_order(port):
    assert stemnb.run(send_range, port.send_port, 1000).result(WAIT) == 1000
    assert [port.receive(timeout=WAIT) for _ in range(1000)] == list(range(1000))


def test_large_and_small_messages_from_one_sender_keep_their_order(port):
    pytest.importorskip("numpy")
    assert stemnb.run(send_mixed_sizes, port.send_port, 30).result(WAIT) == 30
    for i in range(30):
        message = port.receive(timeout=WAIT)
        assert (int(message[0]) if i % 3 == 0 else message) == i


def test_messages_from_two_senders_each_keep_their_own_order(port):
    a = stemnb.IsolatePool(2, debug_name="senders")
    try:
        futures = [a.run(send_range, port.send_port, 300) for _ in range(2)]
        assert [f.result(WAIT) for f in futures] == [300, 300]
    finally:
        a.close(timeout=30)
    received = [port.receive(timeout=WAIT) for _ in range(600)]
    # two interleaved ascending runs: each value appears twice, and the k-th copy of i follows i-1's
    assert sorted(received) == sorted(list(range(300)) * 2)
    seen: dict[int, int] = {}
    for value in received:
        seen[value] = seen.get(value, 0) + 1
        if value:
            assert seen.get(value - 1, 0) >= seen[value]


def test_a_send_to_a_closed_port_is_dropped_silently():
    port = stemnb.ReceivePort()
    sender = port.send_port
    port.close()
    sender.send("nobody listens")  # no error
    assert stemnb.run(send_range, sender, 3).result(WAIT) == 3


def test_a_large_message_to_a_closed_port_leaves_no_segment():
    np = pytest.importorskip("numpy")
    before = set(session_segments())
    port = stemnb.ReceivePort()
    port.send_port.send(np.ones(1 << 20))  # queued in a segment, then dropped by close()
    port.close()
    port.send_port.send(np.ones(1 << 20))  # dropped on arrival
    assert set(session_segments()) - before == set()


def test_an_unpicklable_message_raises_serialization_error_at_send(port):
    with pytest.raises(stemnb.SerializationError, match="message") as info:
        port.send_port.send({"lock": threading.Lock()})
    assert isinstance(info.value, TypeError)
    port.send_port.send("still usable")
    assert port.receive(timeout=WAIT) == "still usable"


def test_a_message_that_cannot_be_unpickled_here_raises_serialization_error_at_receive(port):
    stemnb.run(send_unloadable_then_fine, port.send_port).result(WAIT)
    with pytest.raises(stemnb.SerializationError, match="cannot unpickle the message"):
        port.receive(timeout=WAIT)
    assert port.receive(timeout=WAIT) == "fine"


def test_receive_with_a_timeout_raises_timeout_error(port):
    with pytest.raises(TimeoutError, match="within 0.05s"):
        port.receive(timeout=0.05)


def test_receive_on_a_closed_port_raises_closed_error():
    port = stemnb.ReceivePort()
    port.close()
    port.close()  # idempotent
    with pytest.raises(stemnb.ClosedError):
        port.receive(timeout=1)
    with pytest.raises(stemnb.ClosedError):
        port.first().result(WAIT)


def test_closing_a_port_wakes_a_blocked_receive(port):
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            port.receive(timeout=WAIT)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    port.close()
    t.join(WAIT)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], stemnb.ClosedError)


def test_a_message_a_hub_handler_cannot_load_does_not_stop_later_messages_from_that_process(port, capsys):
    from stemnb._isolate_supervisor import _supervisor_send_port

    supervisor = _supervisor_send_port()  # a hub handler that unpickles on the reading thread
    assert stemnb.run(poison_then_send, supervisor, port.send_port).result(WAIT) == "sent"
    assert port.receive(timeout=WAIT) == "after the poison"  # read after the poison, same connection
    err = capsys.readouterr().err
    assert "could not be delivered and was dropped" in err and "cannot be rebuilt in the parent" in err


def test_a_send_port_inside_a_run_argument_is_used_from_the_worker(port):
    worker_pid = stemnb.run(reply_with_pid, port.send_port).result(WAIT)
    assert port.receive(timeout=WAIT) == ("hello from", worker_pid)


def test_a_port_created_inside_a_pool_worker_replies_to_the_parent(port):
    fut = stemnb.run(echo_through_own_port, port.send_port)
    theirs = port.receive(timeout=WAIT)
    assert isinstance(theirs, stemnb.SendPort)
    theirs.send("ping")
    assert port.receive(timeout=WAIT) == "answer to ping"
    assert fut.result(WAIT) == "done"
