"""Small plain objects skip cloudpickle's Python code and pickle to the very same bytes."""

from __future__ import annotations

import copyreg
import io
import json
import os.path
import pickle
import types

import cloudpickle
import pytest

from stemnb import _serialize
from stemnb._plain import PLAIN_BUDGET, importable, is_plain, plain_args
from stemnb._ports import SendPort
from stemnb._serialize import dumps, dumps_call, loads, loads_call


def cloudpickled(obj: object) -> bytes:
    """The bytes stemnb's cloudpickle path makes for ``obj`` (the path plain objects skip)."""
    out = io.BytesIO()
    _serialize._Pickler(out, protocol=5).dump(obj)
    return out.getvalue()


def main_function() -> types.FunctionType:
    ns: dict[str, object] = {"__name__": "__main__"}
    exec("def f(x):\n    return x + 1\n", ns)  # noqa: S102 - a notebook cell's function
    return ns["f"]  # type: ignore[return-value]


TASK_CALL = (
    json.loads,
    ({"numbers": [1, 2.5, -3], "nested": {"ok": True, "none": None}}, "task-1", 0, ("a", b"raw", 3j)),
    {"headers": {"trace": "x"}, "port": SendPort("\0stemnb-test", 7, "control")},
)


def test_a_task_shaped_call_is_plain_and_pickles_to_cloudpickles_bytes():
    assert is_plain(TASK_CALL)
    assert dumps(TASK_CALL).data == cloudpickled(TASK_CALL)
    assert loads(dumps(TASK_CALL)) == TASK_CALL


def test_a_call_of_an_importable_function_with_plain_arguments_loads_back_as_the_same_call():
    fn, args, kwargs = loads_call(dumps_call(os.path.join, ("a", "b"), {}))
    assert fn is os.path.join
    assert fn(*args, **kwargs) == os.path.join("a", "b")
    assert dumps_call(os.path.join, ("a", ["b"]), {}).data == cloudpickled((os.path.join, ("a", ["b"]), {}))


@pytest.mark.parametrize(
    ("args", "kwargs", "plain"),
    [
        pytest.param((1, 2.5, "s", b"b", None, True, 3j), {}, True, id="positional scalars"),
        pytest.param((1,), {"key": "value"}, True, id="a plain keyword argument"),
        pytest.param((1, [2, (3,)]), {}, True, id="plain containers"),
        pytest.param((1, {2}), {}, False, id="a set"),
        pytest.param((), {"fn": lambda: 1}, False, id="a lambda as keyword argument"),
        pytest.param((bytearray(b"x"),), {}, False, id="a bytearray"),
    ],
)
def test_plain_args_judges_a_call_as_is_plain_does(args: tuple, kwargs: dict, plain: bool):
    assert plain_args(args, kwargs) is plain is is_plain((args, kwargs))


@pytest.mark.parametrize(
    "obj",
    [
        pytest.param(main_function(), id="a notebook function"),
        pytest.param(lambda x: x, id="a lambda"),
        pytest.param(object(), id="an instance of an unregistered type"),
        pytest.param({"set": {1, 2}}, id="a set inside"),
        pytest.param(bytearray(b"buffer"), id="a bytearray (an out-of-band buffer)"),
        pytest.param(list(range(PLAIN_BUDGET)), id="more objects than the budget"),
        pytest.param({i: i for i in range(PLAIN_BUDGET // 2)}, id="a dict over the budget"),
        pytest.param(True.__class__, id="a class"),
    ],
)
def test_anything_else_is_not_plain_and_still_pickles_through_cloudpickle(obj: object):
    assert not is_plain(obj)
    assert dumps(obj).data == cloudpickled(obj)


def test_a_list_that_contains_itself_is_not_plain_and_keeps_its_shape():
    loop: list = [1]
    loop.append(loop)
    assert not is_plain(loop)
    back = loads(dumps(loop))
    assert back[1] is back


def test_an_importable_name_that_now_names_something_else_is_not_importable():
    ns = types.ModuleType("stemnb_test_shadowed")
    exec("def f():\n    return 1\n", ns.__dict__)  # noqa: S102
    fn = ns.f
    import sys

    sys.modules[ns.__name__] = ns
    try:
        assert importable(fn)
        ns.f = lambda: 2
        assert not importable(fn)
    finally:
        del sys.modules[ns.__name__]
    assert not importable(fn)  # its module is gone: cloudpickle sends it by value


def test_a_module_registered_to_pickle_by_value_turns_the_plain_path_off_for_its_functions_only():
    import tests.notebook_support as support

    cloudpickle.register_pickle_by_value(support)
    try:
        assert not importable(support.load_build)
        assert not is_plain((support.load_build, 1))
        assert importable(json.loads)  # other modules' functions still go by name
        assert is_plain((json.loads, 1))
    finally:
        cloudpickle.unregister_pickle_by_value(support)
    assert importable(support.load_build)


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def test_a_copyreg_reducer_registered_after_pickling_began_is_used():
    assert loads(dumps([Point(1)]))[0].x == 1
    copyreg.pickle(Point, lambda p: (Point, (p.x * 10,)))
    try:
        assert loads(dumps([Point(2)]))[0].x == 20
    finally:
        del copyreg.dispatch_table[Point]
    assert loads(dumps([Point(3)]))[0].x == 3


def test_plain_pickle_needs_no_cloudpickle_to_load():
    assert pickle.loads(dumps(TASK_CALL).data) == TASK_CALL
