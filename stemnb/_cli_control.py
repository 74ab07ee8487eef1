"""``python -m stemnb control COMMAND``: ask running workers things, or tell them to act.

stemnb's ``celery inspect`` / ``celery control`` (Stem's ``stem worker stats|inspect|revoke|...``):
a :class:`~stemnb.ControlClient` on the Redis broker sends one command to every worker of the
namespace, or to one (``--worker ID``), and prints a line per reply, or the replies as JSON
(``--json``). It waits up to ``--timeout`` seconds, and no longer than it takes every worker it
expects to reply: the one named, or as many as have a live heartbeat in the result backend.

A revocation is also kept when no worker answers: it is written to the Redis revoke store that
worker programs read at start, so a worker started later still honours it.

Exit status: 0 when every reply was ``ok`` (for ``revoke``, also when the revocation was only
stored); 1 when no worker answered, a worker replied with an error, or Redis does not answer;
2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

COMMANDS = ("ping", "stats", "inspect", "revoke", "pause", "resume", "queues", "shutdown")
DEFAULT_TIMEOUT = 2.0


def add_parser(commands: Any) -> None:
    """Add ``control`` and its options to the ``python -m stemnb`` subcommands."""
    from ._cli import _positive_float

    control = commands.add_parser(
        "control",
        help="ask running workers (ping, stats, inspect) or tell them (revoke, pause, resume, shutdown)",
        description="Send a control command to the workers on a Redis broker and print their replies.",
    )
    control.add_argument("action", metavar="COMMAND", choices=COMMANDS, help=" | ".join(COMMANDS))
    control.add_argument(
        "targets",
        nargs="*",
        metavar="ARG",
        help="revoke: task ids; pause / resume: queue names (default: each worker's own queue)",
    )
    control.add_argument("--broker", metavar="URL", help="broker URL (default: as for worker)")
    control.add_argument(
        "--namespace", metavar="NAME", help="key prefix of the broker in Redis (default: stemnb)"
    )
    control.add_argument(
        "--heartbeat-namespace",
        default="stem",
        metavar="NAME",
        help="the workers' heartbeat_namespace, which names their control channels (default: stem)",
    )
    control.add_argument("--worker", metavar="ID", help="ask this worker only (default: every worker)")
    control.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help=f"seconds to collect replies (default: {DEFAULT_TIMEOUT:g})",
    )
    control.add_argument("--terminate", action="store_true", help="revoke: also stop running tasks")
    control.add_argument("--reason", default="revoked", help="revoke: the reason stored with it")
    control.add_argument("--expires", type=_positive_float, default=None, metavar="SECONDS",
                         help="revoke: let the revocation lapse after SECONDS (default: kept until pruned)")
    control.add_argument(
        "--mode", choices=("warm", "soft", "hard"), default="warm", help="shutdown: the mode (default: warm)"
    )
    control.add_argument("--json", action="store_true", help="print the replies as JSON")


def run_control(
    args: argparse.Namespace,
    broker: Any,
    live_workers: Callable[[], int],
    revoke_store: Callable[[], Any],
    say: Callable[[str], None],
) -> int:
    """Send the command ``args`` describe through ``broker``; print the replies; return the exit status.

    ``live_workers()`` counts the workers with a live heartbeat (replies awaited when > 0);
    ``revoke_store()`` opens the Redis revoke store a revocation is kept in when no worker answers.

    Raises:
        UsageError (from ``_cli``): arguments that do not fit the command.
    """
    from ._cli import UsageError
    from ._worker import ControlClient

    if args.action == "revoke" and not args.targets:
        raise UsageError("control revoke needs at least one task id")
    if args.action not in ("revoke", "pause", "resume") and args.targets:
        raise UsageError(f"control {args.action} takes no arguments, got {' '.join(args.targets)}")
    client = ControlClient(broker, namespace=args.heartbeat_namespace, timeout=args.timeout)
    kw: dict[str, Any] = {"worker_id": args.worker}
    if args.worker is None:
        kw["expected"] = live_workers() or None  # None: collect until the timeout
    send: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "ping": lambda: client.ping(**kw),
        "stats": lambda: client.stats(**kw),
        "inspect": lambda: client.inspect(include_revoked=True, **kw),
        "revoke": lambda: client.revoke(*args.targets, terminate=args.terminate, reason=args.reason,
                                        expires=args.expires, **kw),
        "pause": lambda: client.pause_queue(*args.targets, **kw),
        "resume": lambda: client.resume_queue(*args.targets, **kw),
        "queues": lambda: client.queue_status(**kw),
        "shutdown": lambda: client.shutdown(args.mode, **kw),
    }
    replies = sorted(send[args.action](), key=lambda r: str(r.get("worker_id")))
    stored = False
    if args.action == "revoke" and not replies:
        stored = _store_revocations(revoke_store, args)
    if args.json:
        print(json.dumps({"replies": replies, "stored": stored} if args.action == "revoke" else replies, indent=2))
    else:
        for reply in replies:
            print(describe(args.action, reply))
    if stored:
        say(f"stemnb: no worker answered within {args.timeout:g} s; the revocation is stored for workers "
            "that start later")
        return 0
    if not replies:
        whom = f"worker {args.worker!r} did not answer" if args.worker else "no worker answered"
        say(f"stemnb: {whom} within {args.timeout:g} s")
        return 1
    return 0 if all(r.get("status") == "ok" for r in replies) else 1


def _store_revocations(revoke_store: Callable[[], Any], args: argparse.Namespace) -> bool:
    from ._revoke import RevokeEntry

    store = revoke_store()
    expires_at = None if args.expires is None else time.time() + args.expires
    try:
        store.upsert(
            [
                RevokeEntry(args.heartbeat_namespace, task_id, terminate=args.terminate, reason=args.reason,
                            expires_at=expires_at)
                for task_id in args.targets
            ]
        )
    finally:
        store.close()
    return True


def describe(action: str, reply: dict[str, Any]) -> str:
    """One worker's reply as text (a line, or a few for ``stats`` and ``inspect``)."""
    who = reply.get("worker_id", "?")
    if reply.get("status") != "ok":
        return f"{who}: error: {reply.get('error')}"
    r = reply.get("response") or {}
    if action == "ping":
        return f"{who}: {r.get('state')} (queue {r.get('queue')})"
    if action == "stats":
        return _stats_lines(who, r)
    if action == "inspect":
        lines = [f"{who}: {len(r.get('active') or [])} running"]
        lines += [f"  {t['id']}  {t['task']}  queue={t['queue']} attempt={t['attempt']}" for t in r.get("active") or []]
        revoked = r.get("revoked") or []
        if revoked:
            lines.append(f"  revoked: {', '.join(str(e.get('task_id')) for e in revoked)}")
        return "\n".join(lines)
    if action == "revoke":
        return f"{who}: revoked {', '.join(r.get('revoked') or [])}" + (" (terminate)" if r.get("terminate") else "")
    if action in ("pause", "resume"):
        return f"{who}: paused queues: {', '.join(r.get('paused') or []) or 'none'}"
    if action == "queues":
        return f"{who}: queues {', '.join(r.get('queues') or [])}; paused: {', '.join(r.get('paused') or []) or 'none'}"
    return f"{who}: shutting down ({r.get('mode')})"


def _stats_lines(who: str, r: dict[str, Any]) -> str:
    counters = r.get("counters") or {}
    depth = r.get("queue_depth") or {}
    lines = [
        f"{who}: {r.get('state')}, {r.get('inflight')} held ({r.get('running')} running), "
        f"concurrency {r.get('concurrency')}/{r.get('max_concurrency')}, isolates {r.get('isolates')}",
        "  queues: " + ", ".join(f"{q} ({'?' if n is None else n} waiting)" for q, n in depth.items()),
    ]
    if counters:
        lines.append("  counters: " + ", ".join(f"{k}={v}" for k, v in sorted(counters.items())))
    return "\n".join(lines)

