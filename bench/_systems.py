"""One adapter per process-pool system: how the runtime benchmark calls each of them.

Every adapter makes a warm pool of 2 workers and offers the same verbs: ``call`` (one submit and
wait), ``call_many`` (submit all, then wait for each), ``map`` (the system's own chunked map),
``parallel`` (the CPU workload) and ``transferable`` (its constant-cost array, if it has one). A verb
a system lacks returns ``None`` and is reported as "n/a". The calls are the ones listed in
``/work/shared/reference/peer-benchmarks.md`` ("How each system was called").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

WORKERS = 2


class System:
    """A process pool under test; subclasses implement the verbs their system has."""

    name = "?"
    how = ""

    def start(self) -> None:
        """Create the pool (workers may start lazily; :meth:`warm` makes them start)."""

    def warm(self, warm_fn: Callable[[float], int]) -> None:
        """Run ``warm_fn`` on every worker so each has started and imported numpy."""
        self.parallel(warm_fn, [(0.05,)] * (4 * WORKERS))

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)`` and wait for its result."""
        raise NotImplementedError

    def call_within(self, timeout: float, fn: Callable[..., Any], *args: Any) -> Any:
        """Submit ``fn(*args)`` and wait at most ``timeout`` seconds; raise on error or timeout."""
        raise NotImplementedError

    def abandon(self) -> None:
        """Stop a pool that may be broken or stuck, without waiting for its work."""
        self.close()

    def call_many(self, fn: Callable[..., Any], arglist: Sequence[tuple]) -> list | None:
        """Submit every call first, then wait for each result in order; ``None`` if unsupported."""
        return None

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], chunksize: int) -> list | None:
        """Return ``[fn(x) for x in items]`` through the system's chunked map; ``None`` if none."""
        return None

    def parallel(self, fn: Callable[..., Any], arglist: Sequence[tuple]) -> list:
        """Run all calls concurrently on the pool and return their results in order."""
        out = self.call_many(fn, arglist)
        assert out is not None, f"{self.name} has no concurrent submit"
        return out

    def transferable(self, nbytes: int) -> Any | None:
        """Return a float64 array of ``nbytes`` that moves at constant cost, or ``None`` if none."""
        return None

    def transferable_once(self, nbytes: int) -> Any | None:
        """Return a one-shot transferable of a float64 array of ``nbytes`` (Dart's
        ``TransferableTypedData``: copied once when made, then moved), or ``None`` if none."""
        return None

    def close(self) -> None:
        """Stop the pool and its workers."""


