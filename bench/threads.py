"""Native-thread oversubscription: numpy matrix products on a 2-process pool, stemnb beside its peers.

Each pool process runs BLAS. Uncapped, every process starts one BLAS thread per core, so two
processes run 2 × cores threads on the cores; stemnb (as joblib) caps each process at
``cores // processes`` threads. Every system runs in its own fresh ``python -c`` child, one after
the other, ``--rounds`` times in rotated order; cells are medians.

Run by hand from the repository root (never by the test suite)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python -m bench.threads --rounds 3

(those two variables, set on some hosts here, slow a current OpenBLAS). It prints a Markdown
report and writes it to ``bench/results/threads-<UTC date-time>.md``.
"""

from __future__ import annotations

import sys
from typing import Any

from . import _harness as h

ALL_SYSTEMS = ("stemnb", "stemnb-uncapped", "joblib", "loky", "mp-pool", "serial")

CHILD_SOURCE = r'''
import json, statistics, sys, time
config, out = json.loads(sys.argv[1]), sys.argv[2]
system, n, tasks, repeats = config["system"], config["n"], config["tasks"], config["repeats"]

def matmul(n):
    import numpy
    a = numpy.random.default_rng(n).random((n, n))
    return float((a @ a)[0, 0])

def blas_threads():
    from threadpoolctl import threadpool_info
    import numpy
    return max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")

import loky
cores = loky.cpu_count()
if system in ("stemnb", "stemnb-uncapped"):
    import stemnb
    pool = stemnb.IsolatePool(2, inner_threads=cores if system == "stemnb-uncapped" else None)
    parallel = lambda xs: list(pool.map(matmul, xs))
    threads = lambda: pool.run(blas_threads).result()
    close = pool.close
elif system == "joblib":
    import joblib
    par = joblib.Parallel(n_jobs=2)
    parallel = lambda xs: par(joblib.delayed(matmul)(x) for x in xs)
    threads = lambda: par([joblib.delayed(blas_threads)()])[0]
    close = lambda: None
elif system == "loky":
    ex = loky.get_reusable_executor(2)
    parallel = lambda xs: list(ex.map(matmul, xs))
    threads = lambda: ex.submit(blas_threads).result()
    close = lambda: ex.shutdown(wait=True)
elif system == "mp-pool":
    import multiprocessing
    mp = multiprocessing.get_context("fork").Pool(2)
    parallel = lambda xs: mp.map(matmul, xs, chunksize=1)
    threads = lambda: mp.apply(blas_threads)
    close = mp.terminate
else:  # serial: one process, every core to its BLAS
    parallel = lambda xs: [matmul(x) for x in xs]
    threads = blas_threads
    close = lambda: None

parallel([min(n, 200)] * 4)  # warm: processes started, numpy imported
walls = []
for _ in range(repeats):
    t0 = time.perf_counter()
    parallel([n] * tasks)
    walls.append(time.perf_counter() - t0)
doc = {"wall_s": statistics.median(walls), "blas_threads": threads(), "cores": cores}
close()
json.dump(doc, open(out, "w"))
'''


def main(argv: list[str] | None = None) -> int:
    parser = h.cli("BLAS thread oversubscription on a 2-process pool", ALL_SYSTEMS, "threads")
    args = parser.parse_args(argv)
    systems = h.chosen_systems(parser, args.systems, ALL_SYSTEMS)
    size = {"n": 300, "tasks": 4, "repeats": 1} if args.quick else {"n": 1500, "tasks": 8, "repeats": 5}

    def measure(name: str, label: str) -> dict[str, Any]:
        print(f"{label}{name} ...", file=sys.stderr, flush=True)
        return h.run_child(CHILD_SOURCE, {"system": name, **size}, timeout=600)

    merged = h.median_docs(h.interleaved_rounds(systems, args.rounds, measure))
    ok = {k: v for k, v in merged.items() if "error" not in v}
    best = min((v["wall_s"] for k, v in ok.items() if k != "serial"), default=None)
    rows = []
    for name in systems:
        doc = merged[name]
        if "error" in doc:
            rows.append([name, "—", "—", "—", doc["error"]])
            continue
        ratio = f"×{doc['wall_s'] / best:.2f}" if best else ""
        rows.append([name, f"{doc['wall_s'] * 1e3:,.0f}", int(doc["blas_threads"]), ratio, ""])
    lines = [
        *h.short_head("BLAS oversubscription"),
        f"{size['tasks']} × `a @ a` on a {size['n']}×{size['n']} float64 array, on a 2-process pool "
        f"(median of {size['repeats']} after a warm-up; median over {args.rounds} round(s)). "
        "`serial` is one process with every core to its BLAS: the machine's own speed for this work.",
        "",
        *h.simple_table(["system", "wall ms", "BLAS threads per process", "vs fastest pool", "error"], rows),
        "",
        f"Versions: {h.versions(['numpy', 'stemnb', 'loky', 'joblib', 'threadpoolctl'])}",
    ]
    h.publish(args.name, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
