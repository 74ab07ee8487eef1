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
for row in sorted(rows, key=lambda r: r.debug_name):   # not row.state: under load one may still be starting
    print(f"{row.debug_name}: memory {row.rss_bytes / 2**20:.1f} MiB")"""),
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
kernel, which makes every allocation visible and the same on every run; then four client
isolates compete for it, each using a lease that always gives the resource back.
`stemnb.IsolatePool` is itself a resource pool of this kind, with processes as the
resources."""),
    (PY, "import collections\nimport contextlib\n\nimport stemnb"),
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
        elif action == "release":               # ("release", resource[, confirm port])
            free.append(message[1])
            free.sort()
            in_use.pop(message[1])
            if len(message) > 2:
                message[2].send(("released", message[1]))
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
    (MD, "## Clients in isolates, with a lease\n\nFour client isolates each take a resource "
         "five times. `lease` is a context manager: it waits for a resource (with a timeout, "
         "so a client never waits forever) and releases it on the way out, even when the work "
         "raises. The release waits for the pool's confirmation: the kernel's `status` "
         "request and a client's release come from different senders, so without it the "
         "status could overtake the release. The pool isolate records the peak number in use. "
         "Which client gets which resource depends on timing, so the notebook prints totals."),
    (PY, """@contextlib.contextmanager
def lease(pool_port, request_id, timeout=30):
    reply = stemnb.ReceivePort()
    pool_port.send(("acquire", request_id, reply.send_port))
    resource = reply.receive(timeout=timeout)
    reply.close()
    try:
        yield resource
    finally:
        confirm = stemnb.ReceivePort()
        pool_port.send(("release", resource, confirm.send_port))
        confirm.receive(timeout=timeout)
        confirm.close()

def client(args):
    name, pool_port, rounds, report = args
    used = []
    for round_ in range(rounds):
        with lease(pool_port, f"{name}/{round_}") as resource:
            sum(i * i for i in range(20_000))   # work done while holding the resource
            used.append(resource)
    report.send((name, used))

report = stemnb.ReceivePort("reports")
for c in range(4):
    await stemnb.spawn(client, (f"client-{c}", pool_port, 5, report.send_port),
                       on_exit=exits.send_port, debug_name=f"client-{c}")
results = dict(sorted(report.receive(timeout=60) for _ in range(4)))
print("leases per client:", {name: len(used) for name, used in results.items()})
print("every lease was one of the three resources:", all(r in (0, 1, 2) for used in results.values() for r in used))
final = status()
print(f"grants {final['grants']} (5 + 4 x 5), peak in use {final['peak']} of 3, "
      f"in use now {len(final['in_use'])}, waiting {final['waiting']}")"""),
    (PY, """print("clients ended:", [exits.receive(timeout=60) for _ in range(4)] == [None] * 4)
pool_port.send(("STOP",))
print("resource pool ended:", exits.receive(timeout=60) is None)
for port in (setup, exits, report):
    port.close()"""),
]

