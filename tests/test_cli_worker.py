"""``python -m stemnb worker APP``: a worker program on the real Redis, fed from this process."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from redis_support import REDIS_URL
from redis_support import drop_namespace as _drop

import stemnb
from stemnb import TaskState

redis = pytest.importorskip("redis")
pytestmark = pytest.mark.redis

BOUND_S = 60.0  # an upper bound for a step that should take well under a second, never a sync

APP_SOURCE = textwrap.dedent(
    """
    import os
    import time

    import redis

    import stemnb

    URL = os.environ["CLI_TEST_REDIS_URL"]
    NAMESPACE = os.environ["CLI_TEST_NAMESPACE"]
    registry = stemnb.TaskRegistry()


    def square(ctx, args):
        return args["x"] ** 2


    def report_pid(ctx, args):
        return os.getpid()


    def hold(ctx, args):
        # tells the test its pid, then runs until the test pushes to the release list
        client = redis.Redis.from_url(URL)
        client.rpush(NAMESPACE + ":test-started", os.getpid())
        while not client.blpop([NAMESPACE + ":test-release"], timeout=1):
            pass  # short blocking reads: a client's socket timeout must not end the wait
        return "finished"


    def hold_until_revoked(ctx, args):
        # tells the test its pid, then works until the worker asks it to stop
        redis.Redis.from_url(URL).rpush(NAMESPACE + ":test-started", os.getpid())
        while not ctx.is_revoked():
            time.sleep(0.01)  # a unit of work
        ctx.heartbeat()  # raises TaskRevokedError


    registry.register("square", stemnb.TaskHandler(square, isolate=True))
    registry.register("isolate_pid", stemnb.TaskHandler(report_pid, isolate=True))
    registry.register("inline_pid", stemnb.TaskHandler(report_pid, isolate=False))
    registry.register("hold", stemnb.TaskHandler(hold, isolate=True))
    registry.register("hold_inline", stemnb.TaskHandler(hold, isolate=False))
    registry.register("hold_until_revoked", stemnb.TaskHandler(hold_until_revoked, isolate=True))


    def make_registry():
        return registry


    def make_worker():
        broker = stemnb.RedisBroker(URL, namespace=NAMESPACE)
        backend = stemnb.RedisResultBackend(URL, namespace=NAMESPACE)
        return stemnb.Worker(broker, registry, backend, concurrency=1, consumer_name="built-by-app")


    def stopped_worker():
        worker = make_worker()
        worker.close()
        return worker


    def broken_factory():
        raise RuntimeError("no registry today")


    not_a_registry = 42
    """
)


class WorkerProgram:
    """``python -m stemnb worker`` in its own session, its stderr read line by line."""

    def __init__(self, cwd: Path, namespace: str, *argv: str) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")]),
            "CLI_TEST_REDIS_URL": REDIS_URL,
            "CLI_TEST_NAMESPACE": namespace,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stemnb", "worker", *argv],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, text: str) -> str:
        """Return the next stderr line containing ``text``; fail if the program ends first."""
        while True:
            line = self.lines.get(timeout=BOUND_S)
            if line is None:
                raise AssertionError(f"the program ended without printing {text!r}: {self.seen}")
            self.seen.append(line)
            if text in line:
                return line

    def signal(self, signum: int) -> None:
        os.kill(self.proc.pid, signum)

    def exit_code(self) -> int:
        return self.proc.wait(BOUND_S)

    def descendants(self) -> list[int]:
        """Every process below the program (its isolate pool), from /proc."""
        return _descendants(self.proc.pid)

    def close(self) -> None:
        """Kill the program's session if it still runs; close its stderr."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(BOUND_S)
        self.reader.join(BOUND_S)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == pid]
        found += kids
        frontier += kids
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a process that is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Cluster:
    """A namespace on Redis, the APP module, and a producer (Stem) in this process."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.namespace = f"stemnb-cli-test-{uuid.uuid4().hex[:8]}"
        (tmp_path / "cliapp.py").write_text(APP_SOURCE)
        self.broker = stemnb.RedisBroker(REDIS_URL, namespace=self.namespace)
        self.backend = stemnb.RedisResultBackend(REDIS_URL, namespace=self.namespace)
        self.stem = stemnb.Stem(self.broker, self.backend)
        self.client = redis.Redis.from_url(REDIS_URL)
        self.programs: list[WorkerProgram] = []

    def program(self, *argv: str, app: str = "cliapp:registry", broker: bool = True) -> WorkerProgram:
        options = ["--broker", REDIS_URL, "--namespace", self.namespace] if broker else []
        program = WorkerProgram(self.tmp_path, self.namespace, app, *options, *argv)
        self.programs.append(program)
        return program

    def started(self, *argv: str, **kwargs: str) -> WorkerProgram:
        program = self.program(*argv, **kwargs)
        program.expect("ready")
        return program

    def result(self, task_id: str) -> stemnb.TaskStatus:
        return self.stem.wait_for_task(task_id, timeout=BOUND_S).result()

    def running(self, task_id: str) -> int:
        """Wait until the ``hold`` task ``task_id`` runs; return the pid of the process running it."""
        _, pid = self.client.blpop([f"{self.namespace}:test-started"], timeout=BOUND_S)
        # an isolate task starts while its running status is stored (see _pipeline.start)
        status = self.backend.wait_for(task_id, TaskState.RUNNING, timeout=BOUND_S)
        assert status is not None and status.state is TaskState.RUNNING
        return int(pid)

    def release(self) -> None:
        self.client.rpush(f"{self.namespace}:test-release", "go")

    def close(self) -> None:
        for program in self.programs:
            self.release()
            program.close()
        self.broker.close()
        self.backend.close()
        self.client.close()
        _drop(self.namespace)


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()


def test_worker_program_runs_isolate_and_inline_tasks_enqueued_from_another_process(cluster):
    program = cluster.started("-c", "2")
    ids = [cluster.stem.enqueue("square", {"x": x}) for x in range(4)]
    isolate_pid = cluster.stem.enqueue("isolate_pid", {})
    inline_pid = cluster.stem.enqueue("inline_pid", {})
    assert [cluster.result(i).payload for i in ids] == [0, 1, 4, 9]
    assert cluster.result(inline_pid).payload == program.proc.pid  # inline: in the program itself
    assert cluster.result(isolate_pid).payload in program.descendants()  # isolate: in its pool
    program.signal(signal.SIGTERM)
    assert program.exit_code() == 0


def test_readiness_line_names_the_worker_its_queues_and_the_broker(cluster):
    program = cluster.program("--name", "cli-worker-7", "-Q", "alpha,beta", "-Q", "gamma")
    line = program.expect("ready")
    assert "cli-worker-7" in line and "queues=alpha,beta,gamma" in line
    assert REDIS_URL in line and f"namespace={cluster.namespace}" in line
    gamma = cluster.stem.enqueue("square", {"x": 3}, queue="gamma")
    alpha = cluster.stem.enqueue("square", {"x": 5}, queue="alpha")
    assert cluster.result(gamma).payload == 9 and cluster.result(alpha).payload == 25
    program.signal(signal.SIGTERM)
    assert program.exit_code() == 0


def test_sigterm_lets_a_running_task_finish_then_exits_zero_leaving_no_process(cluster):
    program = cluster.started("-c", "2")
    tid = cluster.stem.enqueue("hold", {})
    isolate = cluster.running(tid)
    assert isolate in program.descendants()
    program.signal(signal.SIGTERM)
    program.expect("stopping: warm shutdown")
    cluster.release()
    assert program.exit_code() == 0
    status = cluster.backend.get(tid)
    assert status.state is TaskState.SUCCEEDED and status.payload == "finished"
    assert not _alive(isolate)


def test_sigterm_lets_a_running_inline_task_finish(cluster):
    program = cluster.started()
    tid = cluster.stem.enqueue("hold_inline", {})
    assert cluster.running(tid) == program.proc.pid
    program.signal(signal.SIGTERM)
    program.expect("stopping: warm shutdown")
    cluster.release()
    assert program.exit_code() == 0
    assert cluster.backend.get(tid).state is TaskState.SUCCEEDED


def test_sigint_stops_the_program_softly_cancelling_the_running_task(cluster):
    program = cluster.started()
    tid = cluster.stem.enqueue("hold_until_revoked", {})
    isolate = cluster.running(tid)
    assert isolate in program.descendants()
    program.signal(signal.SIGINT)
    program.expect("stopping: soft shutdown")
    assert program.exit_code() == 0
    status = cluster.backend.get(tid)
    assert status.state is TaskState.CANCELLED and status.meta["reason"] == "worker soft shutdown"
    assert not _alive(isolate)


def _signal_a_thread_other_than_main(pid: int, signum: int) -> None:
    """Send ``signum`` to one of ``pid``'s threads that is not its main thread (tgkill), as the
    kernel may do with any signal sent to the process."""
    import ctypes

    others = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)
    assert others, "the program runs worker threads"
    tgkill = 234  # x86_64 syscall number
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.syscall(tgkill, pid, others[0], signum) == 0, os.strerror(ctypes.get_errno())


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="tgkill's syscall number is x86_64's")
def test_a_signal_that_lands_on_a_worker_thread_still_stops_the_program(cluster):
    # the main thread blocks waiting for the worker to stop; Python runs signal handlers only in the
    # main thread, which a signal delivered to another thread does not wake
    program = cluster.started()
    tid = cluster.stem.enqueue("hold", {})
    cluster.running(tid)
    _signal_a_thread_other_than_main(program.proc.pid, signal.SIGTERM)
    program.expect("stopping: warm shutdown")
    cluster.release()
    assert program.exit_code() == 0
    assert cluster.backend.get(tid).state is TaskState.SUCCEEDED


def test_a_second_signal_during_a_warm_shutdown_makes_it_hard_and_requeues_the_task(cluster):
    program = cluster.started()
    tid = cluster.stem.enqueue("hold", {})
    isolate = cluster.running(tid)
    assert isolate in program.descendants()
    program.signal(signal.SIGTERM)
    program.expect("stopping: warm shutdown")
    program.signal(signal.SIGTERM)
    assert program.exit_code() == 0
    assert cluster.backend.get(tid).state is TaskState.QUEUED
    assert cluster.broker.pending_count("default") == 1  # handed back for the next worker
    assert not _alive(isolate)


def test_a_revocation_stored_while_no_worker_ran_is_honoured_by_a_worker_program_started_later(cluster):
    # the program keeps revocations in Redis beside the tasks, not only in its own memory
    revoked = cluster.stem.enqueue("square", {"x": 2})
    kept = cluster.stem.enqueue("square", {"x": 3})
    store = stemnb.RedisRevokeStore(REDIS_URL, namespace=cluster.namespace)
    try:
        store.upsert([stemnb.RevokeEntry("stem", revoked, terminate=False, reason="not wanted")])
    finally:
        store.close()
    program = cluster.started("-c", "1")
    assert cluster.result(kept).payload == 9
    status = cluster.result(revoked)
    assert status.state is TaskState.CANCELLED and "not wanted" in str(status.error)
    program.signal(signal.SIGTERM)
    assert program.exit_code() == 0


def test_a_revocation_sent_through_the_control_plane_reaches_a_worker_program_started_afterwards(cluster):
    # the task waits on a queue the first program does not consume; the program it reaches later
    # learns of the revocation from the store the first one wrote it to
    revoked = cluster.stem.enqueue("square", {"x": 4}, queue="later")
    kept = cluster.stem.enqueue("square", {"x": 5}, queue="later")
    first = cluster.started("-c", "1")
    replies = stemnb.ControlClient(cluster.broker).revoke(revoked, reason="changed my mind", expected=1, timeout=BOUND_S)
    assert [r["status"] for r in replies] == ["ok"]
    first.signal(signal.SIGTERM)
    assert first.exit_code() == 0
    second = cluster.started("-c", "1", "-Q", "later")
    assert cluster.result(kept).payload == 25
    status = cluster.result(revoked)
    assert status.state is TaskState.CANCELLED and "changed my mind" in str(status.error)
    second.signal(signal.SIGTERM)
    assert second.exit_code() == 0


@pytest.mark.parametrize("option", [["--max-tasks-per-isolate", "1"], ["--max-memory-per-isolate", "1"]])
def test_recycling_options_give_each_task_a_fresh_isolate_process(cluster, option):
    # one task per process, or a 1 MiB RSS limit that every Python process passes: replaced after each task
    program = cluster.started("-c", "1", *option)
    pids = [cluster.result(cluster.stem.enqueue("isolate_pid", {})).payload for _ in range(3)]
    assert len(set(pids)) == 3
    program.signal(signal.SIGTERM)
    assert program.exit_code() == 0


def test_autoscale_starts_at_its_minimum_and_reports_its_maximum(cluster):
    program = cluster.program("--autoscale", "3,1")
    assert "concurrency=1 " in program.expect("ready")
    [reply] = stemnb.ControlClient(cluster.broker).stats(expected=1, timeout=BOUND_S)
    assert (reply["response"]["concurrency"], reply["response"]["max_concurrency"]) == (1, 3)
    assert cluster.result(cluster.stem.enqueue("square", {"x": 8})).payload == 64
    program.signal(signal.SIGTERM)
    assert program.exit_code() == 0


def test_app_may_be_a_factory_returning_a_registry(cluster):
    program = cluster.started(app="cliapp:make_registry")
    assert cluster.result(cluster.stem.enqueue("square", {"x": 7})).payload == 49
    program.signal(signal.SIGTERM)
    assert program.exit_code() == 0


def test_app_may_build_its_own_worker_which_runs_as_it_is(cluster):
    program = cluster.program(app="cliapp:make_worker", broker=False)
    assert "built-by-app" in program.expect("ready")
    assert cluster.result(cluster.stem.enqueue("square", {"x": 6})).payload == 36
    program.signal(signal.SIGTERM)
    assert program.exit_code() == 0


def test_broker_url_comes_from_the_environment_when_not_given(cluster, monkeypatch):
    monkeypatch.setenv("STEMNB_BROKER_URL", REDIS_URL)
    program = cluster.program("--namespace", cluster.namespace, broker=False)
    assert REDIS_URL in program.expect("ready")
    assert cluster.result(cluster.stem.enqueue("square", {"x": 2})).payload == 4
    program.signal(signal.SIGTERM)
    assert program.exit_code() == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cliapp"], "APP must look like 'package.module:attr', got 'cliapp'"),
        (["no_such_module:registry"], "cannot import APP module 'no_such_module'"),
        (["cliapp:nothing_here"], "module 'cliapp' has no attribute 'nothing_here'"),
        (["cliapp:not_a_registry"], "APP 'cliapp:not_a_registry' is of type int, not a TaskRegistry or a Worker"),
        (["cliapp:broken_factory"], "calling it failed: RuntimeError: no registry today"),
        (["cliapp:registry", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["cliapp:registry", "-c", "zero"], "argument -c/--concurrency: must be an integer >= 1"),
        (["cliapp:registry", "--broker", "amqp://localhost//"], "--broker must be a redis://"),
        (["cliapp:registry", "--backend", "http://x"], "--backend must be a redis://"),
        (["cliapp:make_worker", "-c", "2"], "is a Worker already; --concurrency cannot change it"),
        (["cliapp:make_worker", "--autoscale", "4"], "is a Worker already; --autoscale cannot change it"),
        (["cliapp:registry", "--autoscale", "2,5"], "argument --autoscale: MIN 5 is above MAX 2"),
        (["cliapp:registry", "--autoscale", "many"], "argument --autoscale: must be MAX or MAX,MIN"),
        (["cliapp:registry", "--max-tasks-per-isolate", "0"], "argument --max-tasks-per-isolate: must be an integer >= 1"),
        (["cliapp:registry", "--max-memory-per-isolate", "-5"], "argument --max-memory-per-isolate: must be an integer >= 1"),
        (["cliapp:registry", "--isolate-nice", "20"], "argument --isolate-nice: must be an integer from 0 to 19"),
        (["cliapp:registry", "--isolate-nice", "low"], "argument --isolate-nice: must be an integer from 0 to 19"),
        (["cliapp:stopped_worker"], "APP 'cliapp:stopped_worker' is a Worker that is stopped"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_problem(tmp_path, argv, message):
    (tmp_path / "cliapp.py").write_text(APP_SOURCE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CLI_TEST_REDIS_URL": REDIS_URL}
    env["CLI_TEST_NAMESPACE"] = "stemnb-cli-test-never-used"
    done = subprocess.run(
        [sys.executable, "-m", "stemnb", "worker", *argv],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BOUND_S,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and message in done.stderr
    assert "Traceback" not in done.stderr and done.stderr.startswith("stemnb: error: ")


def test_a_broker_that_does_not_answer_exits_1_with_one_line(tmp_path):
    (tmp_path / "cliapp.py").write_text(APP_SOURCE)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "CLI_TEST_REDIS_URL": REDIS_URL}
    env["CLI_TEST_NAMESPACE"] = "stemnb-cli-test-never-used"
    done = subprocess.run(
        [sys.executable, "-m", "stemnb", "worker", "cliapp:registry", "--broker", "redis://127.0.0.1:1/0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BOUND_S,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "the broker at redis://127.0.0.1:1/0 does not answer" in done.stderr


def test_a_worker_program_publishes_its_heartbeats_live_on_redis(cluster):
    listener = cluster.client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe("stem:heartbeat:stem")
    try:
        name = f"hb-{cluster.namespace}"
        cluster.started("--name", name)
        beat: dict = {}
        deadline = time.monotonic() + BOUND_S
        while beat.get("worker_id") != name:  # other programs on this Redis may beat too
            assert time.monotonic() < deadline, "no heartbeat published"
            message = listener.get_message(timeout=BOUND_S)  # None also for the subscribe reply
            if message is not None:
                beat = json.loads(message["data"])
        assert beat["extras"]["pid"] == cluster.programs[0].proc.pid
    finally:
        listener.close()


def _control(cluster, *argv: str, timeout: str = "600") -> subprocess.CompletedProcess:
    """``python -m stemnb control ...`` on the cluster's namespace (its own BOUND_S guard: a
    command that waited for its --timeout instead of the replies it expects would exceed it)."""
    command = [sys.executable, "-m", "stemnb", "control", *argv]
    command += ["--broker", REDIS_URL, "--namespace", cluster.namespace, "--timeout", timeout]
    return subprocess.run(command, capture_output=True, text=True, timeout=BOUND_S, cwd=cluster.tmp_path)


def _heartbeats(cluster, n: int) -> None:
    """Wait (bounded) until ``n`` workers have stored a heartbeat."""
    deadline = time.monotonic() + BOUND_S
    while len(cluster.backend.list_worker_heartbeats("stem")) < n:
        assert time.monotonic() < deadline, "no worker heartbeat stored"


def test_control_ping_answers_for_every_live_worker_without_waiting_out_its_timeout(cluster):
    cluster.started("-c", "1", "--name", "alpha")
    cluster.started("-c", "1", "--name", "beta")
    _heartbeats(cluster, 2)
    done = _control(cluster, "ping")  # --timeout 600: it returns once both live workers replied
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["alpha: running (queue default)", "beta: running (queue default)"]


def test_control_stats_and_inspect_report_the_running_task_as_json_and_text(cluster):
    cluster.started("-c", "1", "--name", "solo")
    held = cluster.stem.enqueue("hold", {})
    cluster.running(held)
    stats = _control(cluster, "stats", "--worker", "solo", "--json")
    assert stats.returncode == 0, stats.stderr
    [reply] = json.loads(stats.stdout)
    assert reply["worker_id"] == "solo" and reply["response"]["running"] == 1
    assert [t["id"] for t in reply["response"]["active"]] == [held]
    inspect = _control(cluster, "inspect", "--worker", "solo")
    assert inspect.stdout.splitlines()[:2] == ["solo: 1 running", f"  {held}  hold  queue=default attempt=0"]
    cluster.release()
    assert cluster.result(held).payload == "finished"


def test_control_revoke_terminate_stops_a_running_task(cluster):
    cluster.started("-c", "1", "--name", "solo")
    task = cluster.stem.enqueue("hold_until_revoked", {})
    cluster.running(task)
    done = _control(cluster, "revoke", task, "--terminate", "--reason", "from the shell", "--worker", "solo")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"solo: revoked {task} (terminate)"
    status = cluster.result(task)
    assert status.state is TaskState.CANCELLED and "from the shell" in str(status.error)


def test_control_revoke_with_no_worker_stores_it_for_a_worker_started_later(cluster):
    revoked = cluster.stem.enqueue("square", {"x": 6})
    kept = cluster.stem.enqueue("square", {"x": 7})
    done = _control(cluster, "revoke", revoked, "--reason", "nobody listening", timeout="0.2")
    assert done.returncode == 0, done.stderr
    assert "the revocation is stored for workers that start later" in done.stderr
    cluster.started("-c", "1")
    assert cluster.result(kept).payload == 49
    status = cluster.result(revoked)
    assert status.state is TaskState.CANCELLED and "nobody listening" in str(status.error)


def test_control_revoke_expires_stores_when_the_revocation_lapses(cluster):
    done = _control(cluster, "revoke", "t-expiring", "--expires", "120", timeout="0.2")
    assert done.returncode == 0, done.stderr
    store = stemnb.RedisRevokeStore(REDIS_URL, namespace=cluster.namespace)
    try:
        entry = store.get("stem", "t-expiring")
    finally:
        store.close()
    assert entry is not None and entry.expires_at == pytest.approx(time.time() + 120, abs=30)


def test_control_pause_holds_a_queue_until_resume(cluster):
    cluster.started("-c", "1", "--name", "solo")
    _heartbeats(cluster, 1)
    paused = _control(cluster, "pause")
    assert paused.stdout.strip() == "solo: paused queues: default"
    task = cluster.stem.enqueue("square", {"x": 3})
    queues = _control(cluster, "queues")
    assert queues.stdout.strip() == "solo: queues default; paused: default"
    assert cluster.backend.get(task).state is TaskState.QUEUED
    resumed = _control(cluster, "resume", "default")
    assert resumed.stdout.strip() == "solo: paused queues: none"
    assert cluster.result(task).payload == 9


def test_control_shutdown_stops_the_worker_program(cluster):
    program = cluster.started("-c", "1", "--name", "solo")
    done = _control(cluster, "shutdown", "--mode", "soft", "--worker", "solo")
    assert done.stdout.strip() == "solo: shutting down (soft)"
    program.expect("stopped")
    assert program.exit_code() == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["revoke"], "control revoke needs at least one task id"),
        (["ping", "extra"], "control ping takes no arguments, got extra"),
        (["pong"], "invalid choice: 'pong'"),
        (["ping", "--timeout", "0"], "must be > 0"),
        (["revoke", "t1", "--expires", "0"], "must be > 0"),
        (["revoke", "t1", "--expires", "soon"], "expected a number of seconds, got 'soon'"),
    ],
)
def test_control_bad_input_exits_2_naming_the_problem(cluster, argv, message):
    done = subprocess.run(
        [sys.executable, "-m", "stemnb", "control", *argv, "--broker", REDIS_URL],
        capture_output=True, text=True, timeout=BOUND_S,
    )
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_control_with_no_worker_answering_exits_1(cluster):
    done = _control(cluster, "ping", "--worker", "nobody", timeout="0.2")
    assert done.returncode == 1
    assert done.stderr.strip() == "stemnb: worker 'nobody' did not answer within 0.2 s"


def test_a_worker_program_told_to_wait_for_redis_starts_once_redis_is_up(cluster):
    from redis_support import PrivateServer

    server = PrivateServer()
    server.kill()
    program = cluster.program("--broker", server.url, "--wait-for-broker", "60", "-c", "1", broker=False)
    try:
        assert "waiting up to" in program.expect(f"for the broker at {server.url}")
        server.start()
        program.expect("ready")
        broker = stemnb.RedisBroker(server.url, namespace="stemnb")
        backend = stemnb.RedisResultBackend(server.url, namespace="stemnb")
        try:
            stem = stemnb.Stem(broker, backend)
            assert stem.wait_for_task(stem.enqueue("square", {"x": 5}), BOUND_S).result().payload == 25
        finally:
            broker.close()
            backend.close()
    finally:
        program.close()
        server.close()


def test_a_worker_program_that_waits_for_redis_in_vain_exits_1_naming_it(cluster):
    from redis_support import PrivateServer

    server = PrivateServer()
    server.kill()
    program = cluster.program("--broker", server.url, "--wait-for-broker", "0.3", broker=False)
    try:
        program.expect(f"waiting up to 0.3 s for the broker at {server.url}")
        assert program.expect("stemnb: error:").endswith("Connection refused.")
        assert f"the broker at {server.url} does not answer" in program.seen[-1]
        assert program.exit_code() == 1
    finally:
        program.close()
        server.close()