class Stemnb(System):
    name = "stemnb"
    how = (
        "`pool = stemnb.IsolatePool(2)`; `pool.run(f, x).result()`; `pool.map(f, xs, chunksize=c)`; "
        "transferable: `stemnb.shared_array(n, fill=1.0)` made once, and a new `TransferableTypedData(arr)` per call"
    )

    def start(self) -> None:
        import stemnb

        self.stemnb = stemnb
        self.pool = stemnb.IsolatePool(WORKERS)

    def call(self, fn, *args):
        return self.pool.run(fn, *args).result()

    def call_within(self, timeout, fn, *args):
        return self.pool.run(fn, *args).result(timeout)

    def call_many(self, fn, arglist):
        futures = [self.pool.run(fn, *a) for a in arglist]
        return [f.result() for f in futures]

    def map(self, fn, items, chunksize):
        return list(self.pool.map(fn, items, chunksize=chunksize))

    def transferable(self, nbytes):
        return self.stemnb.shared_array((nbytes // 8,), "float64", fill=1.0)

    def transferable_once(self, nbytes):
        import numpy as np

        return self.stemnb.TransferableTypedData(np.ones(nbytes // 8))

    def close(self) -> None:
        self.pool.close()


class _FuturesExecutor(System):
    """Shared verbs of the ``concurrent.futures``-style executors (loky, cf)."""

    ex: Any

    def call(self, fn, *args):
        return self.ex.submit(fn, *args).result()

    def call_within(self, timeout, fn, *args):
        return self.ex.submit(fn, *args).result(timeout)

    def abandon(self) -> None:
        self.ex.shutdown(wait=False, cancel_futures=True)

    def call_many(self, fn, arglist):
        futures = [self.ex.submit(fn, *a) for a in arglist]
        return [f.result() for f in futures]

    def map(self, fn, items, chunksize):
        return list(self.ex.map(fn, items, chunksize=chunksize))

    def close(self) -> None:
        self.ex.shutdown(wait=True)


class Loky(_FuturesExecutor):
    name = "loky"
    how = "`get_reusable_executor(2).submit(f, x).result()`; `ex.map(f, xs, chunksize=c)`"

    def start(self) -> None:
        from loky import get_reusable_executor

        self.ex = get_reusable_executor(max_workers=WORKERS)

    def abandon(self) -> None:
        self.ex.shutdown(wait=False, kill_workers=True)


class ConcurrentFutures(_FuturesExecutor):
    name = "cf"
    how = "`ProcessPoolExecutor(2)` (default start method: fork on Linux 3.11); `ex.submit(f, x).result()`; `ex.map(f, xs, chunksize=c)`"

    def start(self) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.ex = ProcessPoolExecutor(WORKERS)


class MpPool(System):
    name = "mp-pool"
    how = "`multiprocessing.Pool(2)` (fork); `pool.apply_async(f, (x,)).get()`; `pool.map(f, xs, chunksize=c)`"

    def start(self) -> None:
        import multiprocessing

        self.pool = multiprocessing.Pool(WORKERS)

    def call(self, fn, *args):
        return self.pool.apply_async(fn, args).get()

    def call_within(self, timeout, fn, *args):
        return self.pool.apply_async(fn, args).get(timeout)

    def abandon(self) -> None:
        self.pool.terminate()
        self.pool.join()

    def call_many(self, fn, arglist):
        results = [self.pool.apply_async(fn, a) for a in arglist]
        return [r.get() for r in results]

    def map(self, fn, items, chunksize):
        return self.pool.map(fn, items, chunksize=chunksize)

    def close(self) -> None:
        self.pool.close()
        self.pool.join()


class Joblib(System):
    name = "joblib"
    how = (
        "one-shot: `par([delayed(f)(x)])[0]` inside one `with Parallel(n_jobs=2) as par`; "
        "arrays, CPU, map: a fresh `Parallel(n_jobs=2)` per call (`batch_size=c` for map); no futures API"
    )

    def start(self) -> None:
        import joblib

        self.joblib = joblib
        self.par = joblib.Parallel(n_jobs=WORKERS)
        self.par.__enter__()

    def call(self, fn, *args):
        # A fresh Parallel per array call: a reused one may resend a stale memmap of an array
        # changed in place (see the reference); for tiny calls we reuse the open one.
        if args and hasattr(args[0], "nbytes"):
            return self.joblib.Parallel(n_jobs=WORKERS)([self.joblib.delayed(fn)(*args)])[0]
        return self.par([self.joblib.delayed(fn)(*args)])[0]

    def call_within(self, timeout, fn, *args):
        run = self.joblib.Parallel(n_jobs=WORKERS, timeout=timeout)
        return run([self.joblib.delayed(fn)(*args)])[0]

    def parallel(self, fn, arglist):
        return self.joblib.Parallel(n_jobs=WORKERS)(self.joblib.delayed(fn)(*a) for a in arglist)

    def map(self, fn, items, chunksize):
        run = self.joblib.Parallel(n_jobs=WORKERS, batch_size=chunksize)
        return run(self.joblib.delayed(fn)(x) for x in items)

    def close(self) -> None:
        from joblib.externals.loky import get_reusable_executor

        self.par.__exit__(None, None, None)
        get_reusable_executor().shutdown(wait=True)


class Ray(System):
    name = "ray"
    how = (
        "`ray.init(num_cpus=2)`; `ray.get(rf.remote(x))` with `rf = ray.remote(f)` made once; "
        "bulk: refs then `ray.get(refs)`; transferable: `ray.put(arr)` made outside the timing, ref passed"
    )

    def start(self) -> None:
        import logging

        import ray

        self.ray = ray
        self._remote: dict[Any, Any] = {}
        ray.init(
            num_cpus=WORKERS,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            configure_logging=False,
        )

    def _rf(self, fn):
        if fn not in self._remote:
            self._remote[fn] = self.ray.remote(fn)
        return self._remote[fn]

    def call(self, fn, *args):
        return self.ray.get(self._rf(fn).remote(*args))

    def call_within(self, timeout, fn, *args):
        return self.ray.get(self._rf(fn).remote(*args), timeout=timeout)

    def call_many(self, fn, arglist):
        rf = self._rf(fn)
        return self.ray.get([rf.remote(*a) for a in arglist])

    def transferable(self, nbytes):
        import numpy as np

        return self.ray.put(np.ones(nbytes // 8))

    def close(self) -> None:
        self.ray.shutdown()


SYSTEMS: dict[str, type[System]] = {
    cls.name: cls for cls in (Stemnb, Loky, ConcurrentFutures, MpPool, Joblib, Ray)
}
