"""The tour ``python -m stemnb`` runs with no arguments: two minutes in the terminal (the notebooks show the same in Jupyter)."""

from __future__ import annotations

import os
import time


def _producer(args: tuple) -> None:
    out, count = args
    for i in range(count):
        out.send(i)
    out.send(None)


def _consumer(reply) -> None:  # noqa: ANN001 - a SendPort
    import stemnb

    inbox = stemnb.ReceivePort("consumer inbox")
    reply.send(inbox.send_port)
    total = 0
    for message in inbox:
        if message is None:
            break
        total += message
    reply.send(total)
    inbox.close()


def main() -> None:
    """Run the tour: isolates, a pool map, ports between isolates, shared memory, the Stem worker."""
    import stemnb

    t0 = time.perf_counter()
    print("1. stemnb.run: a lambda in a warm process")
    answer = stemnb.run(lambda x: x * 2, 21).result()
    print(f"   -> {answer} (first result after {time.perf_counter() - t0:.2f}s, parent pid {os.getpid()})")

    print("2. IsolatePool.map over 100,000 items in chunks")
    squares = list(stemnb.default_pool().map(lambda x: x * x, range(100_000), chunksize=10_000))
    print(f"   -> sum of squares = {sum(squares):,}")

    print("3. spawn: a producer isolate talks straight to a consumer isolate through a port")
    replies = stemnb.ReceivePort("main")
    stemnb.spawn(_consumer, replies.send_port, debug_name="consumer").result()
    consumer_inbox = replies.receive(timeout=60)
    stemnb.spawn(_producer, (consumer_inbox, 1000), debug_name="producer").result()
    print(f"   -> consumer added 0..999 = {replies.receive(timeout=60)}")
    replies.close()

    try:
        import numpy as np
    except ImportError:
        print("4. (numpy not installed: skipping shared-memory arrays)")
    else:
        print("4. a 100 MB array through shared memory, and a shared array written by a worker")
        a = np.ones(100_000_000 // 8)
        t = time.perf_counter()
        total = stemnb.run(np.sum, a).result()
        print(f"   -> sum {total:,.0f} in {1000 * (time.perf_counter() - t):.0f} ms")
        shared = stemnb.shared_array(4, dtype="int64")
        stemnb.run(_fill, shared).result()
        print(f"   -> the worker wrote {shared.tolist()} into memory we share")

    print("5. the Stem worker: broker -> worker -> isolate pool -> result backend")
    broker, backend = stemnb.InMemoryBroker(), stemnb.InMemoryResultBackend()
    registry = stemnb.TaskRegistry()

    @registry.task("square", max_retries=2)
    def square(context, args):  # noqa: ANN001
        context.progress(1.0)
        return args["x"] ** 2

    worker = stemnb.Worker(broker=broker, registry=registry, backend=backend, concurrency=2).start()
    producer = stemnb.Stem(broker, backend, registry=registry)
    ids = [producer.enqueue("square", args={"x": x}) for x in range(5)]
    results = [producer.wait_for_task(i, timeout=60).result().payload for i in ids]
    print(f"   -> {results}")
    worker.shutdown(stemnb.WorkerShutdownMode.SOFT).result(timeout=60)
    stemnb.default_pool().close()
    print(f"done in {time.perf_counter() - t0:.1f}s; nothing left running, nothing left in /dev/shm")


def _fill(array) -> None:  # noqa: ANN001
    array[:] = [1, 2, 3, 4]
