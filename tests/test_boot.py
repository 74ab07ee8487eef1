"""Children start through stemnb's own bootstrap: prepared like loky's children, without importing loky."""

from __future__ import annotations

import multiprocessing
import os
import sys

import pytest

import stemnb
from stemnb._boot import run

WAIT = 60


def child_state() -> dict:
    return {
        "cmdline": open("/proc/self/cmdline").read().split("\0"),
        "cwd": os.getcwd(),
        "name": multiprocessing.current_process().name,
        "stdin": sys.stdin.read(),
    }


def loky_modules() -> list[str]:
    return sorted(m for m in sys.modules if m == "loky" or m.startswith("loky."))


def big_result() -> object:
    import numpy as np

    return np.ones(1 << 18)  # 2 MB: pickled into a segment this process creates and registers


def tracker_started_here() -> int | None:
    from loky.backend import resource_tracker

    return resource_tracker._resource_tracker._pid  # set only in a process that launched a tracker


def test_a_pool_process_runs_stemnbs_bootstrap_and_imports_no_loky_at_start():
    with stemnb.IsolatePool(1, debug_name="booted") as pool:
        assert pool.run(loky_modules).result(WAIT) == []
        state = pool.run(child_state).result(WAIT)
    assert state["cmdline"][1:3] == ["-m", "stemnb._boot"]
    assert state["name"] == "booted-1"
    assert state["stdin"] == ""  # /dev/null, as in multiprocessing's children


def test_a_child_that_makes_segments_uses_its_parents_resource_tracker():
    with stemnb.IsolatePool(1) as pool:
        assert pool.run(big_result).result(WAIT).sum() == 1 << 18
        assert pool.run(loky_modules).result(WAIT) != []  # loky came with the tracker...
        assert pool.run(tracker_started_here).result(WAIT) is None  # ...the parent's, not a new one


def test_a_child_starts_in_the_parents_working_directory_with_its_sys_path(tmp_path, monkeypatch):
    (tmp_path / "stemnb_boot_probe.py").write_text("WHERE = 'tmp'\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    with stemnb.IsolatePool(1) as pool:
        where = pool.run(lambda: (os.getcwd(), __import__("stemnb_boot_probe").WHERE)).result(WAIT)
    assert where == (str(tmp_path), "tmp")


def test_processes_start_while_the_parents_working_directory_is_deleted(tmp_path, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    with stemnb.IsolatePool(1) as pool:
        assert pool.run(int, "7").result(WAIT) == 7


def test_an_isolate_starts_through_the_same_bootstrap():
    def report(port: stemnb.SendPort) -> None:
        port.send((open("/proc/self/cmdline").read().split("\0")[1:3], loky_modules()))

    with stemnb.ReceivePort() as replies:
        stemnb.spawn(report, replies.send_port).result(WAIT)
        assert replies.receive(timeout=WAIT) == (["-m", "stemnb._boot"], [])


@pytest.mark.parametrize(
    ("outcome", "code", "stderr"),
    [
        pytest.param(None, 0, "", id="a return"),
        pytest.param(SystemExit(), 0, "", id="SystemExit()"),
        pytest.param(SystemExit(3), 3, "", id="SystemExit(3)"),
        pytest.param(SystemExit("bye"), 1, "bye\n", id="SystemExit with a message"),
        pytest.param(KeyError("lost"), 1, "Process pool-9:\nTraceback", id="an exception"),
    ],
)
def test_the_exit_code_follows_multiprocessings_rules(outcome, code, stderr, capsys):
    def entry(argument: object) -> None:
        assert argument == "bootstrap"
        if outcome is not None:
            raise outcome

    assert run(entry, "bootstrap", "pool-9") == code
    err = capsys.readouterr().err
    assert err.startswith(stderr) and (not stderr or stderr.endswith("\n") or "KeyError: 'lost'" in err)
