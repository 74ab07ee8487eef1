"""Canvas: task signatures, chains, groups, chords and batches.

Every id is assigned when the canvas is built, so callers can wait on any part at once. Unlike
Stem, whose chains are driven by the producer watching the backend, stemnb chains are driven by
the worker: the next step travels in the envelope meta and is enqueued when a step succeeds, so
a chain finishes even if the notebook that started it is gone. A failed step cancels the rest.
A batch is a group submitted once per batch id: submitting the same id again enqueues nothing and
hands back the first submission's result.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._backend import TaskState
from ._envelope import new_task_id
from ._options import TaskEnqueueOptions

if TYPE_CHECKING:
    from ._backend import TaskStatus
    from ._future import Future
    from ._stem import Stem

CHAIN_KEY = "stem.chain"
_SIMPLE_OPTIONS = ("countdown", "queue", "priority", "time_limit", "soft_time_limit", "max_retries", "ignore_result")


@dataclasses.dataclass(frozen=True)
class Signature:
    """A task call to make later: name, args, headers, meta and simple enqueue options.

    Signatures are JSON-safe (given JSON-safe args) because they travel in envelope meta.
    ``options`` may hold: countdown, queue, priority, time_limit, soft_time_limit, max_retries,
    ignore_result. Raises TypeError for any other option.
    """

    name: str
    args: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"a signature needs a task name, got {self.name!r}")
        unknown = sorted(set(self.options) - set(_SIMPLE_OPTIONS))
        if unknown:
            raise TypeError(f"signature option(s) not supported in a canvas: {', '.join(unknown)}")
        for name in ("args", "options", "headers", "meta"):
            object.__setattr__(self, name, dict(getattr(self, name) or {}))

    def enqueue_options(self, **changes: Any) -> TaskEnqueueOptions:
        """The options as :class:`TaskEnqueueOptions` (with ``changes`` applied)."""
        return TaskEnqueueOptions(**{**self.options, **{k: v for k, v in changes.items() if v is not None}})

    def to_dict(self) -> dict[str, Any]:
        """The signature as JSON-safe data (how it travels in envelope meta)."""
        return {"name": self.name, "args": dict(self.args), "options": dict(self.options),
                "headers": dict(self.headers), "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """Rebuild a signature from :meth:`to_dict` output."""
        return cls(data["name"], data.get("args") or {}, data.get("options") or {},
                   data.get("headers") or {}, data.get("meta") or {})


def signature(name: str, args: Mapping[str, Any] | None = None, **options: Any) -> Signature:
    """Build a :class:`Signature`: ``signature("add", {"a": 1}, queue="math")``."""
    return Signature(name, args or {}, options)


def _as_signature(value: Signature | str) -> Signature:
    return Signature(value) if isinstance(value, str) else value


@dataclasses.dataclass(frozen=True)
class ChainResult:
    """A chain's task ids in order; ``wait()`` resolves with the last step's status."""

    stem: Any
    ids: tuple[str, ...]

    @property
    def id(self) -> str:
        """The last step's id."""
        return self.ids[-1]

    def wait(self, timeout: float | None = None) -> Future[TaskStatus]:
        """A Future of the last step's terminal status."""
        return self.stem.wait_for_task(self.ids[-1], timeout)


@dataclasses.dataclass(frozen=True)
class GroupResult:
    """A group's id and member ids; ``wait()`` resolves with the members' statuses in order."""

    stem: Any
    group_id: str
    ids: tuple[str, ...]

    def wait(self, timeout: float | None = None) -> Future[list[TaskStatus]]:
        """A Future of every member's terminal status, in order."""
        return _gather([self.stem.wait_for_task(i, timeout) for i in self.ids])


@dataclasses.dataclass(frozen=True)
class BatchResult(GroupResult):
    """A batch's id and member ids (a group submitted once per id, see :meth:`Canvas.batch`).

    ``created`` is False when the batch id had been submitted before: then ``ids`` are that
    submission's members and nothing new was enqueued.
    """

    created: bool = True

    @property
    def batch_id(self) -> str:
        """The batch's id (its group's id)."""
        return self.group_id

    def status(self) -> BatchStatus | None:
        """The members' states now (see :meth:`Canvas.inspect_batch`)."""
        return self.stem.inspect_batch(self.group_id)


@dataclasses.dataclass(frozen=True)
class BatchStatus:
    """Where a batch's members are: ``states[i]`` is member ``ids[i]``'s state (None when it has
    no status: expired, or never queued)."""

    batch_id: str
    ids: tuple[str, ...]
    states: tuple[TaskState | None, ...]

    @property
    def counts(self) -> dict[str, int]:
        """How many members are in each state, by state name ("unknown" for no status)."""
        out: dict[str, int] = {}
        for state in self.states:
            key = state.value if state is not None else "unknown"
            out[key] = out.get(key, 0) + 1
        return out

    @property
    def done(self) -> bool:
        """Every member has a terminal state."""
        return all(state is not None and state.terminal for state in self.states)

    @property
    def succeeded(self) -> bool:
        """Every member succeeded."""
        return all(state is TaskState.SUCCEEDED for state in self.states)


@dataclasses.dataclass(frozen=True)
class ChordResult:
    """A chord's group, member ids and callback id; ``wait()`` resolves with the callback's status."""

    stem: Any
    group_id: str
    ids: tuple[str, ...]
    callback_id: str

    def wait(self, timeout: float | None = None) -> Future[TaskStatus]:
        """A Future of the callback's terminal status."""
        return self.stem.wait_for_task(self.callback_id, timeout)


