"""Shared plumbing of the benchmarks: child processes, statistics, machine facts and Markdown.

Every system is measured in its own fresh child interpreter started with ``python -c SOURCE``, so
``__main__`` has no file, exactly as in a Jupyter kernel. The child writes one JSON document to a
path given on its command line; the driver collects them and renders the tables.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


def median(values: Sequence[float]) -> float:
    """Return the median of ``values`` (``nan`` when empty)."""
    return statistics.median(values) if values else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    """Return the ``fraction`` (0–1) percentile of ``values`` by nearest rank (``nan`` when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1))]


def p99(values: Sequence[float]) -> float:
    """Return the 99th percentile of ``values`` by nearest rank (``nan`` when empty)."""
    return percentile(values, 0.99)


def cpu_task(n: int) -> int:
    """Burn CPU in pure Python for a time proportional to ``n``; return a checksum."""
    s = 0
    for i in range(n):
        s += i * i % 7
    return s


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """Return the shortest wall time in seconds of ``repeats`` calls of ``fn``."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def cpu_probe_ms() -> float:
    """Return best-of-3 ms of ``cpu_task(100_000)``: how fast this host is right now."""
    return best_of(3, lambda: cpu_task(100_000)) * 1e3


def calibrate_cpu_task(target_s: float) -> int:
    """Return the ``n`` for which ``cpu_task(n)`` takes about ``target_s`` seconds here, now."""
    n = 1_000_000
    t = best_of(3, lambda: cpu_task(n))
    return max(1000, int(n * target_s / t))


def child_env() -> dict[str, str]:
    """Return the environment for children: the repository root importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _spawn(args: list[str], cwd: str | None, stdout: Any, stderr: Any) -> subprocess.Popen:
    """Start ``python *args`` in its own session, so the whole group can be ended on a timeout."""
    return subprocess.Popen(
        [sys.executable, *args],
        env=child_env(),
        cwd=cwd,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )


def _end_group(proc: subprocess.Popen) -> None:
    """End ``proc`` and everything it started (workers, daemons) if it is still running."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run_child(source: str, config: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run ``python -c source config_json out_path`` and return the JSON document it wrote.

    A child that fails, times out (its whole process group is then killed) or writes nothing
    yields ``{"error": ...}`` with the reason and the tail of its stderr, plus whatever it had
    written so far, so one broken system never stops the run.
    """
    with tempfile.TemporaryDirectory(prefix="stemnb-bench-") as tmp:
        out, err_path = Path(tmp) / "result.json", Path(tmp) / "stderr.txt"
        with open(err_path, "w") as err:
            proc = _spawn(
                ["-c", source, json.dumps(config), str(out)], tmp, subprocess.DEVNULL, err
            )
            try:
                proc.wait(timeout)
                error = None if proc.returncode == 0 else f"exit code {proc.returncode}"
            except subprocess.TimeoutExpired:
                error = f"timed out after {timeout:.0f} s"
            finally:
                _end_group(proc)
        doc = json.loads(out.read_text()) if out.exists() else {}
        if error:
            doc.setdefault("error", error if doc else f"{error}, no result")
            doc["stderr"] = _tail(err_path.read_text(errors="replace"))
        return doc


def _tail(text: str | bytes | None, lines: int = 15) -> str:
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    return "\n".join((text or "").strip().splitlines()[-lines:])


