"""Cell lists of the messaging pattern notebooks: actors, pipelines, producers and consumers, work stealing.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
"""

from __future__ import annotations

MD, PY = "md", "py"

ACTORS = [
    (MD, """# The actor model

An actor owns private state and changes it only in response to messages from its mailbox; it
answers through reply addresses carried by the messages and may send messages to other actors.
Nothing is shared, so there is nothing to lock. The Dart example notes that it cannot pass its
message handler to the actor and ships a simplified actor that only echoes. In stemnb functions
travel with cloudpickle, so a small `Actor` class takes the behaviour as a plain function,
`behaviour(state, message) -> (state, reply)`, and runs it in a spawned isolate."""),
    (PY, "import asyncio\nfrom dataclasses import dataclass\nfrom typing import Any\n\nimport stemnb"),
    (PY, """@dataclass
class ActorMessage:
    type: str
    payload: Any = None
    reply_to: stemnb.SendPort | None = None

def actor_entry(args):
    behaviour, state, ready = args
    mailbox = stemnb.ReceivePort("mailbox")
    ready.send(mailbox.send_port)
    for message in mailbox:                   # one message at a time: the state needs no lock
        if message.type == "stop":
            break
        state, reply = behaviour(state, message)
        if message.reply_to is not None:
            message.reply_to.send(reply)
    mailbox.close()

class Actor:
    \"\"\"A spawned isolate with private state, changed only by the messages it receives.\"\"\"

    def __init__(self, name, behaviour, state=None):
        self.name, self._behaviour, self._state = name, behaviour, state
        self._exits = stemnb.ReceivePort()
        self.address = None

    async def start(self):
        ready = stemnb.ReceivePort()
        await stemnb.spawn(actor_entry, (self._behaviour, self._state, ready.send_port),
                           on_exit=self._exits.send_port, debug_name=self.name)
        self.address = await ready.first()
        return self

    def tell(self, type, payload=None):
        \"\"\"Send a message and do not wait for an answer.\"\"\"
        self.address.send(ActorMessage(type, payload))

    async def ask(self, type, payload=None):
        \"\"\"Send a message with a fresh reply port and return the answer.\"\"\"
        reply = stemnb.ReceivePort()
        self.address.send(ActorMessage(type, payload, reply.send_port))
        return await asyncio.wait_for(reply.first(), timeout=60)

    def stop(self):
        \"\"\"Ask the actor to stop and wait until its isolate has ended.\"\"\"
        self.address.send(ActorMessage("stop"))
        self._exits.receive(timeout=60)
        self._exits.close()"""),
    (MD, "## The Dart example: an actor that processes data"),
    (PY, """def processor(state, message):
    return state, f"Processed: {message.payload}"

actor = await Actor("processor", processor).start()
print("Reply:", await actor.ask("process", "data1"))
print("Reply:", await actor.ask("process", "data2"))
actor.stop()
print("processor stopped")"""),
    (MD, "## State that only messages can change\n\nA bank account: many deposits and "
         "withdrawals are in flight at once, from concurrent coroutines, yet the actor applies "
         "them one by one, so no update is lost and an overdraft is refused against the true "
         "balance."),
    (PY, """def account(balance, message):
    if message.type == "deposit":
        balance += message.payload
        return balance, balance
    if message.type == "withdraw":
        if message.payload > balance:
            return balance, f"refused: balance {balance} < {message.payload}"
        balance -= message.payload
        return balance, balance
    if message.type == "balance":
        return balance, balance
    return balance, f"unknown message {message.type!r}"

bank = await Actor("account", account, state=0).start()
await asyncio.gather(*(bank.ask("deposit", 10) for _ in range(20)))
print("balance after 20 concurrent deposits of 10:", await bank.ask("balance"))
print("withdraw 500:", await bank.ask("withdraw", 500))
print("withdraw 150, balance now:", await bank.ask("withdraw", 150))
print(await bank.ask("audit"))"""),
    (MD, "## Actors talking to actors\n\nAn actor's address is a `SendPort`, so it can be "
         "passed in a message. An auditor actor logs what a teller actor tells it; the teller "
         "knows the auditor only by its address, and confirms a transfer only once the auditor "
         "has acknowledged the record (ordering holds per sender, not across senders, so the "
         "acknowledgement is what makes the log complete before the notebook asks for it)."),
    (PY, """def auditor(log, message):
    if message.type == "record":
        return log + [message.payload], None
    return log, list(log)                  # "report"

def teller(auditor_address, message):
    if message.type == "transfer":
        amount, to = message.payload
        ack = stemnb.ReceivePort()
        auditor_address.send(ActorMessage("record", f"{amount} to {to}", ack.send_port))
        ack.receive(timeout=60)               # the auditor has the record
        ack.close()
        return auditor_address, "ok"
    return auditor_address, None

audit = await Actor("auditor", auditor, state=[]).start()
desk = await Actor("teller", teller, state=audit.address).start()
for amount, to in [(30, "alice"), (12, "bob"), (7, "carol")]:
    print("transfer:", await desk.ask("transfer", (amount, to)))
desk.stop()
print("audit log:", await audit.ask("report"))"""),
    (PY, """for a in (bank, audit):
    a.stop()
print("every actor has stopped")"""),
]

