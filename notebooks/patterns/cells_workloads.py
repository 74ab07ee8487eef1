"""Cell lists of the workload pattern notebooks (network, scraping, documents, inference, rendering,
media) and of the closing best-practices notebook.

Each entry maps a notebook file name to ``(kind, source)`` cells; ``build.py`` executes them.
Notebooks that talk HTTP start their own server on 127.0.0.1 (port 0) and stop it at the end.
"""

from __future__ import annotations

MD, PY = "md", "py"

NETWORK = [
    (MD, """# Network request processing in isolates

Fetching is waiting, but decoding and reshaping a large response is CPU work that holds up
whoever does it. The Dart example parses a 5,000-item JSON response with `Isolate.run`, then
three responses in parallel. This notebook has no internet access and needs none: it starts a
small HTTP API on `127.0.0.1` (a `ThreadingHTTPServer` on a free port, in a thread of the
kernel) and talks to it with `urllib`. First the kernel fetches and an isolate processes, as in
Dart; then the isolates do both, so the kernel only receives small summaries; last, what
happens with HTTP errors and with a server that does not answer in time."""),
    (PY, """import http.server
import json
import threading
import urllib.error
import urllib.parse
import urllib.request

import stemnb"""),
    (MD, "## A local API\n\n`/items?page=N&size=M` returns M items as JSON; `/broken` answers "
         "500; `/slow` never answers: it waits until the notebook releases it at cleanup, then hangs up. `log_message` is "
         "silenced so request logs do not go to the cell's stderr."),
    (PY, """release_slow = threading.Event()

class ApiHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/items":
            page, size = int(query["page"][0]), int(query.get("size", ["1000"])[0])
            items = [{"id": page * size + i, "name": f"Item {page * size + i}", "category": f"Category {i % 10}",
                      "price": round((page * size + i) * 10.5, 2)} for i in range(size)]
            self.reply(200, {"page": page, "items": items})
        elif url.path == "/broken":
            self.reply(500, {"error": "internal error"})
        elif url.path == "/slow":
            release_slow.wait(10)               # then hang up: the client has given up long ago
        else:
            self.reply(404, {"error": "not found"})

    def reply(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ApiHandler)
server.daemon_threads = True
server_thread = threading.Thread(target=server.serve_forever, daemon=True)
server_thread.start()
base = f"http://127.0.0.1:{server.server_port}"     # a free port, different every run: not printed
print("API listening on 127.0.0.1")"""),
    (MD, "## Fetch in the kernel, process in an isolate\n\nDart's `processResponse`: decode, "
         "upper-case every name, mark it processed. The Dart version also stamps the current "
         "time; this one does not, so the output repeats."),
    (PY, """def process_response(json_text):
    parsed = json.loads(json_text)
    if "items" not in parsed:
        return {"success": False, "error": "Invalid data structure"}
    processed = [{"id": item["id"], "name": str(item.get("name", "unknown")).upper(), "processed": True}
                 for item in parsed["items"]]
    return {"processed_items": processed, "count": len(processed), "success": True}

with urllib.request.urlopen(f"{base}/items?page=0&size=5000", timeout=10) as response:
    text = response.read().decode()
print(f"Processing API response with {len(text):,} bytes...")
result = await stemnb.run(process_response, text)
print("Processing complete:")
print("  Success:", result["success"])
print("  Items processed:", result["count"])
print("  Last item:", result["processed_items"][-1])"""),
    (MD, "## Fetch and process in the isolates\n\nEach pool process downloads its own page and "
         "returns only a summary, so neither the raw response nor the 1,000 items cross into "
         "the kernel. `map` keeps the pages in order."),
    (PY, """def fetch_summary(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        document = json.loads(response.read())
    prices = [item["price"] for item in document["items"]]
    return {"page": document["page"], "count": len(prices), "total": round(sum(prices), 2),
            "categories": len({item["category"] for item in document["items"]})}

urls = [f"{base}/items?page={page}&size=1000" for page in range(1, 7)]
with stemnb.IsolatePool(2, debug_name="fetchers") as pool:
    summaries = list(pool.map(fetch_summary, urls))
for summary in summaries:
    print(summary)
print(f"Processed {sum(s['count'] for s in summaries):,} items from {len(summaries)} responses")"""),
    (MD, "## When the server fails, or does not answer\n\nAn `HTTPError` holds the open "
         "response, so it cannot be rebuilt in the kernel: stemnb raises a `RemoteError` "
         "that names it. Handling errors where they happen, and returning the status, keeps "
         "them useful. A server that does not answer within urllib's `timeout` raises "
         "`TimeoutError`, which travels back as itself."),
    (PY, """def fetch_status(url, timeout=10):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())

def fetch_raw(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()

try:
    await stemnb.run(fetch_raw, f"{base}/broken")
except stemnb.RemoteError as exc:
    print("RemoteError:", exc.type_name, "-", exc.message)
for path in ("/broken", "/missing", "/items?page=0&size=2"):
    status, body = await stemnb.run(fetch_status, f"{base}{path}")
    print(f"{path}: {status} {body}")
try:
    await stemnb.run(fetch_raw, f"{base}/slow", 0.3)    # urllib's timeout (run's own timeout= would end the process)
except TimeoutError as exc:
    print("TimeoutError:", exc)"""),
    (PY, """release_slow.set()
server.shutdown()
server.server_close()
server_thread.join()
stemnb.default_pool().close()
print("server stopped, default pool closed")"""),
]

