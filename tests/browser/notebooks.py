"""The notebooks the browser tests open, written with nbformat into a temporary folder."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

GATES = "progress-gates"  # folder (beside the notebooks) whose files release the progress tasks

NOTEBOOKS: dict[str, list[str]] = {
    "pool_dashboard.ipynb": [
        "import stemnb\n"
        "def square(x):\n"
        "    return x * x\n"
        "pool = stemnb.IsolatePool(2, debug_name='lab')\n"
        "assert [f.result() for f in [pool.run(square, i) for i in range(3)]] == [0, 1, 4]",
        "dash = stemnb.PoolDashboard(pool, interval=0.2)\n"
        "dash",
    ],
    "worker_dashboard.ipynb": [
        "import stemnb\n"
        "registry = stemnb.TaskRegistry()\n"
        "def add(context, args):\n"
        "    return args['a'] + args['b']\n"
        "registry.register('add', stemnb.TaskHandler(add, isolate=False))\n"
        "broker, backend = stemnb.InMemoryBroker(), stemnb.InMemoryResultBackend()\n"
        "worker = stemnb.Worker(broker, registry, backend, concurrency=1).start()\n"
        "stem = stemnb.Stem(broker, backend, registry=registry)",
        "dash = stemnb.WorkerDashboard(worker, interval=0.2)\n"
        "dash",
        "ids = [stem.enqueue('add', {'a': i, 'b': i}) for i in range(3)]\n"
        "assert [backend.wait_for(t, timeout=60).payload for t in ids] == [0, 2, 4]",
    ],
    "pool_dashboard_busy.ipynb": [
        "import time\n"
        "from pathlib import Path\n"
        "import stemnb\n"
        f"GATE = Path({GATES!r}).resolve() / 'busy'\n"
        "def wait_for_gate(gate):\n"
        "    while not gate.exists():\n"
        "        time.sleep(0.02)  # the call's own work: waiting for the test to release it\n"
        "    return 'released'\n"
        "pool = stemnb.IsolatePool(2, debug_name='busy')\n"
        "dash = stemnb.PoolDashboard(pool, interval=0.2)\n"
        "dash",
        "print('cell blocks', flush=True)\n"
        "print(stemnb.run(wait_for_gate, GATE).result(), 'with pool', pool.statistics().state)",
    ],
    "progress.ipynb": [
        "import os, time\n"
        "from pathlib import Path\n"
        "import stemnb\n"
        f"GATES = Path({GATES!r}).resolve()\n"
        "def wait_for_gate(i):\n"
        "    while not (GATES / f'gate{i}').exists():\n"
        "        time.sleep(0.02)  # the task's own work: waiting for the test to release it\n"
        "    return i\n"
        "pool = stemnb.IsolatePool(4, debug_name='progress')\n"
        "futures = [pool.run(wait_for_gate, i) for i in range(4)]",
        "bar = stemnb.progress(futures, label='tasks', interval=0.1)",
    ],
}


def write_notebooks(folder: Path) -> list[Path]:
    """Write every test notebook into ``folder`` (and the empty gates folder); returns their paths."""
    (folder / GATES).mkdir(exist_ok=True)
    paths = []
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=[new_code_cell(src) for src in cells])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        path = folder / name
        nbformat.write(nb, path)
        paths.append(path)
    return paths
