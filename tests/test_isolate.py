"""stemnb.spawn and Isolate: long-lived processes controlled like Dart isolates (real processes)."""

from __future__ import annotations

import ctypes
import os
import signal
import threading

import pytest

import stemnb
from stemnb import Isolate
from stemnb.testing import eventually

pytestmark = pytest.mark.timeout(120)

WAIT = 30  # seconds a test waits for something that must happen
QUIET = 0.3  # seconds a test listens to show that something does NOT happen


# ---------------------------------------------------------------------- isolate entries
def say_ran(reply: stemnb.SendPort) -> None:
    reply.send("ran")


def raise_boom(_: object) -> None:
    raise ValueError("boom")


def exit_with_3(_: object) -> None:
    os._exit(3)


def segfault(_: object) -> None:
    ctypes.string_at(0)


def compute_forever(reply: stemnb.SendPort) -> None:
    reply.send("computing")
    x = 0
    while True:
        x += 1


def echo(reply: stemnb.SendPort) -> None:
    """Answer every message on a listened port; "close" closes it (the isolate then ends)."""
    port = stemnb.ReceivePort("echo")

    def on_message(message: object) -> None:
        if message == "close":
            port.close()
        else:
            reply.send(message)

    port.listen(on_message)
    reply.send(port.send_port)


def echo_blocking(reply: stemnb.SendPort) -> None:
    """``echo`` with a blocking ``for message in port`` loop."""
    with stemnb.ReceivePort("echo-blocking") as port:
        reply.send(port.send_port)
        for message in port:
            if message == "close":
                return
            reply.send(message)


async def echo_async(reply: stemnb.SendPort) -> None:
    """``echo`` with ``async for``."""
    port = stemnb.ReceivePort("echo-async")
    reply.send(port.send_port)
    async for message in port:
        if message == "close":
            break
        reply.send(message)
    port.close()


async def count_with_timers(reply: stemnb.SendPort) -> None:
    """Send 0, 1, 2, ... with an asyncio timer between numbers (events that a pause must hold)."""
    import asyncio

    i = 0
    while True:
        reply.send(i)
        i += 1
        await asyncio.sleep(0.01)


def pause_self(reply: stemnb.SendPort) -> None:
    """Pause this isolate from inside; the current event still runs to its end."""
    port = stemnb.ReceivePort("self-paused")
    port.listen(reply.send)
    cap = Isolate.current().pause()
    reply.send((cap, port.send_port))
    reply.send("rest of the event")


def kill_self_before_next_event(reply: stemnb.SendPort) -> None:
    port = stemnb.ReceivePort("never read")
    port.listen(reply.send)
    Isolate.current().kill(Isolate.BEFORE_NEXT_EVENT)
    reply.send("rest of the event")


def stage(args: tuple) -> None:
    """One pipeline stage: apply ``fn`` to each message and pass it on; None ends the stage."""
    fn, downstream, announce = args
    with stemnb.ReceivePort("stage") as inbox:
        announce.send(inbox.send_port)
        for message in inbox:
            downstream.send(message if message is None else fn(message))
            if message is None:
                return


def publisher(args: tuple) -> None:
    subscribers, n = args
    for i in range(n):
        for sub in subscribers:
            sub.send(i)


def print_and_end(_: object) -> None:
    import sys

    print("hello from the isolate")
    print("and its stderr", file=sys.stderr)


ECHOES = {"listen": echo, "blocking-receive": echo_blocking, "async-for": echo_async}


async def raise_boom_async(_: object) -> None:
    raise ValueError("async boom")


def spawn_echo_and_return_it(reply: stemnb.SendPort) -> Isolate:
    """In a pool worker: start an isolate (this worker supervises it) and hand back its handle."""
    return stemnb.spawn(echo, reply).result(WAIT)


def _refuse_to_load() -> None:
    raise RuntimeError("cannot be rebuilt in the isolate")


class LoadsOnlyHere:
    def __reduce__(self):
        from stemnb._runtime import role

        return (_refuse_to_load, ()) if role() == "root" else (LoadsOnlyHere, ())


def spawn_echo_with_exit_port(args: tuple) -> int:
    reply, exit_port = args
    return stemnb.spawn(echo, reply, on_exit=exit_port).result(WAIT).pid


def spawn_echo_reporting_this_worker(args: tuple) -> tuple[int, Isolate]:
    reply, exit_port = args
    return os.getpid(), stemnb.spawn(echo, reply, on_exit=exit_port).result(WAIT)


def fragile_listener(reply: stemnb.SendPort) -> None:
    """Like ``echo`` but "bad" raises an uncaught error in the callback."""
    port = stemnb.ReceivePort("fragile")

    def on_message(message: object) -> None:
        if message == "bad":
            raise KeyError("bad message")
        reply.send(("ok", message))

    port.listen(on_message)
    reply.send(port.send_port)


def slow_handler(args: tuple) -> None:
    """"slow" reports it started, blocks until the test writes to ``fifo``, then replies "done"."""
    reply, fifo = args
    port = stemnb.ReceivePort("slow")

    def on_message(message: object) -> None:
        if message == "slow":
            reply.send("started")
            with open(fifo) as fh:
                fh.read()
            reply.send("done")
        else:
            reply.send(("processed", message))

    port.listen(on_message)
    reply.send(port.send_port)


def producer(args: tuple) -> None:
    out, n, report = args
    from stemnb._hub import hub

    for i in range(n):
        out.send(i)
    out.send(None)
    report.send(("producer connected to", list(hub()._out)))


def consumer(reply: stemnb.SendPort) -> None:
    with stemnb.ReceivePort("consumer") as port:
        reply.send(port.send_port)
        received = []
        for message in port:
            if message is None:
                break
            received.append(message)
    reply.send(("consumed", received))


