"""share_module: a helper module's functions travel by value, so isolates run the code the notebook has now."""

from __future__ import annotations

import importlib
import sys
import uuid

import pytest

import stemnb
from stemnb import TaskHandler
from stemnb._plain import is_plain

pytestmark = pytest.mark.timeout(120)

WAIT = 30


@pytest.fixture
def helper(tmp_path, monkeypatch):
    """Write a helper module beside the "notebook" (on sys.path) and import it; ``helper(source)``
    returns the module. Shared modules are unshared and forgotten after the test."""
    made: list = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(source: str, name: str | None = None):
        name = name or f"helpers_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(source)
        importlib.invalidate_caches()
        module = importlib.import_module(name)
        made.append(module)
        return module

    yield make
    for module in made:
        stemnb.unshare_module(module)
        sys.modules.pop(module.__name__, None)


def rewrite(module, source: str):
    """Edit the module's file, as a user does in the editor, and reload it as the notebook would."""
    with open(module.__file__, "w") as f:
        f.write(source)
    importlib.invalidate_caches()
    return importlib.reload(module)


def unreachable(module) -> None:
    """Make ``module`` impossible to import from a process started from now on (as on another machine)."""
    import os

    os.remove(module.__file__)
    sys.path.remove(os.path.dirname(module.__file__))


def test_a_shared_module_reloaded_in_the_notebook_runs_its_new_code_in_a_warm_pool(helper):
    mod = helper("def answer():\n    return 1\n")
    assert stemnb.share_module(mod) is mod
    with stemnb.IsolatePool(1) as pool:
        assert pool.run(mod.answer).result(WAIT) == 1
        rewrite(mod, "def answer():\n    return 222\n")
        assert pool.run(mod.answer).result(WAIT) == 222


def test_an_unshared_module_goes_by_name_so_a_warm_pool_keeps_the_code_it_imported_first(helper):
    mod = helper("def answer():\n    return 1\n")
    with stemnb.IsolatePool(1) as pool:
        assert pool.run(mod.answer).result(WAIT) == 1
        rewrite(mod, "def answer():\n    return 222\n")
        assert pool.run(mod.answer).result(WAIT) == 1  # the pitfall share_module is for


def test_a_shared_module_runs_in_an_isolate_that_cannot_import_it(helper):
    mod = helper("SCALE = 3\n\ndef scaled(x):\n    return SCALE * x\n")
    stemnb.share_module(mod.__name__)  # by name, too
    unreachable(mod)
    with stemnb.IsolatePool(1) as pool:
        assert pool.run(mod.scaled, 14).result(WAIT) == 42
        assert list(pool.map(mod.scaled, range(3))) == [0, 3, 6]


def test_an_unshared_module_an_isolate_cannot_import_fails_the_call_naming_it_and_the_remedy(helper):
    mod = helper("def answer():\n    return 1\n")
    unreachable(mod)
    with stemnb.IsolatePool(1) as pool:
        with pytest.raises(stemnb.SerializationError) as caught:
            pool.run(mod.answer).result(WAIT)
        assert f"No module named {mod.__name__!r}" in str(caught.value)
        assert f"stemnb.share_module({mod.__name__!r}) sends its code along" in str(caught.value)
        assert pool.run(abs, -3).result(WAIT) == 3  # the pool stays usable


def test_a_shared_module_s_classes_and_helper_functions_travel_with_it(helper):
    mod = helper(
        "class Point:\n"
        "    def __init__(self, x, y):\n"
        "        self.x, self.y = x, y\n\n"
        "def norm1(p):\n"
        "    return abs(p.x) + abs(p.y)\n\n"
        "def total(points):\n"
        "    return sum(norm1(p) for p in points)\n"
    )
    stemnb.share_module(mod)
    unreachable(mod)
    points = [mod.Point(1, -2), mod.Point(3, 4)]
    assert stemnb.run(mod.total, points).result(WAIT) == 10


def test_a_spawned_isolate_runs_a_shared_module_s_entry(helper):
    mod = helper("def entry(reply):\n    reply.send('from the helper')\n")
    stemnb.share_module(mod)
    unreachable(mod)
    replies = stemnb.ReceivePort("replies")
    try:
        stemnb.spawn(mod.entry, replies.send_port).result(WAIT)
        assert replies.receive(WAIT) == "from the helper"
    finally:
        replies.close()


def test_a_task_handler_from_a_shared_module_runs_in_an_isolate_that_cannot_import_it(helper, h):
    mod = helper("VERSION = 'v1'\n\ndef handle(ctx, args):\n    return [VERSION, args['n'] * 2]\n")
    stemnb.share_module(mod)
    unreachable(mod)
    h.registry.register("helper.handle", TaskHandler(mod.handle, isolate=True))
    h.worker(concurrency=1)
    task_id = h.stem.enqueue("helper.handle", {"n": 21})
    status = h.wait(task_id, timeout=WAIT)
    assert status.state is stemnb.TaskState.SUCCEEDED, status.error
    assert status.payload == ["v1", 42]


def test_sharing_a_package_shares_its_submodules(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"pkg_{uuid.uuid4().hex[:8]}"
    (tmp_path / name).mkdir()
    (tmp_path / name / "sub.py").write_text("def f():\n    return 'sub'\n")
    (tmp_path / name / "__init__.py").write_text("")
    importlib.invalidate_caches()
    pkg = importlib.import_module(name)
    sub = importlib.import_module(f"{name}.sub")
    try:
        assert is_plain(sub.f)  # by name: the C pickler alone
        stemnb.share_module(pkg)
        assert not is_plain(sub.f)  # by value: cloudpickle carries the code
        assert stemnb.run(sub.f).result(WAIT) == "sub"
    finally:
        stemnb.unshare_module(pkg)
        sys.modules.pop(sub.__name__, None)
        sys.modules.pop(name, None)


def test_unshare_module_sends_the_functions_by_name_again(helper):
    mod = helper("def f():\n    return 1\n")
    other = helper("def g():\n    return 2\n")
    stemnb.share_module(mod)
    assert not is_plain(mod.f)
    assert is_plain(other.g)  # sharing one module leaves the others by name
    stemnb.unshare_module(mod)
    assert is_plain(mod.f)
    stemnb.unshare_module(mod)  # unsharing twice does nothing


@pytest.mark.parametrize(
    ("module", "error", "match"),
    [
        (42, TypeError, "module must be a module or a module name, not int"),
        ("stemnb_no_such_module", ModuleNotFoundError, "stemnb_no_such_module"),
        ("json", ValueError, "'json' is part of Python's standard library"),
        ("__main__", ValueError, "'__main__' is the notebook or script itself"),
        ("stemnb", ValueError, "'stemnb' cannot be shared"),
        ("cloudpickle", ValueError, "'cloudpickle' cannot be shared"),
        ("psutil._psutil_linux", ValueError, "has no Python source"),
    ],
)
def test_share_module_rejects_what_cannot_travel_by_value_with_an_error_naming_it(module, error, match):
    with pytest.raises(error, match=match):
        stemnb.share_module(module)


def test_share_module_rejects_a_module_object_that_is_not_the_imported_one():
    import types

    stray = types.ModuleType("stemnb_stray_module")
    with pytest.raises(ValueError, match="'stemnb_stray_module' is not the one imported under that name"):
        stemnb.share_module(stray)
