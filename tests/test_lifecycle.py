"""Process lifecycle: nothing outlives close(), a SIGKILLed parent, or a normal exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import stemnb
from stemnb._session import pid_is_alive

pytestmark = pytest.mark.timeout(180)

WAIT = 30
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def square(x: int) -> int:
    return x * x


def listen_forever(reply: stemnb.SendPort) -> None:
    port = stemnb.ReceivePort()
    port.listen(lambda message: None)
    reply.send(port.send_port)


def wait_until(check, timeout: float = WAIT, what: str = "condition"):
    """Poll ``check`` (no notification exists for a process vanishing) until truthy, with a deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still not true after {timeout}s")
        time.sleep(0.02)


# ---------------------------------------------------------------------- in this process
def test_no_child_process_is_left_after_close():
    import psutil

    pool = stemnb.IsolatePool(2, debug_name="lifecycle")
    assert [pool.run(square, i).result(WAIT) for i in range(4)] == [0, 1, 4, 9]
    pids = {info.pid for info in pool.isolates()}
    assert len(pids) == 2 and all(pid_is_alive(p) for p in pids)
    pool.close()
    pool.close()  # idempotent
    assert not any(pid_is_alive(p) for p in pids)
    assert pids.isdisjoint(c.pid for c in psutil.Process().children(recursive=True))
    with pytest.raises(stemnb.ClosedError):
        pool.run(square, 1)


def test_an_isolate_process_is_gone_once_its_exit_is_reported():
    with stemnb.ReceivePort() as replies, stemnb.ReceivePort() as exit_port:
        iso = stemnb.spawn(listen_forever, replies.send_port, on_exit=exit_port.send_port).result(WAIT)
        replies.receive(timeout=WAIT).send("hello")
        iso.kill()
        exit_port.receive(timeout=WAIT)
    assert not pid_is_alive(iso.pid)


# ---------------------------------------------------------------------- in a parent we kill
PARENT_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import stemnb
    from stemnb._session import current_session

    kept = []

    def hold_and_listen(args):
        reply, nested = args
        kept.append(stemnb.shared_array(1 << 18, fill=1.0))
        if nested:  # an isolate of the isolate
            child = stemnb.spawn(hold_and_listen, (reply, False)).result(30)
            kept.append(child)
        port = stemnb.ReceivePort()
        port.listen(lambda message: None)
        reply.send(("isolate", os.getpid()))

    def spawn_from_worker(reply):
        iso = stemnb.spawn(hold_and_listen, (reply, False)).result(30)
        return iso.pid

    pool = stemnb.IsolatePool(2, debug_name="doomed")
    assert pool.run(np.sum, np.ones(1 << 20)).result(30) == float(1 << 20)  # cached segments
    replies = stemnb.ReceivePort()
    iso = stemnb.spawn(hold_and_listen, (replies.send_port, True)).result(30)
    worker_child = pool.run(spawn_from_worker, replies.send_port).result(30)
    isolates = sorted(replies.receive(30)[1] for _ in range(3))
    kept.append(stemnb.shared_array(1 << 18))
    t = stemnb.TransferableTypedData(np.ones(1 << 18))
    from loky.backend import resource_tracker
    report = {
        "session": current_session().prefix,
        "workers": [i.pid for i in pool.isolates()],
        "isolates": isolates,
        "worker_child": worker_child,
        "tracker": resource_tracker._resource_tracker._pid,
    }
    print(json.dumps(report), flush=True)
    if sys.argv[1] == "wait":
        sys.stdin.read()  # until we are killed
    """
)


def run_parent(mode: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "STEMNB_SESSION"}  # its own session
    return subprocess.Popen([sys.executable, "-c", PARENT_SCRIPT, mode], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def read_report(proc: subprocess.Popen) -> dict:
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise AssertionError(f"parent script failed: {proc.communicate(timeout=WAIT)[1]}")
    return json.loads(line)


def session_files(prefix: str) -> list[str]:
    return [n for n in os.listdir("/dev/shm") if n.startswith(prefix + "-")]


@pytest.fixture
def killed_parent():
    """A parent with a pool, isolates (one nested, one started by a worker) and segments, SIGKILLed."""
    proc = run_parent("wait")
    try:
        report = read_report(proc)
        assert session_files(report["session"])  # it does hold segments
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(WAIT)
        yield report
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=WAIT)


@pytest.mark.slow
def test_every_child_ends_when_its_parent_is_sigkilled(killed_parent):
    pids = killed_parent["workers"] + killed_parent["isolates"]
    assert len(pids) == 5 and killed_parent["worker_child"] in pids
    wait_until(lambda: not any(pid_is_alive(p) for p in pids), what=f"children {pids} ended")


@pytest.mark.slow
def test_nothing_is_left_in_dev_shm_once_the_tracker_cleans_up_after_a_sigkilled_parent(killed_parent):
    prefix = killed_parent["session"]
    wait_until(lambda: not pid_is_alive(killed_parent["tracker"]), what="the resource tracker ended")
    assert session_files(prefix) == []


@pytest.mark.slow
def test_a_normal_exit_prints_no_resource_tracker_warning_and_leaves_nothing():
    proc = run_parent("exit")
    report = read_report(proc)
    _, err = proc.communicate(timeout=WAIT)  # also waits for the tracker, which shares stderr
    assert proc.returncode == 0, err
    assert "resource_tracker" not in err and "Warning" not in err, err
    assert session_files(report["session"]) == []
    pids = report["workers"] + report["isolates"] + [report["tracker"]]
    wait_until(lambda: not any(pid_is_alive(p) for p in pids), what=f"children {pids} ended")


GROUP_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import stemnb

    def hold(port):
        inbox = stemnb.ReceivePort()
        port.send(inbox.send_port)
        inbox.receive(60)
        return os.getpid()

    pool = stemnb.IsolatePool(2)
    replies = stemnb.ReceivePort()
    calls = [pool.run(hold, replies.send_port) for _ in range(2)]
    for gate in [replies.receive(60) for _ in calls]:  # both run at once: each process is set up
        gate.send(None)
    workers = sorted(c.result(60) for c in calls)
    from stemnb._session import current_session
    print(json.dumps({"workers": workers, "session": current_session().prefix}), flush=True)
    sys.stdin.read()  # until the whole group is killed
    """
)


