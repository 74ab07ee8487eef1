"""Cell lists of the architecture pattern notebooks: priorities, run vs spawn, platform sizing, a scheduler.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
"""

from __future__ import annotations

MD, PY = "md", "py"

PRIORITY_QUEUE = [
    (MD, """# A priority queue for isolate tasks

When tasks compete for a worker, the important ones should go first. The Dart example keeps a
`PriorityQueue` inside a worker isolate: tasks arrive as messages, each with a priority and a
reply port, and the worker always serves the most important task it holds. stemnb's ports carry
the same messages; Python's `heapq` is the queue. A second version keeps the queue in the
kernel and feeds an `IsolatePool` from it, so priorities decide which call starts next."""),
    (PY, "import heapq\nfrom concurrent.futures import FIRST_COMPLETED, wait\nfrom dataclasses import dataclass\n\n"
         "import stemnb"),
    (MD, "## A worker that holds a priority queue\n\nEach task is plain data: a priority, a "
         "name and the port for its answer. Tasks collect in "
         "the heap until the `run` marker says the batch is in (messages from one sender arrive "
         "in order, so the marker comes after every task); then the worker serves them, highest "
         "priority first and, within a priority, first come first served."),
    (PY, """@dataclass
class PriorityTask:
    priority: int
    name: str
    reply_port: stemnb.SendPort

def priority_worker(main_send_port):
    inbox = stemnb.ReceivePort()
    main_send_port.send(inbox.send_port)
    queue, arrived = [], 0
    for message in inbox:
        if message == "shutdown":
            break
        if message == "run":
            while queue:
                _, _, task = heapq.heappop(queue)
                task.reply_port.send(f"{task.name} (priority {task.priority})")
            continue
        heapq.heappush(queue, (-message.priority, arrived, message))   # max-priority first, then FIFO
        arrived += 1
    inbox.close()"""),
    (PY, """main_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
await stemnb.spawn(priority_worker, main_port.send_port, on_exit=exit_port.send_port,
                   debug_name="priority-worker")
worker = await main_port.first()

completed = stemnb.ReceivePort()
for i in range(6):
    priority = 10 if i % 2 == 0 else 1          # alternate high and low priority, as in Dart
    worker.send(PriorityTask(priority, f"Task {i}", completed.send_port))
worker.send("run")
for _ in range(6):
    print("Completed:", completed.receive(timeout=60))"""),
    (MD, "## Shutting the worker down"),
    (PY, """worker.send("shutdown")
print("exit message:", exit_port.receive(timeout=60))
completed.close()
exit_port.close()"""),
    (MD, "## Priorities in front of a pool\n\n`IsolatePool` starts calls first come, first served. "
         "To give some calls precedence, keep the waiting calls in a heap in the kernel and hand "
         "the pool only as many as it has processes; each time a call finishes, the most "
         "important waiting one starts. The dispatch order follows the priorities; the results "
         "arrive as calls finish, so they are sorted before printing."),
    (PY, """def render(report):
    return f"{report} rendered"

waiting = []
for order, (priority, report) in enumerate([(1, "weekly digest"), (5, "invoice"), (1, "audit log"),
                                            (9, "outage alert"), (5, "receipt"), (9, "security alert")]):
    heapq.heappush(waiting, (-priority, order, report))

dispatched, running, results = [], set(), []
with stemnb.IsolatePool(2, debug_name="prio") as pool:
    while waiting or running:
        while waiting and len(running) < pool.statistics().size:
            _, _, report = heapq.heappop(waiting)
            dispatched.append(report)
            running.add(pool.run(render, report))
        done, running = wait(running, timeout=60, return_when=FIRST_COMPLETED)
        results.extend(f.result() for f in done)
print("dispatch order:", dispatched)
print("results (sorted):", sorted(results))"""),
]

