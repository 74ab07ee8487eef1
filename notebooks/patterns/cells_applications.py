"""Cell lists of the application pattern notebooks: JSON, cryptography, compression, databases, files.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
"""

from __future__ import annotations

MD, PY = "md", "py"

JSON_PROCESSING = [
    (MD, """# JSON processing in isolates

Encoding and decoding large JSON documents is CPU work that holds the caller while it runs. The
Dart example builds 10,000 users, then encodes, decodes and filters them with `Isolate.run`,
so the UI thread stays free. `stemnb.run` does the same with Python's `json` module. Sending a
big document to an isolate costs a pickle, so the better split keeps the text on the wire:
each isolate parses its own piece of a JSON Lines file and returns only a summary."""),
    (PY, "import json\n\nimport stemnb"),
    (PY, """large_data = {
    "users": [{"id": i, "name": f"User {i}", "email": f"user{i}@example.com",
               "active": i % 2 == 0, "score": i * 10} for i in range(10_000)],
    "metadata": {"version": "1.0", "generated": "2026-01-01T00:00:00"},   # fixed, so outputs repeat
}
print(f"Processing {len(large_data['users']):,} users...")"""),
    (MD, "## Encode, decode and filter, each in `run`"),
    (PY, """json_string = await stemnb.run(json.dumps, large_data)
print(f"Encoded to JSON: {len(json_string):,} characters")

decoded = await stemnb.run(json.loads, json_string)
print(f"Decoded users: {len(decoded['users']):,}")

active_count = await stemnb.run(lambda doc: sum(1 for u in doc["users"] if u["active"]), decoded)
print(f"Active users: {active_count:,}")
print("round trip is lossless:", decoded == large_data)"""),
    (MD, "## JSON Lines parsed in parallel\n\nA JSON Lines file has one document per line, "
         "so it splits at line breaks. Each chunk goes to a pool process as text, is parsed "
         "there, and only a small summary comes back; the kernel merges the summaries. A "
         "malformed line is reported with its line number instead of failing the whole file."),
    (PY, """def summarise_lines(first_line, text):
    summary = {"users": 0, "active": 0, "score": 0, "bad_lines": []}
    for number, line in enumerate(text.splitlines(), start=first_line):
        try:
            user = json.loads(line)
        except json.JSONDecodeError as exc:
            summary["bad_lines"].append(f"line {number}: {exc.msg}")
            continue
        summary["users"] += 1
        summary["active"] += user["active"]
        summary["score"] += user["score"]
    return summary

lines = [json.dumps(user) for user in large_data["users"]]
lines[4321] = '{"id": 4321, "name": "User 4321", '          # a truncated record
chunk = 2_500
jobs = [(start + 1, "\\n".join(lines[start:start + chunk])) for start in range(0, len(lines), chunk)]

with stemnb.IsolatePool(2, debug_name="jsonl") as pool:
    summaries = list(pool.map(lambda job: summarise_lines(*job), jobs))

total = {"users": sum(s["users"] for s in summaries), "active": sum(s["active"] for s in summaries),
         "score": sum(s["score"] for s in summaries)}
print(f"{len(jobs)} chunks parsed in isolates")
print("merged summary:", total)
print("malformed:", [bad for s in summaries for bad in s["bad_lines"]])"""),
    (MD, "## Errors come back with their type\n\nParsing a broken document in `run` raises the "
         "same `json.JSONDecodeError` in the kernel, with the position of the fault."),
    (PY, """try:
    await stemnb.run(json.loads, '{"users": [1, 2,, 3]}')
except json.JSONDecodeError as exc:
    print(f"JSONDecodeError: {exc.msg} at line {exc.lineno}, column {exc.colno}")"""),
    (PY, """stemnb.default_pool().close()
print("default pool closed")"""),
]

