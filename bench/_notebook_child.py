"""Notebook-style callables: does each system run functions a notebook cell defines?

Run inside one system's ``python -c`` child (``__main__`` has no file, as in Jupyter). After the
pool is warm, a cell defines a new function in ``__main__``; then a lambda. Each call gets a time
limit; a failed case abandons the pool and starts a new one before the next case.
"""

from __future__ import annotations

import json
from typing import Any

from ._harness import ROOT
from ._systems import SYSTEMS

CHILD_SOURCE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})


def identity(x):
    return x


from bench._notebook_child import main
main(globals(), sys.argv[1], sys.argv[2])
"""

CELLS = {
    "after_warm": "def defined_later(x):\n    return x + 1\n",
    "lambda": "a_lambda = lambda x: x + 1\n",
}


def main(namespace: dict[str, Any], config_json: str, out_path: str) -> None:
    """Try each notebook cell's callable on ``config["system"]``; write "yes" or the error."""
    config = json.loads(config_json)
    timeout = config.get("case_timeout_s", 10.0)
    system = SYSTEMS[config["system"]]()
    system.start()
    system.call(namespace["identity"], 0)  # the pool is warm: its workers exist
    doc: dict[str, Any] = {}
    for case, cell in CELLS.items():
        exec(cell, namespace)  # what running a notebook cell does to __main__
        fn = namespace["defined_later" if case == "after_warm" else "a_lambda"]
        try:
            doc[case] = "yes" if system.call_within(timeout, fn, 1) == 2 else "wrong result"
        except BaseException as exc:  # a timeout, a broken pool, a pickling error
            if isinstance(exc, KeyboardInterrupt):
                raise
            name = type(exc).__name__
            doc[case] = f"no — {name}" + (f": {str(exc)[:120]}" if str(exc) else "")
            if name == "TimeoutError":
                doc[case] = f"no — no result and no error within {timeout:g} s"
            system.abandon()
            system.start()
        with open(out_path, "w") as f:
            json.dump(doc, f)
    system.abandon()