CIRCUIT_BREAKER = [
    (MD, """# Preventing cascading failures

When a dependency fails, callers that keep calling it pile up waiting requests, run out of
workers themselves and fail in turn: the failure cascades. The Dart example wraps a worker's
operation in a **circuit breaker**: after three failures the circuit *opens* and requests are
rejected at once; after a timeout it goes *half-open* and lets trial requests through; two
successes *close* it again. Here the breaker sits on the caller's side, around calls to a
flaky service isolate, so an open circuit spares the service the calls entirely. The breaker
reads a clock it is given: the notebook advances a manual clock, so the run is the same every
time (pass `time.monotonic` in real code). The second part adds **bulkheads**: one pool per
dependency and a time limit per call, so a hanging dependency cannot take the others down."""),
    (PY, "import enum\nimport time\n\nimport stemnb"),
    (PY, """class CircuitState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"

class CircuitOpenError(RuntimeError):
    \"\"\"Raised instead of calling while the circuit is open.\"\"\"

class CircuitBreaker:
    \"\"\"Open after ``threshold`` failures in a row; after ``reset_after`` seconds allow trials;
    close again after ``trials`` successes.\"\"\"

    def __init__(self, clock, threshold=3, reset_after=5.0, trials=2):
        self.clock, self.threshold, self.reset_after, self.trials = clock, threshold, reset_after, trials
        self.state, self.failures, self.successes, self.opened_at = CircuitState.CLOSED, 0, 0, None

    def call(self, fn, *args):
        if self.state is CircuitState.OPEN:
            if self.clock() - self.opened_at < self.reset_after:
                raise CircuitOpenError("circuit open: request rejected")
            self.state, self.successes = CircuitState.HALF_OPEN, 0
        try:
            result = fn(*args)
        except Exception:
            self._failure()
            raise
        self._success()
        return result

    def _failure(self):
        self.failures += 1
        if self.state is CircuitState.HALF_OPEN or self.failures >= self.threshold:
            self.state, self.opened_at = CircuitState.OPEN, self.clock()

    def _success(self):
        self.failures = 0
        if self.state is CircuitState.HALF_OPEN:
            self.successes += 1
            if self.successes >= self.trials:
                self.state = CircuitState.CLOSED"""),
    (MD, "## A flaky service isolate\n\nThe service answers each request on the reply port it "
         "carries: a result, or the error it hit. It counts the requests that reached it. The "
         "caller turns an error reply into an exception, and waits at most two seconds for any "
         "reply, so a hung service is a failure too, not a hung caller."),
    (PY, """def service(main_port):
    inbox = stemnb.ReceivePort("service")
    main_port.send(inbox.send_port)
    seen = 0
    for request, reply in inbox:
        if request == "STOP":
            reply.send(seen)
            break
        seen += 1
        if request == "FAIL":
            reply.send(("error", "Operation failed"))
        else:
            reply.send(("ok", f"{request} done"))
    inbox.close()

def call_service(request):
    reply = stemnb.ReceivePort()
    service_port.send((request, reply.send_port))
    try:
        status, value = reply.receive(timeout=2)
    finally:
        reply.close()
    if status == "error":
        raise RuntimeError(value)
    return value

setup, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(service, setup.send_port, on_exit=exits.send_port, debug_name="flaky-service")
service_port = setup.receive(timeout=60)

now = [0.0]                                     # the manual clock, in seconds
breaker = CircuitBreaker(clock=lambda: now[0])

def request(n, what):
    try:
        outcome = f"succeeded: {breaker.call(call_service, what)}"
    except CircuitOpenError as exc:
        outcome = f"rejected ({exc})"
    except RuntimeError as exc:
        outcome = f"failed: {exc}"
    print(f"t={now[0]:4.1f}  request {n:>2} ({what}): {outcome}; circuit {breaker.state.value}")"""),
    (MD, "## Closed, open, half-open, closed\n\nOne success, five failures (the circuit "
         "opens at the third; the last two are not sent), three requests rejected while it is "
         "open, then, after the reset timeout, a failed trial that opens it again, and two "
         "successful trials that close it."),
    (PY, """steps = [(0.1, "OK")] + [(0.1, "FAIL")] * 5 + [(0.1, "OK")] * 3 + [(6.0, "FAIL"), (6.0, "OK"), (0.1, "OK"), (0.1, "OK")]
for n, (advance, what) in enumerate(steps, start=1):
    now[0] += advance
    request(n, what)
service_port.send(("STOP", setup.send_port))
print(f"{len(steps)} requests made, {setup.receive(timeout=60)} reached the service")
print("service ended:", exits.receive(timeout=60) is None)"""),
    (MD, "## Bulkheads: one pool per dependency, a time limit per call\n\nA ship's bulkheads "
         "keep one flooded compartment from sinking it. Here each dependency gets its own "
         "`IsolatePool`, so a dependency that hangs only ties up its own processes, and every "
         "call has a `timeout`: the hung call fails with `TimeoutError` and stemnb replaces "
         "the process that ran it. Meanwhile the healthy dependency's pool keeps serving."),
    (PY, """def hanging_dependency():
    time.sleep(60)                              # a dependency that never answers

def healthy_dependency(n):
    return n * n

with stemnb.IsolatePool(1, debug_name="bulkhead-slow") as slow_pool, \\
     stemnb.IsolatePool(1, debug_name="bulkhead-fast") as fast_pool:
    reasons = []
    slow_pool.on_recycle(lambda event: reasons.append(event.reason.value))
    hung = slow_pool.run(hanging_dependency, timeout=0.5)
    served = [fast_pool.run(healthy_dependency, n).result(timeout=60) for n in range(8)]
    print("healthy dependency served while the other hangs:", served)
    try:
        hung.result(timeout=60)
    except TimeoutError:
        print("hanging dependency: TimeoutError after its time limit")
    print("slow pool still serves:", slow_pool.run(healthy_dependency, 9).result(timeout=60))
print("why the slow pool's processes ended:", reasons)   # the hung one, then the rest at close"""),
    (PY, """setup.close()
exits.close()
print("ports closed")"""),
]

