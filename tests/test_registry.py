"""TaskRegistry and TaskHandler."""

from __future__ import annotations

import pytest

import stemnb
from stemnb import TaskHandler, TaskOptions, TaskRegistry


def test_register_and_get_round_trip():
    registry = TaskRegistry()
    handler = registry.register("add", TaskHandler(lambda ctx, a: a["x"] + 1))
    assert registry.get("add") is handler and "add" in registry and registry.names() == ["add"]
    assert handler.isolate is True


def test_bare_functions_are_wrapped_with_default_options():
    registry = TaskRegistry()
    handler = registry.register("f", lambda ctx, a: 1)
    assert isinstance(handler, TaskHandler) and handler.options == TaskOptions()


def test_unknown_names_raise_unknown_task_error():
    with pytest.raises(stemnb.UnknownTaskError, match="nope"):
        TaskRegistry().get("nope")
    assert TaskRegistry().resolve("nope") is None


def test_decorator_registers_with_options_and_stays_callable():
    registry = TaskRegistry()

    @registry.task("double", isolate=False, max_retries=2, rate_limit="5/s")
    def double(ctx, args):
        return args["x"] * 2

    assert registry.get("double") is double
    assert double.options.max_retries == 2 and double.isolate is False
    assert double(None, {"x": 4}) == 8


def test_decorator_defaults_the_name_to_the_function_name():
    registry = TaskRegistry()

    @registry.task()
    def hello(ctx, args):
        return "hi"

    assert "hello" in registry


def test_bad_handlers_and_names_are_refused():
    with pytest.raises(TypeError, match="callable"):
        TaskHandler("not a function")
    with pytest.raises(TypeError, match="TaskOptions"):
        TaskHandler(lambda c, a: 1, options={"queue": "x"})
    with pytest.raises(ValueError, match="name"):
        TaskRegistry().register("", lambda c, a: 1)
    registry = TaskRegistry()
    registry.register("x", lambda c, a: 1)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("x", lambda c, a: 2, replace=False)


def test_inline_constructor_and_async_detection():
    async def coro(ctx, args):
        return 1

    assert TaskHandler.inline(coro).isolate is False and TaskHandler(coro).is_async
