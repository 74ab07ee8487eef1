"""The issue-3 workloads, run inside one task-queue system's own child interpreter.

Started as ``python -c`` (see :data:`CHILD_SOURCE`): stemnb's task functions are defined in
``__main__`` as in a notebook; Celery and Dramatiq tasks live in importable modules because their
workers are separate programs that must import them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from . import _cpu
from ._harness import ROOT, cpu_probe_ms, median, p99
from ._task_systems import TASK_SYSTEMS, TaskSystem

CHILD_SOURCE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})


def noop(context, args):
    return None


def busy_1ms(context, args):
    import time
    end = time.perf_counter() + 0.001
    while time.perf_counter() < end:
        pass


from bench._tasks_child import main
main(globals(), sys.argv[1], sys.argv[2])
"""

KINDS = ("noop", "busy_1ms")


def main(namespace: dict[str, Any], config_json: str, out_path: str) -> None:
    """Measure latency and throughput of each task kind on ``config["system"]``; write JSON."""
    config = json.loads(config_json)
    fns = SimpleNamespace(**{kind: namespace[kind] for kind in KINDS})
    system = TASK_SYSTEMS[config["system"]]()
    doc: dict[str, Any] = {"system": system.name, "how": system.how, "errors": {}, "probes_ms": []}
    out = Path(out_path)
    t0 = time.perf_counter()
    try:
        try:
            system.start(fns)
        except Exception as exc:
            doc["error"] = f"start failed: {type(exc).__name__}: {exc}"[:600]
            raise
        doc["start_s"] = time.perf_counter() - t0
        for kind in KINDS:
            for step in (latency, throughput):
                doc["probes_ms"].append(cpu_probe_ms())
                try:
                    doc.update({f"{kind}_{k}": v for k, v in step(system, kind, config).items()})
                except Exception as exc:  # one failing workload must not hide the others
                    doc["errors"][f"{kind}/{step.__name__}"] = f"{type(exc).__name__}: {exc}"[:400]
                out.write_text(json.dumps(doc))
    finally:
        t0 = time.perf_counter()
        system.close()
        doc["stop_s"] = time.perf_counter() - t0
        out.write_text(json.dumps(doc))


def latency(system: TaskSystem, kind: str, config: dict) -> dict[str, Any]:
    """Time enqueue-to-result of one task at a time (nothing else queued)."""
    for _ in range(config.get("latency_warmup", 20)):
        system.wait(system.enqueue(kind))
    n, budget = config.get("latency_n", 300), config.get("latency_budget_s", 8.0)
    times: list[float] = []
    deadline = time.perf_counter() + budget
    for _ in range(n):
        t0 = time.perf_counter()
        system.wait(system.enqueue(kind))
        times.append(time.perf_counter() - t0)
        if time.perf_counter() > deadline:
            break
    return {
        "lat_median_ms": median(times) * 1e3,
        "lat_p99_ms": p99(times) * 1e3,
        "lat_n": len(times),
    }


def throughput(system: TaskSystem, kind: str, config: dict) -> dict[str, Any]:
    """Enqueue N tasks as fast as possible, then wait for every result; return tasks/s and the
    CPU each task cost, summed over every process involved (see :func:`cpu_meter`)."""
    n = config.get(f"{kind}_n", 2000)
    meter = cpu_meter(system)
    if meter is not None:
        meter.start()
    t0 = time.perf_counter()
    handles = [system.enqueue(kind) for _ in range(n)]
    t_enq = time.perf_counter() - t0
    system.wait_all(handles)
    elapsed = time.perf_counter() - t0
    out: dict[str, Any] = {"tps": n / elapsed, "n": n, "enqueue_per_s": n / t_enq}
    if meter is not None:
        meter.stop()
        per_task = meter.per_task_us(n)
        out["cpu_us"] = per_task.pop("total")
        out.update({f"cpu_us:{name}": us for name, us in per_task.items()})
    return out


def cpu_meter(system: TaskSystem) -> _cpu.CpuMeter | None:
    """A meter of this process's tree (the producer; the worker too when it runs here), the
    worker program's tree and the Redis server, as far as ``system`` has them; None off Linux."""
    if not _cpu.available():
        return None
    worker = system.worker_pid()
    if worker is None:
        trees = {"producer+worker": os.getpid()}
    else:
        trees = {"producer": os.getpid(), "worker": worker}
    redis_pid = _cpu.redis_server_pid() if system.uses_redis else None
    return _cpu.CpuMeter(trees, {"Redis": redis_pid} if redis_pid is not None else {})