def report_current(reply: stemnb.SendPort) -> None:
    reply.send(Isolate.current())


def exit_with_bye(reply: stemnb.SendPort) -> None:
    Isolate.exit(reply, "bye")
    reply.send("not reached")


def exit_with_big_array(reply: stemnb.SendPort) -> None:
    import numpy as np

    Isolate.exit(reply, np.arange(1 << 20, dtype=np.float64))


def report_pid_and_parent(reply: stemnb.SendPort) -> None:
    reply.send(("grandchild", os.getpid(), os.getppid()))


def spawn_grandchild(reply: stemnb.SendPort) -> None:
    with stemnb.ReceivePort("grandchild-exit") as exit_port:
        child = stemnb.spawn(report_pid_and_parent, reply, on_exit=exit_port.send_port).result(WAIT)
        exit_port.receive(timeout=WAIT)
    reply.send(("middle", os.getpid(), child.pid))


def spawn_grandchild_reporting_to(args: tuple) -> None:
    """Start an isolate of our own and report ``("middle", our port, its handle)``.

    On our port: "exit" calls Isolate.exit(), "crash" calls os._exit(), "return" closes the port
    (this isolate then ends normally), anything else raises an uncaught error.
    """
    reply, exit_port = args
    grandchild = stemnb.spawn(echo, reply, on_exit=exit_port).result(WAIT)
    port = stemnb.ReceivePort("middle")

    def on_message(message: object) -> None:
        if message == "exit":
            Isolate.exit()
        if message == "crash":
            os._exit(7)
        if message == "return":
            port.close()
            return
        raise RuntimeError(f"told to {message}")  # uncaught: ends this isolate

    port.listen(on_message)
    reply.send(("middle", port.send_port, grandchild))


async def async_doubler(reply: stemnb.SendPort) -> None:
    port = stemnb.ReceivePort("async")
    reply.send(port.send_port)
    async for message in port:
        if message == "stop":
            break
        reply.send(message * 2)
    port.close()
    reply.send("finished")


def control_other(args: tuple) -> None:
    other, reply = args
    cap = other.pause()
    other.ping(reply, "pinged while paused")
    other.resume(cap)
    reply.send(("alive", other.is_alive))
    other.kill(Isolate.IMMEDIATE)


# ---------------------------------------------------------------------- fixtures and helpers
@pytest.fixture
def spawned():
    """Spawn isolates that are killed (if still alive) after the test."""
    isolates: list[Isolate] = []

    def start(entry, message, **kwargs) -> Isolate:
        iso = stemnb.spawn(entry, message, **kwargs).result(WAIT)
        isolates.append(iso)
        return iso

    yield start
    for iso in isolates:
        try:
            iso.kill(Isolate.IMMEDIATE)
        except stemnb.ClosedError:
            pass


@pytest.fixture
def ports():
    """Make receive ports that are closed after the test."""
    made: list[stemnb.ReceivePort] = []

    def make(name: str | None = None) -> stemnb.ReceivePort:
        p = stemnb.ReceivePort(name)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def assert_quiet(port: stemnb.ReceivePort) -> None:
    """Nothing arrives on ``port`` for a short while."""
    with pytest.raises(TimeoutError):
        got = port.receive(timeout=QUIET)
        pytest.fail(f"unexpected message {got!r}")


def assert_exit_reported_once(iso: Isolate, exit_port: stemnb.ReceivePort, response: object = None) -> None:
    assert exit_port.receive(timeout=WAIT) == response
    assert not iso.is_alive
    iso.kill(Isolate.IMMEDIATE)  # no-ops on an ended isolate: no second exit message
    iso.kill()
    exit_port.send_port.send("sentinel")
    assert exit_port.receive(timeout=WAIT) == "sentinel"


def start_echo(spawned, ports, **kwargs) -> tuple[Isolate, stemnb.SendPort, stemnb.ReceivePort]:
    replies = ports("replies")
    iso = spawned(echo, replies.send_port, **kwargs)
    return iso, replies.receive(timeout=WAIT), replies


# ---------------------------------------------------------------------- direct traffic
def test_producer_and_consumer_isolates_talk_directly_through_a_port_passed_between_them(spawned, ports):
    main = ports("main")
    consumer_iso = spawned(consumer, main.send_port)
    consumer_port = main.receive(timeout=WAIT)
    spawned(producer, (consumer_port, 200, main.send_port))
    got = sorted((main.receive(timeout=WAIT), main.receive(timeout=WAIT)), key=lambda m: m[0])
    (consumed, received), (connected, addresses) = got
    assert consumed == "consumed" and received == list(range(200))
    # the producer holds its own connection to the consumer's process (no relay through us)
    assert consumer_port._address in addresses
    assert f"-{consumer_iso.pid}-" in consumer_port._address


def test_a_three_stage_pipeline_of_isolates_passes_messages_straight_through(spawned, ports):
    results, announcements = ports("results"), ports("announcements")
    downstream = results.send_port
    stages = [lambda x: -x, lambda x: x * 10, lambda x: x + 1]  # applied in this order
    for fn in reversed(stages):  # built back to front: each stage needs its successor's port
        spawned(stage, (fn, downstream, announcements.send_port))
        downstream = announcements.receive(timeout=WAIT)
    for i in range(50):
        downstream.send(i)
    downstream.send(None)
    got = [results.receive(timeout=WAIT) for _ in range(51)]
    assert got == [-i * 10 + 1 for i in range(50)] + [None]


