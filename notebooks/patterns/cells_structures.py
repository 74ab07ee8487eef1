"""Cell lists of the structure pattern notebooks: pools, streams, timeouts, names, transferable types.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
"""

from __future__ import annotations

MD, PY = "md", "py"

POOL = [
    (MD, """# The isolate pool pattern

Starting an isolate per task wastes time; a pool starts a few workers once and hands each task
to one of them. The Dart example builds a `WorkerPool` by hand: spawned isolates, their send
ports, and round-robin dispatch with a reply port per task. stemnb ships the pattern as
`stemnb.IsolatePool` (`run`, `map`, `imap_unordered`, `statistics`), and the hand-made version
works too, with `spawn` and ports."""),
    (PY, "import asyncio\n\nimport stemnb"),
    (MD, "## `IsolatePool`"),
    (PY, """def square(value):
    return value * value

with stemnb.IsolatePool(3, debug_name="workers") as pool:
    print(f"Processing tasks with pool of {pool.statistics().size} workers...")
    print("Results:", list(pool.map(square, range(1, 11))))              # in input order
    print("As completed, sorted:", sorted(pool.imap_unordered(square, range(1, 6))))
    print("One call:", pool.run(square, 12).result(timeout=60))
    stats = pool.statistics()
    print("completed:", stats.completed, "failed:", stats.failed)
print("pool state after the with block:", pool.statistics().state)"""),
    (MD, "## The hand-made pool, as in Dart\n\nEach worker serves `(value, reply_port)` requests; "
         "`execute` picks workers round-robin and waits on a fresh reply port."),
    (PY, """def worker_entry(main_send_port):
    worker_port = stemnb.ReceivePort()
    main_send_port.send(worker_port.send_port)
    for message in worker_port:
        if message is None:
            break
        value, reply_port = message
        reply_port.send(value * value)
    worker_port.close()

class WorkerPool:
    def __init__(self, size):
        self.size = size
        self._workers = []
        self._next_worker = 0
        self._exits = stemnb.ReceivePort()

    async def initialize(self):
        for i in range(self.size):
            receive_port = stemnb.ReceivePort()
            await stemnb.spawn(worker_entry, receive_port.send_port, on_exit=self._exits.send_port,
                               debug_name=f"pool-worker-{i}")
            self._workers.append(await receive_port.first())

    async def execute(self, value):
        worker = self._workers[self._next_worker]          # simple round-robin distribution
        self._next_worker = (self._next_worker + 1) % self.size
        reply_port = stemnb.ReceivePort()
        worker.send((value, reply_port.send_port))
        return await reply_port.first()

    def close(self):
        for worker in self._workers:
            worker.send(None)
        for _ in self._workers:
            self._exits.receive(timeout=60)
        self._exits.close()"""),
    (PY, """hand_made = WorkerPool(3)
await hand_made.initialize()
print(f"Processing tasks with pool of {hand_made.size} workers...")
results = await asyncio.gather(*(hand_made.execute(i) for i in range(1, 11)))
print("Results:", results)
hand_made.close()
print("hand-made pool closed")"""),
]