DEADLOCK = [
    (MD, """# Deadlock prevention

Two isolates deadlock when each holds a resource the other waits for, and both wait forever.
The Dart example guards against it with a **timeout** on every lock request and releases in
reverse order; its summary also names the other rule, a **consistent lock order**. This
notebook first makes the deadlock happen, with two lock-holder isolates and two workers that
take the locks in opposite orders, and breaks it with a timeout and a back-off. Then it
prevents it by ordering the locks. Last, a timeout also protects against a holder that stops
answering (paused here with `Isolate.pause`), and a per-request reply port keeps the late
answer from being mistaken for a later one."""),
    (PY, "import collections\n\nimport stemnb"),
    (MD, "## Lock holders\n\nA holder isolate owns one lock. `lock` is granted at once or "
         "queued (the requester is told) until the lock is released; `unlock` by the owner passes it to the next in "
         "the queue, and `unlock` by a waiter withdraws its queued request. Every answer goes "
         "to the reply port carried by the request."),
    (PY, """def lock_holder(args):
    name, main_port = args
    inbox = stemnb.ReceivePort(name)
    main_port.send(inbox.send_port)
    owner, waiting = None, collections.deque()
    for action, who, reply in inbox:
        if action == "STOP":
            break
        if action == "lock":
            if owner is None:
                owner = who
                reply.send((name, "granted"))
            else:
                waiting.append((who, reply))
                reply.send((name, "queued"))
        elif action == "unlock":
            if owner == who:
                owner = None
                if waiting:
                    owner, next_reply = waiting.popleft()
                    next_reply.send((name, "granted"))
            else:
                waiting = collections.deque((w, r) for w, r in waiting if w != who)
            reply.send((name, "released"))
    inbox.close()

setup, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
holders = {}
for name in ("ResourceA", "ResourceB"):
    await stemnb.spawn(lock_holder, (name, setup.send_port), on_exit=exits.send_port, debug_name=name)
    holders[name] = setup.receive(timeout=60)"""),
    (MD, "## The deadlock, broken by a timeout\n\nWorker 1 takes A then B; worker 2 takes B "
         "then A. Each reports to the kernel once it holds its first lock and waits for `go`. "
         "The kernel lets worker 2 ask for A first, and worker 1 ask for B once worker 2 is "
         "queued: both hold one lock and wait for the other, a deadlock, every time. Worker 1 "
         "waits at most 0.3 s for its second lock, worker 2 up to 30 s. Worker 1 times out, "
         "backs off (withdraws its request and releases A) and tries again; worker 2 gets A and "
         "finishes, and then worker 1 does. Unequal timeouts (or random back-off) matter: "
         "with equal ones both could back off and retry in step forever, a livelock."),
    (PY, """def acquire(holder, who, timeout, on_queued=None):
    \"\"\"Ask for a lock; True once granted, False after ``timeout`` seconds (None: wait forever).\"\"\"
    reply = stemnb.ReceivePort()
    holder.send(("lock", who, reply.send_port))
    try:
        while reply.receive(timeout=timeout)[1] == "queued":
            if on_queued is not None:
                on_queued()
        return True
    except TimeoutError:
        return False
    finally:
        reply.close()                           # a late grant to this port is dropped

def release(holder, who):
    reply = stemnb.ReceivePort()
    holder.send(("unlock", who, reply.send_port))
    reply.receive(timeout=60)
    reply.close()

def worker(args):
    who, order, timeout, holders, main_port = args
    go, log = stemnb.ReceivePort(), []
    first, second = order
    for attempt in (1, 2, 3):
        acquire(holders[first], who, None)
        log.append(f"attempt {attempt}: holds {first}")
        if attempt == 1:
            main_port.send(("holding", who, go.send_port))
            go.receive(timeout=60)              # both hold their first lock now
        notify = (lambda: main_port.send(("queued", who, second))) if attempt == 1 else None
        if acquire(holders[second], who, timeout, on_queued=notify):
            log.append(f"attempt {attempt}: holds {second}; working with both")
            release(holders[second], who)
            release(holders[first], who)
            log.append("released both, in reverse order")
            break
        log.append(f"attempt {attempt}: timed out waiting for {second}; backing off")
        release(holders[second], who)           # withdraw the queued request
        release(holders[first], who)
    go.close()
    main_port.send(("log", who, log))

reports = stemnb.ReceivePort("reports")
plans = {"worker-1": (("ResourceA", "ResourceB"), 0.3), "worker-2": (("ResourceB", "ResourceA"), 30)}
for who, (order, timeout) in plans.items():
    await stemnb.spawn(worker, (who, order, timeout, holders, reports.send_port),
                       on_exit=exits.send_port, debug_name=who)
gates = {who: gate for _, who, gate in (reports.receive(timeout=60) for _ in plans)}
print("holding their first lock:", sorted(gates))
gates["worker-2"].send("go")
print("queued:", reports.receive(timeout=60)[1:])     # worker-2 waits for ResourceA
gates["worker-1"].send("go")
logs = {}
while len(logs) < len(plans):
    kind, who, detail = reports.receive(timeout=60)
    if kind == "queued":
        print("queued:", (who, detail), "-> deadlock")  # worker-1 waits for ResourceB
    else:
        logs[who] = detail
for who, log in sorted(logs.items()):
    print(who)
    for line in log:
        print("   ", line)
print("workers ended:", [exits.receive(timeout=60) for _ in plans] == [None, None])"""),
    (MD, "## Prevention by lock order\n\nIf every worker takes the locks in the same global "
         "order (here: by name), no cycle of waiting can form. Two workers each do twenty "
         "rounds with both locks, waiting without any timeout, and never deadlock."),
    (PY, """def ordered_worker(args):
    who, rounds, holders, main_port = args
    for _ in range(rounds):
        for name in sorted(holders):            # the one global order
            acquire(holders[name], who, None)
        for name in sorted(holders, reverse=True):
            release(holders[name], who)
    main_port.send(("done", who, rounds))

for who in ("worker-3", "worker-4"):
    await stemnb.spawn(ordered_worker, (who, 20, holders, reports.send_port),
                       on_exit=exits.send_port, debug_name=who)
for _, who, rounds in sorted(reports.receive(timeout=60) for _ in range(2)):
    print(f"{who}: {rounds} rounds with both locks, no timeout needed")
print("workers ended:", [exits.receive(timeout=60) for _ in range(2)] == [None, None])"""),
    (MD, "## A holder that stops answering\n\nThe kernel starts a third holder, C, and pauses it (its messages queue "
         "up, none is lost) and asks for the lock with a 0.3 s timeout. The request times out "
         "instead of hanging the caller. The caller then withdraws its request; after `resume` "
         "the holder handles both messages in order (it grants the lock and at once takes it "
         "back), and the grant goes to a reply port that is already closed, where it is "
         "dropped. The next request gets a fresh port and its own answer."),
    (PY, """holder_c = await stemnb.spawn(lock_holder, ("ResourceC", setup.send_port), on_exit=exits.send_port,
                               debug_name="ResourceC")
port_c = setup.receive(timeout=60)
capability = holder_c.pause()
print("granted while paused:", acquire(port_c, "kernel", timeout=0.3))
withdraw = stemnb.ReceivePort()
port_c.send(("unlock", "kernel", withdraw.send_port))
holder_c.resume(capability)
print("after resume, withdrawn:", withdraw.receive(timeout=60)[1])
withdraw.close()
print("granted now:", acquire(port_c, "kernel", timeout=5))
release(port_c, "kernel")"""),
    (PY, """for port in (*holders.values(), port_c):
    port.send(("STOP", None, None))
print("holders ended:", [exits.receive(timeout=60) for _ in range(3)] == [None] * 3)
for port in (setup, exits, reports):
    port.close()"""),
]

