"""The %stem magics, driven through a real in-process IPython InteractiveShell."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import stemnb
from stemnb._magics import StemMagics
from stemnb.testing import eventually


@pytest.fixture(scope="module", autouse=True)
def _restore_process_state():
    """An in-process InteractiveShell replaces ``__main__``; put it back for the tests that follow."""
    import sys

    main = sys.modules["__main__"]
    yield
    InteractiveShell.clear_instance()
    sys.modules["__main__"] = main


@pytest.fixture
def shell():
    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "stemnb")
    yield ip
    ip.run_line_magic("unload_ext", "stemnb")
    for name in list(ip.user_ns):
        if name.startswith("stem_test_"):
            del ip.user_ns[name]


def magics(ip) -> StemMagics:
    return ip.magics_manager.registry["StemMagics"]


def test_load_ext_registers_line_and_cell_magic(shell):
    assert "stem" in shell.magics_manager.magics["line"]
    assert "stem" in shell.magics_manager.magics["cell"]


def test_unload_ext_removes_the_magic_and_reload_works(shell):
    shell.run_line_magic("unload_ext", "stemnb")
    assert "stem" not in shell.magics_manager.magics["line"]
    shell.run_line_magic("load_ext", "stemnb")
    assert "stem" in shell.magics_manager.magics["line"]


def test_help_describes_every_subcommand(shell):
    doc = shell.find_line_magic("stem").__doc__
    for usage in ("%%stem run [--timeout S] [--name N] [--push VAR", "%%stem spawn [--push",
                  "%stem send name expr", "%stem pause|resume|kill name", "%stem ps",
                  "%stem pool [--size N]", "%stem dashboard [--pool] [--worker]",
                  "{start,stop,status}", "show the %stem worker", "%stem share [--undo]"):
        assert usage in doc, usage


def test_missing_subcommand_is_a_usage_error_listing_them(shell):
    with pytest.raises(UsageError, match="needs a subcommand: run, spawn, send"):
        shell.run_line_magic("stem", "")


def test_unknown_subcommand_is_a_usage_error_naming_it(shell):
    with pytest.raises(UsageError, match=r"unknown %stem subcommand 'bogus'; use one of: run"):
        shell.run_line_magic("stem", "bogus")


def test_bad_option_is_a_usage_error_with_the_usage_line(shell):
    with pytest.raises(UsageError, match=r"(?s)unrecognized arguments: --x.*%stem ps"):
        shell.run_line_magic("stem", "ps --x")
    with pytest.raises(UsageError, match=r"(?s)--size: invalid int value: 'many'.*%stem pool"):
        shell.run_line_magic("stem", "pool --size many")


def test_cell_subcommand_used_as_a_line_magic_says_how_to_write_it(shell):
    with pytest.raises(UsageError, match=r"write '%%stem run \.\.\.' as the cell's first line"):
        shell.run_line_magic("stem", "run")


def test_line_subcommand_used_as_a_cell_magic_says_to_use_one_percent(shell):
    with pytest.raises(UsageError, match="is a line magic: use one % sign"):
        shell.run_cell_magic("stem", "ps", "x = 1\n")


def test_unknown_isolate_name_is_a_usage_error_with_the_fix(shell):
    with pytest.raises(UsageError, match=r"no isolate named 'nope' \(spawned: none yet\); "
                                         r"start one with '%%stem spawn nope'"):
        shell.run_line_magic("stem", "kill nope")
    with pytest.raises(UsageError, match="no isolate named 'nope'"):
        shell.run_line_magic("stem", "send nope 1 + 1")


def test_ps_without_isolates_shows_an_empty_table(shell):
    table = shell.run_line_magic("stem", "ps")
    assert repr(table) == "name  pid  state  CPU  RSS  queued\n(no isolates spawned)"
    assert "no isolates spawned" in table._repr_html_()


def test_worker_status_and_stop_without_a_worker_are_usage_errors(shell):
    with pytest.raises(UsageError, match="no %stem worker runs; '%stem worker start REGISTRY'"):
        shell.run_line_magic("stem", "worker status")
    with pytest.raises(UsageError, match="nothing to stop"):
        shell.run_line_magic("stem", "worker stop")
    with pytest.raises(UsageError, match="invalid choice: 'go'"):
        shell.run_line_magic("stem", "worker go")


def test_worker_start_needs_a_task_registry_variable(shell):
    with pytest.raises(UsageError, match="needs the name of a TaskRegistry variable"):
        shell.run_line_magic("stem", "worker start")
    with pytest.raises(UsageError, match="registry: no variable named stem_test_missing"):
        shell.run_line_magic("stem", "worker start stem_test_missing")
    shell.user_ns["stem_test_registry"] = 42
    with pytest.raises(UsageError, match="'stem_test_registry' is of type int, not a stemnb.TaskRegistry"):
        shell.run_line_magic("stem", "worker start stem_test_registry")


def test_dashboard_for_a_worker_that_is_not_running_is_a_usage_error(shell):
    with pytest.raises(UsageError, match="no %stem worker runs"):
        shell.run_line_magic("stem", "dashboard --worker")
    with pytest.raises(UsageError, match="choose one of --pool and --worker"):
        shell.run_line_magic("stem", "dashboard --pool --worker")


def test_push_of_an_undefined_variable_is_a_usage_error(shell):
    with pytest.raises(UsageError, match="--push: no variable named stem_test_nothing"):
        shell.run_cell_magic("stem", "run --push stem_test_nothing", "y = 1\n")


@pytest.fixture
def pooled(shell):
    shell.run_line_magic("stem", "pool --size 1")
    return shell


def test_pool_with_size_creates_the_pool_that_run_uses_and_resizes_it(pooled):
    pool = magics(pooled).pool
    assert pool.size == 1 and pool.debug_name == "%stem"
    assert pooled.run_line_magic("stem", "pool --size 2") is pool
    assert pool.size == 2
    assert "IsolatePool" in pool._repr_html_()


def test_pool_size_below_one_is_a_usage_error(shell):
    with pytest.raises(UsageError, match="--size must be >= 1, got 0"):
        shell.run_line_magic("stem", "pool --size 0")


def test_run_executes_the_cell_in_another_process_and_pulls_results(pooled):
    import os

    pooled.user_ns["stem_test_x"] = 20
    pooled.run_cell_magic("stem", "run --push stem_test_x --pull stem_test_y stem_test_pid",
                          "import os\nstem_test_y = stem_test_x + 1\nstem_test_pid = os.getpid()\n")
    assert pooled.user_ns["stem_test_y"] == 21
    assert pooled.user_ns["stem_test_pid"] != os.getpid()
    assert pooled.user_ns["stem_test_pid"] in [i.pid for i in magics(pooled).pool.isolates()]


def test_run_reraises_the_cells_error_with_the_remote_traceback(pooled):
    with pytest.raises(ZeroDivisionError) as info:
        pooled.run_cell_magic("stem", "run", "a = 1\nb = a / 0\n")
    cause = info.value.__cause__
    assert isinstance(cause, stemnb.RemoteTraceback)
    assert 'File "<%%stem run cell' in cause.tb and "    b = a / 0" in cause.tb


def test_run_pull_of_a_name_the_cell_never_set_names_it(pooled):
    with pytest.raises(NameError, match="--pull names stem_test_nope are not defined"):
        pooled.run_cell_magic("stem", "run --pull stem_test_nope", "x = 1\n")


def test_run_timeout_ends_the_cell_with_timeout_error_and_the_pool_recovers(pooled):
    with pytest.raises(TimeoutError):
        pooled.run_cell_magic("stem", "run --timeout 0.5", "import time\ntime.sleep(60)\n")
    pooled.run_cell_magic("stem", "run --pull stem_test_ok", "stem_test_ok = True\n")
    assert pooled.user_ns["stem_test_ok"] is True


def test_run_shows_the_cells_output(pooled, capfd):
    pooled.run_cell_magic("stem", "run --name printer", "print('hello from', 'the isolate')\n")
    assert "hello from the isolate" in capfd.readouterr().out


def test_run_without_a_pool_command_uses_the_default_pool_and_unload_leaves_it(shell):
    shell.run_cell_magic("stem", "run --pull stem_test_v stem_test_pid",
                         "import os\nstem_test_v = 5\nstem_test_pid = os.getpid()\n")
    default = stemnb.default_pool()
    assert magics(shell).current_pool() is default
    assert shell.user_ns["stem_test_v"] == 5
    assert shell.user_ns["stem_test_pid"] in [i.pid for i in default.isolates()]
    shell.run_line_magic("unload_ext", "stemnb")
    assert not default.closed
    shell.run_line_magic("load_ext", "stemnb")


def test_unload_closes_the_pool_that_pool_size_made(pooled):
    pool = magics(pooled).pool
    pooled.run_line_magic("unload_ext", "stemnb")
    assert pool.closed
    pooled.run_line_magic("load_ext", "stemnb")

def test_interrupt_during_run_stops_the_remote_cell(pooled):
    import os
    import signal
    import threading

    pool = magics(pooled).pool
    busy_pid = []

    def interrupt_when_busy():
        busy = eventually(lambda: [i.pid for i in pool.isolates() if i.state == "busy"], timeout=60)
        busy_pid.extend(busy)
        os.kill(os.getpid(), signal.SIGINT)  # what the notebook's interrupt button does

    thread = threading.Thread(target=interrupt_when_busy)
    thread.start()
    with pytest.raises(KeyboardInterrupt):
        pooled.run_cell_magic("stem", "run", "import time\ntime.sleep(120)\n")
    thread.join()
    # the cell's call is cancelled and its isolate stops running it (the pool may reuse it)
    eventually(lambda: pool.statistics().busy == 0, timeout=60)
    assert pool.statistics().cancelled == 1
    assert all(i.current_call is None for i in pool.isolates())


ECHO_CELL = "for msg in inbox:\n    stem_test_out.send(msg * 2)\n"


@pytest.fixture
def echo(shell):
    results = stemnb.ReceivePort(debug_name="results")
    shell.user_ns["stem_test_out"] = results.send_port
    isolate = shell.run_cell_magic("stem", "spawn echo --push stem_test_out", ECHO_CELL)
    yield shell, isolate, results
    results.close()


def process_gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def ps_row(shell, name):
    table = shell.run_line_magic("stem", "ps")
    return dict(zip(table.HEADERS, next(r for r in table.rows if r[0] == name), strict=True))


def test_spawn_starts_a_long_lived_isolate_that_send_talks_to(echo):
    shell, isolate, results = echo
    import os

    assert isinstance(isolate, stemnb.Isolate) and isolate.pid != os.getpid()
    shell.user_ns["stem_test_n"] = 20
    shell.run_line_magic("stem", "send echo stem_test_n + 1")
    assert results.receive(timeout=60) == 42
    row = ps_row(shell, "echo")
    assert (row["pid"], row["state"]) == (isolate.pid, "running")
    assert row["RSS"].endswith("MiB") and row["CPU"].endswith("%")
    eventually(lambda: ps_row(shell, "echo")["queued"] == 0, timeout=30)


def test_pause_queues_messages_and_resume_delivers_them(echo):
    shell, isolate, results = echo
    shell.run_line_magic("stem", "pause echo")
    assert ps_row(shell, "echo")["state"] == "paused"
    shell.run_line_magic("stem", "send echo 5")
    shell.run_line_magic("stem", "send echo 6")
    assert ps_row(shell, "echo")["queued"] == 2
    shell.run_line_magic("stem", "resume echo")
    assert [results.receive(timeout=60), results.receive(timeout=60)] == [10, 12]
    eventually(lambda: ps_row(shell, "echo")["queued"] == 0, timeout=30)
    with pytest.raises(UsageError, match="'echo' is not paused; '%stem pause echo' first"):
        shell.run_line_magic("stem", "resume echo")


def test_kill_ends_the_isolate_and_later_sends_are_usage_errors(echo):
    shell, isolate, _ = echo
    shell.run_line_magic("stem", "kill echo")
    assert ps_row(shell, "echo")["state"] == "exited"
    eventually(lambda: process_gone(isolate.pid), timeout=60)
    with pytest.raises(UsageError, match="'echo' has exited; spawn it again"):
        shell.run_line_magic("stem", "send echo 1")


def test_a_spawned_cell_that_closes_its_inbox_exits_and_ps_shows_it(shell):
    shell.run_cell_magic("stem", "spawn brief", "inbox.close()\n")
    eventually(lambda: ps_row(shell, "brief")["state"] == "exited", timeout=60)
    assert ps_row(shell, "brief")["CPU"] == "-"
    with pytest.raises(UsageError, match="'brief' has exited; nothing to kill"):
        shell.run_line_magic("stem", "kill brief")
    shell.run_cell_magic("stem", "spawn brief", "inbox.close()\n")  # the name can be reused


def test_spawn_under_a_running_name_is_a_usage_error(echo):
    shell = echo[0]
    with pytest.raises(UsageError, match="an isolate named 'echo' is running; '%stem kill echo'"):
        shell.run_cell_magic("stem", "spawn echo", "pass\n")


def test_unload_kills_spawned_isolates(echo):
    shell, isolate, _ = echo
    shell.run_line_magic("unload_ext", "stemnb")
    eventually(lambda: process_gone(isolate.pid), timeout=60)
    shell.run_line_magic("load_ext", "stemnb")


def test_worker_start_status_dashboard_and_stop(shell):
    registry = stemnb.TaskRegistry()
    registry.register("add", stemnb.TaskHandler(lambda ctx, args: args["a"] + args["b"], isolate=False))
    broker = stemnb.InMemoryBroker()
    backend = stemnb.InMemoryResultBackend()
    shell.user_ns.update(stem_test_registry=registry, stem_test_broker=broker,
                         stem_test_backend=backend)
    worker = shell.run_line_magic("stem", "worker start stem_test_registry --broker stem_test_broker "
                                           "--backend stem_test_backend --concurrency 1 --as stem_test_w")
    try:
        assert shell.user_ns["stem_test_w"] is worker
        assert worker.state.value == "running" and worker.concurrency == 1
        assert shell.run_line_magic("stem", "worker status") is worker
        task_id = stemnb.Stem(broker, backend, registry=registry).enqueue("add", {"a": 2, "b": 3})
        status = backend.wait_for(task_id, timeout=60)
        assert status.payload == 5
        dash = shell.run_line_magic("stem", "dashboard")
        try:
            assert isinstance(dash, stemnb.WorkerDashboard)
        finally:
            dash.close()
        with pytest.raises(UsageError, match="a %stem worker already runs"):
            shell.run_line_magic("stem", "worker start stem_test_registry")
    finally:
        shell.run_line_magic("stem", "worker stop --mode hard")
    assert worker.state.value == "stopped"
    backend.close()
    broker.close()


def test_dashboard_without_a_worker_shows_the_pool(pooled):
    dash = pooled.run_line_magic("stem", "dashboard --interval 0.2")
    try:
        assert isinstance(dash, stemnb.PoolDashboard) and dash.pool is magics(pooled).pool
    finally:
        dash.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_magics_in_a_real_jupyter_kernel_show_output_in_the_cell_and_talk_to_isolates(tmp_path):
    """In ipykernel an asyncio loop runs while cells execute; the magics must not wait on it."""
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook

    cells = [
        "%load_ext stemnb\nimport stemnb\nresults = stemnb.ReceivePort()\nout = results.send_port",
        "%%stem run --name greeter\nprint('hello from the isolate')",
        "%%stem spawn doubler --push out\nfor message in inbox:\n    out.send(message * 2)",
        "%stem send doubler 21\nprint(results.receive(timeout=60))",
        "%stem pause doubler\n%stem send doubler 5\n%stem resume doubler\nprint(results.receive(timeout=60))",
        "t = %stem ps\nprint(t.rows[0][0], t.rows[0][2])",
        "%stem kill doubler\n%unload_ext stemnb",
    ]
    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    texts = ["".join(o.get("text", "") for o in c.outputs if o.output_type == "stream") for c in nb.cells]
    errors = [o for c in nb.cells for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    assert texts[1] == "hello from the isolate\n"  # shown in the cell that ran it
    assert texts[3] == "42\n" and texts[4] == "10\n" and texts[5] == "doubler running\n"


def test_share_sends_a_helper_module_by_value_by_its_name_or_alias_and_undo_sends_it_by_name(shell, tmp_path,
                                                                                             monkeypatch, capsys):
    import sys

    from stemnb._share import by_value

    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "stem_test_helpers.py").write_text("def f():\n    return 1\n")
    shell.run_cell("import stem_test_helpers as stem_test_alias")
    module = sys.modules["stem_test_helpers"]
    try:
        shell.run_line_magic("stem", "share stem_test_alias")
        assert by_value(module)
        assert "stem_test_alias: sent to isolates by value" in capsys.readouterr().out
        shell.run_line_magic("stem", "share --undo stem_test_helpers")
        assert not by_value(module)
    finally:
        stemnb.unshare_module(module)
        del sys.modules["stem_test_helpers"]


def test_share_of_what_cannot_travel_by_value_is_a_usage_error_naming_it(shell):
    with pytest.raises(UsageError, match="%stem share: module 'json' is part of Python's standard library"):
        shell.run_line_magic("stem", "share json")
    with pytest.raises(UsageError, match="stem_test_no_such_module"):
        shell.run_line_magic("stem", "share stem_test_no_such_module")
