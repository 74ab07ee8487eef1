"""Cell lists of the system pattern notebooks: hierarchies, a genetic algorithm, science pipelines, aggregation.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
"""

from __future__ import annotations

MD, PY = "md", "py"

HIERARCHY = [
    (MD, """# A hierarchical isolate structure

An isolate can spawn isolates of its own, which gives supervisor-worker trees: the kernel talks
to one supervisor, and the supervisor owns its workers, hands them work and shuts them down.
The Dart example has a supervisor with three squaring workers. In stemnb the process that
spawns an isolate supervises it: it holds its capabilities and listeners and notices its end,
so a supervisor isolate can wait on its workers' exit ports before it ends itself. The second
part builds a deeper tree that divides a sum recursively."""),
    (PY, "import stemnb"),
    (MD, "## A supervisor with three workers\n\nThe supervisor spawns the workers, gives each "
         "its inbox, and sends tasks round-robin. Results come back to the supervisor with the "
         "worker's debug name and are forwarded to the kernel. On `shutdown` it stops the "
         "workers and waits for all three exit messages before it ends."),
    (PY, """def square_worker(reply_to):
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    name = stemnb.Isolate.current().debug_name
    for task in inbox:
        if task == "stop":
            break
        reply_to.send((task, task * task, name))
    inbox.close()

def supervisor(main_port):
    results, exits, inbox = stemnb.ReceivePort(), stemnb.ReceivePort(), stemnb.ReceivePort()
    workers = []
    for i in range(3):
        stemnb.spawn(square_worker, results.send_port, on_exit=exits.send_port,
                     debug_name=f"worker-{i}").result(timeout=60)
        workers.append(results.receive(timeout=60))
    main_port.send(inbox.send_port)
    main_port.send(f"Supervisor ready with {len(workers)} workers")
    for message in inbox:
        if message == "shutdown":
            break
        tasks = message
        for i, task in enumerate(tasks):
            workers[i % len(workers)].send(task)
        for _ in tasks:
            main_port.send(results.receive(timeout=60))
    for worker in workers:
        worker.send("stop")
    ended = [exits.receive(timeout=60) for _ in workers]
    main_port.send(f"Supervisor shutdown: {len(ended)} workers ended")
    for port in (results, exits, inbox):
        port.close()"""),
    (PY, """main_port, supervisor_exit = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(supervisor, main_port.send_port, on_exit=supervisor_exit.send_port, debug_name="supervisor")
to_supervisor = main_port.receive(timeout=60)
print(main_port.receive(timeout=60))

tasks = list(range(1, 10))
to_supervisor.send(tasks)
results = sorted(main_port.receive(timeout=60) for _ in tasks)   # workers answer in any order
for task, square, worker in results:
    print(f"Worker result: {task}^2 = {square} (from {worker})")"""),
    (PY, """to_supervisor.send("shutdown")
print(main_port.receive(timeout=60))
print("supervisor ended:", supervisor_exit.receive(timeout=60) is None)"""),
    (MD, "## A tree that divides the work\n\nEach node gets a range. Above depth 0 it splits "
         "the range in two, spawns a child for each half, adds up their answers and waits for "
         "their exits; a leaf computes its sum of squares. Every node reports its name, its "
         "range and its children's reports, so the kernel can print the tree. Depth 2 makes "
         "seven processes: the root, two inner nodes and four leaves."),
    (PY, """def node(args):
    name, start, stop, depth, reply_to = args
    if depth == 0:
        reply_to.send((name, start, stop, sum(i * i for i in range(start, stop)), []))
        return
    answers, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
    middle = (start + stop) // 2
    halves = [(f"{name}.0", start, middle), (f"{name}.1", middle, stop)]
    for child, lo, hi in halves:
        stemnb.spawn(node, (child, lo, hi, depth - 1, answers.send_port), on_exit=exits.send_port,
                     debug_name=child).result(timeout=60)
    children = sorted(answers.receive(timeout=60) for _ in halves)
    [exits.receive(timeout=60) for _ in halves]          # both children have ended
    answers.close()
    exits.close()
    reply_to.send((name, start, stop, sum(c[3] for c in children), children))

def show(report, indent=0):
    name, start, stop, total, children = report
    print(f"{'    ' * indent}{name}: sum of squares over [{start}, {stop}) = {total:,}")
    for child in children:
        show(child, indent + 1)

answer, tree_exit = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(node, ("root", 0, 200_000, 2, answer.send_port), on_exit=tree_exit.send_port, debug_name="root")
report = answer.receive(timeout=120)
show(report)
print("matches the formula:", report[3] == sum(i * i for i in range(200_000)))
print("root ended after its subtree:", tree_exit.receive(timeout=60) is None)"""),
    (PY, """for port in (main_port, supervisor_exit, answer, tree_exit):
    port.close()
print("ports closed")"""),
]

