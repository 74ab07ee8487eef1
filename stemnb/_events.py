"""Worker events: their types, the event record, and the hub that fans them out to listeners."""

from __future__ import annotations

import dataclasses
import enum
import logging
import queue as _queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger("stemnb.worker")


class WorkerEventType(str, enum.Enum):
    """What a :class:`WorkerEvent` reports.

    The first eight are Stem's event types; the rest are Stem's "signals" (task and worker
    lifecycle), delivered on the same stream.
    """

    HEARTBEAT = "heartbeat"
    PROGRESS = "progress"
    TIMEOUT = "timeout"
    COMPLETED = "completed"
    RETRIED = "retried"
    FAILED = "failed"
    REVOKED = "revoked"
    ERROR = "error"
    RECEIVED = "received"
    PRERUN = "prerun"
    POSTRUN = "postrun"
    DEAD_LETTERED = "dead_lettered"
    INTERRUPTED = "interrupted"
    """A redelivered task whose last run (by a worker that died) never finished."""
    WORKER_INIT = "worker_init"
    WORKER_READY = "worker_ready"
    WORKER_STOPPING = "worker_stopping"
    WORKER_SHUTDOWN = "worker_shutdown"
    WORKER_HEARTBEAT = "worker_heartbeat"
    CHILD_INIT = "child_init"
    CHILD_SHUTDOWN = "child_shutdown"
    RECYCLED = "recycled"
    SCALED = "scaled"
    CONTROL_RECEIVED = "control_received"
    CONTROL_COMPLETED = "control_completed"


@dataclasses.dataclass(frozen=True)
class WorkerEvent:
    """One worker event.

    ``task_id``/``name``/``attempt``/``queue`` describe the task (None for worker events);
    ``data`` carries details (progress data, retry delay, recycle reason, ...); ``error`` the
    exception for failures, retries and errors.
    """

    type: WorkerEventType
    worker_id: str
    task_id: str | None = None
    name: str | None = None
    attempt: int | None = None
    queue: str | None = None
    progress: float | None = None
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: BaseException | None = None
    envelope: Any = None
    timestamp: float = dataclasses.field(default_factory=time.time)


_STOP = object()


