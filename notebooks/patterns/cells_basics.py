"""Cell lists of the first pattern notebooks: running calls, moving data, spawning, talking, fanning out.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
"""

from __future__ import annotations

MD, PY = "md", "py"

BASIC_RUN = [
    (MD, """# Basic isolate with `Isolate.run`

Dart's `Isolate.run(computation)` runs one function in a separate isolate and completes a
`Future` with its return value; creating the isolate, passing the result back and cleaning up
are handled for you. stemnb's equivalent is `stemnb.run(fn, *args, **kwargs)`: the call runs in
a warm process of the default pool and returns a `stemnb.Future`, which you `await` in a
notebook or settle with `.result()`."""),
    (PY, "import os\n\nimport stemnb"),
    (MD, "## A computation in another process\n\nAs in the Dart example: sum the numbers from 1 to "
         "1,000,000. The lambda is defined here and travels to the process with cloudpickle."),
    (PY, """result = await stemnb.run(lambda: sum(range(1, 1_000_001)))
print(f"Sum: {result}")"""),
    (PY, """message = await stemnb.run(lambda: "Hello there! from isolate")
print(message)"""),
    (MD, "## It really ran elsewhere\n\nThe call reports the process id it ran in; it is not the "
         "kernel's."),
    (PY, """child_pid = stemnb.run(os.getpid).result(timeout=60)
print("ran in another process:", child_pid != os.getpid())"""),
    (MD, "## Arguments instead of captured values\n\nDart's `Isolate.run` takes a closure; "
         "`stemnb.run` also takes the arguments directly, so no wrapper lambda is needed."),
    (PY, """def sum_to(n, *, start=1):
    return sum(range(start, n + 1))

print(stemnb.run(sum_to, 1_000_000).result(timeout=60))
print(stemnb.run(sum_to, 10, start=5).result(timeout=60))"""),
    (MD, "## Clean up\n\n`stemnb.run` uses the default pool; closing it stops its processes "
         "(the next `run` would start a fresh one)."),
    (PY, """stemnb.default_pool().close()
print("default pool closed")"""),
]

HEAVY_TASK = [
    (MD, """# Computing a heavy task in an isolate

CPU-bound work belongs in an isolate, so the main isolate stays responsive: in Dart, the
Flutter UI thread keeps drawing while a worker computes `fibonacci(42)`. In stemnb the
notebook kernel is the main isolate: a `stemnb.run` call computes in another process, and the
kernel keeps running cells and handling events while it waits on the future."""),
    (PY, "import stemnb"),
    (PY, """def fibonacci(n):
    return n if n <= 1 else fibonacci(n - 1) + fibonacci(n - 2)"""),
    (MD, "## Start the computation, keep working\n\n`stemnb.run` returns at once with a future. "
         "While the isolate computes, the kernel is free: here it does other work in the "
         "meantime (a smaller input than Dart's 42, so the notebook stays quick)."),
    (PY, """print("Starting heavy computation...")
future = stemnb.run(fibonacci, 25)
kernel_side = [fibonacci(n) for n in range(10)]   # the main isolate keeps going meanwhile
print("Main isolate computed", kernel_side, "in the meantime")
print(f"Fibonacci(25) = {future.result(timeout=120)}")"""),
    (MD, "## Awaiting keeps the event loop free\n\n`await` hands control back to the kernel's "
         "event loop until the result is in, as in Dart."),
    (PY, "print(f\"Fibonacci(24) = {await stemnb.run(fibonacci, 24)}\")"),
    (MD, "## Callbacks\n\nA `stemnb.Future` is a `concurrent.futures.Future`: "
         "`add_done_callback` runs code when the isolate finishes."),
    (PY, """import threading

finished = threading.Event()
answers = []

def on_done(fut):
    answers.append(fut.result())
    finished.set()

stemnb.run(fibonacci, 20).add_done_callback(on_done)
finished.wait(timeout=120)
print("callback saw", answers)"""),
    (PY, """stemnb.default_pool().close()
print("default pool closed")"""),
]