SCRAPING = [
    (MD, """# Web scraping with isolates

A scraper fetches pages, parses their HTML, pulls out the data it wants and follows links.
Parsing is CPU work and fetching is waiting, so both go to isolates. The Dart example fakes the
pages and extracts twenty made-up items from each. Here a small shop site is served from the
kernel on `127.0.0.1` (no internet needed), and a breadth-first crawler fetches each level of
pages on an `IsolatePool`: every process downloads a page, parses it with `html.parser`, and
returns only the products and links it found. The kernel keeps the frontier and the set of
visited pages, so no page is fetched twice."""),
    (PY, """import html.parser
import http.server
import threading
import urllib.error
import urllib.parse
import urllib.request

import stemnb"""),
    (MD, "## The site\n\nAn index links to three categories; each category lists four "
         "products and links to the next category; each product page links to two related "
         "products. One category links to a page that does not exist."),
    (PY, """def product_page(c, p):
    related = "".join(f'<a href="/product/{c}-{(p + k) % 4}">related</a>' for k in (1, 2))
    return (f'<html><body><div class="product"><h1 class="name">Widget {c}-{p}</h1>'
            f'<span class="price">{(c + 1) * 10 + p}.50</span></div>{related}</body></html>')

def category_page(c):
    links = "".join(f'<li><a href="/product/{c}-{p}">Widget {c}-{p}</a></li>' for p in range(4))
    extra = '<a href="/category/99">broken</a>' if c == 2 else f'<a href="/category/{(c + 1) % 3}">next</a>'
    return f"<html><body><h1>Category {c}</h1><ul>{links}</ul>{extra}</body></html>"

PAGES = {"/": '<html><body><a href="/category/0">A</a> <a href="/category/1">B</a> <a href="category/2">C</a></body></html>'}
PAGES.update({f"/category/{c}": category_page(c) for c in range(3)})
PAGES.update({f"/product/{c}-{p}": product_page(c, p) for c in range(3) for p in range(4)})

class SiteHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = PAGES.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write((body or "<h1>Not found</h1>").encode())

    def log_message(self, format, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SiteHandler)
server.daemon_threads = True
server_thread = threading.Thread(target=server.serve_forever, daemon=True)
server_thread.start()
base = f"http://127.0.0.1:{server.server_port}"
print(f"serving {len(PAGES)} pages on 127.0.0.1")"""),
    (MD, "## Fetch and parse in an isolate\n\n`scrape` returns the page's path, its links "
         "(resolved against the page with `urljoin`, kept on the same site) and the text of "
         "every element whose class is the selector's, the way Dart's `ScrapingTask` names a "
         "selector. A missing page comes back as its status, not as an exception."),
    (PY, """class Extractor(html.parser.HTMLParser):
    def __init__(self, selector):
        super().__init__()
        self.selector, self.links, self.items, self.depth, self.text = selector, [], [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        if self.depth or self.selector in attrs.get("class", "").split():
            self.depth += 1

    def handle_endtag(self, tag):
        if self.depth:
            self.depth -= 1
            if self.depth == 0:
                self.items.append(" ".join(self.text))
                self.text = []

    def handle_data(self, data):
        if self.depth and data.strip():
            self.text.append(data.strip())

def scrape(url, selector="product"):
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            page = response.read().decode()
    except urllib.error.HTTPError as exc:
        return {"url": url, "status": exc.code, "links": [], "items": []}
    extractor = Extractor(selector)
    extractor.feed(page)
    site = urllib.parse.urlsplit(url).netloc
    links = {urllib.parse.urljoin(url, href) for href in extractor.links}
    return {"url": url, "status": 200, "items": extractor.items,
            "links": sorted(link for link in links if urllib.parse.urlsplit(link).netloc == site)}

def path(url):
    return urllib.parse.urlsplit(url).path"""),
    (MD, "## Crawl, level by level\n\nEach level's pages are scraped in parallel; the next "
         "frontier is every new link found. The crawl stops when a level finds nothing new."),
    (PY, """visited, frontier, products, broken = set(), [f"{base}/"], {}, []
with stemnb.IsolatePool(2, debug_name="scrapers") as pool:
    depth = 0
    while frontier:
        visited.update(frontier)
        pages = list(pool.map(scrape, frontier))
        print(f"depth {depth}: scraped {len(pages):>2} pages: {', '.join(sorted(path(p['url']) for p in pages))}")
        found = set()
        for page in pages:
            if page["status"] != 200:
                broken.append(f"{path(page['url'])} ({page['status']})")
            for item in page["items"]:
                products[path(page["url"])] = item
            found.update(page["links"])
        frontier, depth = sorted(found - visited), depth + 1

print(f"\\nScraped {len(visited)} pages, {len(products)} products, broken links: {broken}")
for page_path, item in sorted(products.items())[:4]:
    print(f"{page_path}: {item}")
total = sum(float(item.split()[-1]) for item in products.values())
print(f"... total price of all products: {total:.2f}")"""),
    (PY, """server.shutdown()
server.server_close()
server_thread.join()
print("server stopped")"""),
]