def test_one_publisher_isolate_reaches_every_subscriber_in_order(spawned, ports):
    subscribers = [ports(f"sub{i}") for i in range(3)]
    spawned(publisher, ([s.send_port for s in subscribers], 100))
    for sub in subscribers:
        assert [sub.receive(timeout=WAIT) for _ in range(100)] == list(range(100))


# ---------------------------------------------------------------------- exit port
def test_exit_port_receives_its_response_after_a_normal_return(spawned, ports):
    exit_port, replies = ports("exit"), ports()
    iso = spawned(say_ran, replies.send_port, on_exit=exit_port.send_port)
    assert replies.receive(timeout=WAIT) == "ran"
    assert_exit_reported_once(iso, exit_port)


def test_exit_port_is_told_after_an_uncaught_error(spawned, ports):
    exit_port = ports("exit")
    iso = spawned(raise_boom, None, on_exit=exit_port.send_port)
    assert_exit_reported_once(iso, exit_port)


def test_exit_port_is_told_after_os_exit(spawned, ports):
    exit_port = ports("exit")
    iso = spawned(exit_with_3, None, on_exit=exit_port.send_port)
    assert_exit_reported_once(iso, exit_port)


def test_exit_port_is_told_after_sigkill(spawned, ports):
    iso, _, _ = start_echo(spawned, ports)
    exit_port = ports("exit")
    iso.add_on_exit_listener(exit_port.send_port, response=("ended", iso.pid))
    os.kill(iso.pid, signal.SIGKILL)
    assert_exit_reported_once(iso, exit_port, ("ended", iso.pid))


def test_exit_port_is_told_after_a_segfault(spawned, ports):
    exit_port = ports("exit")
    iso = spawned(segfault, None, on_exit=exit_port.send_port)
    assert_exit_reported_once(iso, exit_port)


def test_an_exit_listener_added_after_the_end_is_answered_at_once(spawned, ports):
    exit_port, late = ports("exit"), ports("late")
    iso = spawned(exit_with_3, None, on_exit=exit_port.send_port)
    exit_port.receive(timeout=WAIT)
    iso.add_on_exit_listener(late.send_port, "too late")
    assert late.receive(timeout=WAIT) == "too late"


def test_a_removed_exit_listener_is_not_told(spawned, ports):
    iso, echo_port, _ = start_echo(spawned, ports)
    kept, removed = ports("kept"), ports("removed")
    iso.add_on_exit_listener(kept.send_port, "kept")
    iso.add_on_exit_listener(removed.send_port, "removed")
    iso.remove_on_exit_listener(removed.send_port)
    echo_port.send("close")
    assert kept.receive(timeout=WAIT) == "kept"
    removed.send_port.send("sentinel")
    assert removed.receive(timeout=WAIT) == "sentinel"


# ---------------------------------------------------------------------- errors
def test_error_port_receives_message_traceback_and_remote_error(spawned, ports):
    errors, exit_port = ports("errors"), ports("exit")
    spawned(raise_boom, None, on_error=errors.send_port, on_exit=exit_port.send_port)
    message, tb, err = errors.receive(timeout=WAIT)
    assert message == "ValueError: boom"
    assert 'raise ValueError("boom")' in tb and "raise_boom" in tb
    assert isinstance(err, stemnb.RemoteError)
    assert (err.type_name, err.message, err.traceback) == ("ValueError", "boom", tb)
    assert exit_port.receive(timeout=WAIT) is None


def test_errors_are_fatal_false_keeps_a_listening_isolate_alive_after_a_callback_error(spawned, ports):
    errors, replies = ports("errors"), ports("replies")
    iso = spawned(fragile_listener, replies.send_port, errors_are_fatal=False, on_error=errors.send_port)
    port = replies.receive(timeout=WAIT)
    port.send("bad")
    port.send("good")
    message, _, err = errors.receive(timeout=WAIT)
    assert message == "KeyError: 'bad message'" and err.type_name == "KeyError"
    assert replies.receive(timeout=WAIT) == ("ok", "good")
    assert iso.is_alive


def test_a_callback_error_ends_the_isolate_when_errors_are_fatal(spawned, ports):
    errors, replies, exit_port = ports("errors"), ports("replies"), ports("exit")
    iso = spawned(fragile_listener, replies.send_port, on_exit=exit_port.send_port)
    iso.add_error_listener(errors.send_port)
    port = replies.receive(timeout=WAIT)
    port.send("bad")
    port.send("never handled")
    assert errors.receive(timeout=WAIT)[0] == "KeyError: 'bad message'"
    assert exit_port.receive(timeout=WAIT) is None
    assert_quiet(replies)


def test_set_errors_fatal_changes_the_policy_of_a_running_isolate(spawned, ports):
    replies, exit_port = ports("replies"), ports("exit")
    iso = spawned(fragile_listener, replies.send_port, on_exit=exit_port.send_port)
    port = replies.receive(timeout=WAIT)
    iso.set_errors_fatal(False)
    port.send("bad")
    port.send("after")
    assert replies.receive(timeout=WAIT) == ("ok", "after")
    iso.set_errors_fatal(True)
    port.send("bad")
    assert exit_port.receive(timeout=WAIT) is None


def test_a_removed_error_listener_is_not_told(spawned, ports):
    errors, replies = ports("errors"), ports("replies")
    iso = spawned(fragile_listener, replies.send_port, errors_are_fatal=False)
    port = replies.receive(timeout=WAIT)
    iso.add_error_listener(errors.send_port)
    iso.remove_error_listener(errors.send_port)
    port.send("bad")
    port.send("after")
    assert replies.receive(timeout=WAIT) == ("ok", "after")  # the error was reported by then
    errors.send_port.send("sentinel")
    assert errors.receive(timeout=WAIT) == "sentinel"