GENETIC = [
    (MD, """# A genetic algorithm with isolates

Evaluating a population's fitness is independent per individual, and islands of a population
can evolve apart for a while, so genetic algorithms spread over isolates in two ways. The Dart
example evaluates 1,000 individuals of 50 genes in four `Isolate.run` chunks, with the fitness
"sum of gene − |gene − 0.5|": a gene adds 2·gene − 0.5 below 0.5 and 0.5 from there up,
so the optimum, 25.0, is reached when every gene is at least 0.5. Here the population
is a numpy array, every random draw comes from a seeded generator, and the islands' results
are merged in a fixed order, so the run is the same every time."""),
    (PY, "import numpy as np\n\nimport stemnb"),
    (PY, """def fitness(genes):
    \"\"\"Dart's fitness, one value per row: each gene below 0.5 costs twice its distance to 0.5.\"\"\"
    return (genes - np.abs(genes - 0.5)).sum(axis=1)

population_size, gene_count = 1_000, 50
population = np.random.default_rng(42).random((population_size, gene_count))"""),
    (MD, "## Parallel evaluation, as in Dart\n\nFour chunks of 250 individuals are evaluated "
         "on a pool; `map` returns them in order, so the fitness array lines up with the "
         "population."),
    (PY, """chunks = np.array_split(population, 4)
with stemnb.IsolatePool(2, debug_name="ga-eval") as pool:
    scores = np.concatenate(list(pool.map(fitness, chunks)))
best = int(np.argmax(scores))
print(f"Evaluated {len(scores):,} individuals in {len(chunks)} chunks")
print(f"Best fitness: {scores[best]:.4f} (individual {best}); average {scores.mean():.4f}; optimum 25.0")
print("same as evaluating in the kernel:", np.array_equal(scores, fitness(population)))"""),
    (MD, "## Islands that evolve in isolates\n\nFour islands of 100 individuals each evolve "
         "for 4 generations per epoch in their own isolate: tournament selection, uniform "
         "crossover, Gaussian mutation, and the best individual kept (elitism). Each island "
         "gets its own seed per epoch from `SeedSequence`. Between epochs the kernel migrates "
         "every island's best individual to the next island, replacing its worst."),
    (PY, """def evolve(population, seed, generations):
    rng = np.random.default_rng(seed)
    size = len(population)
    for _ in range(generations):
        scores = fitness(population)
        elite = population[np.argmax(scores)].copy()
        a, b = rng.integers(size, size=(2, size))
        parents = np.where((scores[a] >= scores[b])[:, None], population[a], population[b])
        mates = parents[rng.permutation(size)]
        children = np.where(rng.random(parents.shape) < 0.5, parents, mates)
        mutate = rng.random(children.shape) < 0.02
        children = np.clip(children + mutate * rng.normal(0, 0.1, children.shape), 0, 1)
        children[0] = elite
        population = children
    return population

islands = np.array_split(population[:400], 4)
seeds = np.random.SeedSequence(7).spawn(4 * 4)
with stemnb.IsolatePool(2, debug_name="ga-islands") as pool:
    for epoch in range(4):
        jobs = [(island, seeds[epoch * 4 + i], 4) for i, island in enumerate(islands)]
        islands = list(pool.map(lambda job: evolve(*job), jobs))
        bests = [island[np.argmax(fitness(island))].copy() for island in islands]
        for i, island in enumerate(islands):               # ring migration
            island = island.copy()
            island[np.argmin(fitness(island))] = bests[i - 1]
            islands[i] = island
        print(f"epoch {epoch + 1} (generation {(epoch + 1) * 4}): best per island",
              [round(float(fitness(island).max()), 3) for island in islands])

champion = max((island[np.argmax(fitness(island))] for island in islands), key=lambda g: fitness(g[None])[0])
print(f"champion fitness {fitness(champion[None])[0]:.4f} of 25.0; genes at least 0.5: "
      f"{int((champion >= 0.5).sum())} of {gene_count}")"""),
]