PIPELINE = [
    (MD, """# The pipeline pattern

A pipeline splits processing into stages, one isolate per stage; while one stage works on item
*n*, the next works on item *n - 1*. The Dart example relays every item through the main isolate,
stage after stage. Here the stages are chained directly: each stage gets the `SendPort` of the
next one, so items flow from process to process and the kernel only feeds the first stage and
reads the last. An end marker travels down the chain and each stage ends after passing it on."""),
    (PY, "import time\n\nimport stemnb"),
    (PY, """STOP = "STOP"

def stage_worker(args):
    name, transform, downstream, ready = args
    inbox = stemnb.ReceivePort(name)
    ready.send(inbox.send_port)
    for message in inbox:
        if message == STOP:
            downstream.send(STOP)
            break
        value, trail = message
        downstream.send((transform(value), trail + [name]))
    inbox.close()

async def build_pipeline(stages, sink, exits):
    \"\"\"Spawn one isolate per (name, transform), last first, and return the first stage's port.\"\"\"
    ready = stemnb.ReceivePort()
    downstream = sink
    for name, transform in reversed(stages):
        await stemnb.spawn(stage_worker, (name, transform, downstream, ready.send_port),
                           on_exit=exits.send_port, debug_name=f"stage-{name}")
        downstream = ready.receive(timeout=60)
    ready.close()
    return downstream"""),
    (MD, "## double -> square -> add10\n\nEvery item carries the trail of stages it went "
         "through. Messages from one sender to one port arrive in order, so the results come out "
         "in input order."),
    (PY, """print("Creating 3-stage pipeline: double -> square -> add10")
results = stemnb.ReceivePort("results")
exits = stemnb.ReceivePort()
stages = [("double", lambda x: x * 2), ("square", lambda x: x * x), ("add10", lambda x: x + 10)]
first_stage = await build_pipeline(stages, results.send_port, exits)

for value in [1, 2, 3, 4, 5]:
    first_stage.send((value, []))
first_stage.send(STOP)

outputs = []
for message in results:
    if message == STOP:
        break
    value, trail = message
    outputs.append(value)
    print(f"{value:>4} via {' -> '.join(trail)}")
print("Pipeline results:", outputs)
print("stages ended:", [exits.receive(timeout=60) for _ in stages])"""),
    (MD, "## A slow stage with two workers\n\nWhen one stage is slower than the others, it can "
         "run in several isolates that take items in turn. Items then leave that stage out of "
         "order, so each carries a sequence number and a reorder buffer at the end restores "
         "input order. The slow workers sleep briefly to simulate work; the printed results do "
         "not depend on which finishes first."),
    (PY, """def slow_worker(args):
    name, downstream, ready = args
    inbox = stemnb.ReceivePort(name)
    ready.send(inbox.send_port)
    for message in inbox:
        if message == STOP:
            downstream.send(STOP)
            break
        seq, value = message
        time.sleep(0.05 if seq % 2 else 0.01)    # uneven work: odd items take longer
        downstream.send((seq, value ** 3))
    inbox.close()

ready = stemnb.ReceivePort()
workers = []
for i in range(2):
    await stemnb.spawn(slow_worker, (f"cube-{i}", results.send_port, ready.send_port),
                       on_exit=exits.send_port, debug_name=f"cube-{i}")
    workers.append(ready.receive(timeout=60))
ready.close()

for seq, value in enumerate(range(1, 9)):
    workers[seq % len(workers)].send((seq, value))   # round-robin over the stage's workers
for worker in workers:
    worker.send(STOP)

pending, ordered, next_seq, stops = {}, [], 0, 0
while stops < len(workers):
    message = results.receive(timeout=60)
    if message == STOP:
        stops += 1
        continue
    seq, value = message
    pending[seq] = value
    while next_seq in pending:                  # release every item whose turn has come
        ordered.append(pending.pop(next_seq))
        next_seq += 1
print("cubes in input order:", ordered)
print("workers ended:", [exits.receive(timeout=60) for _ in workers])
results.close()
exits.close()"""),
]