DOCUMENTS = [
    (MD, """# Batch document processing

A batch of documents is many independent jobs: count, extract keywords, summarise. The Dart
example runs one `Isolate.run` per document over twenty copies of the same text. Here twenty
documents are generated from a seeded vocabulary, so each is different and every run is the
same; they arrive as UTF-8 bytes, as they would from disk. A pool processes them in chunks (one
message carries several documents), the kernel merges the per-chunk keyword counts
(map-reduce), and a document that cannot be decoded fails on its own instead of failing the
batch."""),
    (PY, "import collections\nimport concurrent.futures\nimport random\nimport re\n\nimport stemnb"),
    (PY, """TOPICS = {
    "isolates": "isolates ports messages processes workers supervisor mailbox",
    "storage": "database records queries tables indexes transactions storage",
    "imaging": "pixels images filters colours frames rendering shading",
}

def make_document(i):
    rng = random.Random(i)
    topic = sorted(TOPICS)[i % len(TOPICS)]
    words = TOPICS[topic].split() + "the a of and with for data".split()
    sentences = [" ".join(rng.choice(words) for _ in range(rng.randint(6, 12))).capitalize() + "."
                 for _ in range(rng.randint(8, 16))]
    return {"id": f"doc-{i:02d}", "content": " ".join(sentences).encode("utf-8"), "metadata": {"topic": topic}}

documents = [make_document(i) for i in range(20)]
documents[13]["content"] = "Résumé of the café system.".encode("latin-1")   # not UTF-8
print(f"{len(documents)} documents, {sum(len(d['content']) for d in documents):,} bytes")"""),
    (MD, "## Dart's `processDocument`\n\nWord and character counts, keywords (words longer "
         "than four letters that occur more than once, most frequent first, ties in "
         "alphabetical order, so the result does not depend on dict order), and the first "
         "sentence as a summary."),
    (PY, """def process_document(doc):
    text = doc["content"].decode("utf-8")       # strict: bad bytes raise UnicodeDecodeError
    words = re.findall(r"[a-z]+", text.lower())
    frequency = collections.Counter(w for w in words if len(w) > 4)
    keywords = [w for w, n in sorted(frequency.items(), key=lambda kv: (-kv[1], kv[0])) if n > 1][:5]
    summary = text.split(".")[0]
    return {"id": doc["id"], "words": len(text.split()), "characters": len(text), "keywords": keywords,
            "summary": summary if len(summary) <= 100 else summary[:100] + "...", "frequency": frequency}

def process_chunk(docs):
    \"\"\"Process a chunk; a document that fails is reported by id, the others still count.\"\"\"
    done, failed = [], []
    for doc in docs:
        try:
            done.append(process_document(doc))
        except UnicodeDecodeError as exc:
            failed.append((doc["id"], f"{type(exc).__name__}: {exc.reason} at byte {exc.start}"))
    return done, failed"""),
    (MD, "## Chunks on a pool, then reduce\n\nFour chunks of five documents. Each chunk "
         "returns its results; the kernel adds up the counters."),
    (PY, """chunks = [documents[i:i + 5] for i in range(0, len(documents), 5)]
with stemnb.IsolatePool(2, debug_name="documents") as pool:
    outcomes = list(pool.map(process_chunk, chunks))
results = [r for done, _ in outcomes for r in done]
failures = [f for _, failed in outcomes for f in failed]

total_words = sum(r["words"] for r in results)
print(f"Processed {len(results)} documents in {len(chunks)} chunks; failed: {failures}")
print(f"Total words: {total_words:,}; average {total_words // len(results)} words per document")
sample = results[0]
print(f"\\nSample: {sample['id']}, {sample['words']} words, {sample['characters']} characters")
print("  keywords:", sample["keywords"])
print("  summary: ", sample["summary"])

corpus = collections.Counter()
for r in results:
    corpus.update(r["frequency"])
print("\\ncorpus keywords:", [w for w, _ in sorted(corpus.items(), key=lambda kv: (-kv[1], kv[0]))[:6]])
by_topic = collections.defaultdict(list)
for doc, r in zip([d for d in documents if d["id"] != "doc-13"], results, strict=True):
    by_topic[doc["metadata"]["topic"]].append(r["keywords"][0])
for topic, tops in sorted(by_topic.items()):
    print(f"{topic:<9} documents' top keywords: {sorted(set(tops))}")"""),
    (MD, "## One call per document\n\nAs in Dart, each document can be its own call: more "
         "messages, but each failure is its own future. Collecting outcomes with "
         "`concurrent.futures.wait` lets the batch finish while the bad document re-raises "
         "its own `UnicodeDecodeError` in the kernel."),
    (PY, """with stemnb.IsolatePool(2, debug_name="documents") as pool:
    futures = {pool.run(process_document, doc): doc["id"] for doc in documents}
    concurrent.futures.wait(futures)
words = {}
for future, doc_id in sorted(futures.items(), key=lambda kv: kv[1]):
    if future.exception() is None:
        words[doc_id] = future.result()["words"]
    else:
        print(f"{doc_id} failed: {type(future.exception()).__name__}: {future.exception()}")
print(f"{len(words)} documents processed, one call each; word counts as in the chunked run:",
      words == {r["id"]: r["words"] for r in results})"""),
]

INFERENCE = [
    (MD, """# ML model inference in isolates

Inference is CPU work, and a model is costly to load, so the usual design keeps **long-lived
inference isolates that load the model once** and then serve batches. The Dart example runs ten
`Isolate.run` calls of a made-up linear model. Here a small logistic-regression model is
trained with numpy in the kernel and saved to a file; two inference isolates each load it once
at start and answer batches of feature rows through their ports. The kernel splits a test set
into batches, spreads them over both, and puts the answers back in order. Last, the notebook
compares sending 2,000 one-row requests with sending twenty 100-row batches."""),
    (PY, "import pathlib\nimport tempfile\nimport time\n\nimport numpy as np\n\nimport stemnb"),
    (MD, "## Train and save a model\n\nTwo Gaussian classes in four dimensions, from a seeded "
         "generator; 300 steps of gradient descent."),
    (PY, """def make_data(n, rng):
    labels = rng.integers(0, 2, n)
    centres = np.array([[-1.0, -0.5, 0.0, 0.5], [1.0, 0.5, 0.0, -0.5]])
    return centres[labels] + rng.normal(0, 1.0, (n, 4)), labels

def sigmoid(z):
    return 1 / (1 + np.exp(-z))

rng = np.random.default_rng(0)
x_train, y_train = make_data(2_000, rng)
x_test, y_test = make_data(2_000, rng)
weights, bias = np.zeros(4), 0.0
for _ in range(300):
    error = sigmoid(x_train @ weights + bias) - y_train
    weights -= 0.5 * x_train.T @ error / len(y_train)
    bias -= 0.5 * error.mean()

model_dir = tempfile.TemporaryDirectory()
model_path = pathlib.Path(model_dir.name) / "model.npz"
np.savez(model_path, weights=weights, bias=bias)
print("weights:", np.round(weights, 3), "bias:", round(float(bias), 3))"""),
    (MD, "## Inference isolates\n\nEach server loads the model when it starts, then answers "
         "`(batch_id, rows, reply_port)` with `(batch_id, probabilities)`. On `None` it "
         "reports how many times it loaded the model and how many batches and rows it served."),
    (PY, """def inference_server(args):
    path, ready = args
    model = np.load(path)
    weights, bias, loads = model["weights"], float(model["bias"]), 1
    inbox = stemnb.ReceivePort("inference")
    ready.send(inbox.send_port)
    batches = rows = 0
    for message in inbox:
        if message is None:
            break
        batch_id, features, reply = message
        reply.send((batch_id, 1 / (1 + np.exp(-(features @ weights + bias)))))
        batches, rows = batches + 1, rows + len(features)
    ready.send({"model loads": loads, "batches": batches, "rows": rows})
    inbox.close()

ready, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
servers = []
for i in range(2):
    await stemnb.spawn(inference_server, (str(model_path), ready.send_port), on_exit=exits.send_port,
                       debug_name=f"inference-{i}")
    servers.append(ready.receive(timeout=60))

def infer(rows_per_batch):
    \"\"\"Send the test set in batches, round-robin over the servers; return the probabilities in order.\"\"\"
    replies = stemnb.ReceivePort("predictions")
    batches = range(0, len(x_test), rows_per_batch)
    for n, start in enumerate(batches):
        servers[n % len(servers)].send((n, x_test[start:start + rows_per_batch], replies.send_port))
    answers = dict(replies.receive(timeout=60) for _ in batches)
    replies.close()
    return np.concatenate([answers[n] for n in range(len(batches))])"""),
    (MD, "## Batched inference"),
    (PY, """probabilities = infer(100)
predicted = (probabilities > 0.5).astype(int)
print(f"Processed {len(predicted):,} rows in {len(x_test) // 100} batches over {len(servers)} isolates")
print(f"accuracy on the test set: {(predicted == y_test).mean():.3f}")
print(f"average confidence: {np.maximum(probabilities, 1 - probabilities).mean():.3f}")
print("same as the kernel's own predictions:", np.allclose(probabilities, sigmoid(x_test @ weights + bias)))"""),
    (MD, "## Why batch\n\nEvery request is a message each way. 2,000 one-row requests and "
         "twenty 100-row batches give the same answers; the batches need a hundredth of the "
         "messages. The times vary from run to run (printed as `DURATION` by the output "
         "check); on this machine the batches are many times faster."),
    (PY, """started = time.perf_counter()
one_by_one = infer(1)
single = time.perf_counter() - started
started = time.perf_counter()
batched = infer(100)
in_batches = time.perf_counter() - started
print(f"2,000 requests of 1 row:  {single * 1e3:.1f} ms")
print(f"20 requests of 100 rows: {in_batches * 1e3:.1f} ms")
print("same answers:", np.allclose(one_by_one, batched))"""),
    (PY, """for server in servers:
    server.send(None)
for report in sorted(str(ready.receive(timeout=60)) for _ in servers):
    print(report)
print("servers ended:", [exits.receive(timeout=60) for _ in servers] == [None, None])
ready.close()
exits.close()
model_dir.cleanup()"""),
]

