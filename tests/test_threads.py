"""Pool processes cap their native thread pools (BLAS, OpenMP, ...) so N processes do not oversubscribe the cores."""

from __future__ import annotations

import os

import pytest
from loky import cpu_count

import stemnb
from stemnb._threads import THREAD_VARIABLES

pytestmark = pytest.mark.timeout(120)

WAIT = 30


def thread_env() -> dict[str, str | None]:
    return {name: os.environ.get(name) for name in THREAD_VARIABLES}


@pytest.fixture
def clean_env(monkeypatch):
    """No thread variable set in this process's environment (as in a fresh notebook)."""
    for name in THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_pool_processes_cap_every_native_thread_pool_at_the_cores_shared_out(clean_env):
    expected = str(max(1, cpu_count() // 2))
    with stemnb.IsolatePool(2) as pool:
        assert pool.inner_threads == int(expected)
        envs = [f.result(WAIT) for f in [pool.run(thread_env) for _ in range(4)]]
    for env in envs:
        assert env == dict.fromkeys(THREAD_VARIABLES, expected)


def test_inner_threads_sets_the_cap_of_every_process(clean_env):
    with stemnb.IsolatePool(1, inner_threads=3) as pool:
        assert pool.inner_threads == 3
        assert pool.run(thread_env).result(WAIT) == dict.fromkeys(THREAD_VARIABLES, "3")


def test_a_thread_variable_set_in_the_callers_environment_is_kept(clean_env):
    clean_env.setenv("OMP_NUM_THREADS", "5")
    with stemnb.IsolatePool(1, inner_threads=2) as pool:
        env = pool.run(thread_env).result(WAIT)
    assert env["OMP_NUM_THREADS"] == "5"
    assert {v for k, v in env.items() if k != "OMP_NUM_THREADS"} == {"2"}


def test_processes_started_by_a_resize_get_the_new_share_of_the_cores(clean_env):
    with stemnb.IsolatePool(1) as pool:
        first, before = pool.run(lambda: (os.getpid(), thread_env())).result(WAIT)
        assert pool.inner_threads == cpu_count() and before["OMP_NUM_THREADS"] == str(cpu_count())
        pool.resize(2)
        assert pool.inner_threads == max(1, cpu_count() // 2)
        pool.kill_isolate(first)  # every live process now started after the resize
        pid, after = pool.run(lambda: (os.getpid(), thread_env())).result(WAIT)
    assert pid != first
    assert after["OMP_NUM_THREADS"] == str(max(1, cpu_count() // 2))


def blas_threads() -> list[int]:
    import numpy
    from threadpoolctl import threadpool_info

    numpy.ones(4) @ numpy.ones(4)
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_numpy_s_blas_in_a_pool_process_really_runs_the_capped_number_of_threads(clean_env):
    pytest.importorskip("threadpoolctl")
    pytest.importorskip("numpy")
    with stemnb.IsolatePool(1, inner_threads=1) as pool:
        threads = pool.run(blas_threads).result(WAIT)
    assert threads and set(threads) == {1}


@pytest.mark.parametrize("bad", [0, -1, 1.5, True])
def test_inner_threads_below_one_or_not_an_integer_is_refused(bad):
    with pytest.raises(ValueError, match=f"inner_threads must be a positive integer, not {bad!r}"):
        stemnb.IsolatePool(1, inner_threads=bad)


def test_stemnb_imports_loky_only_from_the_caller_or_the_spawner_and_always_holding_its_lock():
    # importing loky from several threads at once can deadlock (its package imports are
    # circular): the pool works out the cap in the caller's thread, and every import holds a lock
    import ast
    import subprocess
    import sys

    code = (
        "import builtins, threading\n"
        "from stemnb._loky import loky_imports\n"
        "importers = set()\n"
        "real = builtins.__import__\n"
        "def spy(name, *args, **kwargs):\n"
        "    if name.startswith('loky'):\n"
        "        importers.add((threading.current_thread().name, loky_imports.locked()))\n"
        "    return real(name, *args, **kwargs)\n"
        "builtins.__import__ = spy\n"
        "import numpy, stemnb\n"
        "with stemnb.IsolatePool(2) as pool:\n"
        "    pool.run(abs, -1).result(30)\n"
        "    pool.run(len, numpy.ones(1 << 20)).result(30)  # a shared-memory segment: the tracker\n"
        "    pool.resize(3)\n"
        "    pool.run(abs, -1).result(30)\n"
        "print(sorted(importers))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    importers = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert importers
    assert {name for name, _ in importers} <= {"MainThread", "stemnb-spawner"}, importers
    assert all(held for _, held in importers), importers
