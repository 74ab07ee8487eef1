"""Capping native thread pools (BLAS, OpenMP, numexpr, numba) in pool processes.

A numpy matrix product in each of N pool processes starts as many BLAS threads as the machine has
cores, so N processes run N x cores threads that fight for the cores and run slower than one
process alone (joblib#834). As joblib does, a pool process starts with its native libraries
capped at ``cores // N`` threads (at least one), through the environment variables those
libraries read when they load. A variable already set in the notebook's environment is left as
it is: the user's choice wins.
"""

from __future__ import annotations

import os

__all__ = ["THREAD_VARIABLES", "inner_thread_env", "usable_cores"]

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "NUMBA_NUM_THREADS",
)
"""The variables set in a pool process, one per native thread pool it may load."""


def usable_cores() -> int:
    """The cores this process may use: ``loky.cpu_count()``, which respects affinity and cgroup limits."""
    from ._loky import loky_imports

    with loky_imports:
        from loky import cpu_count
    return int(cpu_count())


def inner_thread_env(threads: int) -> dict[str, str]:
    """The environment that caps each native thread pool at ``threads``, but for variables the user set."""
    return {name: str(threads) for name in THREAD_VARIABLES if name not in os.environ}