PASSING_DATA = [
    (MD, """# Passing data to isolates

Isolates share no memory, so everything they exchange is copied: in Dart, numbers, strings,
lists, maps and many objects can cross. In stemnb, arguments and results are pickled (with
cloudpickle, so classes and functions defined in the notebook work too), which gives the same
guarantee: the receiver gets a copy, and changing it never changes the sender's object."""),
    (PY, "from dataclasses import dataclass, field\n\nimport stemnb"),
    (MD, "## Simple types, collections, maps"),
    (PY, """doubled = stemnb.run(lambda: 42 * 2).result(timeout=60)
print("Doubled:", doubled)

numbers = [5, 2, 8, 1, 9, 3]
print("Sorted:", stemnb.run(sorted, numbers).result(timeout=60))

summary = stemnb.run(lambda: {"sum": 100, "count": 10, "average": 10}).result(timeout=60)
print("Result:", summary)"""),
    (MD, "## A class defined in the notebook\n\nThe Dart example's `DataPacket`. The class "
         "itself travels by value, so the isolate can build and return instances."),
    (PY, """@dataclass
class DataPacket:
    id: str
    values: list[int]
    metadata: dict[str, object] = field(default_factory=dict)

def describe(packet):
    return f"DataPacket({packet.id}, {len(packet.values)} values)"

def enrich(packet):
    total = sum(packet.values)
    return DataPacket(packet.id + "-done", [v * 10 for v in packet.values], {"total": total})

packet = DataPacket("p1", [1, 2, 3], {"source": "notebook"})
print(stemnb.run(describe, packet).result(timeout=60))
print(stemnb.run(enrich, packet).result(timeout=60))"""),
    (MD, "## Data is copied, not shared\n\nThe isolate appends to *its copy* of the list; the "
         "notebook's list is unchanged."),
    (PY, """def append_and_return(items):
    items.append("added in the isolate")
    return items

original = ["from the notebook"]
returned = stemnb.run(append_and_return, original).result(timeout=60)
print("returned:", returned)
print("original:", original)
print("same object:", returned is original)"""),
    (PY, """stemnb.default_pool().close()
print("default pool closed")"""),
]

SPAWN_PORTS = [
    (MD, """# `Isolate.spawn` with `SendPort` and `ReceivePort`

`Isolate.spawn(entry, message)` starts an isolate that runs `entry(message)`; usually the
message is a `SendPort`, the address of a `ReceivePort` in the spawning isolate, so the worker
can send results back. `ReceivePort.first` waits for one message and closes the port. stemnb has
the same pieces: `stemnb.spawn(entry, message)` (a future of the `Isolate`),
`stemnb.ReceivePort()`, its `.send_port`, and `port.first()`."""),
    (PY, "import stemnb"),
    (MD, "## The worker sends one result back"),
    (PY, """def isolate_entry(send_port):
    result = sum(range(1, 101))
    send_port.send(result)   # the isolate ends once its entry returns

receive_port = stemnb.ReceivePort()
isolate = await stemnb.spawn(isolate_entry, receive_port.send_port)
result = await receive_port.first()   # waits for one message, then closes the port
print("Sum from isolate:", result)
print("port closed:", receive_port.closed)"""),
    (MD, "## Blocking style\n\nOutside `async` code, `.result()` and `receive(timeout=...)` "
         "do the same job. The exit port tells us the isolate has ended."),
    (PY, """def greeter(send_port):
    send_port.send("hello from the spawned isolate")

replies = stemnb.ReceivePort()
exits = stemnb.ReceivePort()
future = stemnb.spawn(greeter, replies.send_port, on_exit=exits.send_port, debug_name="greeter")
isolate = future.result(timeout=60)
print(replies.receive(timeout=60))
print("exit message:", exits.receive(timeout=60))
print("alive:", isolate.is_alive)"""),
    (MD, "## Clean up"),
    (PY, """replies.close()
exits.close()
print("ports closed:", replies.closed and exits.closed)"""),
]