CRYPTO = [
    (MD, """# Cryptographic operations in isolates

Hashing, key derivation and signing are deliberately expensive, so they belong off the main
thread. The Dart example hand-rolls a toy hash and a Caesar cipher; Python has the real thing in
`hashlib` and `hmac`, and this notebook uses those. It shows three shapes: many independent
digests on a pool, a slow key derivation in `run`, and a signing isolate that holds a secret
key and never sends it anywhere: other code gets signatures, not the key."""),
    (PY, "import hashlib\nimport hmac\n\nimport stemnb"),
    (MD, "## Many digests on a pool\n\nEach document is hashed in a pool process; `map` keeps "
         "the input order. Only the first 16 hex digits are printed."),
    (PY, """def sha256_hex(text):
    return hashlib.sha256(text.encode()).hexdigest()

documents = [f"document {i}: " + "lorem ipsum " * 2_000 for i in range(8)]
with stemnb.IsolatePool(2, debug_name="hashing") as pool:
    digests = list(pool.map(sha256_hex, documents))
for i, digest in enumerate(digests):
    print(f"document {i}: sha256 {digest[:16]}...")
print("same as hashing in the kernel:", digests == [sha256_hex(d) for d in documents])"""),
    (MD, "## Key derivation in `run`\n\nPBKDF2 with many iterations is slow on purpose. "
         "Two derivations run side by side in the default pool; the salt is fixed so the "
         "output repeats."),
    (PY, """def derive_key(password, salt, iterations):
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations).hex()

salt = b"stemnb-fixed-salt"
calls = [stemnb.run(derive_key, password, salt, 50_000) for password in ["correct horse", "hunter2"]]
keys = [await call for call in calls]
for password, key in zip(["correct horse", "hunter2"], keys, strict=True):
    print(f"{password!r}: {key[:16]}...")"""),
    (MD, "## A signing isolate that keeps its key\n\nThe signer is spawned with the key; the "
         "kernel forgets it. Requests are `(operation, data, reply port)`; `verify` uses "
         "`hmac.compare_digest`, which takes the same time however many characters match."),
    (PY, """def signer(args):
    key, reply_to = args
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    for request in inbox:
        if request is None:
            break
        operation, data, reply, *signature = request
        tag = hmac.new(key, data, hashlib.sha256).hexdigest()
        if operation == "sign":
            reply.send(tag)
        elif operation == "verify":
            reply.send(hmac.compare_digest(tag, signature[0]))
        else:
            reply.send(f"error: unknown operation {operation!r}")
    inbox.close()

def request(port, *parts):
    reply = stemnb.ReceivePort()
    operation, data, *rest = parts
    port.send((operation, data, reply.send_port, *rest))
    answer = reply.receive(timeout=60)
    reply.close()
    return answer

setup, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(signer, (b"a secret only the signer knows", setup.send_port),
                   on_exit=exits.send_port, debug_name="signer")
signer_port = await setup.first()

payload = b'{"amount": 100, "to": "alice"}'
signature = request(signer_port, "sign", payload)
print("signature:", signature[:16] + "...")
print("genuine payload verifies:", request(signer_port, "verify", payload, signature))
print("tampered payload verifies:", request(signer_port, "verify", b'{"amount": 900, "to": "alice"}', signature))
print("unknown operation:", request(signer_port, "encrypt", payload))"""),
    (PY, """signer_port.send(None)
print("signer ended:", exits.receive(timeout=60) is None)
exits.close()
stemnb.default_pool().close()
print("default pool closed")"""),
]

COMPRESSION = [
    (MD, """# Compression and decompression

Compression is CPU-bound and splits well: independent blocks compress in parallel. The Dart
example writes a run-length encoder and runs it in `Isolate.run`. Here the same run-length
encoder runs in an isolate first, then `zlib` compresses blocks of a larger buffer on a pool,
and `gzip` makes a file-format round trip. The inputs are fixed and gzip's timestamp is set to
0, so every byte count is the same on every run."""),
    (PY, "import gzip\nimport zlib\n\nimport stemnb"),
    (MD, "## Run-length encoding in `run`, as in Dart"),
    (PY, """def rle_encode(data):
    out, i = bytearray(), 0
    while i < len(data):
        count = 1
        while i + count < len(data) and data[i + count] == data[i] and count < 255:
            count += 1
        out += bytes([count, data[i]])
        i += count
    return bytes(out)

def rle_decode(data):
    return b"".join(bytes([value]) * count for count, value in zip(data[::2], data[1::2], strict=True))

original = b"".join(bytes([i % 8]) * 100 for i in range(100))     # 10,000 bytes of long runs
encoded = await stemnb.run(rle_encode, original)
print(f"original: {len(original):,} bytes, run-length encoded: {len(encoded):,} bytes, "
      f"ratio {len(encoded) / len(original):.1%}")
print("decodes back in another isolate:", await stemnb.run(rle_decode, encoded) == original)"""),
    (MD, "## `zlib` on blocks, in parallel\n\nA log-like buffer of about 3.8 MB is cut into "
         "512 KB blocks; each is compressed on its own in a pool process, as in formats that "
         "compress blocks independently (so that they can be decompressed independently "
         "too). `map` returns the compressed blocks in input order."),
    (PY, """def compress_block(block):
    return zlib.compress(block, 6)

lines = [f"2026-01-01 12:{i % 60:02d}:00 INFO request {i} served in {i % 97} ms\\n" for i in range(70_000)]
log = "".join(lines).encode()[:4_000_000]
block_size = 512_000
blocks = [log[i:i + block_size] for i in range(0, len(log), block_size)]

with stemnb.IsolatePool(2, debug_name="zlib") as pool:
    compressed = list(pool.map(compress_block, blocks))
    restored = b"".join(pool.map(zlib.decompress, compressed))

print(f"{len(blocks)} blocks, {len(log):,} bytes -> {sum(map(len, compressed)):,} bytes "
      f"({sum(map(len, compressed)) / len(log):.1%})")
print("decompressed blocks rebuild the input:", restored == log)
print("same as one-shot zlib per block in the kernel:", compressed == [zlib.compress(b, 6) for b in blocks])"""),
    (MD, "## A gzip round trip, and a corrupt stream\n\n`gzip.compress(mtime=0)` leaves the "
         "timestamp out of the header, so the output depends on the data alone. A damaged "
         "stream raises in the isolate, and the same exception type reaches the kernel."),
    (PY, """packed = await stemnb.run(gzip.compress, log, compresslevel=9, mtime=0)
print(f"gzip level 9: {len(packed):,} bytes")
print("unpacks to the input:", await stemnb.run(gzip.decompress, packed) == log)

damaged = packed[:100] + bytes(20) + packed[120:]
try:
    await stemnb.run(gzip.decompress, damaged)
except (zlib.error, gzip.BadGzipFile, EOFError) as exc:
    print(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")"""),
    (PY, """stemnb.default_pool().close()
print("default pool closed")"""),
]

