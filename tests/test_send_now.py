"""Small sends that keep the GIL (``_send_now``) and Connection framing sent with them (``_frames.send_frame``)."""

from __future__ import annotations

import socket
import sys
import threading

import pytest

from stemnb._frames import SMALL_FRAME, FrameReader, send_frame
from stemnb._send_now import send_now

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="send_now sends on Linux only")


def _fill(sock: socket.socket) -> int:
    """Fill ``sock``'s send buffer (and its peer's receive buffer); return the bytes it took."""
    sock.setblocking(False)
    total = 0
    try:
        while True:
            total += sock.send(b"x" * 65536)
    except BlockingIOError:
        pass
    sock.setblocking(True)
    return total


def _drain(sock: socket.socket, count: int) -> bytes:
    chunks, got = [], 0
    while got < count:
        chunk = sock.recv(min(1 << 20, count - got))
        assert chunk, "the other end closed early"
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


@linux_only
def test_send_now_sends_a_small_message_whole_and_returns_its_length(socket_pair):
    a, b = socket_pair
    assert send_now(a.fileno(), b"hello") == 5
    assert _drain(b, 5) == b"hello"


def test_send_now_of_nothing_sends_nothing(socket_pair):
    a, _ = socket_pair
    assert send_now(a.fileno(), b"") == 0


@linux_only
def test_send_now_returns_zero_instead_of_blocking_on_a_full_socket(socket_pair):
    a, b = socket_pair
    filled = _fill(a)
    assert send_now(a.fileno(), b"more") == 0  # returned at once: the test would hang otherwise
    assert _drain(b, filled) == b"x" * filled
    assert send_now(a.fileno(), b"more") == 4
    assert _drain(b, 4) == b"more"


@linux_only
def test_send_now_sends_part_of_a_message_larger_than_the_room_left(socket_pair):
    a, b = socket_pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    big = bytes(range(256)) * 4096  # 1 MiB: more than both buffers hold
    sent = send_now(a.fileno(), big)
    assert 0 < sent < len(big)
    assert _drain(b, sent) == big[:sent]


def test_send_now_reports_a_broken_socket_as_nothing_sent_and_the_usual_send_raises(socket_pair):
    a, b = socket_pair
    b.close()
    assert send_now(a.fileno(), b"lost") == 0
    with pytest.raises(OSError):
        a.sendall(b"lost")


@pytest.mark.parametrize("size", [0, 1, 100, SMALL_FRAME, SMALL_FRAME + 1, 3 << 20])
def test_send_frame_sends_what_connection_recv_bytes_reads(pipe, size):
    sender, receiver = pipe
    data = bytes(i % 251 for i in range(size))
    thread = threading.Thread(target=lambda: (send_frame(sender, data), send_frame(sender, b"after")))
    thread.start()  # a large message fills the socket: the receiver drains it meanwhile
    assert receiver.recv_bytes() == data
    assert receiver.recv_bytes() == b"after"
    thread.join()


def test_a_small_frame_that_meets_a_full_socket_is_finished_by_a_blocking_write(pipe):
    sender, receiver = pipe
    sock = socket.socket(fileno=sender.fileno())  # the same descriptor, to fill it
    try:
        filled = _fill(sock)
    finally:
        sock.detach()
    thread = threading.Thread(target=send_frame, args=(sender, b"y" * 1000))
    thread.start()  # blocks in its write until the reader below makes room
    raw = socket.socket(fileno=receiver.fileno())
    try:
        assert _drain(raw, filled) == b"x" * filled
    finally:
        raw.detach()
    thread.join()
    assert FrameReader(receiver).read() == [b"y" * 1000]


def test_send_frame_on_a_closed_connection_raises_oserror(pipe):
    sender, receiver = pipe
    receiver.close()
    with pytest.raises(OSError):
        send_frame(sender, b"gone")