STREAMING = [
    (MD, """# Streaming data through isolates

Rather than handing a worker the whole data set, the main isolate streams items to it and
receives processed items back as they are ready, with a marker at the end; memory stays small
and results arrive early. stemnb ports carry the stream: messages from one sender to one port
arrive in order, `port.listen(callback)` handles them on the kernel's event loop, and ports can
chain isolates into a pipeline."""),
    (PY, "import asyncio\n\nimport stemnb"),
    (PY, """def stream_processor(main_send_port):
    receive_port = stemnb.ReceivePort()
    main_send_port.send(receive_port.send_port)
    for message in receive_port:
        if message == "DONE":
            main_send_port.send("COMPLETE")
            receive_port.close()
            break
        main_send_port.send(message * message)"""),
    (MD, "## Send a stream, listen to the results\n\nAs in the Dart example, `listen` collects "
         "the results; the cell awaits a future that the `COMPLETE` marker resolves."),
    (PY, """main_port = stemnb.ReceivePort()
exits = stemnb.ReceivePort()      # told when each isolate of this notebook ends
await stemnb.spawn(stream_processor, main_port.send_port, on_exit=exits.send_port)
worker_port = main_port.receive(timeout=60)

results = []
complete = asyncio.get_running_loop().create_future()

def on_message(message):
    if message == "COMPLETE":
        main_port.close()
        complete.set_result(None)
    else:
        results.append(message)

main_port.listen(on_message)
for i in range(1, 11):
    worker_port.send(i)
worker_port.send("DONE")
await asyncio.wait_for(complete, timeout=60)
print("Stream processing complete")
print("Results:", results)"""),
    (MD, "## A two-stage pipeline\n\nStage one squares each item and forwards it straight to "
         "stage two, which keeps a running total; only the totals come back. The stage-two "
         "port travels to stage one inside the spawn message."),
    (PY, """def running_total(args):
    out, ready = args
    inbox = stemnb.ReceivePort()
    ready.send(inbox.send_port)
    total = 0
    for item in inbox:
        if item is None:
            out.send(None)
            break
        total += item
        out.send(total)
    inbox.close()

def squarer(args):
    downstream, ready = args
    inbox = stemnb.ReceivePort()
    ready.send(inbox.send_port)
    for item in inbox:
        downstream.send(None if item is None else item * item)
        if item is None:
            break
    inbox.close()

totals = stemnb.ReceivePort()
ready = stemnb.ReceivePort()
await stemnb.spawn(running_total, (totals.send_port, ready.send_port),
                   on_exit=exits.send_port, debug_name="stage-2")
stage_two = ready.receive(timeout=60)
await stemnb.spawn(squarer, (stage_two, ready.send_port), on_exit=exits.send_port, debug_name="stage-1")
stage_one = ready.receive(timeout=60)

for item in range(1, 6):
    stage_one.send(item)
stage_one.send(None)
running = []
async for total in totals:
    if total is None:
        break
    running.append(total)
print("Running totals of squares:", running)
totals.close()
ready.close()"""),
    (MD, "## Every stage has ended\n\nThe stream processor and both stages returned after their "
         "end markers; the exit port has one message per isolate."),
    (PY, """print("isolates ended:", [exits.receive(timeout=60) for _ in range(3)])
exits.close()"""),
    (MD, "## Streaming calls through a pool\n\n`IsolatePool.imap_unordered` yields each result "
         "as soon as its call finishes, and `map` with a `chunksize` sends items in batches."),
    (PY, """with stemnb.IsolatePool(2, debug_name="stream") as pool:
    arrived = [value for value in pool.imap_unordered(lambda x: x * x, range(1, 11))]
    print("arrived (sorted):", sorted(arrived))
    print("in order, chunks of 4:", list(pool.map(lambda x: -x, range(1, 11), chunksize=4)))"""),
]

TIMEOUT = [
    (MD, """# Isolates with a timeout

A stuck or slow worker must not make the caller wait forever. Dart puts a `.timeout(...)` on
the future and, for spawned isolates, kills the worker when the time is up. stemnb offers three
levels: `stemnb.run(..., timeout=s)` is a hard limit that ends the process running the call;
`future.result(timeout=s)` or `asyncio.wait_for` stop *waiting*; and for a spawned isolate,
`receive(timeout=s)` followed by `isolate.kill()`."""),
    (PY, "import asyncio\nimport time\n\nimport stemnb"),
    (MD, "## A hard time limit on the call\n\nThe process running the call is ended and the "
         "builtin `TimeoutError` is raised; the pool starts a replacement."),
    (PY, """print("Starting task with timeout...")
try:
    stemnb.run(time.sleep, 30, timeout=0.5).result()
except TimeoutError as exc:
    print("Error:", exc)
print("the pool still works:", stemnb.run(abs, -1).result(timeout=60))"""),
    (MD, "## Waiting with a timeout, then deciding\n\n`result(timeout=...)` only stops waiting; "
         "the call goes on until it is cancelled. `cancel()` ends the process running it."),
    (PY, """future = stemnb.run(time.sleep, 30)
try:
    future.result(timeout=0.3)
except TimeoutError:
    print("no result after 0.3 s; cancelling:", future.cancel())
print("cancelled:", future.cancelled())"""),
    (MD, "## `asyncio.wait_for` and a fallback value\n\nAwaited with a timeout, the call is "
         "cancelled when the wait gives up, and the helper returns Dart's `onTimeout` value."),
    (PY, """async def with_fallback(fn, *args, seconds, fallback):
    future = stemnb.run(fn, *args)
    try:
        return await asyncio.wait_for(future, timeout=seconds)
    except TimeoutError:
        print("Timeout occurred; call cancelled:", future.cancelled())
        return fallback

print("Result:", await with_fallback(time.sleep, 30, seconds=0.3, fallback="TIMEOUT"))
print("Result:", await with_fallback(pow, 2, 8, seconds=30, fallback="TIMEOUT"))"""),
    (MD, "## A spawned worker that is too slow\n\nNo answer within the limit: kill the isolate, "
         "and the exit port confirms it is gone."),
    (PY, """def slow_worker(send_port):
    time.sleep(30)
    send_port.send("Work complete")

receive_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
isolate = await stemnb.spawn(slow_worker, receive_port.send_port, on_exit=exit_port.send_port)
try:
    result = receive_port.receive(timeout=0.5)
except TimeoutError:
    print("Timeout occurred, killing isolate")
    isolate.kill(priority=stemnb.Isolate.IMMEDIATE)
    result = "TIMEOUT"
print("Worker result:", result)
print("exit message:", exit_port.receive(timeout=60))
receive_port.close()
exit_port.close()"""),
    (PY, """stemnb.default_pool().close()
print("default pool closed")"""),
]

