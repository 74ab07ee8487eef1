"""Cell lists of the resilience pattern notebooks: fault tolerance, load balancing, rate limits, shutdown.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
"""

from __future__ import annotations

MD, PY = "md", "py"

FAULT_TOLERANCE = [
    (MD, """# Isolate fault tolerance

A supervised worker is restarted when it fails, so the system keeps serving. In the Dart
example, the supervisor listens on the worker's error and exit ports and, on a failure, spawns a
new worker, up to a restart limit. stemnb gives the supervisor the same signals: `on_error`
delivers an uncaught error as `[message, stack trace, RemoteError]`, and
`add_on_exit_listener(port, response)` sends `response` once the isolate has ended, whether by
an error or by a crash that leaves no error behind. Both come from the process that spawned the
isolate, so when they go to the same port, the error always arrives before the exit."""),
    (PY, "import os\nimport time\n\nimport stemnb"),
    (PY, """def resilient_worker(reply_to):
    inbox = stemnb.ReceivePort("work")
    reply_to.send(("ready", inbox.send_port))
    for message in inbox:
        if message == "FAIL":
            raise RuntimeError("Simulated failure")
        if message == "CRASH":
            os._exit(3)                         # a crash: no error report, only the exit
        if message == "STOP":
            break
        reply_to.send(("processed", f"Processed: {message}"))
    inbox.close()

class SupervisedWorker:
    \"\"\"Run ``resilient_worker`` in an isolate; start a new one after each failure, up to a limit.\"\"\"

    def __init__(self, name, max_restarts=3, backoff=0.05):
        self.name, self.max_restarts, self.backoff = name, max_restarts, backoff
        self.restarts = 0
        self.port = stemnb.ReceivePort(f"supervisor-{name}")   # replies, errors and exits
        self.address = None

    def start(self):
        isolate = stemnb.spawn(resilient_worker, self.port.send_port, on_error=self.port.send_port,
                               debug_name=f"Worker-{self.name}").result(timeout=60)
        isolate.add_on_exit_listener(self.port.send_port, ("exited", self.restarts))
        kind, self.address = self.port.receive(timeout=60)
        print(f"Worker {self.name} started (generation {self.restarts})")

    def request(self, item):
        \"\"\"Send ``item``; return the reply, or what failed and whether the worker was restarted.\"\"\"
        if self.address is None:
            raise RuntimeError(f"worker {self.name} is down")
        self.address.send(item)
        error = None
        while True:
            message = self.port.receive(timeout=60)
            if isinstance(message, list):       # [message, stack trace, RemoteError]
                error = message[0]
            elif message[0] == "processed":
                return message[1]
            else:                               # ("exited", generation)
                return self._recover(error or "crashed without an error")

    def _recover(self, failure):
        if self.restarts == self.max_restarts:
            self.address = None
            return f"failed ({failure}); restart limit reached"
        self.restarts += 1
        time.sleep(self.backoff * 2 ** (self.restarts - 1))   # exponential backoff
        self.start()
        return f"failed ({failure}); restarted, attempt {self.restarts}"

    def stop(self):
        if self.address is not None:
            self.address.send("STOP")
            while self.port.receive(timeout=60)[0] != "exited":
                pass
        self.port.close()"""),
    (MD, "## Fail, restart, carry on\n\nAn uncaught exception and a hard crash are both "
         "recovered from; work sent afterwards goes to the new worker."),
    (PY, """worker = SupervisedWorker("Resilient-1")
worker.start()
print("Received:", worker.request("Task-1"))
print("Triggering failure...")
print(worker.request("FAIL"))
print("Received:", worker.request("Task-2"))
print("Triggering a crash...")
print(worker.request("CRASH"))
print("Received:", worker.request("Task-3"))"""),
    (MD, "## The restart limit\n\nA worker that keeps failing is given up on after "
         "`max_restarts`, instead of restarting forever."),
    (PY, """print(worker.request("FAIL"))
print(worker.request("FAIL"))
try:
    worker.request("Task-4")
except RuntimeError as exc:
    print("RuntimeError:", exc)
worker.stop()"""),
    (MD, "## A pool supervises its own processes\n\n`IsolatePool` replaces a crashed process by "
         "itself: the call that was running fails with `IsolateExitedError`, `on_recycle` "
         "reports why the process ended, and the next call runs on the replacement."),
    (PY, """reasons = []
with stemnb.IsolatePool(1, debug_name="supervised") as pool:
    pool.on_recycle(lambda event: reasons.append(event.reason.value))
    try:
        pool.run(os._exit, 3).result(timeout=60)
    except stemnb.IsolateExitedError as exc:
        print("IsolateExitedError, exit code", exc.exitcode)
    print("next call:", pool.run(pow, 2, 5).result(timeout=60))
print("recycle reasons:", reasons)"""),
]