RAY_TRACING = [
    (MD, """# A ray tracing renderer

Every pixel of a ray-traced image is computed on its own, so an image splits into bands of rows
that render in parallel. The Dart example colours pixels by their position and renders four
tiles with `Isolate.run`. Here a real, small ray tracer in numpy (three spheres on a checkered
floor, diffuse light, hard shadows, a sky gradient) renders a 160 × 100 image. The bands are
rendered on an `IsolatePool` straight into one `shared_array`, so no pixel is copied back;
Dart's way, tiles returned and joined, gives the same image. A text preview shows the result."""),
    (PY, "import numpy as np\n\nimport stemnb"),
    (MD, "## The scene and the tracer\n\nOne primary ray per pixel, vectorised over a band of "
         "rows. A hit point is lit if the ray towards the light reaches no sphere."),
    (PY, """SPHERES = [((0.0, 0.0, -3.2), 1.0, (255, 140, 120)),
           ((1.7, -0.4, -2.8), 0.6, (140, 255, 160)),
           ((-1.8, -0.3, -3.8), 0.7, (150, 180, 255))]
LIGHT = np.array([-0.6, 1.0, 0.5]) / np.linalg.norm([-0.6, 1.0, 0.5])

def dot(a, b):
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]

def hit_sphere(origin, direction, centre, radius):
    \"\"\"Distance along each ray to the sphere, inf where it misses.\"\"\"
    oc = origin - np.array(centre)
    b = dot(direction, oc)
    disc = b * b - (dot(oc, oc) - radius * radius)
    t = -b - np.sqrt(np.maximum(disc, 0))
    return np.where((disc > 0) & (t > 1e-4), t, np.inf)

def trace(direction):
    origin = np.zeros(3)
    distances = [hit_sphere(origin, direction, c, r) for c, r, _ in SPHERES]
    floor = np.where(direction[..., 1] < 0, -1.0 / np.minimum(direction[..., 1], -1e-9), np.inf)
    nearest = np.min(distances + [floor], axis=0)
    hit = np.isfinite(nearest)
    point = direction * np.where(hit, nearest, 0.0)[..., None]
    colour = (10 + 50 * np.clip(direction[..., 1], 0, 1))[..., None] * np.array([0.6, 0.8, 1.0])  # dark sky
    normal = np.zeros_like(point)
    base = np.zeros_like(point)
    hit_floor = np.isfinite(floor) & (floor == nearest)
    checker = (np.floor(point[..., 0]) + np.floor(point[..., 2])) % 2 == 0
    base[hit_floor] = np.where(checker[hit_floor, None], 220.0, 60.0)
    normal[hit_floor] = (0.0, 1.0, 0.0)
    for (centre, _, sphere_colour), t in zip(SPHERES, distances, strict=True):
        on = np.isfinite(t) & (t == nearest)
        base[on] = sphere_colour
        normal[on] = (point[on] - centre) / np.linalg.norm(point[on] - centre, axis=-1, keepdims=True)
    lift = point + normal * 1e-3
    shadowed = np.any([np.isfinite(hit_sphere(lift, np.broadcast_to(LIGHT, lift.shape), c, r)) for c, r, _ in SPHERES], axis=0)
    light = 0.15 + 0.85 * np.clip(dot(normal, LIGHT[None, None, :]), 0, 1) * ~shadowed
    colour[hit] = base[hit] * light[hit, None]
    return np.clip(colour, 0, 255).astype(np.uint8)

def render_rows(image, y0, y1):
    \"\"\"Trace rows ``y0:y1`` of ``image`` (height, width, 3) into it, in place.\"\"\"
    height, width, _ = image.shape
    ys, xs = np.mgrid[y0:y1, 0:width]
    direction = np.stack([(2 * (xs + 0.5) / width - 1) * 0.9 * width / height,
                          (1 - 2 * (ys + 0.5) / height) * 0.9, -np.ones(xs.shape)], axis=-1)
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    image[y0:y1] = trace(direction)"""),
    (MD, "## Render in bands\n\nEight bands of rows on a pool of two; each call writes its "
         "band into the shared image and returns nothing."),
    (PY, """width, height, bands = 160, 100, 8
image = stemnb.shared_array((height, width, 3), dtype="uint8", fill=0)
edges = np.linspace(0, height, bands + 1).astype(int)
with stemnb.IsolatePool(2, debug_name="raytracer") as pool:
    calls = [pool.run(render_rows, image, y0, y1) for y0, y1 in zip(edges[:-1], edges[1:], strict=True)]
    for call in calls:
        call.result(timeout=60)
    print(f"Ray tracing scene: {width}x{height}, {bands} bands of {height // bands}-{-(-height // bands)} rows")
    print(f"Rendered {width * height:,} pixels")

    def render_tile(y0, y1):                   # Dart's way: each tile comes back as its own array
        tile = np.zeros((height, width, 3), dtype=np.uint8)
        render_rows(tile, y0, y1)
        return tile[y0:y1]
    tiles = [pool.run(render_tile, y0, y1) for y0, y1 in zip(edges[:-1], edges[1:], strict=True)]
    joined = np.concatenate([tile.result(timeout=60) for tile in tiles])

reference = np.zeros((height, width, 3), dtype=np.uint8)
render_rows(reference, 0, height)
print("bands == tiles joined == one render in the kernel:",
      np.array_equal(image, joined) and np.array_equal(image, reference))"""),
    (MD, "## A text preview\n\nBlocks of 2 × 5 pixels (about a character's shape) averaged "
         "to a brightness, drawn with ten characters from dark to light: three lit spheres "
         "with shadows on the checkered floor, under a dark sky."),
    (PY, """luma = image @ np.array([0.299, 0.587, 0.114])
blocks = luma.reshape(height // 5, 5, width // 2, 2).mean(axis=(1, 3))
ramp = " .:-=+*#%@"
for row in blocks:
    print("".join(ramp[min(int(v / 256 * len(ramp)), len(ramp) - 1)] for v in row))
del image
print("shared image released")"""),
]

