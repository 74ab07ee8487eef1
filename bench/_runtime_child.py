"""The issue-2 workloads, run inside one system's own child interpreter.

The child is started as ``python -c SOURCE`` (see :data:`CHILD_SOURCE`): the task functions are
defined in its ``__main__``, which has no file, as in a notebook. :func:`main` then measures each
workload in turn, writing the JSON document after every step so a timeout keeps what was done.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ._harness import ROOT, cpu_probe_ms, median, p99
from ._systems import SYSTEMS, WORKERS, System

MB = 1_000_000

CHILD_SOURCE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import numpy as np


def identity(x):
    return x


def cpu_task(n):
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def array_sum(a):
    return float(a.sum())


def make_ones(n):
    import numpy as np
    return np.ones(n)


def touch_ends(a):
    return float(a[0] + a[-1])


def materialize_ends(t):
    import sys
    a = t.materialize()
    sys.__dict__.setdefault("_bench_kept", []).append(a)  # freed later, outside the timing
    return float(a[0] + a[-1])


def drop_kept(delay):
    import sys
    import time
    sys.__dict__.setdefault("_bench_kept", []).clear()
    time.sleep(delay)
    return 0


def warm(delay):
    import time
    import numpy
    time.sleep(delay)
    return 0


from bench._runtime_child import main
main(globals(), sys.argv[1], sys.argv[2])
"""

FUNCTIONS = (
    "identity",
    "cpu_task",
    "array_sum",
    "make_ones",
    "touch_ends",
    "materialize_ends",
    "drop_kept",
    "warm",
)


def main(namespace: dict[str, Any], config_json: str, out_path: str) -> None:
    """Measure every workload of ``config["system"]`` and write the results to ``out_path``."""
    config = json.loads(config_json)
    fns = SimpleNamespace(**{name: namespace[name] for name in FUNCTIONS})
    doc: dict[str, Any] = {"system": config["system"], "errors": {}, "probes_ms": []}
    out = Path(out_path)
    system = SYSTEMS[config["system"]]()
    doc["how"] = system.how
    t0 = time.perf_counter()
    system.start()
    system.warm(fns.warm)
    doc["pool_start_s"] = time.perf_counter() - t0
    for step in STEPS:
        if step.__name__ in config.get("skip", ()):
            continue
        doc["probes_ms"].append(cpu_probe_ms())
        try:
            doc.update(step(system, fns, config))
        except Exception as exc:  # one failing workload must not hide the others
            doc["errors"][step.__name__] = f"{type(exc).__name__}: {exc}"[:400]
        out.write_text(json.dumps(doc))
    t0 = time.perf_counter()
    system.close()
    doc["stop_s"] = time.perf_counter() - t0
    out.write_text(json.dumps(doc))


def footprint(system: System, fns: SimpleNamespace, config: dict) -> dict[str, Any]:
    """Idle the warm pool for 2 s; return its processes, their PSS and the CPU they used."""
    import psutil

    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    before = {p.pid: _cpu_seconds(p) for p in procs}
    time.sleep(config.get("idle_s", 2.0))
    after = {p.pid: _cpu_seconds(p) for p in procs}
    used = sum(after[pid] - before[pid] for pid in before if min(before[pid], after[pid]) >= 0)
    pss = [_pss(p) for p in procs[1:]]
    return {
        "procs": len(procs) - 1,
        "pss_mb": sum(pss) / 2**20,
        "driver_pss_mb": _pss(me) / 2**20,
        "idle_cpu_pct": 100 * used / config.get("idle_s", 2.0),
    }


def _cpu_seconds(p: Any) -> float:
    try:
        t = p.cpu_times()
        return t.user + t.system
    except Exception:  # the process ended meanwhile: left out of the sum
        return -1.0


def _pss(p: Any) -> int:
    try:
        return p.memory_full_info().pss
    except Exception:
        return 0


def oneshot(system: System, fns: SimpleNamespace, config: dict) -> dict[str, Any]:
    """Time sequential submit-and-wait calls of the ``__main__`` function ``identity``."""
    for i in range(config.get("oneshot_warmup", 100)):
        system.call(fns.identity, i)
    n, budget = config.get("oneshot_n", 2000), config.get("oneshot_budget_s", 6.0)
    times: list[float] = []
    deadline = time.perf_counter() + budget
    for i in range(n):
        t0 = time.perf_counter()
        result = system.call(fns.identity, i)
        times.append(time.perf_counter() - t0)
        assert result == i
        if time.perf_counter() > deadline:
            break
    return {
        "oneshot_median_us": median(times) * 1e6,
        "oneshot_p99_us": p99(times) * 1e6,
        "oneshot_n": len(times),
    }


def throughput(system: System, fns: SimpleNamespace, config: dict) -> dict[str, Any]:
    """Time N individual submits (all first, then every result) and a chunked map of N items."""
    n = config.get("calls_n", 20_000)
    out: dict[str, Any] = {"calls_n": n}
    t0 = time.perf_counter()
    results = system.call_many(fns.identity, [(i,) for i in range(n)])
    elapsed = time.perf_counter() - t0
    if results is None:
        out["submit_per_s"] = "n/a"
    else:
        assert results == list(range(n))
        out["submit_per_s"] = n / elapsed
    chunksize = math.ceil(n / (4 * 2))
    out["map_chunksize"] = chunksize
    rates = []
    for _ in range(config.get("map_repeats", 3)):
        t0 = time.perf_counter()
        mapped = system.map(fns.identity, list(range(n)), chunksize)
        if mapped is None:
            out["map_per_s"] = "n/a"
            return out
        rates.append(n / (time.perf_counter() - t0))
        assert list(mapped) == list(range(n))
    out["map_per_s"] = median(rates)
    return out


