"""Cell lists of the operations pattern notebooks: communication, monitoring, pooling, failures, deadlocks.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
"""

from __future__ import annotations

MD, PY = "md", "py"

COMMUNICATION = [
    (MD, """# Isolate communication patterns

Isolates share nothing, so how they talk decides how they coordinate. The Dart example shows
three patterns: **request-response** (a request carries the port its answer goes to),
**fire-and-forget** (a task is launched and nobody waits for an answer) and **publish-subscribe**
(a broker isolate forwards each published message to every subscriber's port). All three work
the same way with stemnb's ports, because a `SendPort` pickles and can travel inside any
message. Where the Dart example waits with `Future.delayed` for subscriptions to land, this
notebook relies on a guarantee instead: one sender's messages to one port arrive in order."""),
    (PY, "import dataclasses\nimport pathlib\nimport tempfile\n\nimport stemnb"),
    (MD, "## Request-response\n\nA `Request` is a notebook dataclass carrying its own reply "
         "port, as in Dart; it travels to the worker by value. The worker answers on that port "
         "with the request's id, so the caller can match answers to questions even when "
         "several are in flight."),
    (PY, """@dataclasses.dataclass(frozen=True)
class Request:
    id: int
    operation: str
    data: tuple
    reply_port: stemnb.SendPort

def request_response_worker(main_port):
    inbox = stemnb.ReceivePort("requests")
    main_port.send(inbox.send_port)
    operations = {"add": lambda a, b: a + b, "multiply": lambda a, b: a * b}
    for message in inbox:
        if message == "exit":
            break
        operation = operations.get(message.operation)
        result = operation(*message.data) if operation else f"unknown operation {message.operation!r}"
        message.reply_port.send({"id": message.id, "result": result})
    inbox.close()

main_port, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(request_response_worker, main_port.send_port, on_exit=exits.send_port,
                   debug_name="calculator")
calculator = await main_port.first()

reply_port = stemnb.ReceivePort("reply")
calculator.send(Request(1, "add", (10, 20), reply_port.send_port))
print("Response:", reply_port.receive(timeout=60))"""),
    (MD, "Several requests in flight on one reply port, answered by id:"),
    (PY, """questions = {2: ("multiply", (6, 7)), 3: ("add", (1.5, 2.5)), 4: ("divide", (1, 0))}
for request_id, (operation, data) in questions.items():
    calculator.send(Request(request_id, operation, data, reply_port.send_port))
answers = {r["id"]: r["result"] for r in (reply_port.receive(timeout=60) for _ in questions)}
for request_id, (operation, data) in questions.items():
    print(f"request {request_id}: {operation}{data} -> {answers[request_id]}")
calculator.send("exit")
reply_port.close()
print("calculator ended:", exits.receive(timeout=60) is None)"""),
    (MD, "## Fire-and-forget\n\nThe task is spawned with its input and no reply port: it "
         "writes its result where it belongs (here a file) and ends. The kernel carries on at "
         "once. The exit port is not an answer; it is only there so the notebook can clean up "
         "after the task before it ends."),
    (PY, """def fire_and_forget_task(args):
    name, n, out_dir = args
    total = sum(range(n))
    (pathlib.Path(out_dir) / f"{name}.txt").write_text(f"Task {name!r} completed: {total}")

out_dir = tempfile.TemporaryDirectory()
await stemnb.spawn(fire_and_forget_task, ("background-task", 10_000, out_dir.name),
                   on_exit=exits.send_port, debug_name="background-task")
print("Task launched, continuing...")
print("the kernel meanwhile computes", sum(range(100)))"""),
    (PY, """exits.receive(timeout=60)                      # cleanup only: the task has ended
print((pathlib.Path(out_dir.name) / "background-task.txt").read_text())
out_dir.cleanup()"""),
    (MD, "## Publish-subscribe\n\nThe broker isolate keeps a list of subscriber ports per "
         "topic and forwards each published message to them. Subscribers are two ports in the "
         "kernel and an auditing isolate that counts what it sees. The kernel sends "
         "`subscribe` and then `publish` to the broker, so the subscription is in place before "
         "the first message: no delay is needed. On `exit` the broker sends `None` to every "
         "subscriber; it comes after every message the broker forwarded, since it is the "
         "same sender."),
    (PY, """def broker(main_port):
    inbox = stemnb.ReceivePort("broker")
    main_port.send(inbox.send_port)
    subscribers, everyone = {}, set()           # topic -> [SendPort]; every port that subscribed
    for action, topic, payload in inbox:
        if action == "subscribe":
            subscribers.setdefault(topic, []).append(payload)
            everyone.add(payload)
        elif action == "unsubscribe":
            subscribers[topic].remove(payload)  # SendPorts compare equal by destination
        elif action == "publish":
            for port in subscribers.get(topic, []):
                port.send((topic, payload))
        elif action == "exit":
            break
    for port in everyone:
        port.send(None)                         # end of stream
    inbox.close()

def auditor(main_port):
    inbox = stemnb.ReceivePort("auditor")
    main_port.send(inbox.send_port)
    counts = {}
    for message in inbox:
        if message is None:
            break
        counts[message[0]] = counts.get(message[0], 0) + 1
    main_port.send(("audit", dict(sorted(counts.items()))))
    inbox.close()

setup = stemnb.ReceivePort()
await stemnb.spawn(broker, setup.send_port, on_exit=exits.send_port, debug_name="broker")
broker_port = setup.receive(timeout=60)
await stemnb.spawn(auditor, setup.send_port, on_exit=exits.send_port, debug_name="auditor")
auditor_port = setup.receive(timeout=60)

sub1, sub2 = stemnb.ReceivePort("subscriber-1"), stemnb.ReceivePort("subscriber-2")
broker_port.send(("subscribe", "news", sub1.send_port))
broker_port.send(("subscribe", "news", sub2.send_port))
broker_port.send(("subscribe", "prices", sub2.send_port))
for topic in ("news", "prices"):
    broker_port.send(("subscribe", topic, auditor_port))

broker_port.send(("publish", "news", "Hello there!"))
broker_port.send(("publish", "prices", {"ACME": 12.5}))
broker_port.send(("unsubscribe", "news", sub1.send_port))
broker_port.send(("publish", "news", "Only subscriber 2 sees this"))
broker_port.send(("exit", None, None))

for name, port in (("Subscriber 1", sub1), ("Subscriber 2", sub2)):
    for message in iter(lambda port=port: port.receive(timeout=60), None):
        print(f"{name} received: {message}")
print("auditor counted:", setup.receive(timeout=60)[1])"""),
    (MD, """## Which pattern when

| pattern | the sender waits for | use it for |
|---|---|---|
| request-response | an answer on the port it sent | queries, commands whose outcome matters |
| fire-and-forget | nothing (at most the exit, to clean up) | independent side effects: writing, logging |
| publish-subscribe | nothing; the broker fans out | events that several parties react to |"""),
    (PY, """print("broker, auditor ended:", [exits.receive(timeout=60) for _ in range(2)] == [None, None])
for port in (main_port, exits, setup, sub1, sub2):
    port.close()
print("ports closed")"""),
]