PRODUCER_CONSUMER = [
    (MD, """# The producer-consumer pattern

A producer generates data and a consumer processes it, each at its own pace; the consumer's
port buffers what has not been processed yet. As in the Dart example, the main isolate only
introduces them: the consumer is spawned first and hands over its port, and that port is the
producer's spawn message, so every item goes straight from the producer's process to the
consumer's. Items from one producer arrive in the order they were sent."""),
    (PY, "import time\n\nimport stemnb"),
    (PY, """def producer(args):
    name, consumer_port, count = args
    for i in range(1, count + 1):
        consumer_port.send((name, f"Data-{i}"))
    consumer_port.send((name, "DONE"))

def consumer(args):
    main_send_port, producers = args
    inbox = stemnb.ReceivePort("consumer")
    main_send_port.send(inbox.send_port)
    consumed, done = {}, 0
    for name, item in inbox:
        if item == "DONE":
            done += 1
            if done == producers:
                break
            continue
        time.sleep(0.005)                       # consuming is slower than producing
        consumed.setdefault(name, []).append(item)
    inbox.close()
    main_send_port.send(consumed)"""),
    (MD, "## One producer, one consumer"),
    (PY, """main_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
await stemnb.spawn(consumer, (main_port.send_port, 1), on_exit=exit_port.send_port, debug_name="consumer")
consumer_port = main_port.receive(timeout=60)
await stemnb.spawn(producer, ("producer", consumer_port, 10), on_exit=exit_port.send_port,
                   debug_name="producer")
consumed = main_port.receive(timeout=60)
print(f"Consumer finished: {len(consumed['producer'])} items")
print("in order:", consumed["producer"])
print("both ended:", [exit_port.receive(timeout=60) for _ in range(2)])"""),
    (MD, "## Several producers\n\nThree producers share one consumer. Their items interleave "
         "in whatever order they arrive, but each producer's own items stay in order."),
    (PY, """await stemnb.spawn(consumer, (main_port.send_port, 3), on_exit=exit_port.send_port, debug_name="consumer")
consumer_port = main_port.receive(timeout=60)
for name in ("p1", "p2", "p3"):
    await stemnb.spawn(producer, (name, consumer_port, 5), on_exit=exit_port.send_port, debug_name=name)
consumed = main_port.receive(timeout=60)
for name in sorted(consumed):
    print(name, consumed[name])
print("isolates ended:", len([exit_port.receive(timeout=60) for _ in range(4)]))"""),
    (MD, "## Bounded buffer: backpressure with credits\n\nA port's buffer is unbounded: a fast "
         "producer can pile up any number of items. To bound it, the consumer grants credits: "
         "the producer holds a number of credits, spends one per item, and waits for the "
         "consumer to give one back after each item it has processed. The producer never has "
         "more than three items in flight, however slow the consumer is: after the first three "
         "items, every item waits for a credit."),
    (PY, """CREDITS = 3

def bounded_producer(args):
    consumer_port, count, report = args
    credits = stemnb.ReceivePort("credits")
    consumer_port.send(credits.send_port)         # where the consumer returns credits
    available, waits = CREDITS, 0
    for i in range(1, count + 1):
        if available == 0:                        # the consumer is behind: wait for a credit
            available += credits.receive(timeout=60)
            waits += 1
        available -= 1
        consumer_port.send(i)
    consumer_port.send(None)
    credits.close()
    report.send(("producer", waits))

def bounded_consumer(args):
    main_send_port, report = args
    inbox = stemnb.ReceivePort("bounded")
    main_send_port.send(inbox.send_port)
    credits_to = inbox.receive(timeout=60)
    total = 0
    for item in inbox:
        if item is None:
            break
        time.sleep(0.01)
        total += item
        credits_to.send(1)                        # one item processed: one credit back
    inbox.close()
    report.send(("consumer", total))

reports = stemnb.ReceivePort()
await stemnb.spawn(bounded_consumer, (main_port.send_port, reports.send_port),
                   on_exit=exit_port.send_port, debug_name="bounded-consumer")
bounded_port = main_port.receive(timeout=60)
await stemnb.spawn(bounded_producer, (bounded_port, 20, reports.send_port),
                   on_exit=exit_port.send_port, debug_name="bounded-producer")
outcome = dict(reports.receive(timeout=60) for _ in range(2))
print("consumer total:", outcome["consumer"], "| expected:", sum(range(1, 21)))
print(f"items that waited for a credit: {outcome['producer']} of 20")"""),
    (PY, """print("isolates ended:", len([exit_port.receive(timeout=60) for _ in range(2)]))
for port in (main_port, exit_port, reports):
    port.close()"""),
]