LOAD_BALANCER = [
    (MD, """# The load balancer pattern

A load balancer sends each task to the worker with the least work, instead of strictly in
turn. The Dart example counts each worker's active tasks and picks the lowest. Here the
balancer counts the *amount* of work each worker still has to do (each task states its cost),
picks the least loaded worker (the lowest id on a tie), and takes the cost off again when the
worker reports the task done. The assignments below are decided before any result is read, so
they are the same on every run."""),
    (PY, "import time\n\nimport stemnb"),
    (PY, """def balanced_worker(args):
    worker_id, ready = args
    inbox = stemnb.ReceivePort(f"worker-{worker_id}")
    ready.send((worker_id, inbox.send_port))
    for message in inbox:
        if message is None:
            break
        task_id, cost, reply_port = message
        time.sleep(cost * 0.002)                     # simulated work, proportional to the cost
        reply_port.send((worker_id, task_id))
    inbox.close()

class LoadBalancer:
    \"\"\"Send each task to the worker with the least outstanding work.\"\"\"

    def __init__(self, addresses, results):
        self.addresses, self.results = addresses, results
        self.load = {worker_id: 0 for worker_id in addresses}
        self.cost = {}

    def submit(self, task_id, cost):
        worker_id = min(self.load, key=lambda w: (self.load[w], w))
        self.load[worker_id] += cost
        self.cost[task_id] = cost
        self.addresses[worker_id].send((task_id, cost, self.results.send_port))
        return worker_id

    def complete(self):
        \"\"\"Wait for one finished task and take its cost off its worker's load.\"\"\"
        worker_id, task_id = self.results.receive(timeout=60)
        self.load[worker_id] -= self.cost.pop(task_id)
        return worker_id, task_id"""),
    (MD, "## Four workers, twelve tasks of uneven cost\n\nEvery fourth task costs four times "
         "as much as the others."),
    (PY, """ready = stemnb.ReceivePort()
exits = stemnb.ReceivePort()
addresses = {}
for i in range(4):
    await stemnb.spawn(balanced_worker, (i, ready.send_port), on_exit=exits.send_port, debug_name=f"lb-{i}")
    worker_id, address = ready.receive(timeout=60)
    addresses[worker_id] = address
ready.close()

balancer = LoadBalancer(addresses, stemnb.ReceivePort("results"))
costs = [40, 10, 10, 10] * 3                 # every fourth task is a heavy one
for task_id, cost in enumerate(costs):
    worker_id = balancer.submit(task_id, cost)
    print(f"task {task_id:>2} (cost {cost}) -> worker {worker_id}, load now {balancer.load[worker_id]}")"""),
    (MD, "## Compared with round-robin\n\nThe total cost each worker was given. Least-loaded "
         "assignment evens it out; plain turn-taking gives every heavy task to the same worker."),
    (PY, """print("least loaded:", dict(balancer.load))
round_robin = {w: sum(costs[w::4]) for w in range(4)}
print("round-robin: ", round_robin)
print("largest share:", max(balancer.load.values()), "vs", max(round_robin.values()))"""),
    (MD, "## Results come back\n\nAs each result arrives, the balancer takes the task's cost "
         "off its worker; once all are in, every load is back to zero."),
    (PY, """finished = sorted(balancer.complete()[1] for _ in costs)
print("tasks finished:", finished)
print("final loads:", balancer.load)
for address in addresses.values():
    address.send(None)
print("workers ended:", [exits.receive(timeout=60) for _ in addresses])
balancer.results.close()
exits.close()"""),
]