MONITORING = [
    (MD, """# Isolate performance monitoring

To tune a concurrent system you need its numbers: how many tasks are done, how many wait, how
long each takes. The Dart example's worker times every task with a `Stopwatch` and sends a
`PerformanceMetrics` record to the main isolate once a second. Here the worker keeps the same
counters and reports them on request and after every tenth task, so the reports line up with
the work instead of with the clock; the kernel adds what only the sender knows, the queue
depth. Then `IsolatePool` shows its own monitoring: `statistics()` and `isolates()`.

Measured times differ from run to run, so they are printed in `ms` and the notebook's output
check reads them as `DURATION`; the counts are exact."""),
    (PY, "import statistics\nimport time\n\nimport stemnb"),
    (MD, "## A monitored worker\n\nEach task is `(task_id, size, sent_at)`. The worker measures "
         "how long the task waited in its inbox (from `sent_at`: `time.monotonic` is one "
         "clock for every process of the machine) and how long it ran, keeps the last 100 of "
         "each, and sends a metrics record every tenth task and on `metrics`."),
    (PY, """def monitored_worker(main_port):
    inbox = stemnb.ReceivePort("monitored")
    main_port.send(inbox.send_port)
    completed, waits, runs = 0, [], []

    def metrics():
        return {"completed": completed,
                "avg_wait": sum(waits) / len(waits) if waits else 0.0,
                "avg_run": sum(runs) / len(runs) if runs else 0.0,
                "max_run": max(runs, default=0.0)}

    for message in inbox:
        if message == "STOP":
            break
        if message == "metrics":
            main_port.send(("metrics", metrics()))
            continue
        task_id, size, sent_at = message
        started = time.monotonic()
        sum(i * i for i in range(size))         # the work
        finished = time.monotonic()
        waits, runs = (waits + [started - sent_at])[-100:], (runs + [finished - started])[-100:]
        completed += 1
        main_port.send(("done", task_id))
        if completed % 10 == 0:
            main_port.send(("metrics", metrics()))
    inbox.close()

def show(record, queued):
    return (f"completed {record['completed']:>2}, queued {queued:>2}, avg wait {record['avg_wait'] * 1e3:.2f} ms, "
            f"avg run {record['avg_run'] * 1e3:.2f} ms, max run {record['max_run'] * 1e3:.2f} ms")"""),
    (MD, "## Thirty tasks sent at once\n\nThe queue depth is what the kernel has sent minus "
         "what the worker has finished. Sending everything at once makes the queue long at "
         "first; each metrics record shows it shrink."),
    (PY, """main_port, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(monitored_worker, main_port.send_port, on_exit=exits.send_port, debug_name="monitored")
worker = main_port.receive(timeout=60)

sent = done = 0
for task_id in range(30):
    worker.send((task_id, 20_000 + 1_000 * (task_id % 5), time.monotonic()))
    sent += 1
print("Performance monitoring started")
reports = []
while done < sent:
    kind, value = main_port.receive(timeout=60)
    if kind == "done":
        done += 1
    else:
        reports.append(show(value, sent - done))
worker.send("metrics")
kind, final = main_port.receive(timeout=60)
print("\\n".join(reports))
print("on request:", show(final, sent - done))
worker.send("STOP")
print("worker ended:", exits.receive(timeout=60) is None)"""),
    (MD, "## Timing calls from the caller's side\n\nThe latency a caller sees includes "
         "sending the call and its result. A small wrapper records it per call; percentiles "
         "say more than an average when a few calls are slow."),
    (PY, """latencies = []

def timed(future):
    started = time.perf_counter()
    future.add_done_callback(lambda _: latencies.append(time.perf_counter() - started))
    return future

pool = stemnb.IsolatePool(2, debug_name="monitored-pool")
futures = [timed(pool.run(sum, range(50_000 * (i % 4 + 1)))) for i in range(24)]
results = [f.result(timeout=60) for f in futures]
cuts = statistics.quantiles(latencies, n=20)
print(f"{len(latencies)} calls: median {statistics.median(latencies) * 1e3:.1f} ms, "
      f"p95 {cuts[18] * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms")"""),
    (MD, "## What the pool reports itself\n\n`statistics()` is a frozen record of the pool's "
         "counters (every queue-owning object in stemnb has one); `isolates()` has a row per "
         "process with its calls done and its memory. A failing call is counted as failed."),
    (PY, """try:
    pool.run(int, "not a number").result(timeout=60)
except ValueError:
    pass
stats = pool.statistics()
print(f"state {stats.state}, size {stats.size}, submitted {stats.submitted}, completed {stats.completed}, "
      f"failed {stats.failed}, queued {stats.queued}, busy {stats.busy}")
rows = pool.isolates()
print("calls done per process add up:", sum(row.tasks_done for row in rows) == stats.completed + stats.failed)
for row in sorted(rows, key=lambda r: r.debug_name):
    print(f"{row.debug_name}: {row.state}, memory {row.rss_bytes / 2**20:.1f} MiB")"""),
    (PY, """pool.close()
main_port.close()
exits.close()
print("pool state:", pool.statistics().state)"""),
]

