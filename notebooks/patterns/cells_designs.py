"""Cell lists of the design pattern notebooks: image processing, event sourcing, CQRS, state management.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
"""

from __future__ import annotations

MD, PY = "md", "py"

IMAGE = [
    (MD, """# Image processing in isolates

Filters touch every pixel, so they are CPU work that parallelises by region. The Dart example
turns RGBA pixels to grey in `Isolate.run`. An image here is a numpy array of shape
`(height, width, channels)`: first the same greyscale filter in `run`, then a blur split into
horizontal bands over a pool, where the source and the result are `shared_array`s, so each
isolate reads and writes the same pixels without any copy. The image is generated, so every
number printed is the same on every run."""),
    (PY, "import numpy as np\n\nimport stemnb"),
    (PY, """height, width = 240, 320
y, x = np.mgrid[0:height, 0:width]
image = np.zeros((height, width, 4), dtype=np.uint8)        # RGBA
image[..., 0] = (x * 255 // (width - 1)).astype(np.uint8)    # red grows to the right
image[..., 1] = (y * 255 // (height - 1)).astype(np.uint8)   # green grows downwards
image[..., 2] = ((x // 40 + y // 40) % 2 * 255).astype(np.uint8)  # a blue checkerboard
image[..., 3] = 255
print("image:", image.shape, image.dtype)"""),
    (MD, "## Greyscale in `run`, as in Dart\n\nThe luminance weights are the ones Dart's "
         "example uses (0.299, 0.587, 0.114); alpha is kept."),
    (PY, """def greyscale(rgba):
    grey = (rgba[..., :3] @ np.array([0.299, 0.587, 0.114])).round().astype(np.uint8)
    out = rgba.copy()
    out[..., 0] = out[..., 1] = out[..., 2] = grey
    return out

grey = await stemnb.run(greyscale, image)
print("pixel (0, 0):", image[0, 0].tolist(), "->", grey[0, 0].tolist())
print("pixel (239, 319):", image[-1, -1].tolist(), "->", grey[-1, -1].tolist())
print("mean grey level:", round(float(grey[..., 0].mean()), 3))"""),
    (MD, "## A blur in bands, in shared memory\n\nA 5×5 box blur needs two rows above and "
         "below each band, so each isolate reads a band plus its halo from the shared source and "
         "writes only its own rows of the shared result. The bands are disjoint, so no two "
         "isolates write the same pixel, and the result equals the blur of the whole image."),
    (PY, """def box_blur(pixels, radius):
    padded = np.pad(pixels.astype(np.float64), ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    size = 2 * radius + 1
    out = np.zeros(pixels.shape, dtype=np.float64)
    for dy in range(size):
        for dx in range(size):
            out += padded[dy:dy + pixels.shape[0], dx:dx + pixels.shape[1]]
    return (out / size ** 2).round().astype(np.uint8)

def blur_band(source, target, start, stop, radius):
    top, bottom = max(start - radius, 0), min(stop + radius, source.shape[0])
    blurred = box_blur(source[top:bottom], radius)
    target[start:stop] = blurred[start - top:start - top + (stop - start)]

source = stemnb.shared_array(image.shape, dtype="uint8")
source[:] = image
blurred = stemnb.shared_array(image.shape, dtype="uint8", fill=0)
bands = [(start, min(start + 60, height)) for start in range(0, height, 60)]
with stemnb.IsolatePool(2, debug_name="blur") as pool:
    for call in [pool.run(blur_band, source, blurred, start, stop, 2) for start, stop in bands]:
        call.result(timeout=60)
whole = box_blur(image, 2)
print(f"{len(bands)} bands blurred in isolates")
print("same as blurring the whole image at once:", np.array_equal(blurred, whole))
print("checkerboard edge before and after:", image[20, 38:42, 2].tolist(), "->", blurred[20, 38:42, 2].tolist())"""),
    (MD, "## Why the halo matters\n\nWithout the halo, each band is blurred on its own and "
         "padded with copies of its own edge rows instead of its neighbours' rows. It differs from "
         "the whole-image blur on rows next to the inner band borders, and nowhere else."),
    (PY, """def blur_band_without_halo(source, target, start, stop, radius):
    target[start:stop] = box_blur(source[start:stop], radius)

naive = stemnb.shared_array(image.shape, dtype="uint8", fill=0)
with stemnb.IsolatePool(2, debug_name="blur-no-halo") as pool:
    for call in [pool.run(blur_band_without_halo, source, naive, start, stop, 2) for start, stop in bands]:
        call.result(timeout=60)
wrong_rows = sorted({int(r) for r in np.nonzero((naive != whole).any(axis=(1, 2)))[0]})
print("band borders:", [start for start, _ in bands[1:]])
print("rows that differ without a halo:", wrong_rows)"""),
    (PY, """del source, blurred, naive
stemnb.default_pool().close()
print("shared arrays released, default pool closed")"""),
]