RATE_LIMITING = [
    (MD, """# Rate limiting with isolates

A rate limiter protects a worker from more requests than it can serve. The Dart example keeps
the times of recent requests in a one-second window inside the worker isolate and rejects
requests beyond five per second. stemnb ships a token bucket, `stemnb.TokenBucketRateLimiter`
(the one its task worker uses): a bucket holds up to *n* tokens, refills at *n* per period,
and each request spends one; `acquire` answers with `allowed` and, when refused, `retry_after`,
the seconds until a token is back. Its `clock` can be replaced, which makes the first part
deterministic: each request carries the time it was sent, and the limiter reads that."""),
    (PY, "import time\n\nimport stemnb"),
    (PY, """def rate_limited_worker(args):
    main_port, rate, use_request_time = args
    inbox = stemnb.ReceivePort("limited")
    main_port.send(inbox.send_port)
    now = [0.0]
    clock = (lambda: now[0]) if use_request_time else time.monotonic
    limiter = stemnb.TokenBucketRateLimiter(clock=clock)
    accepted = rejected = 0
    for message in inbox:
        if message == "STOP":
            main_port.send(("stats", accepted, rejected))
            break
        request_id, sent_at = message
        now[0] = sent_at
        decision = limiter.acquire("requests", rate)
        if decision.allowed:
            accepted += 1
        else:
            rejected += 1
        main_port.send((request_id, decision.allowed, decision.retry_after))
    inbox.close()"""),
    (MD, "## Sixteen requests a second against a limit of five\n\nTwenty requests, one "
         "every 0.0625 s by their timestamps, sent as fast as the port takes them. The full "
         "bucket lets the first ones through; once it is empty, a token comes back every 0.2 s, "
         "so only about one request in three is accepted, and each refusal says how long to "
         "wait."),
    (PY, """main_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
await stemnb.spawn(rate_limited_worker, (main_port.send_port, "5/s", True),
                   on_exit=exit_port.send_port, debug_name="rate-limited")
worker = main_port.receive(timeout=60)
for i in range(20):
    worker.send((i, i * 0.0625))               # exact in binary: the decisions do not round
for _ in range(20):
    request_id, allowed, retry_after = main_port.receive(timeout=60)
    verdict = "accepted" if allowed else f"rejected, retry in {retry_after:.4f}"
    print(f"Request {request_id:>2} at t={request_id * 0.0625:.4f}: {verdict}")
worker.send("STOP")
print("Final stats - accepted: {1}, rejected: {2}".format(*main_port.receive(timeout=60)))
print("exit message:", exit_port.receive(timeout=60))"""),
    (MD, "## A client that honours `retry_after`\n\nWith the real clock, a burst of eight "
         "requests against `5/s` gets some refusals; the client waits the advised time and "
         "sends the refused request again, until all are accepted. How many retries that takes "
         "depends on timing; that every request gets through does not."),
    (PY, """await stemnb.spawn(rate_limited_worker, (main_port.send_port, "5/s", False),
                   on_exit=exit_port.send_port, debug_name="rate-limited-live")
worker = main_port.receive(timeout=60)
accepted, retries = set(), 0
waiting = list(range(8))
while waiting:
    for request_id in waiting:
        worker.send((request_id, None))
    answers = [main_port.receive(timeout=60) for _ in waiting]
    refused = [(request_id, retry_after) for request_id, allowed, retry_after in answers if not allowed]
    accepted.update(request_id for request_id, allowed, _ in answers if allowed)
    waiting = [request_id for request_id, _ in refused]
    if refused:
        retries += len(refused)
        time.sleep(max(retry_after for _, retry_after in refused))
print("accepted:", sorted(accepted))
print("the burst was throttled (some retries):", retries > 0)
worker.send("STOP")
main_port.receive(timeout=60)
print("exit message:", exit_port.receive(timeout=60))
main_port.close()
exit_port.close()"""),
]