# ---------------------------------------------------------------------- pause and resume
@pytest.mark.parametrize("style", list(ECHOES))
def test_two_pause_capabilities_hold_messages_until_both_resume_and_keep_their_order(spawned, ports, style):
    replies = ports("replies")
    iso = spawned(ECHOES[style], replies.send_port)
    port = replies.receive(timeout=WAIT)
    first, second = iso.pause(), iso.pause()
    assert first != second
    for i in range(50):
        port.send(i)
    assert_quiet(replies)
    iso.resume(first)
    assert_quiet(replies)
    iso.resume(second)
    assert [replies.receive(timeout=WAIT) for _ in range(50)] == list(range(50))


def test_pause_holds_the_timers_of_an_async_entry_and_resume_continues_where_it_stopped(spawned, ports):
    replies = ports("counts")
    iso = spawned(count_with_timers, replies.send_port)
    assert replies.receive(timeout=WAIT) == 0
    cap = iso.pause()
    last = None
    for _ in range(20):  # at most a step or two was under way when the pause took effect
        try:
            last = replies.receive(timeout=QUIET)
        except TimeoutError:
            break
    else:
        pytest.fail("the isolate kept counting while paused")
    assert_quiet(replies)
    iso.resume(cap)
    following = replies.receive(timeout=WAIT)
    assert following == (last if last is not None else 0) + 1


def test_pause_with_a_given_capability_returns_it(spawned, ports):
    iso, port, replies = start_echo(spawned, ports)
    cap = stemnb.Capability()
    assert iso.pause(cap) is cap
    port.send("held")
    assert_quiet(replies)
    iso.resume(cap)
    assert replies.receive(timeout=WAIT) == "held"


def test_resume_with_a_wrong_capability_raises_capability_error(spawned, ports):
    iso, port, replies = start_echo(spawned, ports)
    cap = iso.pause()
    with pytest.raises(stemnb.CapabilityError, match="does not pause"):
        iso.resume(stemnb.Capability())
    iso.resume(cap)
    with pytest.raises(stemnb.CapabilityError):
        iso.resume(cap)  # already resumed
    port.send("still works")
    assert replies.receive(timeout=WAIT) == "still works"


def test_spawn_paused_runs_nothing_until_resumed_with_the_pause_capability(spawned, ports):
    replies = ports()
    iso = spawned(say_ran, replies.send_port, paused=True)
    assert isinstance(iso.pause_capability, stemnb.Capability)
    assert_quiet(replies)
    iso.resume(iso.pause_capability)
    assert replies.receive(timeout=WAIT) == "ran"


def test_a_spawn_paused_isolate_can_be_killed_before_its_entry_runs(spawned, ports):
    replies, exit_port = ports(), ports("exit")
    iso = spawned(say_ran, replies.send_port, paused=True, on_exit=exit_port.send_port)
    iso.kill(Isolate.BEFORE_NEXT_EVENT)
    assert exit_port.receive(timeout=WAIT) is None
    assert_quiet(replies)


def test_a_before_next_event_ping_to_a_spawn_paused_isolate_is_answered_on_resume(spawned, ports):
    replies, pongs = ports(), ports("pongs")
    iso = spawned(say_ran, replies.send_port, paused=True)
    iso.ping(pongs.send_port, "before the entry", priority=Isolate.BEFORE_NEXT_EVENT)
    assert_quiet(pongs)
    iso.resume(iso.pause_capability)
    assert pongs.receive(timeout=WAIT) == "before the entry"
    assert replies.receive(timeout=WAIT) == "ran"


def test_an_unpaused_spawn_has_no_pause_capability(spawned, ports):
    iso, _, _ = start_echo(spawned, ports)
    assert iso.pause_capability is None


# ---------------------------------------------------------------------- ping
def test_immediate_ping_is_answered_while_paused(spawned, ports):
    iso, _, _ = start_echo(spawned, ports)
    pongs = ports("pongs")
    cap = iso.pause()
    iso.ping(pongs.send_port, "now", priority=Isolate.IMMEDIATE)
    assert pongs.receive(timeout=WAIT) == "now"
    iso.resume(cap)


def test_before_next_event_ping_is_held_while_paused(spawned, ports):
    iso, _, _ = start_echo(spawned, ports)
    pongs = ports("pongs")
    iso.ping(pongs.send_port, "idle", priority=Isolate.BEFORE_NEXT_EVENT)
    assert pongs.receive(timeout=WAIT) == "idle"
    cap = iso.pause()
    iso.ping(pongs.send_port, "later", priority=Isolate.BEFORE_NEXT_EVENT)
    assert_quiet(pongs)
    iso.resume(cap)
    assert pongs.receive(timeout=WAIT) == "later"


def test_ping_without_a_response_sends_none(spawned, ports):
    iso, _, _ = start_echo(spawned, ports)
    pongs = ports("pongs")
    iso.ping(pongs.send_port)
    assert pongs.receive(timeout=WAIT) is None


# ---------------------------------------------------------------------- kill
def test_kill_immediate_ends_a_long_computation(spawned, ports):
    replies, exit_port = ports(), ports("exit")
    iso = spawned(compute_forever, replies.send_port, on_exit=exit_port.send_port)
    assert replies.receive(timeout=WAIT) == "computing"
    iso.kill(priority=Isolate.IMMEDIATE)
    assert exit_port.receive(timeout=WAIT) is None
    assert not iso.is_alive


def test_kill_before_next_event_ends_an_idle_isolate(spawned, ports):
    iso, _, _ = start_echo(spawned, ports)
    exit_port = ports("exit")
    iso.add_on_exit_listener(exit_port.send_port, "killed")
    iso.kill()
    assert exit_port.receive(timeout=WAIT) == "killed"