SCIENCE = [
    (MD, """# A scientific computing pipeline

A scientific pipeline runs stages in order (generate or load, clean, transform, analyse), and
each stage is parallel across its inputs. The Dart example generates 3-D points, then computes
statistics in isolates. Here eight sensor channels of 4,096 samples live in one `shared_array`;
each stage is a round of pool calls, one per channel, that reads and writes its own row in
place, so no sample crosses a pipe. The last stage finds each channel's dominant frequency with
an FFT, and the answers are checked against the frequencies the generator used."""),
    (PY, "import numpy as np\n\nimport stemnb"),
    (PY, """channels, samples, rate = 8, 4_096, 1_024.0          # 4 seconds at 1,024 Hz
true_frequencies = [5.0 * (c + 1) for c in range(channels)]  # 5, 10, ..., 40 Hz
signals = stemnb.shared_array((channels, samples), dtype="float64", fill=0)
seeds = np.random.SeedSequence(11).spawn(channels)

def run_stage(pool, name, fn, *args):
    calls = [pool.run(fn, signals, c, *args) for c in range(channels)]
    for call in calls:
        call.result(timeout=60)
    print(f"stage {name!r}: {channels} channels done")"""),
    (MD, "## Stages\n\n1. **generate**: a sine at the channel's frequency, a slow drift, "
         "Gaussian noise and a few spikes, from the channel's own seed;\n"
         "2. **clean**: spikes beyond 5 median absolute deviations are replaced by the median;\n"
         "3. **detrend**: a fitted straight line is subtracted, and a Hann window applied;\n"
         "4. **analyse**: the FFT's largest peak gives the dominant frequency."),
    (PY, """def generate(data, c, seed, frequency):
    rng = np.random.default_rng(seed)
    t = np.arange(data.shape[1]) / rate
    row = np.sin(2 * np.pi * frequency * t) + 0.3 * t + rng.normal(0, 0.8, t.size)
    row[rng.integers(0, t.size, 10)] += 25.0
    data[c] = row

def clean(data, c):
    row = data[c]
    median = np.median(row)
    mad = np.median(np.abs(row - median))
    row[np.abs(row - median) > 5 * 1.4826 * mad] = median

def detrend(data, c):
    x = np.arange(data.shape[1])
    slope, intercept = np.polyfit(x, data[c], 1)
    data[c] = (data[c] - (slope * x + intercept)) * np.hanning(data.shape[1])

def dominant_frequency(row):
    spectrum = np.abs(np.fft.rfft(row))
    spectrum[0] = 0
    return float(np.fft.rfftfreq(row.size, d=1 / rate)[np.argmax(spectrum)])

with stemnb.IsolatePool(2, debug_name="science") as pool:
    calls = [pool.run(generate, signals, c, seeds[c], true_frequencies[c]) for c in range(channels)]
    for call in calls:
        call.result(timeout=60)
    print(f"stage 'generate': {channels} channels done")
    spikes_before = int((np.abs(signals) > 10).sum())
    run_stage(pool, "clean", clean)
    spikes_after = int((np.abs(signals) > 10).sum())
    run_stage(pool, "detrend", detrend)
    found = list(pool.map(dominant_frequency, [signals[c].copy() for c in range(channels)]))
    print(f"stage 'analyse': {len(found)} spectra")"""),
    (MD, "## Results"),
    (PY, """print(f"samples above 10 before cleaning: {spikes_before}, after: {spikes_after}")
for c, (expected, got) in enumerate(zip(true_frequencies, found, strict=True)):
    print(f"channel {c}: generated {expected:4.1f} Hz, found {got:4.2f} Hz")
print("every channel's frequency recovered:", np.allclose(found, true_frequencies))
print(f"residual mean after detrending: {abs(float(signals.mean())):.3f}")"""),
    (PY, """del signals
print("shared array released")"""),
]

