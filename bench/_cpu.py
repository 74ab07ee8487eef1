"""CPU time spent by every process a workload involves: the producer, worker processes and Redis.

A task queue's throughput on a shared two-core host moves with whatever else the host runs; the
CPU each task costs moves much less, and it is what bounds throughput once the cores are busy.
:class:`CpuMeter` reads user + system time from ``/proc`` for whole process trees (every thread
of every descendant that is alive at both readings) and for the Redis server, before and after a
workload. Linux only: elsewhere it reports nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

_PROC = Path("/proc")
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def available() -> bool:
    """True where ``/proc`` has per-process CPU times (Linux)."""
    return (_PROC / "self" / "stat").exists()


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (all its threads), or None once it is gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it (children of any of its threads), depth first."""
    out = [pid]
    try:
        tids = os.listdir(_PROC / str(pid) / "task")
    except OSError:
        return out
    for tid in tids:
        try:
            kids = (_PROC / str(pid) / "task" / tid / "children").read_text().split()
        except OSError:
            continue
        for kid in kids:
            out += descendants(int(kid))
    return out


def redis_server_pid(client: object | None = None) -> int | None:
    """The pid of the Redis server on 127.0.0.1:6379 (``INFO server``), or None when unreachable."""
    try:
        import redis

        conn = client or redis.Redis(host="127.0.0.1", port=6379, socket_timeout=2)
        return int(conn.info("server")["process_id"])  # type: ignore[attr-defined]
    except Exception:
        return None


def _disjoint(trees: dict[str, list[int]]) -> dict[str, list[int]]:
    """Each tree's pids without those of the trees rooted inside it."""
    out = {}
    for name, pids in trees.items():
        inner: set[int] = set()
        for other, other_pids in trees.items():
            if other != name and other_pids and other_pids[0] in pids[1:]:
                inner.update(other_pids)
        out[name] = [pid for pid in pids if pid not in inner]
    return out


@dataclass
class CpuMeter:
    """CPU seconds of named process groups between :meth:`start` and :meth:`stop`.

    ``trees`` maps a name to the root pid of a process tree, whose descendants are found at each
    reading: one started in between counts whole (all its CPU falls in between), one that ended
    in between is not counted. A tree below another one's root (a worker program the producer
    started) counts only in its own group. ``singles`` maps a name to one pid (the Redis server).
    """

    trees: dict[str, int]
    singles: dict[str, int] = field(default_factory=dict)
    _before: dict[str, dict[int, float]] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)

    def _read(self) -> dict[str, dict[int, float]]:
        groups = _disjoint({name: descendants(root) for name, root in self.trees.items()})
        groups.update({name: [pid] for name, pid in self.singles.items()})
        out: dict[str, dict[int, float]] = {}
        for name, pids in groups.items():
            times = {pid: process_cpu_s(pid) for pid in pids}
            out[name] = {pid: t for pid, t in times.items() if t is not None}
        return out

    def start(self) -> None:
        """Take the first reading."""
        self._before = self._read()

    def stop(self) -> dict[str, float]:
        """Take the second reading; return (and keep in ``spent``) CPU seconds per group."""
        after = self._read()
        self.spent = {
            name: sum(t - self._before.get(name, {}).get(pid, 0.0) for pid, t in times.items())
            for name, times in after.items()
        }
        return self.spent

    def per_task_us(self, n: int) -> dict[str, float]:
        """``spent`` in µs per task for ``n`` tasks, with a ``total`` entry."""
        out = {name: s / n * 1e6 for name, s in self.spent.items()}
        out["total"] = sum(out.values())
        return out
