"""FrameReader splits what one connection carries into the messages Connection.send_bytes sent."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from stemnb._frames import FrameReader


def test_messages_sent_back_to_back_arrive_together_and_in_order(pipe):
    sender, receiver = pipe
    for i in range(50):
        sender.send_bytes(b"m%d" % i)
    reader = FrameReader(receiver)
    got = []
    while len(got) < 50:
        got.extend(bytes(f) for f in reader.read())
    assert got == [b"m%d" % i for i in range(50)]


def test_a_message_larger_than_one_read_arrives_whole(pipe):
    sender, receiver = pipe
    big = bytes(range(256)) * 8192  # 2 MiB, more than the socket buffer: sent from a thread
    thread = threading.Thread(target=lambda: (sender.send_bytes(big), sender.send_bytes(b"after")))
    thread.start()
    reader = FrameReader(receiver)
    got = []
    while len(got) < 2:
        got.extend(bytes(f) for f in reader.read())
    thread.join()
    assert got == [big, b"after"]


def test_an_empty_message_is_a_message(pipe):
    sender, receiver = pipe
    sender.send_bytes(b"")
    sender.send_bytes(b"x")
    reader = FrameReader(receiver)
    got = []
    while len(got) < 2:
        got.extend(bytes(f) for f in reader.read())
    assert got == [b"", b"x"]


def test_reading_after_the_other_end_closed_raises_eoferror(pipe):
    sender, receiver = pipe
    sender.send_bytes(b"last")
    sender.close()
    reader = FrameReader(receiver)
    assert [bytes(f) for f in reader.read()] == [b"last"]
    with pytest.raises(EOFError):
        reader.read()


def test_messages_that_straddle_the_read_buffer_arrive_whole_and_in_order(pipe):
    sender, receiver = pipe
    sizes = [100_000, 3, 150_000, 70_000, 250_000, 262_140, 1, 262_144, 5]  # around the 256 KiB buffer
    messages = [bytes([i % 251]) * size for i, size in enumerate(sizes * 3)]
    thread = threading.Thread(target=lambda: [sender.send_bytes(m) for m in messages])
    thread.start()
    reader = FrameReader(receiver)
    got = []
    while len(got) < len(messages):
        got.extend(bytes(f) for f in reader.read())
    thread.join()
    assert got == messages


class _Clock:
    """A stand-in for ``time`` in ``_frames`` whose ``perf_counter`` moves ``step`` seconds per reading."""

    def __init__(self, step: float) -> None:
        self.step = step
        self.now = 0.0

    def perf_counter(self) -> float:
        self.now += self.step
        return self.now


def test_a_lingering_reader_catches_a_message_sent_while_it_polls(pipe):
    sender, receiver = pipe
    reader = FrameReader(receiver, linger=30.0)  # far longer than the thread takes to send
    got = []
    thread = threading.Thread(target=lambda: got.extend(bytes(f) for f in reader.read()))
    thread.start()
    sender.send_bytes(b"soon")
    thread.join()
    assert got == [b"soon"]
    assert reader.caught == 1


def test_a_reader_lingers_again_only_while_messages_come_within_its_linger(pipe, monkeypatch):
    from stemnb import _frames

    sender, receiver = pipe
    clock = _Clock(step=1.0)  # every wait looks a second long: longer than the linger
    monkeypatch.setattr(_frames, "time", clock)
    reader = FrameReader(receiver, linger=0.01)
    sender.send_bytes(b"first")
    assert [bytes(f) for f in reader.read()] == [b"first"]
    assert reader.caught == 1  # no wait was seen yet: it lingered, and the message was there
    sender.send_bytes(b"late")
    assert [bytes(f) for f in reader.read()] == [b"late"]
    assert reader.caught == 1  # the last wait was longer than the linger: it read at once
    clock.step = 0.001  # waits now look short
    sender.send_bytes(b"third")
    assert [bytes(f) for f in reader.read()] == [b"third"]
    assert reader.caught == 1  # the wait before this read was still the long one
    sender.send_bytes(b"fourth")
    assert [bytes(f) for f in reader.read()] == [b"fourth"]
    assert reader.caught == 2  # after a short wait it lingers again


def test_a_reader_without_linger_never_polls(pipe):
    sender, receiver = pipe
    reader = FrameReader(receiver)
    for word in (b"a", b"b"):
        sender.send_bytes(word)
        assert [bytes(f) for f in reader.read()] == [word]
    assert reader.caught == 0


def test_a_lingering_reader_raises_eoferror_once_the_other_end_closes(pipe):
    sender, receiver = pipe
    reader = FrameReader(receiver, linger=30.0)
    sender.close()
    with pytest.raises(EOFError):
        reader.read()


def test_readers_sharing_a_gate_linger_one_at_a_time(pipe):
    sender, receiver = pipe
    gate = threading.Lock()
    reader = FrameReader(receiver, linger=30.0, gate=gate)
    sender.send_bytes(b"waiting")
    with gate:  # another reader of the gate lingers now: this one reads without polling first
        assert [bytes(f) for f in reader.read()] == [b"waiting"]
    assert reader.caught == 0
    sender.send_bytes(b"next")
    assert [bytes(f) for f in reader.read()] == [b"next"]
    assert reader.caught == 1  # the gate was free: it polled, and found the message at once
    assert gate.acquire(False)  # and it let the gate go


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs CPU affinity (Linux)")
def test_a_process_bound_to_one_cpu_does_not_linger():
    code = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); from stemnb import _frames; print(_frames.LINGER)"
    single = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(single.stdout) == 0.0
    if len(os.sched_getaffinity(0)) > 1:
        from stemnb import _frames

        assert _frames.LINGER > 0
