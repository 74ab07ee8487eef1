"""The machine's physical limits: raw pipe ping-pong and memcpy bandwidth.

These bound what any process pool can reach here: no call can round-trip faster than a pipe, and
no copy of an array can beat memcpy. Run in its own child (``python -c``) like every system.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from typing import Any

from ._harness import cpu_task, median, p99

SOURCE = """
import sys
from bench._limits import main
main(sys.argv[1], sys.argv[2])
"""


def pipe_pingpong(rounds: int) -> list[float]:
    """Return round-trip times of 1 byte over two ``os.pipe`` to a forked echo process."""
    a_r, a_w = os.pipe()
    b_r, b_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the echo child
        try:
            os.close(a_w)  # else the read below never sees end-of-file
            while data := os.read(a_r, 1):
                os.write(b_w, data)
        finally:
            os._exit(0)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        os.write(a_w, b"x")
        os.read(b_r, 1)
        times.append(time.perf_counter() - t0)
    os.close(a_w)
    os.waitpid(pid, 0)
    for fd in (a_r, b_r, b_w):
        os.close(fd)
    return times


def _echo(conn: Any) -> None:
    while (msg := conn.recv()) is not None:
        conn.send(msg)


def mp_pingpong(rounds: int) -> list[float]:
    """Return round-trip times of an int over a ``multiprocessing.Pipe`` to an echo process."""
    ctx = multiprocessing.get_context("fork")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=_echo, args=(there,))
    proc.start()
    times = []
    for i in range(rounds):
        t0 = time.perf_counter()
        here.send(i)
        here.recv()
        times.append(time.perf_counter() - t0)
    here.send(None)
    proc.join()
    return times


def pipe_bulk_ms(nbytes: int) -> float:
    """Return ms to push ``nbytes`` through an ``os.pipe`` into another process that reads it all."""
    r, w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            left = nbytes
            while left:
                left -= len(os.read(r, min(left, 1 << 20)))
            os.write(done_w, b"!")
        finally:
            os._exit(0)
    payload = memoryview(bytes(nbytes))
    t0 = time.perf_counter()
    sent = 0
    while sent < nbytes:
        sent += os.write(w, payload[sent : sent + (1 << 20)])
    os.read(done_r, 1)
    elapsed = time.perf_counter() - t0
    os.waitpid(pid, 0)
    for fd in (r, w, done_r, done_w):
        os.close(fd)
    return elapsed * 1e3


def memcpy(nbytes: int, repeats: int = 5) -> dict[str, float]:
    """Return median ms of copying ``nbytes`` into a prefaulted array and into a fresh one."""
    import numpy as np

    src = np.ones(nbytes // 8)
    dst = np.zeros_like(src)
    dst[:] = 0.5  # touch every page
    pre, fresh = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        pre.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        c = src.copy()
        fresh.append(time.perf_counter() - t0)
        del c
    t0 = time.perf_counter()
    ones = np.ones(nbytes // 8)
    ones_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    ones.sum()
    sum_ms = (time.perf_counter() - t0) * 1e3
    return {
        "memcpy_prefaulted_ms": median(pre) * 1e3,
        "memcpy_fresh_ms": median(fresh) * 1e3,
        "np_ones_ms": ones_ms,
        "np_sum_ms": sum_ms,
    }


def fork_speedup(n: int, tasks: int = 8, workers: int = 2, repeats: int = 3) -> dict[str, float]:
    """The machine's own ceiling for the CPU-bound row: ``tasks`` x ``cpu_task(n)`` serially here vs
    split over ``workers`` bare forked processes (no pool, no messages), best of ``repeats``
    each, interleaved."""
    serial, forked = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(tasks):
            cpu_task(n)
        serial.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pids = []
        for k in range(workers):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                for _ in range(k, tasks, workers):
                    cpu_task(n)
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        forked.append(time.perf_counter() - t0)
    return {"fork_serial_s": min(serial), "fork_parallel_s": min(forked), "fork_speedup": min(serial) / min(forked)}


def main(config_json: str, out_path: str) -> None:
    """Measure every limit and write them as JSON to ``out_path``."""
    config = json.loads(config_json)
    rounds, nbytes = config.get("rounds", 2000), config.get("bulk_bytes", 100_000_000)
    pipe = pipe_pingpong(rounds)
    mp = mp_pingpong(rounds)
    doc = {
        "pipe_median_us": median(pipe) * 1e6,
        "pipe_p99_us": p99(pipe) * 1e6,
        "mp_median_us": median(mp) * 1e6,
        "mp_p99_us": p99(mp) * 1e6,
        "pipe_bulk_ms": pipe_bulk_ms(nbytes),
        "bytes": nbytes,
        **memcpy(nbytes),
    }
    if config.get("cpu_n"):
        doc.update(fork_speedup(config["cpu_n"]))
    with open(out_path, "w") as f:
        json.dump(doc, f)