@pytest.mark.slow
def test_killing_the_whole_process_group_leaves_no_claim_board_semaphore_or_file():
    """A kernel restart kills the kernel's process group, resource tracker included: nothing may
    rely on the tracker for the pool's own locks."""
    env = {k: v for k, v in os.environ.items() if k != "STEMNB_SESSION"}
    proc = subprocess.Popen([sys.executable, "-c", GROUP_SCRIPT], cwd=REPO, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()
        assert line, proc.communicate(timeout=WAIT)[1]
        report = json.loads(line)
        workers = report["workers"]
        assert len(set(workers)) == 2
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(WAIT)
        wait_until(lambda: not any(pid_is_alive(p) for p in workers), what="the workers ended")
        left = [n for n in os.listdir("/dev/shm") if n.startswith(f"sem.loky-{proc.pid}-")]
        assert left == [] and session_files(report["session"]) == []  # no array was sent: no segment either
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=WAIT)


INTERRUPTED_START_SCRIPT = textwrap.dedent(
    """
    import os, signal
    import stemnb

    signal.signal(signal.SIGINT, lambda *_: None)  # the kernel's own handler; children get the default
    pool = stemnb.IsolatePool(2)
    first = pool.run(abs, -7)
    while not first.done():  # interrupt the whole group while the processes start
        os.killpg(0, signal.SIGINT)
    print(first.result(60), pool.run(abs, -8).result(60), flush=True)
    pool.close()
    """
)


@pytest.mark.slow
def test_interrupts_while_pool_processes_start_neither_kill_them_nor_print_tracebacks():
    env = {k: v for k, v in os.environ.items() if k != "STEMNB_SESSION"}
    out = subprocess.run([sys.executable, "-c", INTERRUPTED_START_SCRIPT], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120, start_new_session=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["7", "8"]
    assert "KeyboardInterrupt" not in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_waiting_for_a_process_end_works_with_descriptors_above_select_limit():
    # a kernel with many files open hands out descriptors above 1024, which select() refuses
    import resource

    from stemnb._process import open_pidfd, wait_readable

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 2100:
        pytest.skip(f"the hard limit on open files ({hard}) leaves no room above 2048")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2100), hard))
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    pidfd = open_pidfd(child.pid)
    if pidfd is None:
        child.kill()
        child.wait()
        pytest.skip("no pidfd support on this system")
    high = os.dup2(pidfd, 2048)
    try:
        assert not wait_readable([high], timeout=0.05)  # alive: not readable yet (a bounded wait, not a sleep)
        child.stdin.close()  # the child reads EOF and ends
        assert wait_readable([high], timeout=60)
        child.wait(60)
    finally:
        os.close(high)
        os.close(pidfd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