RESOURCE_POOL = [
    (MD, """# Resource pooling with isolates

A resource pool hands out a limited set of resources (connections, licences, GPU slots) and
makes the others wait their turn. In the Dart example a pool isolate owns three resources,
serves requests in arrival order, queues those it cannot serve, and gives a released resource to
the next waiting request. Here the same pool isolate is first driven step by step from the
kernel, which makes every allocation visible and the same on every run; then six client
isolates compete for it, each using a lease that always gives the resource back.
`stemnb.IsolatePool` is itself a resource pool of this kind, with processes as the
resources."""),
    (PY, "import collections\n\nimport stemnb"),
    (PY, """def resource_pool(args):
    size, main_port = args
    inbox = stemnb.ReceivePort("resource-pool")
    main_port.send(inbox.send_port)
    free = list(range(size))
    waiting = collections.deque()               # (request_id, reply port), first come first served
    in_use, peak, grants = {}, 0, 0
    for message in inbox:
        action = message[0]
        if action == "acquire":
            waiting.append(message[1:])
        elif action == "release":
            free.append(message[1])
            free.sort()
            in_use.pop(message[1])
        elif action == "status":
            message[1].send({"in_use": dict(sorted(in_use.items())), "waiting": [r for r, _ in waiting],
                             "peak": peak, "grants": grants})
            continue
        elif action == "STOP":
            break
        while free and waiting:                 # hand out whatever is free, in request order
            request_id, reply = waiting.popleft()
            resource = free.pop(0)
            in_use[resource] = request_id
            peak, grants = max(peak, len(in_use)), grants + 1
            reply.send(resource)
    inbox.close()

setup, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(resource_pool, (3, setup.send_port), on_exit=exits.send_port, debug_name="resource-pool")
pool_port = setup.receive(timeout=60)

def status():
    reply = stemnb.ReceivePort()
    pool_port.send(("status", reply.send_port))
    answer = reply.receive(timeout=60)
    reply.close()
    return answer"""),
    (MD, "## Five requests, three resources\n\nEach request has its own reply port. The first "
         "three get a resource at once; `status` (sent after the five requests, so answered "
         "after them) shows the other two waiting. Each release goes to the longest waiting "
         "request."),
    (PY, """replies = {i: stemnb.ReceivePort(f"request-{i}") for i in range(5)}
for i, port in replies.items():
    pool_port.send(("acquire", i, port.send_port))
held = {i: replies[i].receive(timeout=60) for i in range(3)}
for i, resource in held.items():
    print(f"Request {i} received resource {resource}")
print("status:", status())

for i in (1, 0):
    pool_port.send(("release", held.pop(i)))
    print(f"Request {i} released its resource")
for i in (3, 4):
    held[i] = replies[i].receive(timeout=60)
    print(f"Request {i} received resource {held[i]}")
for i in sorted(held):
    pool_port.send(("release", held[i]))
print("status:", status())
for port in replies.values():
    port.close()"""),
    (MD, "## Clients in isolates, with a lease\n\nSix client isolates each take a resource "
         "four times. `lease` is a context manager: it waits for a resource (with a timeout, "
         "so a client never waits forever) and releases it on the way out, even when the work "
         "raises. The pool isolate records the peak number in use. Which client gets which "
         "resource depends on timing, so the notebook prints totals."),
    (PY, """import contextlib

@contextlib.contextmanager
def lease(pool_port, request_id, timeout=30):
    reply = stemnb.ReceivePort()
    pool_port.send(("acquire", request_id, reply.send_port))
    resource = reply.receive(timeout=timeout)
    reply.close()
    try:
        yield resource
    finally:
        pool_port.send(("release", resource))

def client(args):
    name, pool_port, rounds, report = args
    used = []
    for round_ in range(rounds):
        with lease(pool_port, f"{name}/{round_}") as resource:
            sum(i * i for i in range(20_000))   # work done while holding the resource
            used.append(resource)
    report.send((name, used))

report = stemnb.ReceivePort("reports")
for c in range(6):
    await stemnb.spawn(client, (f"client-{c}", pool_port, 4, report.send_port),
                       on_exit=exits.send_port, debug_name=f"client-{c}")
results = dict(sorted(report.receive(timeout=60) for _ in range(6)))
print("leases per client:", {name: len(used) for name, used in results.items()})
print("every lease was one of the three resources:", all(r in (0, 1, 2) for used in results.values() for r in used))
final = status()
print(f"grants {final['grants']} (5 + 6 x 4), peak in use {final['peak']} of 3, "
      f"in use now {len(final['in_use'])}, waiting {final['waiting']}")"""),
    (PY, """print("clients ended:", [exits.receive(timeout=60) for _ in range(6)] == [None] * 6)
pool_port.send(("STOP",))
print("resource pool ended:", exits.receive(timeout=60) is None)
for port in (setup, exits, report):
    port.close()"""),
]

NOTEBOOKS = {
    "45_communication_patterns.ipynb": COMMUNICATION,
    "46_performance_monitoring.ipynb": MONITORING,
    "47_resource_pooling.ipynb": RESOURCE_POOL,
}
