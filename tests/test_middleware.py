"""Middleware hooks around enqueue, consume, execute and errors."""

from __future__ import annotations

import stemnb
from stemnb import TaskHandler, TaskState


class Trace(stemnb.Middleware):
    def __init__(self, name, log):
        self.name, self.log = name, log

    def on_enqueue(self, envelope):
        self.log.append((self.name, "enqueue", envelope.name))

    def on_consume(self, delivery):
        self.log.append((self.name, "consume"))

    def on_execute(self, context, call_next):
        self.log.append((self.name, "before"))
        result = call_next()
        self.log.append((self.name, "after"))
        return result

    def on_error(self, context, error):
        self.log.append((self.name, "error", type(error).__name__))


def test_hooks_run_in_order_and_wrap_the_handler(h):
    log = []
    h.registry.register("ok", TaskHandler.inline(lambda ctx, a: log.append("run") or 1))
    stem = stemnb.Stem(h.broker, h.backend, registry=h.registry, middleware=[Trace("p", log)])
    worker, rec = h.worker(middleware=[Trace("a", log), Trace("b", log)])
    assert h.wait(stem.enqueue("ok", {})).state is TaskState.SUCCEEDED
    assert log == [("p", "enqueue", "ok"), ("a", "consume"), ("b", "consume"),
                   ("a", "before"), ("b", "before"), "run", ("b", "after"), ("a", "after")]


def test_on_error_sees_failures_and_a_broken_hook_is_contained(h):
    log = []

    class Broken(stemnb.Middleware):
        def on_consume(self, delivery):
            raise RuntimeError("hook bug")

    h.registry.register("bad", TaskHandler.inline(lambda ctx, a: 1 / 0))
    worker, rec = h.worker(middleware=[Broken(), Trace("a", log)])
    assert h.wait(h.stem.enqueue("bad", {})).state is TaskState.FAILED
    assert ("a", "error", "ZeroDivisionError") in log


def test_execute_middleware_can_replace_the_result(h):
    class Shout(stemnb.Middleware):
        def on_execute(self, context, call_next):
            return str(call_next()).upper()

    h.registry.register("hi", TaskHandler.inline(lambda ctx, a: "hello"))
    worker, rec = h.worker(middleware=[Shout()])
    assert h.wait(h.stem.enqueue("hi", {})).payload == "HELLO"