MINING = [
    (MD, """# A blockchain mining simulation

Mining searches for a nonce that gives a block a hash below a target: with SHA-256 and a
difficulty of 4, the hex digest must start with `0000`, which takes about 65,000 tries on
average. Nonces can be tried in any order, so the search splits across isolates. The Dart
example gives four `Isolate.run` calls a million nonces each, with a toy 32-bit hash. Here
`hashlib.sha256` is used, and the search is made deterministic: miner isolates try interleaved
nonces, the first one to find a valid nonce tells the kernel, the kernel tells every miner to
stop once past that nonce, and the lowest valid nonce wins: the one a single miner would have
found. Three blocks are mined into a chain. Last, the same race with pool futures, where the
first result cancels the other searches."""),
    (PY, "import concurrent.futures\nimport hashlib\n\nimport stemnb"),
    (PY, """DIFFICULTY = 4

def block_hash(index, previous_hash, data, nonce):
    return hashlib.sha256(f"{index}|{previous_hash}|{data}|{nonce}".encode()).hexdigest()

def is_valid(digest, difficulty=DIFFICULTY):
    return digest.startswith("0" * difficulty)"""),
    (MD, "## Miner isolates\n\nA miner gets `(\"mine\", block, start, stride)` and tries `start`, "
         "`start + stride`, ... Every 2,000 tries it looks at its inbox without waiting "
         "(`receive(timeout=0)`) for a bound on the current block. It reports a valid nonce "
         "as soon as it finds one (its later nonces are all larger, so it stops), and reports "
         "`done` once it has passed the bound."),
    (PY, """def miner(args):
    name, main_port = args
    inbox = stemnb.ReceivePort(name)
    main_port.send(inbox.send_port)
    for message in inbox:
        if message is None:
            break
        if message[0] == "bound":               # for a block this miner has finished: stale
            continue
        _, block, start, stride = message
        index, previous_hash, data = block
        bound, nonce, tried = None, start, 0
        while bound is None or nonce < bound:
            if tried % 2_000 == 0:
                try:
                    kind, block_index, value = inbox.receive(timeout=0)
                    if block_index == index:    # a bound for an older block is stale
                        bound = value
                    continue
                except TimeoutError:
                    pass
            digest = block_hash(index, previous_hash, data, nonce)
            tried += 1
            if is_valid(digest):
                main_port.send(("found", name, nonce, digest))
                break
            nonce += stride
        main_port.send(("done", name, index, tried))
    inbox.close()

reports, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
miners = []
for i in range(2):
    await stemnb.spawn(miner, (f"miner-{i}", reports.send_port), on_exit=exits.send_port, debug_name=f"miner-{i}")
    miners.append(reports.receive(timeout=60))"""),
    (PY, """def mine(block):
    \"\"\"Mine ``block`` on every miner; return the lowest valid nonce and its hash.\"\"\"
    for i, port in enumerate(miners):
        port.send(("mine", block, i, len(miners)))
    found, done = [], 0
    while done < len(miners):
        kind, name, *rest = reports.receive(timeout=120)
        if kind == "found":
            if not found or rest[0] < min(found)[0]:
                for port in miners:              # stop once past this nonce
                    port.send(("bound", block[0], rest[0]))
            found.append(tuple(rest))
        else:
            done += 1
    return min(found)

chain = [(0, "0" * 64, "genesis", 0, block_hash(0, "0" * 64, "genesis", 0))]
print(f"Mining with difficulty {DIFFICULTY} using {len(miners)} miner isolates")
for index, data in enumerate(["alice pays bob 5", "bob pays carol 2", "carol pays dave 1"], start=1):
    previous_hash = chain[-1][4]
    nonce, digest = mine((index, previous_hash, data))
    chain.append((index, previous_hash, data, nonce, digest))
    print(f"block {index}: nonce {nonce:>6}, hash {digest[:24]}...  ({data})")"""),
    (MD, "## Check the chain\n\nEvery hash is recomputed, is valid, and links to the block "
         "before; and for the first block, a plain sequential search finds the same nonce."),
    (PY, """for index, previous_hash, data, nonce, digest in chain[1:]:
    assert block_hash(index, previous_hash, data, nonce) == digest and is_valid(digest)
    assert previous_hash == chain[index - 1][4]
print("chain valid:", True)
first = next(n for n in range(10**7) if is_valid(block_hash(1, chain[0][4], chain[1][2], n)))
print("block 1 nonce is the lowest valid one:", first == chain[1][3])
for port in miners:
    port.send(None)
print("miners ended:", [exits.receive(timeout=60) for _ in miners] == [None, None])"""),
    (MD, "## The first finder cancels the others\n\nDart's structure: a nonce range per call. "
         "With stemnb futures, the kernel waits for the first call that found a nonce and "
         "calls `cancel()` on the rest, which ends the processes still running them (the pool "
         "starts new ones). Which range wins depends on timing, so the notebook prints only "
         "checks that hold every time."),
    (PY, """def scan(index, previous_hash, data, start, stop):
    for nonce in range(start, stop):
        digest = block_hash(index, previous_hash, data, nonce)
        if is_valid(digest):
            return nonce, digest
    return None

block = (4, chain[-1][4], "dave pays erin 3")
with stemnb.IsolatePool(2, debug_name="range-miners") as pool:
    pending = {pool.run(scan, *block, start, start + 200_000) for start in range(0, 800_000, 200_000)}
    winner = None
    while pending and winner is None:
        finished, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
        winner = next((f.result() for f in finished if f.result() is not None), None)
    for future in pending:
        future.cancel()
    print("a valid nonce was found:", winner is not None and is_valid(block_hash(*block, winner[0])))
    print("every other search has ended:", all(f.done() for f in pending))"""),
    (PY, """reports.close()
exits.close()
print("ports closed")"""),
]