EVENT_SOURCING = [
    (MD, """# Event sourcing with isolates

In event sourcing the state is not stored: the log of what happened is, and the state is
derived by replaying it. The Dart example keeps an event store in an isolate that appends
events and rebuilds state on request. Here an event-store isolate owns an append-only log of
bank-account events; it validates commands against the current state, records events, and can
rebuild the state as it was after any event (time travel). Events carry a sequence number
instead of a wall-clock timestamp, so the output is the same on every run."""),
    (PY, "from dataclasses import dataclass\n\nimport stemnb"),
    (PY, """@dataclass(frozen=True)
class Event:
    sequence: int
    kind: str          # "opened", "deposited" or "withdrawn"
    account: str
    amount: int = 0

def apply(balances, event):
    \"\"\"The one place where events change state; replay and live updates both use it.\"\"\"
    balances = dict(balances)
    if event.kind == "opened":
        balances[event.account] = 0
    elif event.kind == "deposited":
        balances[event.account] += event.amount
    elif event.kind == "withdrawn":
        balances[event.account] -= event.amount
    return balances

def replay(events):
    balances = {}
    for event in events:
        balances = apply(balances, event)
    return balances"""),
    (MD, "## The event-store isolate\n\nA command is checked against the current state: a "
         "withdrawal larger than the balance is rejected and records nothing. Accepted commands "
         "become events. `history` returns the log, `state_at` replays it up to a sequence "
         "number."),
    (PY, """def event_store(reply_to):
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    log, balances = [], {}
    for request in inbox:
        if request is None:
            break
        operation, args, reply = request
        if operation == "command":
            kind, account, amount = args
            if kind != "opened" and account not in balances:
                reply.send(f"rejected: no account {account!r}")
                continue
            if kind == "withdrawn" and amount > balances[account]:
                reply.send(f"rejected: {account} has {balances[account]}, cannot withdraw {amount}")
                continue
            event = Event(len(log) + 1, kind, account, amount)
            log.append(event)
            balances = apply(balances, event)
            reply.send(f"event {event.sequence}: {kind} {account} {amount}")
        elif operation == "history":
            reply.send(list(log))
        elif operation == "state_at":
            reply.send(replay(log[:args]))
    inbox.close()

setup, exits, replies = stemnb.ReceivePort(), stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(event_store, setup.send_port, on_exit=exits.send_port, debug_name="event-store")
store = await setup.first()

def ask(operation, args=None):
    store.send((operation, args, replies.send_port))
    return replies.receive(timeout=60)

commands = [("opened", "alice", 0), ("opened", "bob", 0), ("deposited", "alice", 100),
            ("deposited", "bob", 50), ("withdrawn", "alice", 30), ("withdrawn", "bob", 80),
            ("deposited", "carol", 10), ("withdrawn", "bob", 20), ("deposited", "alice", 5)]
for command in commands:
    print(ask("command", command))"""),
    (MD, "## Time travel\n\nThe state after any event is the replay of the log up to it."),
    (PY, """for sequence in [0, 3, 5, 7]:
    print(f"after event {sequence}: {ask('state_at', sequence)}")"""),
    (MD, "## Projections built elsewhere\n\nThe log is plain data, so any isolate can build its "
         "own view from it. Two `run` calls build two projections from the same history: the "
         "balances (which must equal the store's own state) and a per-account activity count."),
    (PY, """history = ask("history")
balances = await stemnb.run(replay, history)
activity = await stemnb.run(lambda events: {a: sum(e.account == a for e in events if e.kind != "opened")
                                            for a in sorted({e.account for e in events})}, history)
print("balances projected in an isolate:", balances)
print("same as the store's current state:", balances == ask("state_at", len(history)))
print("transactions per account:", activity)"""),
    (PY, """store.send(None)
print("event store ended:", exits.receive(timeout=60) is None)
replies.close()
exits.close()
stemnb.default_pool().close()
print("default pool closed")"""),
]