def time_to_marker(source: str, marker: str, timeout: float) -> tuple[float, float | None]:
    """Start ``python -c source``; return (seconds until it prints ``marker``, its SHUTDOWN seconds).

    The child may print ``SHUTDOWN <seconds>`` after the marker (its stop call's duration), else
    the second value is ``None``. Raises ``RuntimeError`` with the child's stderr if the marker
    does not come within ``timeout`` seconds; the child's process group is always ended.
    """
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = _spawn(["-c", source], None, subprocess.PIPE, err)
        deadline = t0 + timeout
        elapsed: float | None = None
        shutdown: float | None = None
        try:
            for line in _lines_until(proc, deadline):
                if line.startswith(marker) and elapsed is None:
                    elapsed = time.perf_counter() - t0
                elif line.startswith("SHUTDOWN"):
                    shutdown = float(line.split()[1])
            proc.wait(max(0.1, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            pass
        finally:
            _end_group(proc)
        if elapsed is None:
            err.seek(0)
            raise RuntimeError(
                f"no {marker!r} from child within {timeout:.0f} s: {_tail(err.read())}"
            )
        return elapsed, shutdown


def _lines_until(proc: subprocess.Popen, deadline: float) -> Iterator[str]:
    """Yield ``proc``'s stdout lines as they come, until end-of-file or ``deadline``."""
    assert proc.stdout is not None
    fd, buf = proc.stdout.fileno(), b""
    while (left := deadline - time.perf_counter()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            yield line.decode(errors="replace")


def machine_facts() -> dict[str, str]:
    """Return CPU model, core count, RAM, OS and Python version of this host."""
    import psutil

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram_gib": f"{psutil.virtual_memory().total / 2**30:.1f}",
        "os": platform.platform(),
        "python": platform.python_version(),
        "load_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def versions(modules: Iterable[str]) -> str:
    """Return ``"name x.y, ..."`` for each importable module of ``modules``."""
    from importlib import metadata

    out = []
    for name in modules:
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


@dataclass(frozen=True)
class Row:
    """One measured quantity: its label, unit, which direction is better and the issue's target."""

    key: str
    label: str
    lower_is_better: bool | None  # None: descriptive, no ratio
    target: str = ""
    fmt: str = "{:,.0f}"


def fmt_value(row: Row, value: Any) -> str:
    """Render one cell: a number with the row's format, a string as is, missing as an em dash."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isnan(value):
        return "—"
    return row.fmt.format(value)


def best_peer(
    row: Row, values: dict[str, Any], subjects: Sequence[str]
) -> tuple[str, float] | None:
    """Return (name, value) of the best numeric peer (every system not in ``subjects``) for ``row``."""
    peers = [
        (name, float(v))
        for name, v in values.items()
        if name not in subjects and isinstance(v, (int, float)) and not math.isnan(float(v))
    ]
    if row.lower_is_better is None or not peers:
        return None
    pick = min if row.lower_is_better else max
    return pick(peers, key=lambda p: p[1])


def advantage(row: Row, subject: Any, peer: float) -> str:
    """Return how many times better the subject is than ``peer`` ("×2.10"; below 1 means worse)."""
    if not isinstance(subject, (int, float)) or math.isnan(float(subject)):
        return "—"
    if subject == peer:
        return "×1.00"
    if row.lower_is_better:
        ratio = peer / subject if subject else math.inf
    else:
        ratio = subject / peer if peer else math.inf
    return f"×{ratio:.2f}"


def ratio_table(
    rows: Sequence[Row], results: dict[str, dict[str, Any]], subjects: Sequence[str]
) -> list[str]:
    """Render Markdown: a row per measure, a column per system, the best peer, and per subject its ratio.

    Peers are the systems not in ``subjects``; the ratio says how many times better the subject is.
    """
    systems = list(results)
    subjects = [s for s in subjects if s in results]
    head = ["measure", "target", *systems, "best peer", *(f"{s} vs best peer" for s in subjects)]
    lines = [
        "| " + " | ".join(head) + " |",
        "|---|---|" + "---:|" * (len(systems) + 1 + len(subjects)),
    ]
    for row in rows:
        values = {name: results[name].get(row.key) for name in systems}
        cells = [row.label, row.target] + [fmt_value(row, values[name]) for name in systems]
        peer = best_peer(row, values, subjects)
        if peer is None:
            cells += [""] * (1 + len(subjects))
        else:
            cells.append(f"{peer[0]} {fmt_value(row, peer[1])}")
            cells += [advantage(row, values.get(s), peer[1]) for s in subjects]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def simple_table(head: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Render a plain Markdown table (first column left-aligned, the rest right-aligned)."""
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def short_head(title: str) -> list[str]:
    """The head of a small benchmark's report: its title with the UTC time, then the machine."""
    facts = machine_facts()
    return [
        f"# {title} — {utc_now()}",
        "",
        "Machine: {cpu}, {cores} cores, {ram_gib} GiB RAM, Python {python}; load average at start "
        "{load_at_start}.".format(**facts),
        "",
    ]


def publish(name: str, lines: Sequence[str]) -> None:
    """Print the report, write it (see :func:`write_report`) and say where, on stderr."""
    print("\n".join(lines))
    print(f"\nwritten to {write_report(name, lines)}", file=sys.stderr)


def write_report(name: str, lines: Sequence[str], out_dir: Path | None = None) -> Path:
    """Write the report to ``bench/results/<name>-<UTC date and time>.md`` and return its path."""
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d-%H%M")
    path = out_dir / f"{name}-{stamp}.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def machine_line(notes: dict[str, Any]) -> str:
    """The report's line on the machine, its load and the run's length (``notes["machine"]`` from
    :func:`machine_facts`, ``notes["duration_min"]``)."""
    m = notes["machine"]
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}, Python {m['python']}; "
        f"load average at start {m['load_at_start']}. **The machine was shared with other agents' builds "
        f"and tests during the run**, so absolute numbers are noisy; compare within a row. Run took "
        f"{notes['duration_min']:.1f} min."
    )


def utc_now() -> str:
    """Return the current UTC time as ``YYYY-MM-DD HH:MM UTC``."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def cli(description: str, all_systems: Sequence[str], name: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--systems``, ``--quick``, ``--name`` and ``--rounds``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--systems", default=",".join(all_systems), help="comma-separated subset")
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks the harness, not speed"
    )
    parser.add_argument("--name", default=name, help="results file prefix")
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        help="measure every system this many times, interleaved; report medians (default 1)",
    )
    return parser


def positive_int(text: str) -> int:
    """An argparse type: an integer ≥ 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def interleaved_rounds(
    systems: Sequence[str], rounds: int, measure: Callable[[str, str], dict[str, Any]]
) -> list[dict[str, dict[str, Any]]]:
    """``measure(name, label)`` of every system, ``rounds`` times, each round in an order rotated
    by one (so no system always follows the same one); the documents of each round, by system in
    the order of ``systems``. ``label`` ("round 2/5: ") prefixes progress lines."""
    per_round = []
    for r in range(rounds):
        shift = r % len(systems)
        order = list(systems[shift:]) + list(systems[:shift])
        done = {name: measure(name, f"round {r + 1}/{rounds}: ") for name in order}
        per_round.append({name: done[name] for name in systems})
    return per_round


def median_docs(rounds: Sequence[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Merge per-round result documents (system name -> document) into one per system: each
    numeric value is its median over the rounds that have it; anything else is the last round's.

    A "probe_range" ("a–b" ms) becomes the range over every round.
    """
    merged: dict[str, dict[str, Any]] = {}
    for name in rounds[0] if rounds else ():
        docs = [r[name] for r in rounds if name in r]
        out: dict[str, Any] = {}
        for doc in docs:
            out.update(doc)
        for key in out:
            values = [d[key] for d in docs if isinstance(d.get(key), (int, float)) and not isinstance(d.get(key), bool)]
            if values and len(values) == len([d for d in docs if key in d]):
                out[key] = median(values)
        probes = [p for d in docs for p in (d.get("probes_ms") or [])]
        if probes:
            out["probe_range"] = f"{min(probes):.1f}–{max(probes):.1f}"
        merged[name] = out
    return merged


def chosen_systems(
    parser: argparse.ArgumentParser, raw: str, known: Iterable[str], what: str = "systems"
) -> list[str]:
    """The ``what`` (systems, workloads) named in ``raw`` (comma-separated); an unknown one is a
    usage error that names it."""
    known = list(known)
    chosen = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in known]
    if unknown:
        parser.error(f"unknown {what} {unknown}; known: {', '.join(known)}")
    return chosen


def byte_compile_stemnb() -> None:
    """Write stemnb's bytecode caches, as ``pip install`` does for an installed package.

    Every peer is an installed package whose ``.pyc`` files pip wrote; stemnb is installed
    editable from its sources. Where ``PYTHONDONTWRITEBYTECODE`` is set (this machine sets it), a
    fresh interpreter would otherwise compile stemnb's sources on every start (the driver, each
    pool process, a worker program), and the start-up rows would time the compiler.
    """
    import compileall

    import stemnb

    compileall.compile_dir(os.path.dirname(stemnb.__file__), quiet=1)
