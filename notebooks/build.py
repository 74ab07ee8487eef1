"""Build the example notebooks from the cell lists below, execute them, and save them with outputs.

    python notebooks/build.py            # every notebook
    python notebooks/build.py 00 03      # the ones whose names start with these prefixes

The notebooks are committed with their outputs and checked by
``pytest --nbval notebooks/ --nbval-sanitize-with notebooks/sanitize.cfg``. Keep every cell
deterministic: print values rather than reprs carrying PIDs or addresses, sort what arrives
unordered, and start widget cells with ``# NBVAL_IGNORE_OUTPUT``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
MD, PY = "md", "py"

QUICKSTART = [
    (MD, """# stemnb quick start

stemnb brings Dart's isolate model to Jupyter: `stemnb.run` runs a function in a warm process
(Dart's `Isolate.run`), `stemnb.spawn` starts a long-lived isolate that talks through ports
(`Isolate.spawn` with `SendPort`/`ReceivePort`), and live widgets show what the processes do.
Functions and lambdas defined in the notebook work: they travel with cloudpickle."""),
    (PY, "import stemnb"),
    (MD, "## `run`: one call in another process\n\n`run` returns a `stemnb.Future`: call "
         "`.result()`, or `await` it in a notebook."),
    (PY, "stemnb.run(pow, 2, 10).result()"),
    (PY, "await stemnb.run(lambda n: sum(i * i for i in range(n)), 1_000)"),
    (MD, "Errors re-raise here with their original type; the remote traceback is the `__cause__`."),
    (PY, """def parse(text):
    return int(text)

try:
    stemnb.run(parse, "forty-two").result()
except ValueError as exc:
    print("ValueError:", exc)
    print("remote traceback attached:", type(exc.__cause__).__name__)"""),
    (MD, "## `spawn` and ports: a long-lived isolate\n\nThe isolate gets a `SendPort`, answers "
         "with its own, and then serves messages until it is told to stop."),
    (PY, """def shout(reply_to):
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    for message in inbox:
        if message is None:
            break
        reply_to.send(message.upper())
    inbox.close()

replies = stemnb.ReceivePort()
isolate = stemnb.spawn(shout, replies.send_port, debug_name="shouter").result()
to_isolate = replies.receive(timeout=60)
for word in ["hello", "isolates"]:
    to_isolate.send(word)
    print(replies.receive(timeout=60))
to_isolate.send(None)
replies.close()"""),
    (MD, "## A pool and its dashboard\n\n`IsolatePool` is the pool behind `run`. The dashboard "
         "shows each process and has buttons to resize, pause and kill; it refreshes itself."),
    (PY, """# NBVAL_IGNORE_OUTPUT
pool = stemnb.IsolatePool(2, debug_name="quickstart")
stemnb.PoolDashboard(pool)"""),
    (PY, "list(pool.map(lambda x: x * x, range(10)))"),
    (PY, """stats = pool.statistics()
print(stats.state, "completed:", stats.completed)
pool.close()"""),
]

ISOLATE_RUN = [
    (MD, """# `stemnb.run` and `IsolatePool`

Dart's `Isolate.run(computation)` runs one function in a fresh isolate and returns its result.
stemnb keeps a pool of warm processes for it, so a call costs a message, not a process start."""),
    (PY, "import stemnb\nimport time"),
    (MD, "## Arguments, keyword arguments, closures"),
    (PY, """scale = 3

def scaled_sum(values, *, offset=0):
    return sum(v * scale for v in values) + offset

stemnb.run(scaled_sum, [1, 2, 3], offset=100).result()"""),
    (MD, "## A hard time limit\n\n`timeout` ends the call's process and raises the builtin "
         "`TimeoutError`; the pool starts a replacement."),
    (PY, """try:
    stemnb.run(time.sleep, 30, timeout=0.5).result()
except TimeoutError:
    print("TimeoutError: the call was stopped after 0.5 s")
stemnb.run(abs, -7).result()"""),
    (MD, "## Many calls: `map` keeps order, `imap_unordered` yields as calls finish"),
    (PY, """with stemnb.IsolatePool(2, debug_name="mapper") as pool:
    print(list(pool.map(abs, [-1, -2, -3])))
    print(sorted(pool.imap_unordered(lambda x: x * 10, range(5))))
    completed = pool.statistics().completed
print(completed, "calls completed")"""),
    (MD, """## A helper module beside the notebook

A function of an importable module travels by name: each process imports the module once, and
keeps that version. `stemnb.share_module` sends the module's code with its functions instead, so
an edited and reloaded helper takes effect in the warm pool, and an isolate that cannot import
it still runs it. (The helper is written to a temporary directory here, as if it sat beside the
notebook.)"""),
    (PY, """import importlib, pathlib, sys, tempfile

folder = pathlib.Path(tempfile.mkdtemp())
(folder / "nb_helpers.py").write_text("def greet(name):\\n    return 'hello ' + name\\n")
sys.path.insert(0, str(folder))
import nb_helpers

stemnb.share_module(nb_helpers)
print(stemnb.run(nb_helpers.greet, "isolate").result())"""),
    (PY, """(folder / "nb_helpers.py").write_text("def greet(name):\\n    return 'HELLO ' + name.upper() + '!'\\n")
importlib.reload(nb_helpers)  # the same warm pool runs the new code
print(stemnb.run(nb_helpers.greet, "isolate").result())"""),
    (MD, """## Native threads

Each pool process caps the thread pools of BLAS, OpenMP, numexpr and numba at the cores shared
out among the pool's processes (`inner_threads`), so N processes doing linear algebra do not run
N × cores threads."""),
    (PY, """import os

with stemnb.IsolatePool(2, inner_threads=1) as pool:
    print("OMP_NUM_THREADS in a pool process:", pool.run(lambda: os.environ.get("OMP_NUM_THREADS")).result())"""),
    (MD, "## Progress of many futures\n\n`stemnb.progress` draws a widget bar in a notebook "
         "(and a text bar elsewhere) from a background thread."),
    (PY, """# NBVAL_IGNORE_OUTPUT
futures = [stemnb.run(time.sleep, 0.05 * i) for i in range(8)]
bar = stemnb.progress(futures, label="sleeps")"""),
    (PY, """bar.wait(timeout=60)
print(bar.done, "of", bar.total, "done,", bar.failed, "failed")"""),
    (MD, "## The `%%stem run` magic\n\n`%load_ext stemnb` adds `%stem`. `%%stem run` runs a "
         "whole cell in an isolate: `--push` copies variables there, `--pull` copies them back."),
    (PY, "%load_ext stemnb"),
    (PY, "import os\nnumbers = list(range(1, 11))"),
    (PY, """%%stem run --push numbers --pull total child_pid
import os
total = sum(numbers)
child_pid = os.getpid()
print("hello from the isolate")"""),
    (PY, "print(total, \"computed in another process:\", child_pid != os.getpid())"),
]

SPAWN_AND_PORTS = [
    (MD, """# `spawn` and ports

`stemnb.spawn(entry, message)` starts an isolate running `entry(message)`. Isolates share no
memory: they talk by sending messages to `SendPort`s. A `ReceivePort` receives; its `send_port`
can travel inside any message, to any process of the session."""),
    (PY, "import stemnb"),
    (MD, "## A worker isolate that answers requests"),
    (PY, """def squarer(reply_to):
    requests = stemnb.ReceivePort()
    reply_to.send(requests.send_port)
    for number, answer_to in requests:
        if number is None:
            break
        answer_to.send(number * number)
    requests.close()

replies = stemnb.ReceivePort()
exits = stemnb.ReceivePort()
isolate = stemnb.spawn(squarer, replies.send_port, on_exit=exits.send_port, debug_name="squarer").result()
requests = replies.receive(timeout=60)
for n in range(5):
    requests.send((n, replies.send_port))
print([replies.receive(timeout=60) for _ in range(5)])"""),
    (MD, "## Pause and resume\n\nWhile paused, messages queue up; none is lost."),
    (PY, """capability = isolate.pause()
requests.send((7, replies.send_port))
isolate.resume(capability)
replies.receive(timeout=60)"""),
    (MD, "## Exit notification\n\nThe `on_exit` port gets a message however the isolate ends."),
    (PY, """requests.send((None, None))
print("exit message:", exits.receive(timeout=60))
replies.close()
exits.close()"""),
    (MD, "## The same from magics\n\n`%%stem spawn NAME` runs a cell in a new isolate; the cell "
         "reads `inbox`. `%stem send`, `%stem pause|resume|kill` and `%stem ps` manage it."),
    (PY, "%load_ext stemnb"),
    (PY, "results = stemnb.ReceivePort()\nout = results.send_port"),
    (PY, """%%stem spawn doubler --push out
for message in inbox:
    out.send(message * 2)"""),
    (PY, "%stem send doubler 21\nresults.receive(timeout=60)"),
    (PY, "# NBVAL_IGNORE_OUTPUT\n%stem ps"),
    (PY, "%stem kill doubler\nresults.close()"),
]

WORKER_QUICKSTART = [
    (MD, """# The Stem task worker

A broker holds tasks, a registry maps task names to handlers, a result backend keeps their
states. A `Worker` consumes tasks and runs each handler in an isolate (or inline), with
retries, rate limits, time limits, events and autoscaling. `start()` returns at once: the
worker runs in the background while the notebook stays usable."""),
    (PY, "import stemnb"),
    (MD, "## Basic worker setup (the Quick Start of Stem's worker package)"),
    (PY, """# 1. Create your broker, registry, and backend
broker = stemnb.InMemoryBroker()
registry = stemnb.TaskRegistry()
backend = stemnb.InMemoryResultBackend()

# 2. Register task handlers
def my_task(context, args):
    # Your task logic here
    return {"result": "success", "echo": args["value"]}

registry.register("my_task", stemnb.TaskHandler(my_task))

# 3. Create and start the worker
worker = stemnb.Worker(broker=broker, registry=registry, backend=backend, concurrency=2)
worker.start()
print(worker.state.value)"""),
    (MD, "## Enqueue and wait\n\n`Stem` is the producer: `enqueue` returns a task id."),
    (PY, """stem = stemnb.Stem(broker, backend, registry=registry)
task_id = stem.enqueue("my_task", {"value": 42})
status = backend.wait_for(task_id, timeout=60)
print(status.state.value, status.payload)"""),
    (MD, "## Listening to events\n\n`worker.events` calls a listener (or feeds `for` / "
         "`async for`) for every task event."),
    (PY, """seen = []
subscription = worker.events.listen(
    lambda event: seen.append(event.type.value) if event.type.value in ("completed", "failed", "retried") else None)

def flaky(context, args):
    raise ValueError(f"bad value {args['value']}")

registry.register("flaky", stemnb.TaskHandler(flaky, isolate=False))
ok = stem.enqueue("my_task", {"value": 1})
bad = stem.enqueue("flaky", {"value": 2}, max_retries=0)
print(backend.wait_for(ok, timeout=60).state.value, backend.wait_for(bad, timeout=60).state.value)
print(backend.get(bad).error["message"] if backend.get(bad).error else None)"""),
    (PY, """from stemnb.testing import eventually
eventually(lambda: len(seen) >= 2, timeout=30)
subscription.cancel()
sorted(seen)"""),
    (MD, "## Progress and the dashboard\n\nHandlers report progress with `context.progress`; "
         "the dashboard shows queues, tasks in flight, recent events and controls."),
    (PY, """# NBVAL_IGNORE_OUTPUT
stemnb.WorkerDashboard(worker)"""),
    (PY, """def steps(context, args):
    for i in range(args["n"]):
        context.progress((i + 1) / args["n"])
    return args["n"]

registry.register("steps", stemnb.TaskHandler(steps))
ids = stem.enqueue_many("steps", [{"n": n} for n in range(1, 6)])  # one task per args, in order
[backend.wait_for(t, timeout=60).payload for t in ids]"""),
    (PY, """# NBVAL_IGNORE_OUTPUT
stemnb.progress(ids, backend=backend)"""),
    (MD, "## A batch: submitted once per id\n\nA batch is a group of tasks with an id of your "
         "choosing. Submitting the same id again (a rerun cell, a retried script) enqueues "
         "nothing and hands back the first batch."),
    (PY, """nightly = [stemnb.signature("steps", {"n": n}) for n in (2, 3)]
batch = stem.batch(nightly, batch_id="nightly-2026-11-23")
again = stem.batch(nightly, batch_id="nightly-2026-11-23")
print(batch.created, again.created, again.ids == batch.ids)
print([status.payload for status in batch.wait(60).result()])
print(stem.inspect_batch("nightly-2026-11-23").counts)"""),
    (MD, "## Graceful shutdown"),
    (PY, """worker.shutdown(mode=stemnb.WorkerShutdownMode.SOFT).result(timeout=60)
print(worker.state.value)"""),
    (MD, "## With autoscaling\n\nThe worker grows its pool with the backlog and shrinks it "
         "when idle, within the bounds, with cooldowns."),
    (PY, """autoscaled = stemnb.Worker(
    broker=broker, registry=registry, backend=backend,
    concurrency=16,  # maximum concurrency
    autoscale=stemnb.WorkerAutoscaleConfig(
        enabled=True, min_concurrency=2, max_concurrency=16, backlog_per_isolate=2.0,
        scale_up_cooldown=5.0, scale_down_cooldown=30.0),
)
print(autoscaled.active_concurrency, "running slots to start with, up to",
      autoscaled.autoscale_config.max_concurrency)"""),
    (MD, "## With lifecycle configuration\n\nRecycle isolates after a number of tasks or above "
         "a memory size (each process's real RSS), and bound the soft shutdown."),
    (PY, """guarded = stemnb.Worker(
    broker=broker, registry=registry, backend=backend,
    lifecycle=stemnb.WorkerLifecycleConfig(
        install_signal_handlers=True,
        soft_grace_period=60.0,
        max_tasks_per_isolate=1000,
        max_memory_per_isolate_bytes=256 * 1024 * 1024,  # 256 MiB
    ),
)
print(guarded.lifecycle_config.max_tasks_per_isolate, guarded.lifecycle_config.max_memory_per_isolate_bytes)
for w in (autoscaled, guarded):
    w.close()
broker.close()
backend.close()"""),
]

NOTEBOOKS = {
    "00_quickstart.ipynb": QUICKSTART,
    "01_isolate_run.ipynb": ISOLATE_RUN,
    "02_spawn_and_ports.ipynb": SPAWN_AND_PORTS,
    "03_worker_quickstart.ipynb": WORKER_QUICKSTART,
}


def build(name: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    """Return the notebook ``name`` made of ``cells``, executed in a fresh kernel (outputs kept)."""
    nb = new_notebook(cells=[new_markdown_cell(src) if kind == MD else new_code_cell(src)
                             for kind, src in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    client = NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(HERE)}})
    client.execute()
    return nb


def main(prefixes: list[str]) -> None:
    for name, cells in NOTEBOOKS.items():
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        nb = build(name, cells)
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main(sys.argv[1:])
