"""Notebook functions are pickled once and copied per call, without changing what a call sees."""

from __future__ import annotations

import pickle
import types

import pytest

import stemnb
from stemnb import _fnpickle
from stemnb._exceptions import SerializationError
from stemnb._serialize import Payload, dumps, dumps_call, loads, loads_call


def notebook_function(source: str, name: str, **namespace: object) -> types.FunctionType:
    """Define ``name`` from ``source`` in a fresh ``__main__``-like namespace, as a notebook cell does."""
    ns: dict[str, object] = {"__name__": "__main__", **namespace}
    exec(compile(source, "<cell>", "exec"), ns)  # noqa: S102 - the test defines its own functions
    fn = ns[name]
    assert isinstance(fn, types.FunctionType)
    return fn


def roundtrip(obj: object) -> object:
    return loads(dumps(obj))


def test_a_cacheable_function_is_pickled_once_and_arrives_as_a_fresh_copy_each_time():
    fn = notebook_function("import math\ndef f(x):\n    return math.sqrt(x)\n", "f")
    first, second = roundtrip(fn), roundtrip(fn)
    assert first is not second
    assert first.__globals__ is not second.__globals__
    assert first(16.0) == second(16.0) == 4.0
    assert _fnpickle._entries[id(fn)].blob is not None


def test_rebinding_a_global_the_function_reads_is_seen_by_the_next_pickle():
    fn = notebook_function("def f(x):\n    return x * K\n", "f", K=2)
    assert roundtrip(fn)(5) == 10
    fn.__globals__["K"] = 3
    assert roundtrip(fn)(5) == 15


def test_a_global_defined_after_the_first_pickle_is_seen_by_the_next_one():
    fn = notebook_function("def f():\n    return later\n", "f")
    with pytest.raises(NameError):
        roundtrip(fn)()
    fn.__globals__["later"] = "here"
    assert roundtrip(fn)() == "here"


def test_a_function_reading_a_mutable_global_sees_its_current_contents_every_time():
    fn = notebook_function("def f():\n    return sum(L)\n", "f", L=[1, 2])
    assert roundtrip(fn)() == 3
    fn.__globals__["L"].append(10)  # type: ignore[attr-defined]
    assert roundtrip(fn)() == 13
    assert _fnpickle._entries[id(fn)].blob is None  # never cached: a list can change in place


def test_changed_defaults_closure_and_code_are_seen_by_the_next_pickle():
    def make(k: int) -> tuple[types.FunctionType, types.FunctionType]:
        def f(x: int, y: int = 1) -> int:
            return x * k + y

        def g(x: int, y: int = 1) -> int:
            return x * k - y

        return f, g  # type: ignore[return-value]

    fn, other = make(2)
    assert roundtrip(fn)(5) == 11
    fn.__defaults__ = (100,)
    assert roundtrip(fn)(5) == 110
    fn.__code__ = other.__code__
    assert roundtrip(fn)(5) == -90
    fn.__closure__[0].cell_contents = 7  # type: ignore[index]
    assert roundtrip(fn)(5) == -65


def test_a_recursive_function_calls_its_own_copy():
    fn = notebook_function("def fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)\n", "fact")
    copy = roundtrip(fn)
    assert copy(5) == 120
    assert copy.__globals__["fact"] is copy


def test_a_function_that_assigns_a_global_starts_from_the_pickled_value_every_call():
    fn = notebook_function("n = 0\ndef bump():\n    global n\n    n += 1\n    return n\n", "bump")
    assert roundtrip(fn)() == 1
    assert roundtrip(fn)() == 1
    assert _fnpickle._entries[id(fn)].blob is None


def test_a_function_with_attributes_keeps_them():
    fn = notebook_function("def f():\n    return f.tag\n", "f")
    fn.tag = "v1"  # type: ignore[attr-defined]
    assert roundtrip(fn)() == "v1"
    fn.tag = "v2"  # type: ignore[attr-defined]
    assert roundtrip(fn)() == "v2"