DEBUG_NAMES = [
    (MD, """# Isolate debugging names

With many workers, names tell them apart in logs, tools and error messages. Dart's
`Isolate.spawn` takes a `debugName`, and `Isolate.current.debugName` reads it inside the
isolate. In stemnb, `spawn(..., debug_name=...)` names the isolate and
`stemnb.Isolate.current().debug_name` reads it; pools, pool processes, calls and ports carry
names too, and they show up in reprs, dashboards and error messages."""),
    (PY, "import stemnb\nfrom stemnb import Isolate"),
    (MD, "## Named workers"),
    (PY, """def named_worker(args):
    name, send_port = args
    result = sum(range(1, 1001))
    send_port.send(f"{name} completed: {result} (running as {Isolate.current().debug_name!r})")

print("Main isolate", repr(Isolate.current().debug_name), "starting workers...")
firsts = []
for name in ["Alpha", "Beta", "Gamma"]:
    receive_port = stemnb.ReceivePort(f"replies-{name}")
    isolate = await stemnb.spawn(named_worker, (name, receive_port.send_port),
                                 debug_name=f"Worker-{name}")
    print(isolate)                  # the repr carries the name (and a pid, which changes)
    firsts.append(receive_port.first())
for first in firsts:
    print(first.result(timeout=60))"""),
    (MD, "## Default names\n\nWithout `debug_name`, an isolate is named after its entry "
         "function and a number."),
    (PY, """def unnamed(send_port):
    send_port.send(Isolate.current().debug_name)

port = stemnb.ReceivePort()
isolate = await stemnb.spawn(unnamed, port.send_port)
print("inside:", await port.first(), "| handle:", isolate.debug_name)"""),
    (MD, "## Pools, calls and ports\n\nA pool's processes are named after the pool; a call's "
         "name (its function's, or `debug_name=`) appears in its future and in its errors."),
    (PY, """import time

with stemnb.IsolatePool(2, debug_name="reports") as pool:
    print("pool processes:", sorted(info.debug_name for info in pool.isolates()))
    future = pool.run(time.sleep, 0, debug_name="nightly-report")
    future.result(timeout=60)
    print(future)
    try:
        pool.run(time.sleep, 30, timeout=0.3, debug_name="stuck-report").result()
    except TimeoutError as exc:
        print("TimeoutError:", exc)

named_port = stemnb.ReceivePort("results")
print("port name:", named_port.send_port.debug_name)
named_port.close()"""),
]