VIDEO = [
    (MD, """# Video processing with isolates

Frames of a video can be filtered independently, so a clip splits into runs of frames across
isolates. The Dart example greyscales sixty 640 × 480 frames, one `Isolate.run` each, copying
every frame there and back. Here a synthetic clip (a drifting gradient with a bright square
moving along a known path) lives in one `shared_array`, and each stage is a round of pool calls
over runs of frames that read and write the shared arrays in place: no frame crosses a pipe.
Stage one greyscales, as in Dart; stage two finds the moving object, reading the previous frame
too (which another process may have greyscaled), so it runs after stage one has finished. The
tracked positions are checked against the path the generator used."""),
    (PY, "import numpy as np\n\nimport stemnb"),
    (MD, "## A synthetic clip\n\n48 RGBA frames of 96 × 128 pixels; the square is 10 pixels "
         "wide, at `(20 + 2t, 15 + t)` in frame t."),
    (PY, """frames, height, width, side = 48, 96, 128, 10

def square_at(t):
    return 20 + 2 * t, 15 + t                   # (x, y) of the top-left corner

def make_clip(clip):
    ys, xs = np.mgrid[0:height, 0:width]
    for t in range(frames):
        clip[t, ..., 0] = (xs + 2 * t) % 160    # a gradient drifting to the left
        clip[t, ..., 1] = (ys + t) % 120
        clip[t, ..., 2] = 90
        clip[t, ..., 3] = 255
        x, y = square_at(t)
        clip[t, y:y + side, x:x + side, :3] = 255

clip = stemnb.shared_array((frames, height, width, 4), dtype="uint8", fill=0)
grey = stemnb.shared_array((frames, height, width), dtype="uint8", fill=0)
make_clip(clip)
print(f"Processing {frames} video frames of {width}x{height}, {clip.nbytes / 2**20:.1f} MiB")"""),
    (MD, "## Two stages on a pool\n\n`greyscale` is Dart's `(r + g + b) ~/ 3`. `track` "
         "thresholds each grey frame (only the square is brighter than 200), takes the "
         "centroid of the bright pixels and, from frame 1 on, counts the pixels that changed "
         "by more than 30 since the previous frame: the square's moving edges, and, from "
         "frame 17 on, the column where the red gradient wraps around (from frame 25, the "
         "row where the green one does too)."),
    (PY, """def greyscale(clip, grey, first, last):
    rgb = clip[first:last, ..., :3].astype(np.uint16)
    grey[first:last] = rgb.sum(axis=-1) // 3

def track(grey, first, last):
    found = []
    for t in range(first, last):
        ys, xs = np.nonzero(grey[t] > 200)
        moved = int((np.abs(grey[t].astype(int) - grey[t - 1]) > 30).sum()) if t else 0
        found.append((t, float(xs.mean()), float(ys.mean()), moved))
    return found

runs = [(first, min(first + 12, frames)) for first in range(0, frames, 12)]
with stemnb.IsolatePool(2, debug_name="video") as pool:
    for call in [pool.run(greyscale, clip, grey, first, last) for first, last in runs]:
        call.result(timeout=60)                 # every frame is grey before tracking starts
    print(f"stage 'greyscale': {len(runs)} runs of frames done")
    tracks = [row for part in pool.map(lambda run, grey=grey: track(grey, *run), runs) for row in part]
    print(f"stage 'track': {len(tracks)} frames")"""),
    (MD, "## Results"),
    (PY, """expected = [(x + (side - 1) / 2, y + (side - 1) / 2) for x, y in map(square_at, range(frames))]
errors = [max(abs(fx - ex), abs(fy - ey)) for (_, fx, fy, _), (ex, ey) in zip(tracks, expected, strict=True)]
for t, x, y, moved in tracks[:3] + tracks[-2:]:
    print(f"frame {t:>2}: square centre ({x:5.1f}, {y:5.1f}), changed pixels {moved}")
print("largest tracking error, pixels:", max(errors))
print("greyscale matches the kernel's:", np.array_equal(grey, clip[..., :3].astype(np.uint16).sum(axis=-1) // 3))
del clip, grey
print("shared arrays released")"""),
]