def test_one_function_twice_in_one_message_arrives_as_one_function():
    fn = notebook_function("def f():\n    return 1\n", "f")
    a, b = roundtrip((fn, fn))  # type: ignore[misc]
    assert a is b


def test_the_receiver_keeps_a_bounded_number_of_templates():
    for i in range(_fnpickle._TEMPLATES_MAX + 10):
        fn = notebook_function(f"def f():\n    return {i}\n", "f")
        assert roundtrip(fn)() == i
    assert len(_fnpickle._templates) <= _fnpickle._TEMPLATES_MAX


def test_pool_workers_see_a_rebound_global_on_the_next_call():
    fn = notebook_function("def f(x):\n    return x + OFFSET\n", "f", OFFSET=1)
    with stemnb.IsolatePool(1) as pool:
        assert pool.run(fn, 1).result() == 2
        fn.__globals__["OFFSET"] = 100
        assert pool.run(fn, 1).result() == 101


def test_pool_calls_of_a_global_assigning_function_do_not_see_each_others_writes():
    fn = notebook_function("n = 0\ndef bump():\n    global n\n    n += 1\n    return n\n", "bump")
    with stemnb.IsolatePool(1) as pool:
        assert [pool.run(fn).result() for _ in range(3)] == [1, 1, 1]


def test_a_call_with_scalar_arguments_travels_as_the_function_blob_and_loads_as_a_fresh_copy():
    fn = notebook_function("def f(x, *, y):\n    return x + y\n", "f")
    payload = dumps_call(fn, (1,), {"y": 2.5})
    assert pickle.loads(payload.data)[0] == _fnpickle._entries[id(fn)].blob  # the C pickler's tuple
    first, args, kwargs = loads_call(payload)
    second = loads_call(dumps_call(fn, (1,), {"y": 2.5}))[0]
    assert first is not second and first(*args, **kwargs) == 3.5


def test_a_call_with_other_arguments_or_an_uncacheable_function_goes_through_cloudpickle():
    fn = notebook_function("def f(x):\n    return len(x)\n", "f")
    fn_list, args, _ = loads_call(dumps_call(fn, ([1, 2, 3],), {}))
    assert fn_list(*args) == 3
    mutable = notebook_function("def g():\n    return sum(L)\n", "g", L=[1, 2])
    payload = dumps_call(mutable, (), {})
    assert not isinstance(pickle.loads(payload.data)[0], bytes)
    assert loads_call(payload)[0]() == 3


def test_a_corrupt_function_blob_is_a_serialization_error():
    payload = Payload(pickle.dumps((b"not a pickle", (), {}), protocol=5))
    with pytest.raises(SerializationError, match="cannot unpickle the arguments"):
        loads_call(payload)


def test_a_notebook_task_handler_travels_to_its_isolate_in_a_plain_request_as_its_blob(monkeypatch):
    from stemnb import _plain, _pool
    from stemnb._task_pool import TaskIsolatePool

    handler = notebook_function(
        "import math\ndef handler(context, args):\n    return [context.name, math.floor(args['x'])]\n", "handler"
    )
    plain_calls: list[bool] = []
    real_dumps_call = _pool.dumps_call

    def spy(fn, args, kwargs, **options):
        plain_calls.append(_plain.is_plain((args, kwargs)))  # then the C pickler alone pickles it
        return real_dumps_call(fn, args, kwargs, **options)

    monkeypatch.setattr(_pool, "dumps_call", spy)
    with TaskIsolatePool(1) as pool:
        results = [pool.execute(handler, {"x": x}, task_id=f"t{x}", name="floor").result(60) for x in (2.5, 7.9)]
    assert results == [["floor", 2], ["floor", 7]]
    assert plain_calls == [True, True]
    assert _fnpickle._entries[id(handler)].blob is not None