RUN_VS_SPAWN = [
    (MD, """# `Isolate.run` vs `Isolate.spawn`

Dart has two ways into another isolate. `Isolate.run` is for one-shot work: it starts the
isolate, runs the function, returns its result (or re-throws its error) and cleans up.
`Isolate.spawn` starts a long-lived isolate you talk to through ports: it can keep state, serve
many requests and report progress, but you own its lifecycle. stemnb has both: `stemnb.run`
(on warm pool processes, so a call costs a message rather than a process start) and
`stemnb.spawn`."""),
    (PY, "import stemnb"),
    (MD, "## The same computation both ways\n\nThe Dart example sums 0..999,999 with each."),
    (PY, """def spawn_worker(send_port):
    send_port.send(sum(range(1_000_000)))

run_result = await stemnb.run(lambda: sum(range(1_000_000)))
print("stemnb.run result:  ", run_result)

receive_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
await stemnb.spawn(spawn_worker, receive_port.send_port, on_exit=exit_port.send_port)
spawn_result = await receive_port.first()          # first() closes the port afterwards
print("stemnb.spawn result:", spawn_result)
print("the spawned isolate ended:", exit_port.receive(timeout=60) is None)"""),
    (MD, "## Errors\n\n`run` re-raises the function's exception in the caller. A spawned isolate's "
         "uncaught error goes to its error port, if it has one, and ends it."),
    (PY, """def parse(text):
    return int(text)

try:
    await stemnb.run(parse, "forty-two")
except ValueError as exc:
    print("run re-raised:", exc)

def parsing_worker(text):
    parse(text)

error_port = stemnb.ReceivePort()
await stemnb.spawn(parsing_worker, "forty-two", on_error=error_port.send_port, on_exit=exit_port.send_port)
print("spawn's error port got:", error_port.receive(timeout=60)[0])
print("and the isolate ended:", exit_port.receive(timeout=60) is None)"""),
    (MD, "## State that lives between messages\n\nOnly a spawned isolate keeps state across "
         "requests: this one keeps a running total and reports it on every message. `run` calls "
         "are independent: each gets its arguments and returns one value."),
    (PY, """def accumulator(reply_to):
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    total = 0
    for amount in inbox:
        if amount is None:
            break
        total += amount
        reply_to.send(total)
    inbox.close()

replies = stemnb.ReceivePort()
await stemnb.spawn(accumulator, replies.send_port, on_exit=exit_port.send_port, debug_name="accumulator")
inbox = replies.receive(timeout=60)
for amount in (5, 10, 20):
    inbox.send(amount)
    print("running total:", replies.receive(timeout=60))
inbox.send(None)
print("accumulator ended:", exit_port.receive(timeout=60) is None)"""),
    (MD, """## Which one to use

| | `stemnb.run` | `stemnb.spawn` |
|---|---|---|
| shape | one call, one result | a conversation over ports |
| result | a `Future` (`await`, `.result()`) | messages to a `SendPort` you pass in |
| errors | re-raised in the caller | to `on_error`; the isolate ends unless `errors_are_fatal=False` |
| state | none kept between calls | lives as long as the isolate |
| lifecycle | handled by the pool | yours: end markers, `kill()`, `on_exit` |
| cost | a message to a warm process | a process start |"""),
    (PY, """for port in (replies, error_port, exit_port):
    port.close()
stemnb.default_pool().close()
print("ports and default pool closed")"""),
]

PLATFORM = [
    (MD, """# Computing platform features

How many isolates should a job use? Dart reads `Platform.numberOfProcessors` and leaves one core
for the main isolate. In Python, `os.cpu_count()` counts the machine's CPUs, but a container or
a Binder session may be allowed fewer: `loky.cpu_count()` also respects CPU affinity and cgroup
quotas, and it is what stemnb's default pool uses. The printed checks below hold on any
machine, so the notebook's outputs do not depend on where it runs."""),
    (PY, "import os\n\nimport loky\n\nimport stemnb"),
    (MD, "## Processor counts"),
    (PY, """usable = loky.cpu_count()
print("usable CPUs never exceed the machine's:", 1 <= usable <= os.cpu_count())
print("nor the CPUs this process may run on:", usable <= len(os.sched_getaffinity(0)))
print("default pool size is loky.cpu_count():", stemnb.default_pool().statistics().size == usable)
workers = max(1, usable - 1)                       # leave one core to the kernel, as in Dart
print("at least one worker, even on one CPU:", workers >= 1)"""),
    (MD, "## Where code runs: `Isolate.current()`\n\nIn the kernel, the current isolate is the "
         "main isolate; in a pool process, it is that process, named after its pool; in a "
         "spawned isolate, it carries its `debug_name`."),
    (PY, """def where():
    return stemnb.Isolate.current().debug_name

print("kernel:", where())
with stemnb.IsolatePool(1, debug_name="sizing") as pool:
    print("pool process:", pool.run(where).result(timeout=60))

def report(port):
    port.send(where())

port = stemnb.ReceivePort()
await stemnb.spawn(report, port.send_port, debug_name="spawned-worker")
print("spawned isolate:", await port.first())"""),
    (MD, "## Sizing a job to the machine\n\nSplit the Dart example's 1..1000 into one chunk "
         "per worker, the last chunk taking the remainder, and sum them on a pool of that "
         "size. The total is the same whatever the number of workers."),
    (PY, """def chunks(data, parts):
    size = len(data) // parts
    return [data[i * size:(i + 1) * size if i < parts - 1 else len(data)] for i in range(parts)]

data = list(range(1, 1001))
with stemnb.IsolatePool(workers, debug_name="sized") as pool:
    partial = list(pool.map(sum, chunks(data, workers)))
    print("one chunk per worker:", len(partial) == workers)
print("Processed with the recommended workers: total =", sum(partial))
for parts in (1, 3, 7):
    print(f"in {parts} chunks: total =", sum(sum(c) for c in chunks(data, parts)))"""),
    (PY, """stemnb.default_pool().close()
print("default pool closed")"""),
]

