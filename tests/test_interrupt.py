"""Kernel interrupts: an interrupted cell ends its remote work; children ignore SIGINT themselves."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import stemnb
from stemnb._session import pid_is_alive

pytestmark = pytest.mark.timeout(120)

WAIT = 30


def wait_until(check, timeout: float = WAIT, what: str = "condition"):
    """Poll ``check`` with a deadline (for states nothing notifies about)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still not true after {timeout}s")
        time.sleep(0.01)


def square(x: int) -> int:
    return x * x


def wait_for_go(parent: stemnb.SendPort) -> tuple[str, int]:
    with stemnb.ReceivePort("go") as go:
        parent.send((os.getpid(), go.send_port))
        go.receive(timeout=WAIT)
    return "completed", os.getpid()


def echo(reply: stemnb.SendPort) -> None:
    port = stemnb.ReceivePort()
    port.listen(reply.send)
    reply.send(port.send_port)


def report_then_sleep(started: stemnb.SendPort, seconds: float) -> None:
    started.send(os.getpid())
    time.sleep(seconds)  # the remote work the interrupt must end


@pytest.fixture
def kernel():
    """An in-process IPython kernel (manager, client); the shell singleton is cleared around it.

    It is cleared through the in-process shell's class: clearing ``InteractiveShell``'s alone
    leaves the subclass holding the last kernel's shell, which the next kernel would then reuse
    while ``get_ipython()`` answers None.
    """
    inprocess = pytest.importorskip("ipykernel.inprocess.manager")
    from ipykernel.inprocess.ipkernel import InProcessInteractiveShell as InteractiveShell

    InteractiveShell.clear_instance()
    km = inprocess.InProcessKernelManager()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel()
        InteractiveShell.clear_instance()


def _execute_interrupted(kc, code: str, once_running) -> dict:
    """Execute ``code`` in the kernel and interrupt it, as the notebook's button does, once
    ``once_running()`` returns (it waits for the cell's remote work to run); return the reply."""
    main = threading.main_thread().ident

    def interrupt() -> None:
        once_running()
        signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=interrupt)
    thread.start()
    kc.execute(code)
    reply = kc.get_shell_msg(timeout=WAIT)
    thread.join(WAIT)
    return reply


def test_interrupting_a_cell_blocked_on_run_ends_the_remote_process_and_the_pool_still_works(kernel, port):
    km, kc = kernel
    pool = stemnb.default_pool()
    before = pool.statistics()
    running: list[int] = []

    def once_running() -> None:
        # statistics() says "dispatched"; the call itself says when it really runs
        wait_until(lambda: pool.statistics().busy >= 1, what="call dispatched")
        running.append(port.receive(timeout=WAIT))

    km.kernel.shell.push({"report_then_sleep": report_then_sleep, "started": port.send_port})
    reply = _execute_interrupted(kc, "import stemnb\nstemnb.run(report_then_sleep, started, 60).result()", once_running)
    assert reply["content"]["status"] == "error"
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    assert len(running) == 1
    wait_until(lambda: not pid_is_alive(running[0]), what=f"worker {running[0]} ended")
    assert pool.statistics().cancelled == before.cancelled + 1
    assert pool.run(square, 12).result(WAIT) == 144
    assert running[0] not in {i.pid for i in pool.isolates()}


def _run_cell(kc, code: str) -> str:
    """Execute ``code`` in the kernel, wait for its reply, and return the cell's message id."""
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=WAIT)
    assert reply["content"]["status"] == "ok", reply["content"]
    return msg_id


def test_submissions_from_one_cell_share_its_origin_and_the_next_cell_gets_its_own(kernel):
    km, kc = kernel
    first = _run_cell(kc, "from stemnb._output import capture_origin\na, b = capture_origin(), capture_origin()")
    second = _run_cell(kc, "c = capture_origin()")
    a, b, c = (km.kernel.shell.user_ns[name] for name in "abc")
    assert a is b and a.cell_id == first
    assert c is not a and c.cell_id == second
    assert c.shell is km.kernel.shell


def test_interrupting_a_cell_leaves_the_work_of_an_earlier_cell_running(kernel, port):
    km, kc = kernel
    km.kernel.shell.push({"wait_for_go": wait_for_go, "parent": port.send_port})
    _run_cell(kc, "import stemnb\nearlier = stemnb.run(wait_for_go, parent)")
    pid, go = port.receive(timeout=WAIT)
    later: list[int] = []

    def once_running() -> None:
        later.append(port.receive(timeout=WAIT)[0])  # the second cell's call runs now

    reply = _execute_interrupted(kc, "stemnb.run(wait_for_go, parent).result()", once_running)
    assert reply["content"]["ename"] == "KeyboardInterrupt"
    wait_until(lambda: not pid_is_alive(later[0]), what=f"the interrupted cell's worker {later[0]} ended")
    earlier = km.kernel.shell.user_ns["earlier"]
    assert not earlier.done()
    go.send("go")
    assert earlier.result(WAIT) == ("completed", pid)


def test_a_worker_ignores_sigint_and_its_call_completes(pool, port):
    fut = pool.run(wait_for_go, port.send_port)
    pid, go = port.receive(timeout=WAIT)
    os.kill(pid, signal.SIGINT)
    go.send("go")
    assert fut.result(WAIT) == ("completed", pid)
    assert pool.statistics().failed == 0


def test_an_isolate_ignores_sigint(port):
    with stemnb.ReceivePort() as exit_port:
        iso = stemnb.spawn(echo, port.send_port, on_exit=exit_port.send_port).result(WAIT)
        try:
            inbox = port.receive(timeout=WAIT)
            os.kill(iso.pid, signal.SIGINT)
            inbox.send("still here")
            assert port.receive(timeout=WAIT) == "still here"
            assert iso.is_alive
        finally:
            iso.kill(stemnb.Isolate.IMMEDIATE)
        exit_port.receive(timeout=WAIT)
