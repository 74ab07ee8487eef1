"""Cell lists of the numeric pattern notebooks: Monte Carlo simulation, memory-intensive computations.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
"""

from __future__ import annotations

MD, PY = "md", "py"

MONTE_CARLO = [
    (MD, """# Monte Carlo simulation

Monte Carlo trials are independent, so they split across isolates with no communication but
the final counts. The Dart example estimates π from random points in the unit square: the
fraction inside the quarter circle tends to π/4. Here each isolate draws its points with numpy,
from its own seeded generator: `SeedSequence.spawn` gives every chunk an independent stream, so
the estimate is the same on every run and whichever isolate finishes first."""),
    (PY, "import math\n\nimport numpy as np\n\nimport stemnb"),
    (PY, """def quarter_circle_hits(seed, trials):
    rng = np.random.default_rng(seed)
    x, y = rng.random(trials), rng.random(trials)
    return int(np.count_nonzero(x * x + y * y <= 1.0))

total_trials, chunks = 2_000_000, 4
per_chunk = total_trials // chunks
seeds = np.random.SeedSequence(2026).spawn(chunks)     # one independent stream per chunk"""),
    (MD, "## Four chunks on a pool"),
    (PY, """print(f"Total trials: {total_trials:,} across {chunks} chunks")
with stemnb.IsolatePool(2, debug_name="monte-carlo") as pool:
    hits = list(pool.map(lambda seed: quarter_circle_hits(seed, per_chunk), seeds))
estimate = 4.0 * sum(hits) / total_trials
print("hits per chunk:", hits)
print(f"Estimated pi: {estimate:.6f}")
print(f"Actual pi:    {math.pi:.6f}")
print(f"Error:        {abs(estimate - math.pi):.6f}")"""),
    (MD, "## Results in shared memory\n\nInstead of returning its count, each isolate writes it "
         "into its own slot of a `shared_array`, which every process maps; the kernel reads the "
         "slots when the calls are done. The chunks run in reverse order this time, and the "
         "counts are the same, because each depends only on its seed."),
    (PY, """def hits_into(counts, index, seed, trials):
    counts[index] = quarter_circle_hits(seed, trials)

counts = stemnb.shared_array(chunks, dtype="int64", fill=0)
with stemnb.IsolatePool(2, debug_name="monte-carlo-shared") as pool:
    calls = [pool.run(hits_into, counts, i, seeds[i], per_chunk) for i in reversed(range(chunks))]
    for call in calls:
        call.result(timeout=60)
print("counts written by the isolates:", counts.tolist())
print("same as the returned counts:", counts.tolist() == hits)"""),
    (MD, "## Convergence\n\nThe estimate's standard deviation is 4·√(p(1-p)/N) with "
         "p = π/4, about 1.64/√N: a hundred times more points buy one more correct digit. "
         "Three seeded streams of growing size show it."),
    (PY, """sizes = [10_000, 100_000, 1_000_000]
jobs = list(zip(seeds[:3], sizes, strict=True))
with stemnb.IsolatePool(2, debug_name="convergence") as pool:
    chunk_hits = list(pool.map(lambda job: quarter_circle_hits(*job), jobs))
for trials, hits_n in zip(sizes, chunk_hits, strict=True):
    estimate = 4.0 * hits_n / trials
    spread = 4 * math.sqrt(math.pi / 4 * (1 - math.pi / 4) / trials)
    print(f"N = {trials:>9,}: pi ~ {estimate:.5f}, error {abs(estimate - math.pi):.5f}, "
          f"standard deviation {spread:.5f}")"""),
    (PY, """del counts
print("shared array released")"""),
]