WORK_STEALING = [
    (MD, """# Work stealing

When work is handed out unevenly, some workers sit idle while one is swamped. With work
stealing, each worker keeps a local queue, and a worker whose queue runs dry asks a peer for
part of its queue. The Dart example hands its workers uneven queues and only hints at
stealing; here the workers really steal from each other. Each worker knows its peers' send
ports and answers their `steal` requests between two tasks with the back half of its queue
(it works from the front). `IsolatePool` does the same internally: an idle process takes back
calls that were sent ahead to a busy one."""),
    (PY, "import collections\nimport time\n\nimport stemnb"),
    (PY, """def stealing_worker(args):
    name, main_port = args
    inbox = stemnb.ReceivePort(name)
    main_port.send((name, inbox.send_port))
    local, peers, turn, asking, running = collections.deque(), [], 0, False, False
    while True:
        if local:                                   # busy: only look at what is already there
            pending = []
            while True:
                try:
                    pending.append(inbox.receive(timeout=0))
                except TimeoutError:
                    break
        else:                                       # idle: ask a peer once, then wait for anything
            if running and not asking and peers:
                peers[turn % len(peers)].send(("steal", inbox.send_port))
                turn += 1
                asking = True
            pending = [inbox.receive(timeout=60)]
        for kind, *body in pending:
            if kind == "stop":
                inbox.close()
                return
            if kind == "task":
                local.append(body[0])
            elif kind == "go":
                running, peers = True, [p for p in body[0] if p != inbox.send_port]
            elif kind == "steal":                   # give away the back half of the queue
                body[0].send(("loot", [local.pop() for _ in range(len(local) // 2)][::-1]))
            elif kind == "loot":
                asking = False
                local.extend(body[0])
                if not body[0]:
                    time.sleep(0.01)                # nothing there: back off before the next peer
        if local and running:
            task_id, seconds = local.popleft()
            time.sleep(seconds)                     # simulated work
            main_port.send(("done", task_id, name))"""),
    (MD, "## Every task to one worker\n\nAll nine tasks go to `worker-0`; `worker-1` and "
         "`worker-2` start empty-handed. Which worker ends up doing which task depends on "
         "timing, so the notebook prints what holds on every run: each task was done exactly "
         "once, and the idle workers took over part of the load."),
    (PY, """main_port = stemnb.ReceivePort()
exit_port = stemnb.ReceivePort()
addresses = {}
for i in range(3):
    await stemnb.spawn(stealing_worker, (f"worker-{i}", main_port.send_port),
                       on_exit=exit_port.send_port, debug_name=f"worker-{i}")
    name, address = main_port.receive(timeout=60)
    addresses[name] = address

tasks = [(task_id, 0.05) for task_id in range(1, 10)]
for task in tasks:
    addresses["worker-0"].send(("task", task))
for address in addresses.values():
    address.send(("go", list(addresses.values())))

done_by = {}
for _ in tasks:
    kind, task_id, name = main_port.receive(timeout=60)
    done_by.setdefault(task_id, []).append(name)
print("tasks done:", sorted(done_by))
print("each exactly once:", all(len(names) == 1 for names in done_by.values()))
stolen = sum(names != ["worker-0"] for names in done_by.values())
print("the idle workers stole some of the tasks:", stolen > 0)"""),
    (MD, "## Stopping the workers\n\nA worker waiting for loot or for work handles `stop` "
         "like any other message, so every worker ends."),
    (PY, """for address in addresses.values():
    address.send(("stop",))
print("workers ended:", [exit_port.receive(timeout=60) for _ in addresses])
main_port.close()
exit_port.close()"""),
]

NOTEBOOKS = {
    "22_actor_model.ipynb": ACTORS,
    "23_pipeline.ipynb": PIPELINE,
    "24_producer_consumer.ipynb": PRODUCER_CONSUMER,
    "25_work_stealing.ipynb": WORK_STEALING,
}