REACTIVE = [
    (MD, """# Reactive streams with isolates

A reactive stream lets the consumer set the pace: a subscriber *requests* n items, and a
publisher never sends more than has been requested, so a slow consumer cannot be flooded
(backpressure). The Dart example runs `map` and `where` operators on a `StreamController` in an
isolate, but its producer sends every 50 ms whatever happens downstream. Here a publisher isolate
emits numbers only on request, a processor isolate applies operators that the kernel sends it as
lambdas, and the kernel is the subscriber: it asks for a few items at a time, and can cancel.
Demand flows upstream and items flow downstream, each through ports, and no part buffers more
than one upstream batch."""),
    (PY, "import stemnb"),
    (MD, "## Publisher and processor\n\nThe publisher answers `('request', n, port)` with at most "
         "n items and then `complete`. The processor keeps its subscriber's outstanding "
         "demand; while demand is left and its buffer is empty, it requests a batch of four "
         "from upstream, runs each item through the operators, and delivers what passes. "
         "A `cancel` travels upstream and ends both isolates."),
    (PY, """def publisher(args):
    count, main_port = args
    inbox = stemnb.ReceivePort("publisher")
    main_port.send(inbox.send_port)
    produced, largest_request = 0, 0
    for message in inbox:
        if message[0] == "cancel":
            break
        _, n, downstream = message
        largest_request = max(largest_request, n)
        for _ in range(min(n, count - produced)):
            produced += 1
            downstream.send(("item", produced))
        if produced == count:
            downstream.send(("complete", None))
            break
    main_port.send(("publisher", {"produced": produced, "largest request": largest_request}))
    inbox.close()

def processor(args):
    operators, upstream, batch, main_port = args
    inbox = stemnb.ReceivePort("processor")
    main_port.send(inbox.send_port)
    demand, in_flight, buffer, upstream_done = 0, 0, [], False
    downstream, largest_buffer = None, 0
    for kind, value, *rest in inbox:
        if kind == "request":
            demand, downstream = demand + value, rest[0]
        elif kind == "cancel":
            upstream.send(("cancel",))
            break
        elif kind == "item":
            in_flight -= 1
            for op, fn in operators:
                if op == "map":
                    value = fn(value)
                elif not fn(value):             # "where"
                    break
            else:
                buffer.append(value)
                largest_buffer = max(largest_buffer, len(buffer))
        elif kind == "complete":
            upstream_done, in_flight = True, 0
        while demand and buffer:
            downstream.send(("item", buffer.pop(0)))
            demand -= 1
        if upstream_done and not buffer:
            downstream.send(("complete", None))
            break
        if demand and not buffer and not in_flight:
            upstream.send(("request", batch, inbox.send_port))
            in_flight = batch
    main_port.send(("processor", {"largest buffer": largest_buffer}))
    inbox.close()"""),
    (MD, "## The subscriber\n\n`request(n)` asks for n more items and returns what arrives "
         "for them: n items, or fewer followed by the end of the stream."),
    (PY, """class Subscriber:
    def __init__(self, processor_port):
        self.processor, self.inbox, self.done = processor_port, stemnb.ReceivePort("subscriber"), False

    def request(self, n):
        self.processor.send(("request", n, self.inbox.send_port))
        items = []
        while len(items) < n:
            kind, value = self.inbox.receive(timeout=60)
            if kind == "complete":
                self.done = True
                break
            items.append(value)
        return items

    def cancel(self):
        self.processor.send(("cancel", None))
        self.inbox.close()

async def open_stream(count, operators, batch=4):
    \"\"\"Start a publisher of 1..count and a processor applying ``operators``; return a Subscriber.\"\"\"
    await stemnb.spawn(publisher, (count, setup.send_port), on_exit=exits.send_port, debug_name="publisher")
    upstream = setup.receive(timeout=60)
    await stemnb.spawn(processor, (operators, upstream, batch, setup.send_port), on_exit=exits.send_port,
                       debug_name="processor")
    return Subscriber(setup.receive(timeout=60))

def report(batch=4):
    \"\"\"Print the two isolates' closing reports, then wait for their exits.\"\"\"
    found = dict(setup.receive(timeout=60) for _ in range(2))
    publisher_report, largest_buffer = found["publisher"], found["processor"]["largest buffer"]
    print(f"publisher: produced {publisher_report['produced']}, largest request "
          f"{publisher_report['largest request']}; processor buffer never above the batch size: {largest_buffer <= batch}")
    assert [exits.receive(timeout=60) for _ in range(2)] == [None, None]

setup, exits = stemnb.ReceivePort(), stemnb.ReceivePort()"""),
    (MD, "## Dart's stream: double, keep what is above 10\n\nTwenty numbers; the kernel asks "
         "for 3, then 5, then everything that is left."),
    (PY, """operators = [("map", lambda x: x * 2), ("where", lambda x: x > 10)]
subscriber = await open_stream(20, operators)
for n in (3, 5, 100):
    items = subscriber.request(n)
    print(f"requested {n:>3}: {items}" + (" (stream complete)" if subscriber.done else ""))
subscriber.inbox.close()
report()"""),
    (MD, "## Cancelling an endless stream\n\nA publisher of a million numbers, a subscriber "
         "that wants the first five squares ending in 6, then cancels. The publisher has "
         "produced only what the processor asked for, batch by batch; nothing runs ahead."),
    (PY, """subscriber = await open_stream(1_000_000, [("map", lambda x: x * x), ("where", lambda x: x % 10 == 6)])
print("first five squares ending in 6:", subscriber.request(5))
subscriber.cancel()
report()"""),
    (PY, """setup.close()
exits.close()
print("ports closed")"""),
]