class Canvas:
    """Builds chains, groups and chords on a :class:`Stem` producer."""

    def __init__(self, stem: Stem) -> None:
        self.stem = stem

    def chain(self, steps: Sequence[Signature | str]) -> ChainResult:
        """Run ``steps`` one after another; each step sees the previous result in
        ``context.meta["chainPrevResult"]``. Raises ValueError for an empty chain."""
        sigs = [_as_signature(s) for s in steps]
        if not sigs:
            raise ValueError("a chain needs at least one step")
        ids = [new_task_id() for _ in sigs]
        chain_id = ids[0]
        rest = [
            {**sig.to_dict(), "task_id": ids[i], "index": i}
            for i, sig in enumerate(sigs)
            if i > 0
        ]
        first = sigs[0]
        self.stem.enqueue(
            first.name,
            first.args,
            first.enqueue_options(task_id=ids[0]),
            headers={**first.headers, "stem-chain-id": chain_id},
            meta={**first.meta, "chainId": chain_id, "chainIndex": 0, CHAIN_KEY: rest},
        )
        return ChainResult(self.stem, tuple(ids))

    def group(self, members: Sequence[Signature | str], *, group_id: str | None = None) -> GroupResult:
        """Run ``members`` in parallel, recording each result in the backend group."""
        sigs = [_as_signature(s) for s in members]
        group_id = group_id or new_task_id()
        ids = [new_task_id() for _ in sigs]
        self.stem._need_backend().init_group(group_id, len(sigs), meta={"members": ids})
        self._publish_members(group_id, sigs, ids)
        return GroupResult(self.stem, group_id, tuple(ids))

    def chord(self, members: Sequence[Signature | str], callback: Signature | str) -> ChordResult:
        """Run ``members`` in parallel, then ``callback`` with ``context.meta["chordResults"]``
        (the members' results in order). If a member fails, the callback's status is ``failed``
        (``ChordError``) and it does not run."""
        sigs = [_as_signature(s) for s in members]
        if not sigs:
            raise ValueError("a chord needs at least one member")
        callback = _as_signature(callback)
        group_id, callback_id = new_task_id(), new_task_id()
        ids = [new_task_id() for _ in sigs]
        meta = {"members": ids, "chord": callback.to_dict(), "callback_id": callback_id}
        self.stem._need_backend().init_group(group_id, len(sigs), meta=meta)
        self.stem._need_backend().set(callback_id, "queued", meta={"task": callback.name, "chord": group_id})
        self._publish_members(group_id, sigs, ids)
        return ChordResult(self.stem, group_id, tuple(ids), callback_id)

    def batch(self, members: Sequence[Signature | str], *, batch_id: str | None = None) -> BatchResult:
        """Run ``members`` in parallel as a group submitted once per ``batch_id`` (Stem's
        ``submitBatch``): submitting an id that exists (until its group expires, 1 day by
        default) enqueues nothing and returns that batch, with ``created=False``. Of producers
        racing with one id, exactly one enqueues. The members travel pipelined on Redis.

        The batch is recorded before its members are enqueued: a producer that dies in between
        leaves members with no status, which :meth:`inspect_batch` reports as None.

        Raises:
            ValueError: no members.
            EncodingError: a member's args cannot be encoded (nothing is recorded or enqueued).
        """
        sigs = [_as_signature(s) for s in members]
        if not sigs:
            raise ValueError("a batch needs at least one member")
        batch_id = batch_id or new_task_id()
        ids = [new_task_id() for _ in sigs]
        built = self.stem._build_specs(self._member_specs(batch_id, sigs, ids))  # bad args: nothing recorded
        backend = self.stem._need_backend()
        if backend.init_group(batch_id, len(sigs), meta={"members": ids, "batch": True}, exclusive=True) is None:
            group = backend.get_group(batch_id)
            known = tuple(group.meta.get("members") or ()) if group is not None else ()
            return BatchResult(self.stem, batch_id, known, created=False)
        self.stem._admit_and_publish(built)
        return BatchResult(self.stem, batch_id, tuple(ids))

    def inspect_batch(self, batch_id: str) -> BatchStatus | None:
        """The states of batch ``batch_id``'s members (Stem's ``inspectBatch``), or None when no
        such batch is recorded (never submitted, or expired). Members that ended are read from
        the batch's group; the others from their own statuses."""
        backend = self.stem._need_backend()
        group = backend.get_group(batch_id)
        if group is None or not group.meta.get("batch"):
            return None
        ids = tuple(group.meta.get("members") or ())
        states: list[TaskState | None] = []
        for task_id in ids:
            status = group.results.get(task_id) or backend.get(task_id)
            states.append(status.state if status is not None else None)
        return BatchStatus(batch_id, ids, tuple(states))

    def _publish_members(self, group_id: str, sigs: list[Signature], ids: list[str]) -> None:
        self.stem._enqueue_specs(self._member_specs(group_id, sigs, ids))

    @staticmethod
    def _member_specs(group_id: str, sigs: list[Signature], ids: list[str]) -> list[Any]:
        return [
            (
                sig.name,
                sig.args,
                sig.enqueue_options(task_id=task_id),
                {**sig.headers, "stem-group-id": group_id},
                {**sig.meta, "stem.groupId": group_id},
                None,
            )
            for sig, task_id in zip(sigs, ids, strict=True)
        ]


def _gather(futures: list[Any]) -> Any:
    from ._future import Future

    out: Future[list[Any]] = Future(debug_name="group")
    remaining = [len(futures)]
    lock = threading.Lock()

    def done(_: Any) -> None:
        with lock:
            remaining[0] -= 1
            last = remaining[0] == 0
        if last:
            try:
                out._settle([f.result() for f in futures])
            except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                out._settle(exception=exc)

    if not futures:
        out._settle([])
    for f in futures:
        f.add_done_callback(done)
    return out
