"""bench.gaps's workload, run inside one system's own child interpreter (see :data:`CHILD_SOURCE`).

The producer enqueues N tasks back to back, then waits for each. Every task spins for 1 ms and
returns ``[pid, start, end]``; the spans tell how busy each isolate was and how long it waited
between one task's end and the next one's start.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ._harness import ROOT
from ._task_systems import TASK_SYSTEMS

CHILD_SOURCE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})


def noop(context, args):
    return None


def timed_1ms(context, args):
    from bench._taskwork import timed_spin
    return timed_spin(0.001)


from bench._gaps_child import main
main(globals(), sys.argv[1], sys.argv[2])
"""

WAIT_S = 120.0


def main(namespace: dict[str, Any], config_json: str, out_path: str) -> None:
    """Run ``config["tasks"]`` timed tasks on ``config["system"]``; write their spans as JSON."""
    config = json.loads(config_json)
    system = TASK_SYSTEMS[config["system"]]()
    doc: dict[str, Any] = {"system": system.name}
    try:
        system.start(SimpleNamespace(noop=namespace["noop"], timed_1ms=namespace["timed_1ms"]))
        stem = system.stem  # type: ignore[attr-defined]  # every stemnb system has one
        for _ in range(20):  # warm: both isolates have run the task
            stem.wait_for_task(stem.enqueue("timed_1ms"), timeout=WAIT_S).result(WAIT_S)
        t0 = time.perf_counter()
        ids = [stem.enqueue("timed_1ms") for _ in range(config["tasks"])]
        t1 = time.perf_counter()
        futures = [stem.wait_for_task(task_id, timeout=WAIT_S) for task_id in ids]
        spans = [future.result(WAIT_S).payload for future in futures]
        t2 = time.perf_counter()
        doc.update(start=t0, enqueued=t1, end=t2, spans=spans)
    except Exception as exc:
        doc["error"] = f"{type(exc).__name__}: {exc}"[:600]
    finally:
        Path(out_path).write_text(json.dumps(doc))
        system.close()