MEMORY = [
    (MD, """# Memory-intensive computations

Large data is where isolates cost the most: each isolate has its own memory, so what it works
on must reach it. The Dart example multiplies two 100×100 matrices in `Isolate.run`, copying
them in and the result out, and notes that the isolate's memory is freed when it ends. stemnb
copies small arrays the same way, sends large ones (256 KiB or more) through shared memory
without a pipe, and offers two ways to avoid copies: `shared_array`, memory that every process
maps, and `TransferableTypedData`, copied once and then moved at no cost."""),
    (PY, "import numpy as np\n\nimport stemnb"),
    (MD, "## The Dart example: a 100×100 product in an isolate"),
    (PY, """size = 100
a = (np.arange(size * size) % 10).astype(np.float64).reshape(size, size)
b = (np.arange(size * size) % 10 + 1).astype(np.float64).reshape(size, size)

print("Multiplying matrices in an isolate...")
result = await stemnb.run(np.matmul, a, b)
print(f"Result dimensions: {result.shape[0]}x{result.shape[1]}")
print("Sample values:", result[0, 0], result[1, 1])
print("same as in the kernel:", np.array_equal(result, a @ b))"""),
    (MD, "## Bigger matrices, split by rows, written in place\n\nTwo 800×800 matrices "
         "(5 MB each) and the product live in `shared_array`s. Each call computes a band of "
         "rows and writes it straight into the shared product, so nothing but names and row "
         "numbers goes through the calls, and nothing comes back."),
    (PY, """def multiply_rows(left, right, out, start, stop):
    out[start:stop] = left[start:stop] @ right

n = 800
rng = np.random.default_rng(7)
left = stemnb.shared_array((n, n), dtype="float64")
right = stemnb.shared_array((n, n), dtype="float64")
product = stemnb.shared_array((n, n), dtype="float64", fill=0)
left[:] = rng.random((n, n))
right[:] = rng.random((n, n))

bands = [(start, min(start + 200, n)) for start in range(0, n, 200)]
with stemnb.IsolatePool(2, debug_name="matmul") as pool:
    for call in [pool.run(multiply_rows, left, right, product, start, stop) for start, stop in bands]:
        call.result(timeout=120)
print(f"{len(bands)} bands of rows computed in isolates")
print("product matches left @ right:", np.allclose(product, left @ right))"""),
    (MD, "## Arrays received are read-only\n\nA large array sent as an ordinary argument "
         "arrives through shared memory, mapped read-only: the receiver cannot believe it "
         "changed the sender's array. It makes its own copy to write."),
    (PY, """def try_to_scale(matrix):
    try:
        matrix *= 2
    except ValueError as exc:
        return f"ValueError: {exc}; a private copy works: {float((matrix * 2)[0, 0]) == 2 * float(matrix[0, 0])}"
    return "changed in place"

plain = np.ones((400, 400))          # 1.28 MB: sent through shared memory
print(stemnb.run(try_to_scale, plain).result(timeout=60))
print("sender's array unchanged:", bool((plain == 1).all()))"""),
    (MD, "## `TransferableTypedData` through a port\n\nCopied once into shared memory when it is "
         "made; sending it then costs the same at any size. The receiving isolate calls "
         "`materialize()` once and gets a private, writable array; a second call raises "
         "`ClosedError`."),
    (PY, """def normalise(args):
    transferable, reply_to = args
    matrix = transferable.materialize()
    matrix -= matrix.mean()
    matrix /= matrix.std()
    try:
        transferable.materialize()
        again = "materialized twice"
    except stemnb.ClosedError:
        again = "a second materialize() raised ClosedError"
    reply_to.send((float(matrix.mean()), float(matrix.std()), again))

data = rng.random((1000, 500))       # 4 MB
replies = stemnb.ReceivePort()
exits = stemnb.ReceivePort()
await stemnb.spawn(normalise, (stemnb.TransferableTypedData(data), replies.send_port),
                   on_exit=exits.send_port, debug_name="normaliser")
mean, std, again = replies.receive(timeout=60)
print("normalised in the isolate: mean 0, std 1:", abs(mean) < 1e-9 and abs(std - 1) < 1e-9)
print("the kernel's array untouched:", abs(float(data.mean()) - 0.5) < 0.01)
print(again)
print("the isolate has ended and its memory with it:", exits.receive(timeout=60) is None)
replies.close()
exits.close()"""),
    (PY, """del left, right, product
stemnb.default_pool().close()
print("shared arrays released, default pool closed")"""),
]

NOTEBOOKS = {
    "30_monte_carlo.ipynb": MONTE_CARLO,
    "31_memory_intensive.ipynb": MEMORY,
}
