"""TaskContext: signals, cooperative revocation and retry requests."""

from __future__ import annotations

import pickle

import pytest

import stemnb
from stemnb._context import InlineControl, TaskContext, TaskRetryRequest


class Sink:
    def __init__(self):
        self.calls = []

    def on_heartbeat(self):
        self.calls.append("heartbeat")

    def on_progress(self, fraction, data):
        self.calls.append(("progress", fraction, data))

    def on_extend_lease(self, seconds):
        self.calls.append(("lease", seconds))

    def on_enqueue(self, name, args, options, headers, meta, many=False):
        if many:
            self.calls.append(("enqueue_many", name, args, options, meta))
            return [f"child-id-{i}" for i in range(len(args))]
        self.calls.append(("enqueue", name, meta))
        return "child-id"


def make():
    sink = Sink()
    control = InlineControl(sink)
    return TaskContext("t1", "task", 0, {"tenant": "a"}, {"k": 1}, "default", control), control, sink


def test_signals_reach_the_control():
    ctx, control, sink = make()
    ctx.heartbeat()
    ctx.progress(0.25, {"step": 1})
    ctx.extend_lease(5)
    assert sink.calls == ["heartbeat", ("progress", 0.25, {"step": 1}), ("lease", 5.0)]


def test_signals_of_a_detached_control_go_nowhere_and_a_child_enqueue_is_refused():
    ctx, control, sink = make()
    control.detach()  # the worker settled the task
    ctx.heartbeat()
    ctx.progress(0.5)
    ctx.extend_lease(5)
    assert sink.calls == []
    with pytest.raises(RuntimeError, match="has ended"):
        ctx.enqueue("child", {})
    control.request_terminate("late")  # a late revocation still reads as one
    assert ctx.is_revoked()


def test_progress_outside_zero_to_one_is_refused():
    ctx, _, _ = make()
    for bad in (-0.1, 1.5, "half", True):
        with pytest.raises(ValueError, match="progress"):
            ctx.progress(bad)


def test_terminate_request_makes_the_next_signal_raise():
    ctx, control, _ = make()
    control.request_terminate("operator said so")
    assert ctx.is_revoked()
    with pytest.raises(stemnb.TaskRevokedError, match="operator said so"):
        ctx.heartbeat()
    with pytest.raises(stemnb.TaskRevokedError):
        ctx.progress(0.5)


def test_retry_raises_a_picklable_request():
    ctx, _, _ = make()
    with pytest.raises(TaskRetryRequest) as info:
        ctx.retry(countdown=3, max_retries=4)
    again = pickle.loads(pickle.dumps(info.value))
    assert (again.countdown, again.max_retries) == (3, 4)
    with pytest.raises(ValueError):
        ctx.retry(countdown=-1)


def test_enqueue_records_the_parent():
    ctx, _, sink = make()
    assert ctx.enqueue("child", {"x": 1}) == "child-id"
    name, meta = sink.calls[0][1], sink.calls[0][2]
    assert name == "child" and meta["stem.parentTaskId"] == "t1" and meta["stem.rootTaskId"] == "t1"


def test_enqueue_many_records_the_parent_of_every_child():
    ctx, _, sink = make()
    assert ctx.enqueue_many("child", [{"x": 1}, None]) == ["child-id-0", "child-id-1"]
    name, args_list, meta = sink.calls[-1][1], sink.calls[-1][2], sink.calls[-1][4]
    assert name == "child" and args_list == [{"x": 1}, {}] and meta["stem.parentTaskId"] == "t1"


def test_retry_arguments_are_checked_inside_the_task():
    ctx, _, _ = make()
    with pytest.raises(TypeError, match="retry policy"):
        ctx.retry(retry_policy="fast please")
    with pytest.raises(ValueError, match="time_limit"):
        ctx.retry(time_limit=0)
    with pytest.raises(ValueError, match="max_retries"):
        ctx.retry(max_retries=-1)
    with pytest.raises(TypeError, match="eta"):
        ctx.retry(eta="soon")
    with pytest.raises(TaskRetryRequest) as info:
        ctx.retry(retry_policy={"default_delay": 0.5})
    assert isinstance(info.value.retry_policy, stemnb.TaskRetryPolicy)