CQRS = [
    (MD, """# CQRS with isolates

Command Query Responsibility Segregation puts writes and reads in separate models. The Dart
example runs a command isolate and a query isolate: commands change the write model and
publish events; the query side keeps its own denormalised views, updated from those events.
Here the two sides are spawned isolates, connected port to port: the kernel is not in the path
of the events. The read side is *eventually* consistent, so each command's reply carries the
version it produced, and a query can ask to wait until the read side has reached a version
(read-your-writes), which also makes the answers below deterministic."""),
    (PY, "import stemnb"),
    (MD, "## The read side\n\nIt applies events to two views (stock per product, products "
         "per category) and answers queries. A query with `min_version` beyond the events "
         "applied so far is parked until they arrive."),
    (PY, """def query_side(reply_to):
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    version, stock, by_category, parked = 0, {}, {}, []

    def answer(name, args, reply):
        if name == "stock":
            reply.send((version, stock.get(args)))
        elif name == "category":
            reply.send((version, sorted(by_category.get(args, set()))))
        elif name == "low_stock":
            reply.send((version, sorted(p for p, n in stock.items() if n < args)))

    for message in inbox:
        if message is None:
            break
        if message[0] == "event":
            _, version, kind, data = message
            if kind == "product_added":
                stock[data["sku"]] = 0
                by_category.setdefault(data["category"], set()).add(data["sku"])
            elif kind == "stock_changed":
                stock[data["sku"]] += data["delta"]
            ready = [q for q in parked if q[0] <= version]
            parked = [q for q in parked if q[0] > version]
            for _, name, args, reply in ready:
                answer(name, args, reply)
        else:
            _, min_version, name, args, reply = message
            if min_version <= version:
                answer(name, args, reply)
            else:
                parked.append((min_version, name, args, reply))
    inbox.close()"""),
    (MD, "## The write side\n\nIt validates commands against its own model (the stock may not "
         "go negative, a product exists once), assigns a version to each event and sends the "
         "event to the read side before replying."),
    (PY, """def command_side(args):
    reply_to, read_side = args
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    version, stock = 0, {}
    for message in inbox:
        if message is None:
            break
        name, data, reply = message
        if name == "add_product" and data["sku"] not in stock:
            stock[data["sku"]] = 0
            event = ("product_added", data)
        elif name == "change_stock" and stock.get(data["sku"], -1) + data["delta"] >= 0:
            stock[data["sku"]] += data["delta"]
            event = ("stock_changed", data)
        else:
            reply.send(("rejected", version, f"{name} {data}"))
            continue
        version += 1
        read_side.send(("event", version, *event))
        reply.send(("accepted", version, event[0]))
    inbox.close()"""),
    (PY, """setup, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(query_side, setup.send_port, on_exit=exits.send_port, debug_name="cqrs-read")
queries = setup.receive(timeout=60)
await stemnb.spawn(command_side, (setup.send_port, queries), on_exit=exits.send_port, debug_name="cqrs-write")
commands = setup.receive(timeout=60)
setup.close()

replies = stemnb.ReceivePort()
def send_command(name, **data):
    commands.send((name, data, replies.send_port))
    return replies.receive(timeout=60)

def query(name, args=None, min_version=0):
    queries.send(("query", min_version, name, args, replies.send_port))
    return replies.receive(timeout=60)

last = 0
for name, data in [("add_product", {"sku": "kb-01", "category": "keyboards"}),
                   ("add_product", {"sku": "ms-01", "category": "mice"}),
                   ("add_product", {"sku": "ms-02", "category": "mice"}),
                   ("add_product", {"sku": "ms-01", "category": "mice"}),
                   ("change_stock", {"sku": "kb-01", "delta": 12}),
                   ("change_stock", {"sku": "ms-01", "delta": 3}),
                   ("change_stock", {"sku": "ms-01", "delta": -5}),
                   ("change_stock", {"sku": "ms-02", "delta": 40})]:
    outcome, version, detail = send_command(name, **data)
    last = max(last, version)
    print(f"{outcome:>8} (version {version}): {detail}")"""),
    (MD, "## Queries that read their writes\n\nEach query asks for at least the version of "
         "the last accepted command, so it sees every write above, whichever isolate "
         "ran first."),
    (PY, """print("stock of kb-01:", query("stock", "kb-01", min_version=last))
print("mice:", query("category", "mice", min_version=last))
print("below 10 in stock:", query("low_stock", 10, min_version=last))"""),
    (MD, "## A query parked until its version arrives\n\nA query for version `last + 1` waits "
         "in the read side; the next accepted command produces that version and releases it."),
    (PY, """queries.send(("query", last + 1, "stock", "kb-01", replies.send_port))
try:
    replies.receive(timeout=0.5)
    print("answered too early")
except TimeoutError:
    print("query parked: the read side is at version", last)
commands.send(("change_stock", {"sku": "kb-01", "delta": -2}, replies.send_port))
answers = sorted([replies.receive(timeout=60), replies.receive(timeout=60)], key=str)
print("after the next command:", answers)"""),
    (PY, """commands.send(None)
queries.send(None)
print("both sides ended:", [exits.receive(timeout=60), exits.receive(timeout=60)] == [None, None])
replies.close()
exits.close()"""),
]