BIDIRECTIONAL = [
    (MD, """# Bidirectional communication

For a conversation, each side owns a `ReceivePort` and gives the other its `SendPort`: the
worker's first message is its own send port, then the main isolate sends requests and the
worker answers until it is told to shut down. stemnb's ports work the same way, and a
`SendPort` can travel inside any message."""),
    (PY, "import stemnb"),
    (PY, """def worker_isolate(main_send_port):
    worker_receive_port = stemnb.ReceivePort()
    main_send_port.send(worker_receive_port.send_port)   # hand our address to the main isolate
    for message in worker_receive_port:
        if message == "shutdown":
            worker_receive_port.close()
            break
        main_send_port.send(message * message)"""),
    (MD, "## The handshake, then requests and responses"),
    (PY, """main_receive_port = stemnb.ReceivePort()
exits = stemnb.ReceivePort()
await stemnb.spawn(worker_isolate, main_receive_port.send_port, on_exit=exits.send_port)
worker_send_port = main_receive_port.receive(timeout=60)
print("got the worker's port:", type(worker_send_port).__name__)

for n in (5, 10, 15):
    worker_send_port.send(n)

count = 0
for response in main_receive_port:      # messages from one sender arrive in order
    print("Received:", response)
    count += 1
    if count == 3:
        worker_send_port.send("shutdown")
        break"""),
    (MD, "## Async iteration\n\n`async for` over a port is Dart's `await for`: the kernel's "
         "event loop stays free between messages."),
    (PY, """async def converse(numbers):
    replies = stemnb.ReceivePort()
    await stemnb.spawn(worker_isolate, replies.send_port)
    worker, answers = None, []
    async for message in replies:
        if worker is None:                # the handshake: the worker's send port
            worker = message
            for n in numbers:
                worker.send(n)
            continue
        answers.append(message)
        if len(answers) == len(numbers):
            worker.send("shutdown")
            break
    replies.close()
    return answers

print("Received:", await converse([2, 3, 4]))"""),
    (PY, """print("exit message:", exits.receive(timeout=60))
main_receive_port.close()
exits.close()
print("Communication complete")"""),
]

PARALLEL = [
    (MD, """# Multiple isolates in parallel

Independent pieces of work can run in several isolates at once, one per CPU core. The Dart
example splits 1..1000 into four chunks, spawns one isolate per chunk with its own
`ReceivePort`, and gathers the results with `Future.wait`. stemnb does the same with
`stemnb.spawn` and `port.first()`, or, more simply, with one `stemnb.run` call per chunk."""),
    (PY, "from concurrent.futures import wait\n\nimport stemnb"),
    (PY, """def compute_chunk(numbers):
    return sum(n * n for n in numbers)

def chunk_worker(args):
    send_port, chunk = args
    send_port.send(compute_chunk(chunk))

data = list(range(1, 1001))
chunk_size = 250
chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)]
print(len(chunks), "chunks of", chunk_size)"""),
    (MD, "## One spawned isolate per chunk"),
    (PY, """firsts = []
for index, chunk in enumerate(chunks):
    port = stemnb.ReceivePort()
    await stemnb.spawn(chunk_worker, (port.send_port, chunk), debug_name=f"chunk-{index}")
    firsts.append(port.first())      # each port closes after its one message

wait(firsts, timeout=120)                     # Future.wait: until every chunk has answered
results = [f.result() for f in firsts]        # in chunk order, whatever order they finished in
print(f"Processed {len(chunks)} chunks in parallel")
print("Per chunk:", results)
print("Total sum of squares:", sum(results))"""),
    (MD, "## The same with `stemnb.run`\n\nNo ports to manage: one call per chunk on the pool, "
         "results gathered in order."),
    (PY, """futures = [stemnb.run(compute_chunk, chunk) for chunk in chunks]
total = sum(f.result(timeout=120) for f in futures)
print("Total sum of squares:", total, "- matches:", total == sum(n * n for n in data))"""),
    (PY, """stemnb.default_pool().close()
print("default pool closed")"""),
]

NOTEBOOKS = {
    "01_basic_isolate_run.ipynb": BASIC_RUN,
    "02_heavy_task.ipynb": HEAVY_TASK,
    "03_passing_data.ipynb": PASSING_DATA,
    "04_spawn_send_receive_ports.ipynb": SPAWN_PORTS,
    "05_bidirectional_communication.ipynb": BIDIRECTIONAL,
    "06_multiple_isolates_in_parallel.ipynb": PARALLEL,
}