def arrays(system: System, fns: SimpleNamespace, config: dict) -> dict[str, Any]:
    """Time a 100 MB float64 array as argument (summed there) and as result (np.ones there)."""
    import numpy as np

    nbytes, repeats = config.get("array_bytes", 100 * MB), config.get("array_repeats", 3)
    count = nbytes // 8
    arg_t, res_t = [], []
    for rep in range(repeats + 1):  # the first round is the unmeasured warm-up
        a = np.ones(count)  # a new object for every call, made outside the timing
        t0 = time.perf_counter()
        total = system.call(fns.array_sum, a)
        t_arg = time.perf_counter() - t0
        assert total == count, total
        del a
        t0 = time.perf_counter()
        r = system.call(fns.make_ones, count)
        t_res = time.perf_counter() - t0
        assert r.nbytes == count * 8
        del r
        if rep:
            arg_t.append(t_arg)
            res_t.append(t_res)
    return {"arg100_ms": median(arg_t) * 1e3, "res100_ms": median(res_t) * 1e3}


def transfer(system: System, fns: SimpleNamespace, config: dict) -> dict[str, Any]:
    """Time sending the system's constant-cost array of 1 MB and of 1 GB (made outside the timing)."""
    out: dict[str, Any] = {}
    for key, nbytes in (
        ("tr1mb_ms", MB),
        ("tr1gb_ms", config.get("big_transfer_bytes", 1000 * MB)),
    ):
        handle = system.transferable(nbytes)
        if handle is None:
            out[key] = "n/a"
            continue
        times = []
        for rep in range(config.get("transfer_repeats", 3) + 1):
            t0 = time.perf_counter()
            assert system.call(fns.touch_ends, handle) == 2.0
            if rep:
                times.append(time.perf_counter() - t0)
        out[key] = median(times) * 1e3
        del handle
    for key, nbytes, warm in (
        ("ttd1mb_ms", MB, False),
        ("ttd1gb_ms", config.get("big_transfer_bytes", 1000 * MB), False),
        ("ttd1mb_warm_ms", MB, True),
        ("ttd1gb_warm_ms", config.get("big_transfer_bytes", 1000 * MB), True),
    ):
        times = []
        for rep in range(config.get("transfer_repeats", 3) + 1):
            once = system.transferable_once(nbytes)  # made (one copy) outside the timing
            if once is None:
                break
            if warm:  # one tiny untimed call per worker first, as the shared_array rows are timed warm
                system.parallel(fns.identity, [(0,)] * WORKERS)
            t0 = time.perf_counter()
            assert system.call(fns.materialize_ends, once) == 2.0
            if rep:
                times.append(time.perf_counter() - t0)
            del once
            # The worker keeps what it materialized: dropping 1 GB of shared pages costs ~60 ms
            # wherever it happens, which is the price of freeing memory, not of the transfer.
            system.parallel(fns.drop_kept, [(0.02,)] * (2 * WORKERS))
        out[key] = median(times) * 1e3 if times else "n/a"
    out["tiny_cold_ms"] = _tiny_cold_ms(system, fns, config)
    return out


def _tiny_cold_ms(system: System, fns: SimpleNamespace, config: dict) -> Any:
    """The one-shot rows' control: a tiny call, timed in their conditions (a 1 GB one-shot
    just built in this process, the workers resting since their last call), sending nothing."""
    times = []
    for rep in range(config.get("transfer_repeats", 3) + 1):
        once = system.transferable_once(config.get("big_transfer_bytes", 1000 * MB))
        if once is None:
            return "n/a"
        t0 = time.perf_counter()
        assert system.call(fns.identity, 0) == 0
        if rep:
            times.append(time.perf_counter() - t0)
        del once
        system.parallel(fns.drop_kept, [(0.02,)] * (2 * WORKERS))
    return median(times) * 1e3


def cpu(system: System, fns: SimpleNamespace, config: dict) -> dict[str, Any]:
    """Best-of-3 serial (in this process) vs parallel (on the pool) time of 8 CPU-bound tasks."""
    n, tasks = config["cpu_n"], config.get("cpu_tasks", 8)
    serial, parallel = [], []
    for _ in range(config.get("cpu_repeats", 3)):  # interleaved: the host's speed drifts
        serial.append(_timed(lambda: [fns.cpu_task(n) for _ in range(tasks)]))
        parallel.append(_timed(lambda: system.parallel(fns.cpu_task, [(n,)] * tasks)))
    return {
        "cpu_serial_s": min(serial),
        "cpu_parallel_s": min(parallel),
        "cpu_speedup": min(serial) / min(parallel),
    }


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


STEPS = (footprint, oneshot, throughput, arrays, transfer, cpu)