TRANSFERABLE = [
    (MD, """# Transferable types

What can cross between isolates? In Dart: primitives, collections (deep-copied), typed data,
records and many objects, but not functions or platform resources. stemnb pickles with
cloudpickle, so more crosses: numbers, strings, lists, dicts, sets, tuples, bytes, `None`,
enums and dataclasses, and even functions and lambdas. Open resources (locks, sockets, open
files) do not; `SerializationError` names the culprit at the call site. Large arrays travel
through shared memory, and `TransferableTypedData` and `shared_array` avoid copies altogether."""),
    (PY, "import enum\nimport threading\n\nimport numpy as np\n\nimport stemnb"),
    (MD, "## Primitives and collections (copied)"),
    (PY, """number = stemnb.run(lambda: 42).result(timeout=60)
decimal = stemnb.run(lambda: 3.14).result(timeout=60)
flag = stemnb.run(lambda: True).result(timeout=60)
text = stemnb.run(lambda: "Hello there!").result(timeout=60)
print("Primitives:", number, decimal, flag, text)

values = stemnb.run(lambda: [1, 2, 3, 4, 5]).result(timeout=60)
mapping = stemnb.run(lambda: {"a": 1, "b": 2}).result(timeout=60)
letters = stemnb.run(lambda: {"x", "y", "z"}).result(timeout=60)
print("Collections:", values, mapping, sorted(letters))

raw = stemnb.run(lambda: bytes([1, 2, 3, 4, 5])).result(timeout=60)
nothing = stemnb.run(lambda: None).result(timeout=60)
record = stemnb.run(lambda: (100, "test")).result(timeout=60)
print("Bytes:", list(raw), "| Nullable:", nothing, "| Record:", record)"""),
    (MD, "## Enums, and functions as values\n\nAn enum member comes back as the notebook's own "
         "member; a function can be sent to an isolate and called there."),
    (PY, """class Color(enum.Enum):
    RED = 1
    GREEN = 2

back = stemnb.run(lambda: Color.GREEN).result(timeout=60)
print(back, "| is the same member:", back is Color.GREEN)

def apply(fn, value):
    return fn(value)

print("a lambda crossed:", stemnb.run(apply, lambda v: v[::-1], "isolate").result(timeout=60))"""),
    (MD, "## What cannot cross\n\nA lock belongs to one process; sending it fails at once, in "
         "the caller, and the message says which argument was the problem."),
    (PY, """try:
    stemnb.run(apply, print, threading.Lock())
except stemnb.SerializationError as exc:
    print("SerializationError:", str(exc).split(":")[0])"""),
    (MD, "## Arrays\n\nA numpy array crosses as a copy; a large one goes through shared memory "
         "and arrives read-only, so the receiver cannot believe it changed the sender's array."),
    (PY, """small = stemnb.run(lambda: np.arange(5, dtype=np.uint8)).result(timeout=60)
print("Typed data:", small, small.dtype)

def describe_array(array):
    return array.dtype.name, array.shape, float(array.sum()), array.flags.writeable

big = np.ones(100_000)     # 800 kB: travels through /dev/shm
print("large array in the isolate:", stemnb.run(describe_array, big).result(timeout=60))"""),
    (MD, "## `TransferableTypedData` and `shared_array`\n\n`TransferableTypedData` (Dart's "
         "name) copies an array once into shared memory; the receiver calls `materialize()` "
         "once and gets a private, writable array. A `shared_array` lives in shared memory "
         "from the start: a write in the isolate is seen by the notebook."),
    (PY, """def materialize_and_double(transferable):
    array = transferable.materialize()
    array *= 2                  # writable, private to this isolate
    return array[:4].tolist()

transferable = stemnb.TransferableTypedData(np.arange(100_000, dtype=np.int64))
print("isolate saw:", stemnb.run(materialize_and_double, transferable).result(timeout=60))

def fill_in_place(array):
    array[:] = np.arange(len(array))

shared = stemnb.shared_array(8, dtype="int32", fill=0)
stemnb.run(fill_in_place, shared).result(timeout=60)
print("notebook sees the isolate's write:", shared.tolist())"""),
    (PY, """del shared, transferable, big
stemnb.default_pool().close()
print("default pool closed")"""),
]

NOTEBOOKS = {
    "13_isolate_pool.ipynb": POOL,
    "14_streaming_data.ipynb": STREAMING,
    "15_isolate_with_timeout.ipynb": TIMEOUT,
    "16_debugging_names.ipynb": DEBUG_NAMES,
    "17_transferable_types.ipynb": TRANSFERABLE,
}