def test_kill_before_next_event_lets_the_current_event_finish_and_drops_later_ones(spawned, ports, tmp_path):
    fifo = str(tmp_path / "go")
    os.mkfifo(fifo)
    replies, exit_port = ports("replies"), ports("exit")
    iso = spawned(slow_handler, (replies.send_port, fifo), on_exit=exit_port.send_port)
    port = replies.receive(timeout=WAIT)
    port.send("slow")
    assert replies.receive(timeout=WAIT) == "started"
    iso.kill(priority=Isolate.BEFORE_NEXT_EVENT)
    pongs = ports("pongs")
    iso.ping(pongs.send_port, "kill applied")  # control requests are applied in order
    assert pongs.receive(timeout=WAIT) == "kill applied"
    for i in range(3):
        port.send(i)  # queued behind the running event
    with open(fifo, "w") as fh:
        fh.write("go")
    assert replies.receive(timeout=WAIT) == "done"
    assert exit_port.receive(timeout=WAIT) is None
    assert_quiet(replies)


@pytest.mark.parametrize("style", list(ECHOES))
def test_kill_before_next_event_ends_an_isolate_waiting_for_a_message(spawned, ports, style):
    replies, exit_port = ports("replies"), ports("exit")
    iso = spawned(ECHOES[style], replies.send_port, on_exit=exit_port.send_port)
    port = replies.receive(timeout=WAIT)
    port.send("one")
    assert replies.receive(timeout=WAIT) == "one"
    iso.kill(Isolate.BEFORE_NEXT_EVENT)
    assert exit_port.receive(timeout=WAIT) is None


@pytest.mark.parametrize("style", list(ECHOES))
def test_before_next_event_ping_waits_for_resume_whatever_the_isolate_waits_in(spawned, ports, style):
    replies, pongs = ports("replies"), ports("pongs")
    iso = spawned(ECHOES[style], replies.send_port)
    replies.receive(timeout=WAIT)
    cap = iso.pause()
    iso.ping(pongs.send_port, "after resume", priority=Isolate.BEFORE_NEXT_EVENT)
    assert_quiet(pongs)
    iso.resume(cap)
    assert pongs.receive(timeout=WAIT) == "after resume"


@pytest.mark.parametrize("style", list(ECHOES))
def test_kill_before_next_event_ends_a_paused_isolate(spawned, ports, style):
    replies, exit_port = ports("replies"), ports("exit")
    iso = spawned(ECHOES[style], replies.send_port, on_exit=exit_port.send_port)
    port = replies.receive(timeout=WAIT)
    iso.pause()
    port.send("never echoed")
    iso.kill(Isolate.BEFORE_NEXT_EVENT)
    assert exit_port.receive(timeout=WAIT) is None
    assert_quiet(replies)


def test_an_isolate_killing_itself_before_next_event_finishes_the_current_event(spawned, ports):
    replies, exit_port = ports(), ports("exit")
    spawned(kill_self_before_next_event, replies.send_port, on_exit=exit_port.send_port)
    assert replies.receive(timeout=WAIT) == "rest of the event"
    assert exit_port.receive(timeout=WAIT) is None


def test_an_isolate_can_pause_itself_and_be_resumed_from_outside(spawned, ports):
    replies = ports()
    iso = spawned(pause_self, replies.send_port)
    cap, port = replies.receive(timeout=WAIT)
    assert replies.receive(timeout=WAIT) == "rest of the event"
    port.send("held")
    assert_quiet(replies)
    iso.resume(cap)
    assert replies.receive(timeout=WAIT) == "held"


def test_kill_rejects_an_unknown_priority(spawned, ports):
    iso, port, replies = start_echo(spawned, ports)
    with pytest.raises(ValueError, match="priority"):
        iso.kill(priority="soon")
    port.send("alive")
    assert replies.receive(timeout=WAIT) == "alive"


def test_a_killed_isolate_raises_closed_error_on_pause_resume_and_ping(spawned, ports):
    iso, _, _ = start_echo(spawned, ports)
    cap = iso.pause()
    exit_port = ports("exit")
    iso.add_on_exit_listener(exit_port.send_port)
    iso.kill(Isolate.IMMEDIATE)
    exit_port.receive(timeout=WAIT)
    with pytest.raises(stemnb.ClosedError, match=f"isolate {iso.debug_name!r} has ended; cannot pause it"):
        iso.pause()
    with pytest.raises(stemnb.ClosedError, match=f"isolate {iso.debug_name!r} has ended"):
        iso.resume(cap)
    with pytest.raises(stemnb.ClosedError):
        iso.ping(exit_port.send_port)
    with pytest.raises(stemnb.ClosedError):
        iso.set_errors_fatal(False)
    iso.kill()  # killing again is allowed and does nothing


def test_an_isolate_killed_immediately_refuses_pause_and_ping_at_once(spawned, ports):
    replies = ports("replies")
    iso = spawned(compute_forever, replies.send_port)
    assert replies.receive(timeout=WAIT) == "computing"
    iso.kill(Isolate.IMMEDIATE)  # its exit may not be known yet: the refusal must not wait for it
    with pytest.raises(stemnb.ClosedError, match=f"isolate {iso.debug_name!r} (was killed|has ended); cannot pause it"):
        iso.pause()
    with pytest.raises(stemnb.ClosedError, match="(was killed|has ended); cannot ping it"):
        iso.ping(replies.send_port)


