"""Message round trips with a long-lived process: a stemnb port ping-pong beside its peers.

A request goes to a process that echoes it, and the caller waits for the reply before sending the
next (Dart's request/response pattern over ports). ``stemnb-port`` sends through ports to a
spawned isolate; ``mp-pipe`` is a forked ``multiprocessing`` process echoing over a ``Pipe`` (the
raw channel, no framework: two processes that sleep while they wait);
``ray-actor`` calls an actor method. Every system runs in its own fresh ``python -c`` child, one
after the other, ``--rounds`` times in rotated order; cells are medians.

Run by hand from the repository root (never by the test suite)::

    .venv/bin/python -m bench.ports --rounds 3

It prints a Markdown report and writes it to ``bench/results/ports-<UTC date-time>.md``.
"""

from __future__ import annotations

import sys
from typing import Any

from . import _harness as h

ALL_SYSTEMS = ("stemnb-port", "mp-pipe", "ray-actor")

CHILD_SOURCE = r'''
import json, sys, time
config, out = json.loads(sys.argv[1]), sys.argv[2]
system, n, warmup = config["system"], config["n"], config["warmup"]

def echo(reply):
    import stemnb
    inbox = stemnb.ReceivePort()
    reply.send(inbox.send_port)
    for message in inbox:
        reply.send(message)

def pipe_echo(conn):
    while True:
        message = conn.recv()
        if message is None:
            return
        conn.send(message)

if system == "stemnb-port":
    import stemnb
    replies = stemnb.ReceivePort()
    isolate = stemnb.spawn(echo, replies.send_port).result()
    to_isolate = replies.receive()
    def ask(x):
        to_isolate.send(x)
        return replies.receive()
    close = isolate.kill
elif system == "mp-pipe":
    import multiprocessing
    ctx = multiprocessing.get_context("fork")  # this __main__ has no file: spawn could not find pipe_echo
    here, there = ctx.Pipe()
    proc = ctx.Process(target=pipe_echo, args=(there,), daemon=True)
    proc.start()
    def ask(x):
        here.send(x)
        return here.recv()
    def close():
        here.send(None)
        proc.join()
else:  # ray-actor
    import ray
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    @ray.remote
    class Echo:
        def echo(self, x):
            return x
    actor = Echo.remote()
    def ask(x):
        return ray.get(actor.echo.remote(x))
    close = ray.shutdown

for i in range(warmup):
    assert ask(i) == i
times = []
for i in range(n):
    t0 = time.perf_counter()
    reply = ask(i)
    times.append(time.perf_counter() - t0)
    assert reply == i
close()
times.sort()
doc = {"median_us": times[len(times) // 2] * 1e6, "p99_us": times[min(len(times) - 1, int(len(times) * 0.99))] * 1e6}
json.dump(doc, open(out, "w"))
'''


def main(argv: list[str] | None = None) -> int:
    parser = h.cli("Port round trips with a long-lived process", ALL_SYSTEMS, "ports")
    args = parser.parse_args(argv)
    systems = h.chosen_systems(parser, args.systems, ALL_SYSTEMS)
    size = {"n": 50, "warmup": 5} if args.quick else {"n": 3000, "warmup": 200}

    def measure(name: str, label: str) -> dict[str, Any]:
        print(f"{label}{name} ...", file=sys.stderr, flush=True)
        return h.run_child(CHILD_SOURCE, {"system": name, **size}, timeout=300)

    merged = h.median_docs(h.interleaved_rounds(systems, args.rounds, measure))
    rows = []
    for name in systems:
        doc = merged[name]
        if "error" in doc:
            rows.append([name, "—", "—", doc["error"]])
        else:
            rows.append([name, f"{doc['median_us']:,.1f}", f"{doc['p99_us']:,.1f}", ""])
    lines = [
        *h.short_head("Port round trips"),
        f"{size['n']:,} requests of an int, each sent once the last reply came, after {size['warmup']} "
        f"untimed (median over {args.rounds} round(s)).",
        "",
        *h.simple_table(["system", "round trip median µs", "p99 µs", "error"], rows),
        "",
        f"Versions: {h.versions(['stemnb', 'ray'])}",
    ]
    h.publish(args.name, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
