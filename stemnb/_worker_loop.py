"""The loop a pool worker process runs: receive a call, run it, send the outcome back.

Messages on the connection are pickled tuples:

* parent -> worker: ``("calls", [(call_id, seq, payload), ...], released)`` and ``("stop",)``;
  ``seq`` numbers the worker's calls for the claim board (see ``_claim``); ``released`` names
  this worker's result segments the parent no longer maps, so they can be reused.
* worker -> parent: ``("ok", call_id, payload, rss, released)`` (``("val", ...)`` with the result
  itself in place of its payload when it is a builtin scalar), ``("err", call_id, exc_payload,
  type_name, message, traceback, rss, released)``, ``("skipped", call_id, released)`` and
  ``("out", call_id, stream, text)``;
  ``released`` names the parent's argument segments this worker no longer maps.
"""

from __future__ import annotations

import collections
import pickle
import sys
import threading
import traceback
import types
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

from ._exceptions import SerializationError
from ._frames import LINGER, FrameReader
from ._output import ForwardStream
from ._plain import SCALARS
from ._priority import lower_priority
from ._runtime import rss_bytes
from ._serialize import Payload, dumps, loads_call
from ._shm import SegmentCache


class _Channel:
    """The worker's end of the connection, safe to write from several threads."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.call_id: int | None = None

    def send(self, msg: tuple) -> None:
        data = pickle.dumps(msg, protocol=5)
        with self.lock:
            self.conn.send_bytes(data)

    def output(self, stream: str, text: str) -> None:
        try:
            self.send(("out", self.call_id, stream, text))
        except OSError:
            pass


def serve(conn: Connection, config: dict[str, Any]) -> None:
    """Serve calls until the parent says stop or goes away.

    Calls may arrive ahead of time; each is claimed on the claim board right before it starts,
    and skipped (reported as ``("skipped", call_id, released)``) if the parent revoked it.
    """
    from ._claim import ClaimBoard

    channel = _Channel(conn)
    reader = FrameReader(conn, linger=LINGER)
    cache = SegmentCache()
    board = ClaimBoard.attach(config["claim"])
    released: list[str] = []
    pending: collections.deque = collections.deque()
    writable = bool(config.get("writable_arrays"))
    track_rss = bool(config.get("track_rss"))
    lower_priority(int(config.get("nice") or 0))
    sys.stdout = ForwardStream("stdout", channel.output)
    sys.stderr = ForwardStream("stderr", channel.output)
    try:
        while True:
            try:
                if not pending and not _read(reader, pending, cache):
                    return
            except (EOFError, OSError):
                return
            call_id, seq, payload = pending.popleft()
            if not board.claim(seq):
                channel.send(("skipped", call_id, _take(released)))
                continue
            channel.call_id = call_id
            reply = _run_call(payload, cache, released, writable, track_rss)
            sys.stdout.flush()
            sys.stderr.flush()
            channel.call_id = None
            channel.send((reply[0], call_id, *reply[1:], _take(released)))
    finally:
        cache.close()


def _read(reader: FrameReader, pending: collections.deque, cache: SegmentCache) -> bool:
    """Wait for messages and move the calls of every message already sent into ``pending``.

    Returns False when the parent asked this worker to stop.
    """
    for frame in reader.read():
        msg = pickle.loads(frame)
        if msg[0] == "stop":
            return False
        _, calls, parent_released = msg
        for name in parent_released:
            cache.release(name)
        pending.extend(calls)
    return True


def _take(items: list[str]) -> list[str]:
    taken = items[:]
    del items[:]
    return taken


def _run_call(payload: Payload, cache: SegmentCache, released: list[str], writable: bool,
              track_rss: bool) -> tuple:
    try:
        fn, args, kwargs = loads_call(payload, writable=writable, on_release=released.append)
        result = fn(*args, **kwargs)
        if isinstance(result, types.CoroutineType):
            import asyncio  # only processes that run async functions pay for asyncio

            result = asyncio.run(result)
        del fn, args, kwargs  # drop references so argument segments are released now
    except BaseException as exc:  # noqa: BLE001 - every failure travels back
        return error_reply(exc)
    rss = rss_bytes() if track_rss else 0
    if type(result) in SCALARS:  # travels inside the reply itself: one pickling, not two, each way
        return ("val", result, rss)
    try:
        out = dumps(result, what="result", cache=cache)
    except SerializationError as exc:
        return error_reply(exc)
    return ("ok", tuple(out), rss)  # a plain tuple pickles faster than the Payload class


def error_reply(exc: BaseException) -> tuple:
    """The ``("err", ...)`` fields describing ``exc``; ``data`` is None if it cannot travel as itself."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    type_name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    try:
        data = cloudpickle.dumps(exc, protocol=5)
        pickle.loads(data)  # an exception that cannot be rebuilt must not reach the parent as one
    except Exception:
        data = None
    return ("err", data, type_name, str(exc), tb, rss_bytes())