AUDIO = [
    (MD, """# An audio processing pipeline

Audio arrives as a stream of blocks, and most filters carry state from one block to the next.
The Dart example applies a one-pole (RC) low-pass filter to a second of a 440 Hz tone in
`Isolate.run`. Here a synthetic stereo signal (a tone per channel plus a 3 kHz whine) goes
through a pipeline of two isolates, block by block, as a real-time chain would: a **filter**
isolate that keeps each channel's last output between blocks, then a **level** isolate that
applies a gain and meters the peak, sending the blocks on to the kernel. The output is checked
against the whole signal filtered at once (the same, sample for sample), and the spectrum shows
the whine attenuated and the tones kept. The two channels are also filtered in parallel with
`pool.map`, the other way to split audio."""),
    (PY, "import math\n\nimport numpy as np\n\nimport stemnb"),
    (PY, """rate, seconds, block = 16_000, 2, 1_024
t = np.arange(rate * seconds) / rate
whine = 0.3 * np.sin(2 * np.pi * 3_000 * t)
signal = np.stack([0.6 * np.sin(2 * np.pi * 440 * t) + whine,      # left
                   0.6 * np.sin(2 * np.pi * 660 * t) + whine])     # right

def low_pass(samples, cutoff, previous=None):
    \"\"\"Dart's RC filter; ``previous`` is the last output of the block before (None: start).\"\"\"
    rc, dt = 1 / (cutoff * 2 * math.pi), 1 / rate
    alpha = dt / (rc + dt)
    out = np.empty_like(samples)
    last = samples[0] if previous is None else previous
    for i, x in enumerate(samples):
        last = last + alpha * (x - last)
        out[i] = last
    return out

def level(samples, gain):
    return samples * gain

print(f"{signal.shape[0]} channels x {signal.shape[1]:,} samples at {rate:,} Hz, blocks of {block}")"""),
    (MD, "## Two stages, block by block\n\nEach stage is an isolate that reads blocks from its "
         "inbox and sends them to the next stage's port; `None` ends the stream and passes "
         "on. The filter keeps `previous` per channel, so block edges leave no trace."),
    (PY, """def filter_stage(args):
    cutoff, next_stage, ready = args
    inbox = stemnb.ReceivePort("filter")
    ready.send(inbox.send_port)
    previous = [None, None]
    for message in inbox:
        if message is None:
            break
        number, samples = message
        out = np.stack([low_pass(samples[c], cutoff, previous[c]) for c in range(len(samples))])
        previous = [channel[-1] for channel in out]
        next_stage.send((number, out))
    next_stage.send(None)
    inbox.close()

def level_stage(args):
    gain, sink, ready = args
    inbox = stemnb.ReceivePort("level")
    ready.send(inbox.send_port)
    peak = 0.0
    for message in inbox:
        if message is None:
            break
        number, samples = message
        out = level(samples, gain)
        peak = max(peak, float(np.abs(out).max()))
        sink.send((number, out))
    sink.send(("peak", peak))
    inbox.close()

ready, sink, exits = stemnb.ReceivePort(), stemnb.ReceivePort("sink"), stemnb.ReceivePort()
await stemnb.spawn(level_stage, (1.5, sink.send_port, ready.send_port), on_exit=exits.send_port, debug_name="level")
level_port = ready.receive(timeout=60)
await stemnb.spawn(filter_stage, (1_000.0, level_port, ready.send_port), on_exit=exits.send_port, debug_name="filter")
filter_port = ready.receive(timeout=60)

starts = range(0, signal.shape[1], block)
for number, start in enumerate(starts):
    filter_port.send((number, signal[:, start:start + block]))
filter_port.send(None)
numbers, blocks = [], []
for number, samples in sink:
    if number == "peak":
        peak = samples
        break
    numbers.append(number)
    blocks.append(samples)
output = np.concatenate(blocks, axis=1)
print(f"{len(blocks)} blocks through the pipeline, in order: {numbers == list(range(len(starts)))}")
print(f"peak level after gain: {peak:.3f}")"""),
    (MD, "## Checks\n\nThe whole signal filtered at once gives exactly the same samples. The "
         "spectrum's amplitude at each frequency, before and after the filter (the 1.5 gain "
         "taken out), in decibels: the tones below the 1 kHz cutoff lose little, the 3 kHz "
         "whine much more (a one-pole filter falls off gently, 6 dB per octave)."),
    (PY, """whole = np.stack([level(low_pass(signal[c], 1_000.0), 1.5) for c in range(2)])
print("same as filtering the whole signal:", np.array_equal(output, whole))

def amplitude(samples, frequency):
    spectrum = np.abs(np.fft.rfft(samples)) * 2 / len(samples)
    return spectrum[int(round(frequency * len(samples) / rate))]

for c, (name, tone) in enumerate([("left", 440), ("right", 660)]):
    for frequency in (tone, 3_000):
        change = 20 * math.log10(amplitude(output[c] / 1.5, frequency) / amplitude(signal[c], frequency))
        print(f"{name:>5} {frequency:>5} Hz: {change:+.1f} dB")"""),
    (MD, "## Channels in parallel\n\nThe filter is sequential in time, but the channels are "
         "independent: `pool.map` filters each in its own process."),
    (PY, """with stemnb.IsolatePool(2, debug_name="audio") as pool:
    channels = list(pool.map(lambda samples: low_pass(samples, 1_000.0), list(signal)))
print("channels filtered in parallel match:", np.array_equal(np.stack(channels) * 1.5, whole))
print("stages ended:", [exits.receive(timeout=60) for _ in range(2)] == [None, None])
for port in (ready, sink, exits):
    port.close()"""),
]

