"""One adapter per task-queue system: how the task benchmark enqueues and awaits tasks.

Every adapter starts a worker with concurrency 2 and offers ``enqueue(kind)`` (kind is "noop" or
"busy_1ms"), ``wait(handle)``, ``wait_all(handles)`` and ``close()``. The peers (Celery, Dramatiq)
and stemnb's Redis systems use the Redis server on 127.0.0.1:6379 in a dedicated database
(``STEMNB_BENCH_REDIS_DB``, default 13), which is flushed before and after each of them and never
touched otherwise.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from ._harness import ROOT, child_env
from ._taskwork import QUEUE, REDIS_DB, REDIS_URL

CONCURRENCY = 2
WAIT_S = 120.0


class TaskSystem:
    """A task queue under test: a producer here, a worker with ``CONCURRENCY`` slots."""

    name = "?"
    how = ""
    uses_redis = False  # its broker and backend are the Redis server (its CPU counts as the system's)

    def start(self, fns: SimpleNamespace) -> None:
        """Start the worker and return once it has run a task."""
        raise NotImplementedError

    def enqueue(self, kind: str) -> Any:
        """Enqueue one task of ``kind`` and return its handle."""
        raise NotImplementedError

    def wait(self, handle: Any, timeout: float = WAIT_S) -> None:
        """Block until the task of ``handle`` has a stored result; raise if it failed or timed out."""
        raise NotImplementedError

    def wait_all(self, handles: Sequence[Any]) -> None:
        """Block until every task of ``handles`` has a stored result."""
        for handle in handles:
            self.wait(handle)

    def close(self) -> None:
        """Stop the worker and release everything the system made."""

    def worker_pid(self) -> int | None:
        """The pid of the worker program when it runs apart from this producer, else None."""
        return None


class _Stemnb(TaskSystem):
    isolate = True

    def _make_broker_and_backend(self) -> tuple[Any, Any]:
        broker = _stemnb_api("InMemoryBroker", "stemnb._brokers.memory")()
        return broker, _stemnb_api("InMemoryResultBackend", "stemnb._backends.memory")()

    def start(self, fns: SimpleNamespace) -> None:
        self.broker, self.backend = self._make_broker_and_backend()
        registry = _stemnb_api("TaskRegistry", "stemnb._registry")()
        handler = _stemnb_api("TaskHandler", "stemnb._registry")
        for kind, fn in vars(fns).items():  # every task kind the child defined
            registry.register(kind, handler(fn, isolate=self.isolate))
        worker = _stemnb_api("Worker", "stemnb._worker._worker")
        self.worker = worker(self.broker, registry, self.backend, concurrency=CONCURRENCY)
        self.worker.start()
        self.stem = _stemnb_api("Stem", "stemnb._stem")(
            self.broker, self.backend, registry=registry
        )
        self.succeeded = _stemnb_api("TaskState", "stemnb._backend").SUCCEEDED
        self.wait(self.enqueue("noop"))

    def enqueue(self, kind: str) -> Any:
        return self.stem.enqueue(kind)

    def wait(self, handle: Any, timeout: float = WAIT_S) -> None:
        status = self.stem.wait_for_task(handle, timeout=timeout).result(timeout)
        if status is None or status.state != self.succeeded:
            raise RuntimeError(f"task {handle} ended as {status!r}")

    def wait_all(self, handles: Sequence[Any]) -> None:
        futures = [self.stem.wait_for_task(h, timeout=WAIT_S) for h in handles]
        for f in futures:
            status = f.result(WAIT_S)
            if status is None or status.state != self.succeeded:
                raise RuntimeError(f"a task ended as {status!r}")

    def close(self) -> None:
        if hasattr(self, "worker"):
            self.worker.shutdown().result(WAIT_S)


def _stemnb_api(name: str, home: str) -> Any:
    """Return ``stemnb.<name>``, or the object from its home module while the public table lacks it."""
    import importlib

    import stemnb

    try:
        return getattr(stemnb, name)
    except AttributeError:
        return getattr(importlib.import_module(home), name)


class StemnbIsolate(_Stemnb):
    name = "stemnb-isolate"
    how = (
        "`Worker(InMemoryBroker, InMemoryResultBackend, concurrency=2)`, tasks `TaskHandler(fn, isolate=True)` "
        "defined in `__main__`; `Stem.enqueue(name)` then `Stem.wait_for_task(id)`"
    )
    isolate = True


class StemnbIsolateRedis(_Stemnb):
    name = "stemnb-isolate-redis"
    uses_redis = True
    how = (
        "as stemnb-isolate with `RedisBroker` and `RedisResultBackend` (same Redis database as the "
        "peers); the worker runs in the producer's process, as in a notebook"
    )
    isolate = True

    def _make_broker_and_backend(self) -> tuple[Any, Any]:
        _flush_db()
        url = f"redis://127.0.0.1:6379/{REDIS_DB}"
        broker = _stemnb_api("RedisBroker", "stemnb._brokers.redis")(url, namespace="stemnb-bench")
        backend = _stemnb_api("RedisResultBackend", "stemnb._backends.redis")(
            url, namespace="stemnb-bench"
        )
        return broker, backend

    def close(self) -> None:
        try:
            super().close()
            for part in (self.broker, self.backend):
                getattr(part, "close", lambda: None)()
        finally:
            _flush_db()


class StemnbInline(_Stemnb):
    name = "stemnb-inline"
    how = "as stemnb-isolate with `TaskHandler(fn, isolate=False)`: the task runs in the worker's own process"
    isolate = False


def _flush_db() -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()


class _ExternalWorker(TaskSystem):
    """A peer whose worker is a separate command-line process."""

    proc: subprocess.Popen | None = None
    uses_redis = True

    def worker_pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def _spawn(self, argv: list[str]) -> None:
        _flush_db()
        self._log = tempfile.NamedTemporaryFile(prefix=f"stemnb-bench-{self.name}-", suffix=".log")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=child_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} worker exited {self.proc.returncode}: {self._log_tail()}"
                )
            try:
                self.wait(self.enqueue("noop"), timeout=5.0)
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise

    def _log_tail(self) -> str:
        self._log.flush()
        with open(self._log.name, errors="replace") as f:
            return "\n".join(f.read().splitlines()[-15:])

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown of the master and its children
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        _flush_db()
        self._log.close()


class Celery(_ExternalWorker):
    name = "celery"
    how = (
        "Celery prefork pool, `-c 2`, Redis broker and result backend (JSON); `task.delay()`, "
        "`AsyncResult.get()` on each (faster here than `ResultSet.get()`'s native join: ~640 vs ~440 tasks/s)"
    )

    def start(self, fns: SimpleNamespace) -> None:
        from . import _celery_app

        self.app = _celery_app
        self._spawn(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench._celery_app",
                "worker",
                "-P",
                "prefork",
                "-c",
                str(CONCURRENCY),
                "-Q",
                QUEUE,
                "-n",
                f"bench{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "warning",
            ]
        )
        self._wait_ready()

    def enqueue(self, kind: str) -> Any:
        return getattr(self.app, kind).delay()

    def wait(self, handle: Any, timeout: float = WAIT_S) -> None:
        handle.get(timeout=timeout)


class Dramatiq(_ExternalWorker):
    name = "dramatiq"
    how = (
        "Dramatiq worker `--processes 2 --threads 1`, Redis broker, Results middleware with RedisBackend; "
        "`actor.send()`, `message.get_result(block=True)`"
    )

    def start(self, fns: SimpleNamespace) -> None:
        from . import _dramatiq_app

        self.app = _dramatiq_app
        self._spawn(
            [
                sys.executable,
                "-m",
                "dramatiq",
                "bench._dramatiq_app",
                "--processes",
                str(CONCURRENCY),
                "--threads",
                "1",
                "-Q",
                QUEUE,
            ]
        )
        self._wait_ready()

    def enqueue(self, kind: str) -> Any:
        return getattr(self.app, kind).send()

    def wait(self, handle: Any, timeout: float = WAIT_S) -> None:
        handle.get_result(block=True, timeout=int(timeout * 1000))


class StemnbRedisWorkerProcess(_ExternalWorker, _Stemnb):
    """stemnb's worker as its own program; the producer side is ``_Stemnb``'s (Stem on Redis)."""

    name = "stemnb-redis-worker-process"
    how = (
        "`python -m stemnb worker bench._stemnb_app:registry -c 2` on `RedisBroker`/`RedisResultBackend` "
        "(same Redis database as the peers), tasks `TaskHandler(fn, isolate=True)` in bench/_stemnb_app.py; "
        "the producer's `Stem.enqueue(name)` then `Stem.wait_for_task(id)`, as stemnb-isolate-redis"
    )

    def start(self, fns: SimpleNamespace) -> None:
        from . import _stemnb_app

        self._spawn(
            [
                sys.executable,
                "-m",
                "stemnb",
                "worker",
                "bench._stemnb_app:registry",
                "--broker",
                REDIS_URL,
                "--namespace",
                _stemnb_app.NAMESPACE,
                "-c",
                str(CONCURRENCY),
            ]
        )
        self.broker = _stemnb_api("RedisBroker", "stemnb._brokers.redis")(
            REDIS_URL, namespace=_stemnb_app.NAMESPACE
        )
        self.backend = _stemnb_api("RedisResultBackend", "stemnb._backends.redis")(
            REDIS_URL, namespace=_stemnb_app.NAMESPACE
        )
        self.stem = _stemnb_api("Stem", "stemnb._stem")(self.broker, self.backend)
        self.succeeded = _stemnb_api("TaskState", "stemnb._backend").SUCCEEDED
        self._wait_ready()

    def close(self) -> None:
        super().close()  # SIGTERM: the program's warm shutdown, then the database is flushed
        for part in (getattr(self, "broker", None), getattr(self, "backend", None)):
            getattr(part, "close", lambda: None)()


TASK_SYSTEMS: dict[str, type[TaskSystem]] = {
    cls.name: cls
    for cls in (
        StemnbIsolate,
        StemnbInline,
        StemnbIsolateRedis,
        StemnbRedisWorkerProcess,
        Celery,
        Dramatiq,
    )
}