def _event_type(value: Any) -> WorkerEventType:
    try:
        return WorkerEventType(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a WorkerEventType") from None


class Subscription:
    """A listener's handle: ``cancel()`` stops delivery (idempotent)."""

    def __init__(self, hub: EventHub, sink: Callable[[Any], None]) -> None:
        self._hub = hub
        self._sink = sink

    def cancel(self) -> None:
        """Stop delivering events to this listener."""
        self._hub._remove(self._sink)


class EventHub:
    """Fans events out to callbacks, blocking iterators and ``async for`` loops.

    Callbacks run on the thread that emits, and should be quick; an exception in one is logged
    and contained. (While a callback listens, a worker emits from its runner threads only: one
    that waits there for another task cannot hold up the thread reading that task's result.)
    ``close()`` ends every iterator (idempotent).
    """

    def __init__(self) -> None:
        self._sinks: list[Callable[[Any], None]] = []
        self._types: dict[Callable[[Any], None], frozenset[WorkerEventType]] = {}  # the typed listeners'
        self._wanted: frozenset[WorkerEventType] | None = frozenset()  # None: every type
        self._lock = threading.Lock()
        self._closed = False
        self._callbacks: set[Callable[[Any], None]] = set()  # sinks running code of :meth:`listen`'s callers

    @property
    def has_callbacks(self) -> bool:
        """Whether a callback of :meth:`listen` listens (iterators and stemnb's own listeners aside)."""
        return bool(self._callbacks)

    @property
    def has_listeners(self) -> bool:
        """Whether anything listens (lets emitters skip building events nobody reads)."""
        return bool(self._sinks)

    def wants(self, kind: WorkerEventType) -> bool:
        """Whether a listener would receive an event of type ``kind`` (see :meth:`listen`'s ``types``)."""
        wanted = self._wanted
        return wanted is None or kind in wanted

    def listen(
        self, callback: Callable[[WorkerEvent], Any], *, types: Iterable[WorkerEventType] | None = None
    ) -> Subscription:
        """Call ``callback(event)`` for each later event (only those of ``types``, when given).
        Returns a Subscription. Raises ValueError for a type that is not a WorkerEventType.

        A worker builds no event of a type that nobody listens to, so listening to the types you
        need costs its tasks nothing for the others.
        """
        return self._listen(callback, types, quick=False)

    def _listen(
        self, callback: Callable[[WorkerEvent], Any], types: Iterable[WorkerEventType] | None, *, quick: bool
    ) -> Subscription:
        """:meth:`listen`; ``quick``: stemnb's own callback, which never waits (see :attr:`has_callbacks`)."""
        wanted = None if types is None else frozenset(_event_type(t) for t in types)

        def sink(item: Any) -> None:
            if item is not _STOP and (wanted is None or item.type in wanted):
                callback(item)

        self._add(sink, wanted, callback=not quick)
        return Subscription(self, sink)

    def emit(self, event: WorkerEvent) -> None:
        """Deliver ``event`` to every listener."""
        for sink in list(self._sinks):
            try:
                sink(event)
            except Exception:  # a listener's bug must not break the worker
                log.exception("worker event listener failed on %s", event.type.value)

    def close(self) -> None:
        """End every iterator; later events go nowhere."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            sinks = list(self._sinks)
        for sink in sinks:
            try:
                sink(_STOP)
            except Exception:
                log.exception("worker event sink failed at close")

    def __iter__(self) -> Iterator[WorkerEvent]:
        """Blocking iteration over events from the moment ``iter()`` is called; ends when the
        hub closes."""
        q: _queue.SimpleQueue[Any] = _queue.SimpleQueue()
        self._add(q.put)
        return self._iter(q)

    def _iter(self, q: _queue.SimpleQueue[Any]) -> Iterator[WorkerEvent]:
        try:
            while True:
                item = q.get()
                if item is _STOP:
                    return
                yield item
        finally:
            self._remove(q.put)

    def __aiter__(self) -> AsyncIterator[WorkerEvent]:
        """``async for event in hub``: events from the moment ``aiter()`` is called (needs a
        running event loop); ends when the hub closes."""
        import asyncio  # only for ``async for``: a worker in a script or program needs no event loop

        loop = asyncio.get_running_loop()
        q: asyncio.Queue[Any] = asyncio.Queue()

        def sink(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(q.put_nowait, item)
            except RuntimeError:  # the loop closed under us
                pass

        self._add(sink)
        return self._aiter(q, sink)

    async def _aiter(self, q: Any, sink: Callable[[Any], None]) -> AsyncIterator[WorkerEvent]:
        try:
            while True:
                item = await q.get()
                if item is _STOP:
                    return
                yield item
        finally:
            self._remove(sink)

    def _add(self, sink: Callable[[Any], None], types: frozenset[WorkerEventType] | None = None,
             *, callback: bool = False) -> None:
        with self._lock:
            closed = self._closed
            if not closed:
                self._sinks.append(sink)
                if types is not None:
                    self._types[sink] = types
                if callback:
                    self._callbacks.add(sink)
                self._update_wanted()
        if closed:
            sink(_STOP)

    def _remove(self, sink: Callable[[Any], None]) -> None:
        with self._lock:
            try:
                self._sinks.remove(sink)
            except ValueError:
                pass
            self._types.pop(sink, None)
            self._callbacks.discard(sink)
            self._update_wanted()

    def _update_wanted(self) -> None:
        if any(sink not in self._types for sink in self._sinks):
            self._wanted = None
        else:
            self._wanted = frozenset().union(*self._types.values())