AGGREGATION = [
    (MD, """# Real-time data aggregation

Readings stream in from several sources at once and must be summarised as they come. The Dart
example starts one collector isolate per source, each sending readings at its own interval to
the main isolate, which aggregates them. Here three collector isolates send seeded readings to
an **aggregator isolate**, not to the kernel: the aggregator groups readings into windows of
sequence numbers and publishes a window's summary once every source has moved past it (a
watermark), so the kernel sees complete windows, in order, whatever the interleaving of the
sources. The sources pace themselves with sleeps, as sensors would; nothing waits on them."""),
    (PY, "import random\nimport time\n\nimport stemnb"),
    (PY, """def collector(args):
    name, interval, readings, seed, aggregator = args
    rng = random.Random(seed)
    base = {"temperature": 20.0, "humidity": 50.0, "pressure": 1000.0}[name]
    for sequence in range(readings):
        time.sleep(interval)                    # the sensor's own pace, not synchronisation
        aggregator.send(("reading", name, sequence, round(base + rng.uniform(-2, 2), 2)))
    aggregator.send(("done", name, readings, None))

def aggregator(args):
    sources, window, publish = args
    inbox = stemnb.ReceivePort()
    publish.send(inbox.send_port)
    seen = {name: -1 for name in sources}       # each source's last sequence number
    pending, next_window, done = {}, 0, set()
    totals = {name: [0, 0.0] for name in sources}
    for kind, name, sequence, value in inbox:
        if kind == "reading":
            seen[name] = sequence
            pending.setdefault(sequence // window, {}).setdefault(name, []).append(value)
            totals[name][0] += 1
            totals[name][1] += value
        else:
            done.add(name)
            seen[name] = sequence               # past the end: every window is complete for it
        watermark = min(seen.values())
        while (next_window + 1) * window - 1 <= watermark and next_window in pending:
            group = pending.pop(next_window)
            publish.send(("window", next_window,
                          {n: (len(v), round(min(v), 2), round(max(v), 2), round(sum(v) / len(v), 2))
                           for n, v in sorted(group.items())}))
            next_window += 1
        if done == set(sources):
            break
    publish.send(("totals", None, {n: (c, round(s / c, 2)) for n, (c, s) in sorted(totals.items())}))
    inbox.close()"""),
    (MD, "## Three sources, one aggregator\n\nThe sources run at different paces (10, 15 and "
         "25 ms) and send 12 readings each; the aggregator publishes windows of 4 readings."),
    (PY, """sources = {"temperature": 0.010, "humidity": 0.015, "pressure": 0.025}
published, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(aggregator, (list(sources), 4, published.send_port), on_exit=exits.send_port,
                   debug_name="aggregator")
to_aggregator = published.receive(timeout=60)
for seed, (name, interval) in enumerate(sources.items()):
    await stemnb.spawn(collector, (name, interval, 12, seed, to_aggregator), on_exit=exits.send_port,
                       debug_name=f"collector-{name}")

report = []                                     # printed at the end, in one piece
for kind, window, summary in published:
    if kind == "totals":
        report.append(f"totals (count, mean): {summary}")
        break
    report.append(f"window {window} (readings {window * 4}-{window * 4 + 3}):")
    for name, (count, low, high, mean) in summary.items():
        report.append(f"    {name:<12} n={count} min {low:8.2f} max {high:8.2f} mean {mean:8.2f}")
print("\\n".join(report))"""),
    (PY, """print("aggregator and collectors ended:", [exits.receive(timeout=60) for _ in range(4)] == [None] * 4)
published.close()
exits.close()"""),
]

NOTEBOOKS = {
    "41_hierarchical_isolates.ipynb": HIERARCHY,
    "42_genetic_algorithm.ipynb": GENETIC,
    "43_scientific_pipeline.ipynb": SCIENCE,
    "44_realtime_aggregation.ipynb": AGGREGATION,
}