DATABASE = [
    (MD, """# Database operations in isolates

Queries that scan many rows, and bulk writes, keep whoever runs them busy. The Dart example
simulates a table in an isolate and filters it there. Here the database is real: an SQLite file
in a temporary directory. A connection belongs to one process and cannot be sent, so the rule
is **one connection per isolate**: a long-lived writer isolate owns the only writing
connection and serialises the writes, and reader isolates open their own read-only
connections and run queries in parallel."""),
    (PY, "import sqlite3\nimport tempfile\nfrom pathlib import Path\n\nimport stemnb"),
    (PY, """workdir = tempfile.TemporaryDirectory()
db_path = str(Path(workdir.name) / "records.db")   # a temporary path: used, never printed"""),
    (MD, "## A writer isolate that owns the connection\n\nCommands arrive as tuples with a "
         "reply port. The writer creates the table, inserts batches in transactions and "
         "answers with the row count."),
    (PY, """def writer(args):
    path, reply_to = args
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, name TEXT, category TEXT, value INTEGER)")
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    for command in inbox:
        if command is None:
            break
        operation, payload, reply = command
        if operation == "insert":
            with connection:                      # one transaction per batch
                connection.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", payload)
            reply.send(connection.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        else:
            reply.send(f"error: unknown operation {operation!r}")
    connection.close()
    inbox.close()

setup, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(writer, (db_path, setup.send_port), on_exit=exits.send_port, debug_name="db-writer")
writer_port = await setup.first()

replies = stemnb.ReceivePort()
categories = ["alpha", "beta", "gamma", "delta"]
for batch in range(4):
    rows = [(i, f"Record {i}", categories[i % 4], (i * 37) % 1000)
            for i in range(batch * 2_500, (batch + 1) * 2_500)]
    writer_port.send(("insert", rows, replies.send_port))
    print(f"batch {batch}: table has {replies.receive(timeout=60):,} rows")"""),
    (MD, "## Readers in parallel, each with its own connection\n\nEach query runs in a pool "
         "process that opens the file read-only (`mode=ro`), runs one query and closes its "
         "connection. The writer is idle meanwhile; SQLite lets readers share the file."),
    (PY, """def query(path, sql, params=()):
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()

queries = {
    "rows per category": ("SELECT category, COUNT(*) FROM records GROUP BY category ORDER BY category", ()),
    "value > 990": ("SELECT COUNT(*) FROM records WHERE value > ?", (990,)),
    "top 3 by value": ("SELECT id, name, value FROM records ORDER BY value DESC, id LIMIT 3", ()),
    "average value": ("SELECT ROUND(AVG(value), 2) FROM records", ()),
}
with stemnb.IsolatePool(2, debug_name="db-readers") as pool:
    calls = {name: pool.run(query, db_path, sql, params) for name, (sql, params) in queries.items()}
    for name, call in calls.items():
        print(f"{name}: {call.result(timeout=60)}")"""),
    (MD, "## Connections do not travel\n\nA connection is tied to its process, so stemnb "
         "refuses to send one: the pickling fails in the sender, before anything runs."),
    (PY, """connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
try:
    await stemnb.run(lambda c: c.execute("SELECT 1").fetchone(), connection)
except stemnb.SerializationError as exc:
    print("SerializationError:", str(exc).splitlines()[0])
finally:
    connection.close()

try:
    query(db_path, "INSERT INTO records VALUES (0, 'x', 'y', 1)")
except sqlite3.OperationalError as exc:
    print("a read-only connection cannot write:", exc)"""),
    (MD, "## Cleanup"),
    (PY, """writer_port.send(None)
print("writer ended:", exits.receive(timeout=60) is None)
replies.close()
exits.close()
workdir.cleanup()
stemnb.default_pool().close()
print("temporary directory removed, default pool closed")"""),
]

