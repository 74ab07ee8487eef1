"""FrameReader splits what one connection carries into the messages Connection.send_bytes sent."""

from __future__ import annotations

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