def test_an_isolate_asked_to_kill_before_its_next_event_still_answers_control_requests_meanwhile(spawned, ports):
    replies, exit_port, pongs = ports("replies"), ports("exit"), ports("pongs")
    iso = spawned(compute_forever, replies.send_port, on_exit=exit_port.send_port)
    assert replies.receive(timeout=WAIT) == "computing"
    iso.kill(Isolate.BEFORE_NEXT_EVENT)  # its current event never ends: it stays alive, as in Dart
    iso.ping(pongs.send_port, "still here")
    assert pongs.receive(timeout=WAIT) == "still here" and iso.is_alive
    iso.kill(Isolate.IMMEDIATE)  # a second kill, more urgent, ends it
    assert exit_port.receive(timeout=WAIT) is None


def hold_the_gil(reply: stemnb.SendPort) -> None:
    reply.send("holding")
    sum(range(10**12))  # one C call: no other thread of this process runs meanwhile


def test_a_pause_the_isolate_never_applied_because_it_ended_raises_closed_error(spawned, ports):
    from stemnb._isolate_supervisor import supervised

    replies = ports("replies")
    iso = spawned(hold_the_gil, replies.send_port)
    assert replies.receive(timeout=WAIT) == "holding"
    record = supervised(iso._id)
    outcome: list[BaseException | None] = []

    def pause() -> None:
        try:
            iso.pause()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    thread = threading.Thread(target=pause)
    thread.start()
    eventually(lambda: record.sent >= 1, timeout=WAIT)  # sent; its control thread cannot answer
    iso.kill(Isolate.IMMEDIATE)
    thread.join(WAIT)
    assert isinstance(outcome[0], stemnb.ClosedError)
    assert f"isolate {iso.debug_name!r} ended before it could pause" in str(outcome[0])


# ---------------------------------------------------------------------- the current isolate
def test_isolate_current_inside_an_isolate_is_its_own_handle(spawned, ports):
    replies = ports()
    iso = spawned(report_current, replies.send_port)
    current = replies.receive(timeout=WAIT)
    assert current == iso
    assert (current.pid, current.debug_name) == (iso.pid, iso.debug_name)


def test_isolate_current_in_the_main_process_is_the_main_isolate():
    main = Isolate.current()
    assert (main.pid, main.debug_name) == (os.getpid(), "main")
    with pytest.raises(stemnb.ClosedError, match="main isolate"):
        main.pause()


def report_pool_isolate():
    iso = Isolate.current()
    try:
        iso.pause()
    except stemnb.ClosedError as exc:
        return iso.pid, iso.debug_name, str(exc)
    return iso.pid, iso.debug_name, "paused"


def test_isolate_current_in_a_pool_process_is_that_process():
    with stemnb.IsolatePool(1, debug_name="curpool") as pool:
        pid, name, error = pool.run(report_pool_isolate).result(WAIT)
        assert pid == pool.isolates()[0].pid
    assert name == "curpool-1"
    assert "pool process" in error


def test_isolate_exit_sends_its_message_and_ends_the_isolate(spawned, ports):
    replies, exit_port = ports(), ports("exit")
    iso = spawned(exit_with_bye, replies.send_port, on_exit=exit_port.send_port)
    assert replies.receive(timeout=WAIT) == "bye"
    assert_exit_reported_once(iso, exit_port)
    assert_quiet(replies)


def test_isolate_exit_delivers_a_large_array_read_after_the_isolate_ended(spawned, ports):
    np = pytest.importorskip("numpy")
    replies, exit_port = ports(), ports("exit")
    spawned(exit_with_big_array, replies.send_port, on_exit=exit_port.send_port)
    assert exit_port.receive(timeout=WAIT) is None  # its segments are swept by now
    result = replies.receive(timeout=WAIT)
    assert np.array_equal(result, np.arange(1 << 20, dtype=np.float64))


def test_isolate_exit_in_the_main_process_raises_closed_error():
    with pytest.raises(stemnb.ClosedError, match="not one"):
        Isolate.exit()


def test_debug_name_defaults_to_the_entry_name_and_can_be_given(spawned, ports):
    iso, _, _ = start_echo(spawned, ports)
    assert iso.debug_name.startswith("echo")
    named = spawned(say_ran, ports().send_port, debug_name="my isolate")
    assert named.debug_name == "my isolate"
    assert "my isolate" in repr(named)


# ---------------------------------------------------------------------- nesting and async
def test_an_isolate_can_spawn_its_own_isolate(spawned, ports):
    replies = ports()
    iso = spawned(spawn_grandchild, replies.send_port)
    kind, grandchild_pid, grandchild_parent = replies.receive(timeout=WAIT)
    assert kind == "grandchild" and grandchild_parent == iso.pid
    assert replies.receive(timeout=WAIT) == ("middle", iso.pid, grandchild_pid)


def start_middle_with_grandchild(spawned, ports) -> tuple[Isolate, stemnb.SendPort, Isolate, stemnb.ReceivePort]:
    """An isolate that has spawned an echo isolate of its own, reporting that one's exit to us."""
    replies, grandchild_exit = ports("replies"), ports("grandchild-exit")
    middle = spawned(spawn_grandchild_reporting_to, (replies.send_port, grandchild_exit.send_port))
    got = [replies.receive(timeout=WAIT) for _ in range(2)]  # the grandchild's port, and ours
    (_, middle_port, grandchild), = [m for m in got if isinstance(m, tuple)]
    return middle, middle_port, grandchild, grandchild_exit


def end_middle(middle: Isolate, middle_port: stemnb.SendPort, how: str) -> None:
    if how == "kill":
        middle.kill(Isolate.BEFORE_NEXT_EVENT)
    elif how == "kill-immediate":
        middle.kill(Isolate.IMMEDIATE)
    elif how == "sigkill":
        os.kill(middle.pid, signal.SIGKILL)
    elif how == "error":
        middle_port.send("fail")
    else:  # "exit", "crash" (os._exit) or "return"
        middle_port.send(how)