GRACEFUL_SHUTDOWN = [
    (MD, """# The graceful shutdown pattern

A graceful shutdown stops taking new work, lets the work in progress finish, releases its
resources and only then ends. The Dart worker runs its tasks concurrently, and on `SHUTDOWN`
rejects new tasks, waits for the active ones and closes its port. In stemnb the worker is an
`async def` entry: tasks are asyncio tasks on the isolate's event loop, and closing the port
ends the isolate once the entry returns. The exit port confirms it. For pools, `close()`
already is a graceful shutdown."""),
    (PY, "import asyncio\nimport time\n\nimport stemnb"),
    (PY, """async def graceful_worker(main_port):
    inbox = stemnb.ReceivePort("graceful")
    main_port.send(inbox.send_port)
    active = set()

    async def do_work(task_id):
        main_port.send(("started", task_id))
        await asyncio.sleep(0.2)                 # simulated work
        main_port.send(("completed", task_id))

    async def finish():
        await asyncio.gather(*active)            # let the work in progress complete
        main_port.send(("done", "all work completed, shutting down"))
        inbox.close()                            # ends the async for below

    closing = None
    async for message in inbox:
        if message == "SHUTDOWN" and closing is None:
            main_port.send(("shutdown", "finishing active work..."))
            closing = asyncio.create_task(finish())
        elif closing is not None:
            main_port.send(("rejected", message))
        else:
            task = asyncio.create_task(do_work(message))
            active.add(task)
            task.add_done_callback(active.discard)
    await closing"""),
    (MD, "## Shutting down with work in flight\n\nFive tasks start; the shutdown request "
         "arrives while they run, and a sixth task sent after it is rejected. The tasks finish "
         "in whatever order the clock decides, so each kind of event is sorted."),
    (PY, """main_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
await stemnb.spawn(graceful_worker, main_port.send_port, on_exit=exit_port.send_port, debug_name="graceful")
worker = main_port.receive(timeout=60)
for task_id in range(1, 6):
    worker.send(task_id)
print("Requesting graceful shutdown...")
worker.send("SHUTDOWN")
worker.send(99)

events = {}
while True:
    kind, value = main_port.receive(timeout=60)
    events.setdefault(kind, []).append(value)
    if kind == "done":
        break
for kind in ("started", "shutdown", "rejected", "completed", "done"):
    print(f"{kind}:", sorted(events[kind]))
print("exit message:", exit_port.receive(timeout=60))"""),
    (MD, "## After the end\n\nThe worker's port is closed and the isolate has ended: a "
         "message sent now is dropped, silently, as in Dart."),
    (PY, """worker.send(100)
try:
    main_port.receive(timeout=0.3)
except TimeoutError:
    print("no answer: the worker is gone")
main_port.close()
exit_port.close()"""),
    (MD, "## Graceful pool shutdown\n\n`IsolatePool.close()` cancels the calls that have not "
         "started, lets the running one finish, and stops the processes; every future is settled "
         "when it returns. Here the call signals through a port once it is running, so the close "
         "certainly comes while it works."),
    (PY, """def job(name, started):
    started.send(name)
    time.sleep(0.2)
    return f"{name} finished"

started = stemnb.ReceivePort()
pool = stemnb.IsolatePool(1, debug_name="graceful-pool")
futures = [pool.run(job, f"job-{i}", started.send_port) for i in range(3)]
print(started.receive(timeout=60), "is running; closing the pool")
pool.close()
print("running call:", futures[0].result(timeout=0))
print("queued calls cancelled:", [f.cancelled() for f in futures[1:]])
print("pool state:", pool.statistics().state)
started.close()"""),
    (MD, "With `cancel_pending=False`, the queued calls run too before the processes stop."),
    (PY, """started = stemnb.ReceivePort()
pool = stemnb.IsolatePool(1, debug_name="drain")
futures = [pool.run(job, f"job-{i}", started.send_port) for i in range(3)]
print(started.receive(timeout=60), "is running; closing the pool, queued calls included")
pool.close(cancel_pending=False)
print("all ran:", [f.result(timeout=0) for f in futures])
started.close()"""),
]

NOTEBOOKS = {
    "26_fault_tolerance.ipynb": FAULT_TOLERANCE,
    "27_load_balancer.ipynb": LOAD_BALANCER,
    "28_rate_limiting.ipynb": RATE_LIMITING,
    "29_graceful_shutdown.ipynb": GRACEFUL_SHUTDOWN,
}