BEST_PRACTICES = [
    (MD, """# Best practices, demonstrated

The Dart catalogue ends with ten rules for isolates, printed as a list. This notebook shows each
one with stemnb, in a cell or two, and a *don't* where the mistake is easy to make. The other
pattern notebooks go deeper; where one does, its number is given."""),
    (PY, "import concurrent.futures\nimport os\n\nimport loky\nimport numpy as np\n\nimport stemnb"),
    (MD, "## 1. `run` for one-shot work\n\nA call in a warm process of the default pool; "
         "no ports to manage (notebooks 01 and 19)."),
    (PY, "await stemnb.run(lambda n: sum(range(n)), 1_000)"),
    (MD, "## 2. Size pools to the CPUs you may use\n\n`loky.cpu_count()` respects container "
         "and affinity limits, which `os.cpu_count()` does not; the default pool uses it. "
         "More processes than CPUs only adds switching (notebook 20)."),
    (PY, """usable = loky.cpu_count()
print("usable CPUs <= CPUs in the machine:", usable <= os.cpu_count())
print("default pool size == usable CPUs:", stemnb.default_pool().statistics().size == usable)"""),
    (MD, "## 3. Move data efficiently\n\nLarge arrays travel through shared memory, and a "
         "received array is read-only, so nobody believes they changed the sender's copy. "
         "To work on one array in place from several processes, allocate it with "
         "`shared_array` (notebooks 17 and 31)."),
    (PY, """big = np.arange(1_000_000, dtype=np.float64)              # 8 MB: sent through /dev/shm
received_writeable = await stemnb.run(lambda a: a.flags.writeable, big)
print("an array received by an isolate is writeable:", received_writeable)

shared = stemnb.shared_array(1_000, dtype="int64", fill=0)
def fill(a):
    a[:] = 7
await stemnb.run(fill, shared)
print("a shared_array written by an isolate, seen here:", int(shared.sum()))
del shared"""),
    (MD, "## 4. Handle errors where you can see them\n\n`run` re-raises the original "
         "exception type, the remote traceback attached; a spawned isolate's uncaught error "
         "goes to its error port (notebooks 07 and 08)."),
    (PY, """try:
    await stemnb.run(int, "forty-two")
except ValueError as exc:
    print("ValueError:", exc, "| remote traceback attached:", type(exc.__cause__).__name__)

def faulty(_):
    raise RuntimeError("boom")

errors, exits = stemnb.ReceivePort(), stemnb.ReceivePort()
await stemnb.spawn(faulty, None, on_error=errors.send_port, on_exit=exits.send_port)
message, _, _ = errors.receive(timeout=60)
print("error port:", message, "| isolate ended:", exits.receive(timeout=60) is None)"""),
    (MD, "## 5. Manage the lifecycle\n\n*Don't* leave a receive port open: an isolate lives "
         "while it has one, as in Dart. *Do* close ports, use pools as context managers, and "
         "wait on an exit port, not on a sleep (notebooks 09, 11 and 29)."),
    (PY, """def forgetful(reply):
    _inbox = stemnb.ReceivePort()                # never closed: the isolate cannot end
    reply.send("work done")

replies = stemnb.ReceivePort()
isolate = await stemnb.spawn(forgetful, replies.send_port, on_exit=exits.send_port)
print(replies.receive(timeout=60), "| still alive:", isolate.is_alive)
isolate.kill()
print("ended after kill:", exits.receive(timeout=60) is None)

with stemnb.IsolatePool(2, debug_name="scoped") as pool:
    print("pool result:", pool.run(pow, 2, 8).result(timeout=60))
print("pool after the with block:", pool.statistics().state)"""),
    (MD, "## 6. Share nothing mutable\n\nArguments are copies. *Don't* expect an isolate's "
         "changes to a dict, or to a list in the notebook, to come back; return results "
         "(notebook 03)."),
    (PY, """settings = {"retries": 1}
seen = []
def mutate(config):
    config["retries"] = 99
    seen.append("called")                       # appends to the isolate's copy of `seen`
    return config
returned = await stemnb.run(mutate, settings)
print("kernel's dict:", settings, "| returned:", returned, "| kernel's list:", seen)"""),
    (MD, "## 7. Measure\n\nEvery pool keeps counters; see notebook 46 for timings."),
    (PY, """pool = stemnb.IsolatePool(2, debug_name="measured")
list(pool.map(abs, range(-10, 10)))
stats = pool.statistics()
print(f"submitted {stats.submitted}, completed {stats.completed}, failed {stats.failed}, queued {stats.queued}")
pool.close()"""),
    (MD, "## 8. Pick the communication pattern\n\nRequest-response with a reply port, "
         "fire-and-forget, publish-subscribe and streams: notebooks 45, 14 and 50. A reply "
         "port per request keeps answers from being mixed up:"),
    (PY, """def echo(reply_to):
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    for text, reply in inbox:
        reply.send(text.upper())
        if text == "bye":
            break
    inbox.close()

await stemnb.spawn(echo, replies.send_port, on_exit=exits.send_port)
echo_port = replies.receive(timeout=60)
answers = []
for text in ("hello", "bye"):
    reply = stemnb.ReceivePort()
    echo_port.send((text, reply.send_port))
    answers.append(reply.receive(timeout=60))
    reply.close()
print(answers, "| echo ended:", exits.receive(timeout=60) is None)"""),
    (MD, "## 9. Apply backpressure\n\n*Don't* submit a million calls at once. Keep a bounded "
         "number in flight and submit the next as one finishes (notebooks 24, 28 and 50 show "
         "credits, rate limits and demand)."),
    (PY, """with stemnb.IsolatePool(2, debug_name="bounded") as pool:
    pending, results, most = set(), [], 0
    for n in range(20):
        if len(pending) == 4:                   # at most four calls in flight
            done, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            results += [f.result() for f in done]
        pending.add(pool.run(pow, n, 2))
        most = max(most, len(pending))
    results += [f.result() for f in concurrent.futures.as_completed(pending)]
print("all results:", sorted(results) == [n * n for n in range(20)], "| most in flight:", most)"""),
    (MD, "## 10. Test isolate code at two levels\n\nThe logic as a plain function, then the "
         "isolate through its ports, with a timeout on every receive so a hang fails the "
         "test instead of freezing it."),
    (PY, """def shout(text):
    return text.upper() + "!"

assert shout("hi") == "HI!"                     # unit: no isolate needed

def shouter(reply_to):
    inbox = stemnb.ReceivePort()
    reply_to.send(inbox.send_port)
    reply_to.send(shout(inbox.receive(timeout=10)))
    inbox.close()

await stemnb.spawn(shouter, replies.send_port, on_exit=exits.send_port)
replies.receive(timeout=10).send("hi")
assert replies.receive(timeout=10) == "HI!"     # integration: through real ports
assert exits.receive(timeout=10) is None
print("both tests passed")"""),
    (PY, """for port in (errors, exits, replies):
    port.close()
stemnb.default_pool().close()
print("ports and default pool closed")"""),
]

NOTEBOOKS = {
    "52_network_requests.ipynb": NETWORK,
    "53_web_scraping.ipynb": SCRAPING,
    "54_batch_documents.ipynb": DOCUMENTS,
    "55_ml_inference.ipynb": INFERENCE,
    "56_ray_tracing.ipynb": RAY_TRACING,
    "57_blockchain_mining.ipynb": MINING,
    "58_video_processing.ipynb": VIDEO,
    "59_audio_processing.ipynb": AUDIO,
    "60_best_practices.ipynb": BEST_PRACTICES,
}