FILE_PROCESSING = [
    (MD, """# File processing in isolates

Reading, parsing and writing files mixes I/O with CPU work; in an isolate neither holds up the
notebook. The Dart example counts lines, words and characters of a file in `Isolate.run`. Here
a temporary directory holds a few generated text files. Isolates get **paths**, not contents, so
each reads its own file; only the small statistics come back. Paths are never printed: they
differ on every run."""),
    (PY, "import hashlib\nimport tempfile\nfrom pathlib import Path\n\nimport stemnb"),
    (PY, """workdir = tempfile.TemporaryDirectory()
root = Path(workdir.name)
words = ["isolate", "port", "message", "process", "memory", "pool", "notebook", "kernel"]
for n in range(6):
    text = "\\n".join(" ".join(words[(n + i + j) % len(words)] for j in range(n + 3)) for i in range(200 * (n + 1)))
    (root / f"part-{n}.txt").write_text(text + "\\n")
print("files:", sorted(p.name for p in root.iterdir()))"""),
    (MD, "## Statistics per file, on a pool"),
    (PY, """def file_stats(path):
    data = Path(path).read_bytes()
    text = data.decode()
    return {"file": Path(path).name, "lines": text.count("\\n"), "words": len(text.split()),
            "characters": len(text), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()[:12]}

paths = sorted(str(p) for p in root.glob("*.txt"))
with stemnb.IsolatePool(2, debug_name="files") as pool:
    stats = list(pool.map(file_stats, paths))
for s in stats:
    print(f"{s['file']}: {s['lines']:>5} lines {s['words']:>6} words {s['characters']:>7} characters  sha256 {s['sha256']}")
print("total words:", sum(s["words"] for s in stats))"""),
    (MD, "## A missing file\n\nThe isolate's `FileNotFoundError` is re-raised in the kernel. Its "
         "`filename` is the full temporary path, so only the file's name is printed."),
    (PY, """try:
    await stemnb.run(file_stats, str(root / "missing.txt"))
except FileNotFoundError as exc:
    print("FileNotFoundError for", Path(exc.filename).name)"""),
    (MD, "## Isolates that write files, reporting progress\n\nA spawned isolate turns each "
         "input into a word-frequency file in an `out/` directory and sends one progress "
         "message per file. Messages from one sender arrive in order, so the progress lines "
         "are printed as they come."),
    (PY, """def index_files(args):
    sources, out_dir, progress = args
    Path(out_dir).mkdir()
    for done, source in enumerate(sources, start=1):
        counts = {}
        for word in Path(source).read_text().split():
            counts[word] = counts.get(word, 0) + 1
        lines = [f"{word} {count}" for word, count in sorted(counts.items())]
        Path(out_dir, Path(source).stem + ".counts").write_text("\\n".join(lines) + "\\n")
        progress.send((done, len(sources), Path(source).name))
    progress.send("done")

progress, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(index_files, (paths, str(root / "out"), progress.send_port),
                   on_exit=exits.send_port, debug_name="indexer")
for message in progress:
    if message == "done":
        break
    done, total, name = message
    print(f"[{done}/{total}] indexed {name}")
print("indexer ended:", exits.receive(timeout=60) is None)
print("written:", sorted(p.name for p in (root / "out").iterdir()))
print("part-0.counts:", (root / "out" / "part-0.counts").read_text().split("\\n")[:3])"""),
    (PY, """progress.close()
exits.close()
workdir.cleanup()
stemnb.default_pool().close()
print("temporary directory removed, default pool closed")"""),
]

NOTEBOOKS = {
    "32_json_processing.ipynb": JSON_PROCESSING,
    "33_cryptographic_operations.ipynb": CRYPTO,
    "34_compression.ipynb": COMPRESSION,
    "35_database_operations.ipynb": DATABASE,
    "36_file_processing.ipynb": FILE_PROCESSING,
}