ENDINGS = ["kill", "kill-immediate", "sigkill", "error", "exit", "crash", "return"]


@pytest.mark.parametrize("how", ENDINGS)
def test_an_isolate_that_ends_takes_its_own_isolates_with_it_and_their_exit_is_reported_once(spawned, ports, how):
    middle, middle_port, grandchild, grandchild_exit = start_middle_with_grandchild(spawned, ports)
    end_middle(middle, middle_port, how)
    assert grandchild_exit.receive(timeout=WAIT) is None
    from stemnb._session import pid_is_alive

    assert not pid_is_alive(grandchild.pid)
    grandchild_exit.send_port.send("sentinel")  # no second exit message before it
    assert grandchild_exit.receive(timeout=WAIT) == "sentinel"


@pytest.mark.parametrize("how", ENDINGS)
def test_an_exit_listener_added_from_here_to_a_nested_isolate_is_told_once_however_its_spawner_ends(
        spawned, ports, how):
    middle, middle_port, grandchild, _ = start_middle_with_grandchild(spawned, ports)
    exit_port = ports("added-here")
    grandchild.add_on_exit_listener(exit_port.send_port, "grandchild gone")
    end_middle(middle, middle_port, how)
    assert exit_port.receive(timeout=WAIT) == "grandchild gone"
    assert not grandchild.is_alive
    grandchild.kill(Isolate.IMMEDIATE)  # its supervisor is gone: a no-op, as for any ended isolate
    exit_port.send_port.send("sentinel")
    assert exit_port.receive(timeout=WAIT) == "sentinel"


def test_an_exit_listener_added_after_the_spawner_of_a_nested_isolate_died_is_answered_at_once(spawned, ports):
    middle, middle_port, grandchild, grandchild_exit = start_middle_with_grandchild(spawned, ports)
    end_middle(middle, middle_port, "sigkill")
    assert grandchild_exit.receive(timeout=WAIT) is None
    late = ports("late")
    grandchild.add_on_exit_listener(late.send_port, "already gone")
    assert late.receive(timeout=WAIT) == "already gone"
    with pytest.raises(stemnb.ClosedError):
        grandchild.pause()


def test_a_nested_isolate_that_ended_before_its_spawner_was_killed_is_reported_once(spawned, ports):
    middle, middle_port, grandchild, grandchild_exit = start_middle_with_grandchild(spawned, ports)
    exit_port = ports("added-here")
    grandchild.add_on_exit_listener(exit_port.send_port, "grandchild gone")
    grandchild.kill(Isolate.IMMEDIATE)  # forwarded to the middle isolate, which supervises it
    assert grandchild_exit.receive(timeout=WAIT) is None
    assert exit_port.receive(timeout=WAIT) == "grandchild gone"
    end_middle(middle, middle_port, "sigkill")
    middle_exit = ports("middle-exit")
    middle.add_on_exit_listener(middle_exit.send_port, "middle gone")
    assert middle_exit.receive(timeout=WAIT) == "middle gone"  # the middle's end has been handled
    for port in (grandchild_exit, exit_port):
        port.send_port.send("sentinel")
        assert port.receive(timeout=WAIT) == "sentinel"


def test_a_removed_exit_listener_of_a_nested_isolate_is_not_told_when_its_spawner_dies(spawned, ports):
    middle, middle_port, grandchild, grandchild_exit = start_middle_with_grandchild(spawned, ports)
    removed = ports("removed")
    grandchild.add_on_exit_listener(removed.send_port, "should not arrive")
    grandchild.remove_on_exit_listener(removed.send_port)
    end_middle(middle, middle_port, "sigkill")
    assert grandchild_exit.receive(timeout=WAIT) is None  # the registry has answered the grandchild's end
    removed.send_port.send("sentinel")
    assert removed.receive(timeout=WAIT) == "sentinel"


def test_an_async_entry_reads_its_port_with_async_for(spawned, ports):
    replies, exit_port = ports(), ports("exit")
    spawned(async_doubler, replies.send_port, on_exit=exit_port.send_port)
    port = replies.receive(timeout=WAIT)
    for i in range(5):
        port.send(i)
    port.send("stop")
    assert [replies.receive(timeout=WAIT) for _ in range(6)] == [0, 2, 4, 6, 8, "finished"]
    assert exit_port.receive(timeout=WAIT) is None


def test_an_error_in_an_async_entry_reaches_the_error_and_exit_ports(spawned, ports):
    errors, exit_port = ports("errors"), ports("exit")
    spawned(raise_boom_async, None, on_error=errors.send_port, on_exit=exit_port.send_port)
    message, tb, err = errors.receive(timeout=WAIT)
    assert message == "ValueError: async boom" and "raise_boom_async" in tb
    assert err.type_name == "ValueError"
    assert exit_port.receive(timeout=WAIT) is None


def test_an_entry_defined_as_a_lambda_runs(spawned, ports):
    replies = ports()
    suffix = "from a closure"
    spawned(lambda reply: reply.send(f"lambda {suffix}"), replies.send_port)
    assert replies.receive(timeout=WAIT) == "lambda from a closure"


def test_an_isolate_spawned_by_a_pool_worker_is_controlled_from_here(ports):
    replies, pongs, exit_port = ports("replies"), ports("pongs"), ports("exit")
    iso = stemnb.run(spawn_echo_and_return_it, replies.send_port).result(WAIT)
    port = replies.receive(timeout=WAIT)
    try:
        cap = iso.pause()  # forwarded to the worker that supervises it
        port.send("held")
        iso.ping(pongs.send_port, "pong")
        assert pongs.receive(timeout=WAIT) == "pong"
        assert_quiet(replies)
        iso.resume(cap)
        assert replies.receive(timeout=WAIT) == "held"
        iso.add_on_exit_listener(exit_port.send_port, "gone")
    finally:
        iso.kill(Isolate.IMMEDIATE)
    assert exit_port.receive(timeout=WAIT) == "gone"
    assert not iso.is_alive