TRACING = [
    (MD, """# Distributed tracing for isolates

When one request crosses several isolates, a log per isolate no longer tells its story. Tracing
gives each request a **trace id** and each step a **span** with its own id and its parent's id;
the ids travel inside the messages, so the spans recorded in different processes join up into one
tree. The Dart example sends a trace id to three workers, which report `received` and
`processed` events. Here a request goes from the kernel to a gateway isolate, which fans it out to
a parser and a scorer isolate (the scorer has a nested span of its own) and combines their
answers. Every isolate sends its finished spans to a collector port in the kernel. Span ids are
`isolate/n`, counted per isolate, so they are the same on every run (Dart's use a timestamp);
durations vary and print as `DURATION` in the output check."""),
    (PY, "import contextlib\nimport itertools\nimport time\n\nimport stemnb"),
    (MD, "## A tracer\n\n`span(name, parent)` records one span: its trace comes from the parent "
         "context, its status is `error: ...` if the block raises. It yields the context to "
         "pass on: `{trace_id, span_id}`, a plain dict that goes into any message."),
    (PY, """class Tracer:
    def __init__(self, isolate, collector):
        self.isolate, self.collector, self.ids = isolate, collector, itertools.count(1)

    @contextlib.contextmanager
    def span(self, name, parent):
        record = {"trace_id": parent["trace_id"], "span_id": f"{self.isolate}/{next(self.ids)}",
                  "parent_id": parent.get("span_id"), "name": name, "isolate": self.isolate,
                  "start": time.time(), "status": "ok"}
        try:
            yield {"trace_id": record["trace_id"], "span_id": record["span_id"]}
        except Exception as exc:
            record["status"] = f"error: {exc}"
            raise
        finally:
            record["end"] = time.time()
            self.collector.send(("span", record))

def serve(args, handle):
    \"\"\"Run an isolate that answers ``(context, value, reply)`` with ``("ok", result)`` or ``("error", text)``.\"\"\"
    name, collector, ready = args
    tracer, inbox = Tracer(name, collector), stemnb.ReceivePort(name)
    ready.send((name, inbox.send_port))
    for message in inbox:
        if message is None:
            break
        context, value, reply = message
        try:
            reply.send(("ok", handle(tracer, context, value)))
        except Exception as exc:
            reply.send(("error", str(exc)))
    collector.send(("flushed", name))           # after all of this isolate's spans
    inbox.close()"""),
    (MD, "## Three services\n\nThe parser parses the text; the scorer looks up a weight "
         "(a nested span), rejects negative numbers and returns number × 3; the gateway asks "
         "both at once, then combines: parsed + scored."),
    (PY, """def parse(tracer, context, text):
    with tracer.span("parse", context):
        return int(text)

def score(tracer, context, text):
    with tracer.span("score", context) as span:
        with tracer.span("lookup", span):
            value = int(text)
            sum(i * i for i in range(20_000))   # the work of a lookup
            weight = 3
        if value < 0:
            raise ValueError(f"negative input {value}")
        return value * weight

def fan_out(tracer, context, text, services):
    with tracer.span("gateway", context) as span:
        replies = stemnb.ReceivePort()
        for service in ("parser", "scorer"):
            services[service].send((span, text, replies.send_port))
        answers = [replies.receive(timeout=60) for _ in range(2)]
        replies.close()
        errors = sorted(text for status, text in answers if status == "error")
        if errors:
            raise RuntimeError(f"downstream failed: {errors[0]}")
        with tracer.span("combine", span):
            return sum(value for _, value in answers)

def gateway(args):
    name, collector, ready, services = args
    serve((name, collector, ready), lambda tracer, context, text: fan_out(tracer, context, text, services))

collector, ready, exits = stemnb.ReceivePort("collector"), stemnb.ReceivePort(), stemnb.ReceivePort()
services = {}
for name, handle in (("parser", parse), ("scorer", score)):
    await stemnb.spawn(lambda args, handle=handle: serve(args, handle), (name, collector.send_port, ready.send_port),
                       on_exit=exits.send_port, debug_name=name)
    services.update([ready.receive(timeout=60)])
await stemnb.spawn(gateway, ("gateway", collector.send_port, ready.send_port, services),
                   on_exit=exits.send_port, debug_name="gateway")
_, gateway_port = ready.receive(timeout=60)"""),
    (MD, "## Traced requests\n\nThe kernel opens the root span of each trace; request 3 "
         "carries a negative number, so its trace records where it failed."),
    (PY, """kernel_tracer = Tracer("kernel", collector.send_port)
replies = stemnb.ReceivePort("replies")
for i, text in enumerate(["10", "20", "-30"], start=1):
    try:
        with kernel_tracer.span("request", {"trace_id": f"trace-{i}"}) as root:
            gateway_port.send((root, text, replies.send_port))
            status, value = replies.receive(timeout=60)
            if status == "error":
                raise RuntimeError(value)
        print(f"Result for trace-{i}: {value}")
    except RuntimeError as exc:
        print(f"trace-{i} failed: {exc}")"""),
    (MD, "## The trace log\n\nOnce every isolate has flushed its spans, the kernel joins "
         "them into a tree per trace by their parent ids. The trees cross process "
         "boundaries; children print in name order."),
    (PY, """for port in (gateway_port, *services.values()):
    port.send(None)
spans, flushed = [], set()
for kind, value in collector:
    if kind == "span":
        spans.append(value)
    else:
        flushed.add(value)
    if flushed == {"gateway", "parser", "scorer"}:
        break
children = {}
for span in spans:
    children.setdefault(span["parent_id"], []).append(span)

def show(span, depth):
    took = (span["end"] - span["start"]) * 1e3
    print(f"{'    ' * depth}{span['name']:<8} [{span['isolate']}] {span['span_id']:<10} {took:.1f} ms  {span['status']}")
    for child in sorted(children.get(span["span_id"], []), key=lambda s: s["name"]):
        show(child, depth + 1)

for root in sorted(children[None], key=lambda s: s["trace_id"]):
    print(root["trace_id"])
    show(root, 1)
print(f"{len(spans)} spans from {len({s['isolate'] for s in spans})} isolates")"""),
    (PY, """print("services ended:", [exits.receive(timeout=60) for _ in range(3)] == [None] * 3)
for port in (collector, ready, exits, replies):
    port.close()"""),
]

NOTEBOOKS = {
    "45_communication_patterns.ipynb": COMMUNICATION,
    "46_performance_monitoring.ipynb": MONITORING,
    "47_resource_pooling.ipynb": RESOURCE_POOL,
    "48_cascading_failures.ipynb": CIRCUIT_BREAKER,
    "49_deadlock_prevention.ipynb": DEADLOCK,
    "50_reactive_streams.ipynb": REACTIVE,
    "51_distributed_tracing.ipynb": TRACING,
}
