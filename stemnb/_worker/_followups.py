"""What follows a terminal state: group results, chord callbacks, links, unique-lock release."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .._backend import GroupStatus, TaskState, TaskStatus
from .._canvas import Signature
from .._events import WorkerEventType

if TYPE_CHECKING:
    from ._active import ActiveTask
    from ._worker import Worker

log = logging.getLogger("stemnb.worker")

GROUP_HEADER = "stem-group-id"
LINK_KEY = "stem.link"
LINK_ERROR_KEY = "stem.linkError"
CHAIN_KEY = "stem.chain"
UNIQUE_KEY = "stem.unique.key"
UNIQUE_OWNER = "stem.unique.owner"


def after_terminal(
    worker: Worker,
    task: ActiveTask,
    status: TaskStatus,
    *,
    succeeded: bool,
    links: bool = True,
    result: Any = None,
) -> None:
    """Record the group result (dispatching a complete chord), enqueue links, release the unique lock.

    A failure here is reported as an ERROR event; it never changes the task's own outcome.
    """
    env = task.envelope
    steps = [lambda: _group(worker, env, status)]
    if links:
        steps.append(lambda: _links(worker, env, status, LINK_KEY if succeeded else LINK_ERROR_KEY))
    if env.meta.get(CHAIN_KEY):
        steps.append(lambda: _chain(worker, env, status, succeeded, result))
    steps.append(lambda: release_unique(worker, task))
    for step in steps:
        try:
            step()
        except Exception as exc:
            log.exception("worker %s: follow-up of task %s failed", worker.worker_id, env.id)
            worker.emit(WorkerEventType.ERROR, task, error=exc, data={"where": "follow-up"})


def release_unique(worker: Worker, task: ActiveTask) -> None:
    """Release the task's unique lock (if it holds one) so an identical task can be enqueued."""
    coordinator = worker.unique_task_coordinator or getattr(worker.enqueuer, "unique_task_coordinator", None)
    if task.envelope.meta.get(UNIQUE_KEY) and coordinator is not None:
        coordinator.release(task.envelope)


def _group(worker: Worker, env: Any, status: TaskStatus) -> None:
    group_id = env.headers.get(GROUP_HEADER)
    if not group_id:
        return
    group = worker.backend.add_group_result(group_id, status)
    if group is not None and group.is_complete and group.meta.get("chord"):
        _dispatch_chord(worker, group)


def _dispatch_chord(worker: Worker, group: GroupStatus) -> None:
    if not worker.backend.claim_chord(group.id):
        return  # another worker dispatches it
    callback = Signature.from_dict(group.meta["chord"])
    callback_id = group.meta.get("callback_id")
    members = group.meta.get("members") or list(group.results)
    if not group.succeeded:
        failed = [m for m in members if group.results.get(m) is None or group.results[m].state is not TaskState.SUCCEEDED]
        error = {"type": "ChordError", "message": f"chord {group.id}: member(s) {', '.join(failed)} did not succeed", "traceback": ""}
        if callback_id:
            worker.backend.set(callback_id, TaskState.FAILED, error=error, meta={"task": callback.name, "chord": group.id})
        return
    results = [worker.codecs.decode_result_status(group.results[m]) for m in members]
    worker.count("chords_dispatched")
    worker.enqueuer.enqueue(
        callback.name,
        callback.args,
        callback.enqueue_options(task_id=callback_id),
        headers=callback.headers,
        meta={**callback.meta, "chordResults": results, "stem.chordId": group.id},
    )


def _links(worker: Worker, env: Any, status: TaskStatus, key: str) -> None:
    for data in env.meta.get(key) or ():
        link = Signature.from_dict(data)
        worker.enqueuer.enqueue(
            link.name,
            link.args,
            link.enqueue_options(),
            headers=link.headers,
            meta={
                **link.meta,
                "stem.parentTaskId": env.id,
                "stem.rootTaskId": env.meta.get("stem.rootTaskId", env.id),
                "stem.parentState": status.state.value,
            },
        )


def _chain(worker: Worker, env: Any, status: TaskStatus, succeeded: bool, result: Any) -> None:
    rest = list(env.meta.get(CHAIN_KEY) or ())
    if not succeeded:
        error = {"type": "ChainError", "message": f"chain step {env.id} ended {status.state.value}", "traceback": ""}
        for step in rest:
            worker.backend.set(step["task_id"], TaskState.CANCELLED, error=error, meta={"task": step["name"], "chainId": env.meta.get("chainId")})
        return
    step, rest = rest[0], rest[1:]
    sig = Signature.from_dict(step)
    worker.enqueuer.enqueue(
        sig.name,
        sig.args,
        sig.enqueue_options(task_id=step["task_id"]),
        headers={**sig.headers, "stem-chain-id": env.meta.get("chainId", env.id)},
        meta={
            **sig.meta,
            "chainId": env.meta.get("chainId", env.id),
            "chainIndex": step.get("index"),
            "chainPrevResult": result,
            CHAIN_KEY: rest,
        },
    )