def test_an_isolate_started_by_a_pool_worker_ends_and_reports_its_exit_when_the_pool_closes(ports):
    replies, exit_port = ports("replies"), ports("exit")
    pool = stemnb.IsolatePool(1, debug_name="supervisors")
    try:
        pid = pool.run(spawn_echo_with_exit_port, (replies.send_port, exit_port.send_port)).result(WAIT)
        replies.receive(timeout=WAIT)
    finally:
        pool.close(timeout=WAIT)
    assert exit_port.receive(timeout=WAIT) is None
    from stemnb._session import pid_is_alive

    assert not pid_is_alive(pid)


def test_an_isolate_started_by_a_pool_worker_reports_its_exit_once_when_that_worker_is_sigkilled(ports):
    replies, exit_port = ports("replies"), ports("exit")
    pool = stemnb.IsolatePool(1, debug_name="doomed supervisors")
    try:
        worker_pid, iso = pool.run(spawn_echo_reporting_this_worker,
                                   (replies.send_port, exit_port.send_port)).result(WAIT)
        replies.receive(timeout=WAIT)
        os.kill(worker_pid, signal.SIGKILL)
        assert exit_port.receive(timeout=WAIT) is None
        assert not iso.is_alive
    finally:
        pool.close(timeout=WAIT)
    exit_port.send_port.send("sentinel")
    assert exit_port.receive(timeout=WAIT) == "sentinel"


def test_an_isolate_handle_sent_to_another_isolate_controls_it_through_the_supervisor(spawned, ports):
    target, _, _ = start_echo(spawned, ports)
    exit_port, replies = ports("exit"), ports("replies")
    target.add_on_exit_listener(exit_port.send_port, "target ended")
    spawned(control_other, (target, replies.send_port))
    assert replies.receive(timeout=WAIT) == "pinged while paused"
    assert replies.receive(timeout=WAIT) == ("alive", True)
    assert exit_port.receive(timeout=WAIT) == "target ended"
    assert not target.is_alive


def test_an_isolates_print_appears_in_the_spawners_output(spawned, ports, capsys):
    exit_port = ports("exit")
    spawned(print_and_end, None, on_exit=exit_port.send_port)
    exit_port.receive(timeout=WAIT)  # its output travels ahead of the end on the same connection
    out, err = capsys.readouterr()
    assert "hello from the isolate\n" in out
    assert "and its stderr\n" in err


# ---------------------------------------------------------------------- bad input
def test_spawn_rejects_a_non_callable_entry():
    with pytest.raises(TypeError, match="entry must be callable, not int"):
        stemnb.spawn(42, None)


def test_spawn_rejects_an_unpicklable_message():
    with pytest.raises(stemnb.SerializationError, match="spawn message"):
        stemnb.spawn(say_ran, threading.Lock())


@pytest.mark.parametrize("option", ["on_exit", "on_error"])
def test_spawn_rejects_a_listener_that_is_not_a_send_port(option, ports):
    with pytest.raises(TypeError, match=f"{option} must be a stemnb.SendPort, not ReceivePort"):
        stemnb.spawn(say_ran, None, **{option: ports()})


def test_a_message_that_cannot_be_rebuilt_in_the_isolate_is_reported_and_ends_it(spawned, ports):
    errors, exit_port = ports("errors"), ports("exit")
    spawned(say_ran, LoadsOnlyHere(), on_error=errors.send_port, on_exit=exit_port.send_port)
    message, tb, err = errors.receive(timeout=WAIT)
    assert err.type_name == "SerializationError"
    assert "cannot unpickle the spawn message" in message and "cannot be rebuilt" in message
    assert exit_port.receive(timeout=WAIT) is None


def test_control_calls_reject_bad_input_at_the_call_site_and_the_isolate_keeps_working(spawned, ports):
    iso, port, replies = start_echo(spawned, ports)
    pongs = ports("pongs")
    with pytest.raises(TypeError, match="send_port must be a stemnb.SendPort, not ReceivePort"):
        iso.ping(pongs)
    with pytest.raises(ValueError, match="priority"):
        iso.ping(pongs.send_port, priority="whenever")
    with pytest.raises(stemnb.SerializationError, match="ping response"):
        iso.ping(pongs.send_port, threading.Lock())
    with pytest.raises(TypeError, match="port must be a stemnb.SendPort, not str"):
        iso.add_error_listener("errors")
    with pytest.raises(TypeError, match="port must be a stemnb.SendPort"):
        iso.add_on_exit_listener(pongs)
    with pytest.raises(stemnb.SerializationError, match="exit response"):
        iso.add_on_exit_listener(pongs.send_port, threading.Lock())
    with pytest.raises(TypeError, match="capability must be a stemnb.Capability"):
        iso.pause("token")
    port.send("still here")
    assert replies.receive(timeout=WAIT) == "still here"


def test_a_ping_response_may_be_a_lambda_as_in_any_message(spawned, ports):
    iso, _, _ = start_echo(spawned, ports)
    pongs = ports("pongs")
    factor = 3
    iso.ping(pongs.send_port, lambda x: x * factor)
    assert pongs.receive(timeout=WAIT)(5) == 15


def test_the_runtime_still_spawns_after_bad_input(spawned, ports):
    with pytest.raises(TypeError):
        stemnb.spawn("not callable", None)
    replies = ports()
    spawned(say_ran, replies.send_port)
    assert replies.receive(timeout=WAIT) == "ran"