SCHEDULER = [
    (MD, """# A background task scheduler

A scheduler isolate runs recurring jobs on timers, away from the main isolate. The Dart example
keeps a `Timer.periodic` per task and takes `schedule`, `cancel` and `shutdown` commands. In
stemnb the scheduler is an `async def` entry: its timers are asyncio tasks on the isolate's own
event loop, and commands arrive through `async for` over its port. Ticks from two timers
interleave as the clock decides, so the notebook sorts them before printing."""),
    (PY, "import asyncio\n\nimport stemnb"),
    (PY, """async def task_scheduler(main_send_port):
    commands = stemnb.ReceivePort("scheduler")
    main_send_port.send(commands.send_port)
    timers, runs = {}, {}

    async def every(name, interval, times):
        for _ in range(times or 1_000_000):
            await asyncio.sleep(interval)
            runs[name] += 1
            main_send_port.send(("executed", name, runs[name]))
        main_send_port.send(("finished", name, runs[name]))

    async for command, name, argument in commands:
        if command == "schedule":
            interval, times = argument
            if name in timers:
                timers[name].cancel()             # rescheduling replaces the old timer
            runs[name] = 0
            timers[name] = asyncio.create_task(every(name, interval, times))
            main_send_port.send(("scheduled", name, None))
        elif command == "cancel":
            timers.pop(name).cancel()
            main_send_port.send(("cancelled", name, runs[name]))
        elif command == "shutdown":
            for timer in timers.values():
                timer.cancel()
            main_send_port.send(("shutdown", None, None))
            commands.close()"""),
    (MD, "## Two periodic tasks\n\n`task1` runs every 50 ms and `task2` every 100 ms, three "
         "times each; the scheduler says when each is finished."),
    (PY, """main_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
await stemnb.spawn(task_scheduler, main_port.send_port, on_exit=exit_port.send_port, debug_name="scheduler")
scheduler = main_port.receive(timeout=60)
scheduler.send(("schedule", "task1", (0.05, 3)))
scheduler.send(("schedule", "task2", (0.10, 3)))

events, finished = [], 0
while finished < 2:
    event = main_port.receive(timeout=60)
    events.append(event)
    finished += event[0] == "finished"
for kind, name, count in sorted(events, key=lambda e: (e[1], e[2] or 0, e[0])):
    print(f"{name}: {kind}" + (f" (run {count})" if count else ""))"""),
    (MD, "## An endless task, cancelled\n\nA heartbeat without a limit runs until it is "
         "cancelled. How many beats happen before the cancel arrives depends on timing, so the "
         "notebook checks that it beat at least twice and that no beat follows the cancel."),
    (PY, """scheduler.send(("schedule", "heartbeat", (0.02, None)))
kind, name, _ = main_port.receive(timeout=60)
print(name, kind)
beats = [main_port.receive(timeout=60) for _ in range(2)]
print("beats so far:", [count for _, _, count in beats])
scheduler.send(("cancel", "heartbeat", None))
event = main_port.receive(timeout=60)
while event[0] == "executed":             # beats already on their way when the cancel was sent
    event = main_port.receive(timeout=60)
kind, name, total = event
print(kind, name, "after at least two beats:", total >= 2)
try:
    main_port.receive(timeout=0.2)
except TimeoutError:
    print("no beat after the cancel")"""),
    (MD, "## Shutting down\n\nThe scheduler cancels its timers, closes its port, and the "
         "isolate ends."),
    (PY, """scheduler.send(("shutdown", None, None))
print(main_port.receive(timeout=60)[0])
print("exit message:", exit_port.receive(timeout=60))
main_port.close()
exit_port.close()"""),
]

NOTEBOOKS = {
    "18_priority_queue.ipynb": PRIORITY_QUEUE,
    "19_run_vs_spawn.ipynb": RUN_VS_SPAWN,
    "20_platform_features.ipynb": PLATFORM,
    "21_background_scheduler.ipynb": SCHEDULER,
}