STATE = [
    (MD, """# Isolate state management

Isolates share no objects, so shared state needs an owner: one isolate holds it and everybody
else sends it messages. The Dart example's state manager takes `StateUpdate` and `StateQuery`
messages and answers snapshots. This notebook builds the same manager and adds what the owner
makes possible: updates sent as functions and applied one at a time (no lost updates however
many isolates send them), versioned compare-and-set for writers that read first, and
subscriptions that push every change to a port."""),
    (PY, "from dataclasses import dataclass\n\nimport stemnb"),
    (PY, """@dataclass
class StateUpdate:
    key: str
    value: object

@dataclass
class StateQuery:
    key: str
    reply_port: stemnb.SendPort

@dataclass
class Modify:                       # apply a function to the current value, atomically
    key: str
    fn: object
    reply_port: stemnb.SendPort | None = None

@dataclass
class CompareAndSet:                # write only if nobody wrote since `version`
    key: str
    version: int
    value: object
    reply_port: stemnb.SendPort

@dataclass
class Subscribe:
    port: stemnb.SendPort

def state_manager(main_port):
    inbox = stemnb.ReceivePort()
    main_port.send(inbox.send_port)
    state, versions, subscribers = {}, {}, []

    def write(key, value):
        old = state.get(key)
        state[key], versions[key] = value, versions.get(key, 0) + 1
        for port in subscribers:
            port.send((key, old, value))

    for message in inbox:
        if message == "stop":
            break
        if isinstance(message, StateUpdate):
            write(message.key, message.value)
            main_port.send(f"Updated: {message.key} = {message.value}")
        elif isinstance(message, StateQuery):
            message.reply_port.send((state.get(message.key), versions.get(message.key, 0)))
        elif isinstance(message, Modify):
            write(message.key, message.fn(state.get(message.key)))
            if message.reply_port is not None:
                message.reply_port.send(state[message.key])
        elif isinstance(message, CompareAndSet):
            current = versions.get(message.key, 0)
            if current == message.version:
                write(message.key, message.value)
            message.reply_port.send(current == message.version)
        elif isinstance(message, Subscribe):
            subscribers.append(message.port)
        elif message == "snapshot":
            main_port.send(dict(sorted(state.items())))
    inbox.close()"""),
    (MD, "## The Dart example: updates, queries, a snapshot\n\nThe update notices and the "
         "snapshot come from the manager to the same port, in the order it sent them."),
    (PY, """main_port, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(state_manager, main_port.send_port, on_exit=exits.send_port, debug_name="state-manager")
manager = main_port.receive(timeout=60)

for key, value in [("user", "Alice"), ("score", 100), ("level", 5)]:
    manager.send(StateUpdate(key, value))
for _ in range(3):
    print(main_port.receive(timeout=60))

def get(key):
    reply = stemnb.ReceivePort()
    manager.send(StateQuery(key, reply.send_port))
    value, version = reply.receive(timeout=60)
    reply.close()
    return value, version

print("Queried user:", get("user")[0])
print("Queried score:", get("score")[0])
manager.send("snapshot")
print("Snapshot:", main_port.receive(timeout=60))"""),
    (MD, "## Many isolates, one counter\n\nFour pool calls each send 250 increments as "
         "functions. The manager applies them one after another, so none is lost. Each client "
         "ends with a query of its own: messages from one sender arrive in order, so when it "
         "is answered all of that client's increments are in."),
    (PY, """def client(manager, increments):
    for _ in range(increments):
        manager.send(Modify("hits", lambda value: (value or 0) + 1))
    reply = stemnb.ReceivePort()
    manager.send(StateQuery("hits", reply.send_port))
    reply.receive(timeout=60)
    reply.close()

with stemnb.IsolatePool(2, debug_name="state-clients") as pool:
    for call in [pool.run(client, manager, 250) for _ in range(4)]:
        call.result(timeout=60)
print("hits after 4 x 250 increments:", get("hits")[0])"""),
    (MD, "## Compare-and-set for read-then-write\n\nA writer that reads a value, computes, "
         "and writes back can overwrite a change made in between. With versions the manager "
         "refuses the stale write, and the writer reads again and retries."),
    (PY, """def cas(key, version, value):
    reply = stemnb.ReceivePort()
    manager.send(CompareAndSet(key, version, value, reply.send_port))
    accepted = reply.receive(timeout=60)
    reply.close()
    return accepted

score, version_a = get("score")          # writer A reads
_, version_b = get("score")              # writer B reads the same version
print("B writes score + 10:", cas("score", version_b, score + 10))
print("A writes score * 2 from its stale read:", cas("score", version_a, score * 2))
score, version_a = get("score")
print("A reads again and retries:", cas("score", version_a, score * 2), "->", get("score")[0])"""),
    (MD, "## Subscriptions\n\nA subscriber's port receives `(key, old, new)` for every change, "
         "in the order the manager made them."),
    (PY, """changes = stemnb.ReceivePort()
manager.send(Subscribe(changes.send_port))
manager.send(StateUpdate("level", 6))
manager.send(Modify("hits", lambda value: value + 1000))
manager.send(StateUpdate("user", "Bob"))
for _ in range(3):
    print("change:", changes.receive(timeout=60))
print("notices on the main port:", [main_port.receive(timeout=60) for _ in range(2)])"""),
    (PY, """manager.send("stop")
print("manager ended:", exits.receive(timeout=60) is None)
for port in (main_port, changes, exits):
    port.close()"""),
]

NOTEBOOKS = {
    "37_image_processing.ipynb": IMAGE,
    "38_event_sourcing.ipynb": EVENT_SOURCING,
    "39_cqrs.ipynb": CQRS,
    "40_state_management.ipynb": STATE,
}
