"""The worker inside a real Jupyter kernel: start() returns at once, no signal handlers, await works."""

from __future__ import annotations

import textwrap

import pytest

jupyter_client = pytest.importorskip("jupyter_client")


def _run(client, code: str, timeout: float = 120) -> dict:
    """Execute ``code`` in the kernel; return {"stdout": ..., "error": ..., "status": ...}."""
    msg_id = client.execute(textwrap.dedent(code))
    out = {"stdout": "", "error": None}
    while True:
        msg = client.get_iopub_msg(timeout=timeout)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream" and content["name"] == "stdout":
            out["stdout"] += content["text"]
        elif kind == "error":
            out["error"] = "\n".join(content["traceback"])
        elif kind == "status" and content["execution_state"] == "idle":
            break
    return out


@pytest.fixture(scope="module")
def kernel():
    manager, client = jupyter_client.manager.start_new_kernel(kernel_name="python3")
    try:
        yield client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


@pytest.mark.slow
def test_a_worker_runs_in_a_notebook_kernel_without_blocking_cells(kernel):
    setup = _run(kernel, """
        import signal, stemnb
        before = signal.getsignal(signal.SIGINT)
        broker, backend = stemnb.InMemoryBroker(), stemnb.InMemoryResultBackend()
        registry = stemnb.TaskRegistry()

        @registry.task("square")                      # an isolate task defined in the notebook
        def square(ctx, args):
            ctx.progress(1.0)
            return args["x"] ** 2

        @registry.task("hello", isolate=False)
        def hello(ctx, args):
            return f"hello {args['name']}"

        stem = stemnb.Stem(broker, backend, registry=registry)
        worker = stemnb.Worker(broker, registry, backend, enqueuer=stem, concurrency=2)
        progress = []
        worker.events.listen(lambda e: progress.append(e.progress) if e.type.value == "progress" else None)
        worker.start()                                 # returns at once
        print("state", worker.state.value, "handlers unchanged", signal.getsignal(signal.SIGINT) is before)
    """)
    assert setup["error"] is None, setup["error"]
    assert "state running handlers unchanged True" in setup["stdout"]

    awaited = _run(kernel, """
        status = await stem.wait_for_task(stem.enqueue("square", {"x": 12}), timeout=60)
        inline = await stem.wait_for_task(stem.enqueue("hello", {"name": "kernel"}), timeout=60)
        print(status.state.value, status.payload, inline.payload, progress)
    """)
    assert awaited["error"] is None, awaited["error"]
    assert "succeeded 144 hello kernel [1.0]" in awaited["stdout"]

    blocking = _run(kernel, """
        print(stem.result(stem.enqueue("square", {"x": 3}), timeout=60))
    """)
    assert blocking["error"] is None and blocking["stdout"].strip() == "9"

    closed = _run(kernel, """
        worker.shutdown(stemnb.WorkerShutdownMode.WARM).result(60)
        print(worker.state.value, worker.pool.closed)
    """)
    assert closed["error"] is None, closed["error"]
    assert closed["stdout"].strip() == "stopped True"
