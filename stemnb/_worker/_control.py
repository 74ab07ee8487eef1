"""The control plane: ping, stats, inspect, revoke, queue pause/resume/status and shutdown.

Commands travel as broker envelopes named ``__stem.control__`` on the worker's own queue
``<ns>.control.worker.<id>`` or the broadcast channel ``<ns>.control.broadcast``; replies
(``__stem.control.reply__``) go to ``<ns>.control.reply.<request id>``. :class:`ControlClient`
sends them and collects the replies.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .._broker import Broker
from .._envelope import Envelope, new_task_id
from .._events import WorkerEventType
from ._config import WorkerShutdownMode
from ._outage import Outage

if TYPE_CHECKING:
    from ._worker import Worker

log = logging.getLogger("stemnb.worker")

COMMAND = "__stem.control__"
REPLY = "__stem.control.reply__"


def worker_queue(namespace: str, worker_id: str) -> str:
    """The queue a single worker reads its control commands from."""
    return f"{namespace}.control.worker.{worker_id}"


def broadcast_channel(namespace: str) -> str:
    """The broadcast channel every worker of ``namespace`` listens to."""
    return f"{namespace}.control.broadcast"


def reply_queue(namespace: str, request_id: str) -> str:
    """The queue that collects the replies to one request."""
    return f"{namespace}.control.reply.{request_id}"


# -- worker side ------------------------------------------------------------------------------
def start(worker: Worker) -> None:
    """Consume the worker's control queue and the broadcast channel on a daemon thread."""
    consumer = worker.broker.consume(
        [worker_queue(worker.namespace, worker.worker_id)],
        prefetch=4,
        consumer_name=f"{worker.worker_id}-control",
        broadcasts=[broadcast_channel(worker.namespace)],
    )
    worker._control_consumer = consumer
    thread = threading.Thread(
        target=_serve, args=(worker, consumer, worker._control_stopped), name=f"stemnb-{worker.worker_id}-control",
        daemon=True,
    )
    worker._control_thread = thread
    thread.start()


def stop(worker: Worker) -> None:
    """Stop serving control commands and wait for the thread (idempotent; a command that is
    being served, such as a shutdown, is not waited for from its own thread)."""
    consumer = getattr(worker, "_control_consumer", None)
    if consumer is None:
        return
    worker._control_stopped.set()
    consumer.close()
    thread = worker._control_thread
    if thread is not None and thread is not threading.current_thread():
        thread.join(5.0)


def _serve(worker: Worker, consumer: Any, stopped: threading.Event) -> None:
    """Serve commands until the consumer is closed; a broker that cannot be reached is waited
    out (the thread must outlive an outage, or the worker stops answering for good)."""
    outage = Outage(worker.worker_id, "reading control commands")
    while not stopped.is_set():
        try:
            delivery = consumer.get(timeout=0.5)
        except Exception as exc:  # noqa: BLE001 - Redis restarting, a dropped connection...
            if consumer.closed:
                return
            stopped.wait(outage.failed(exc))
            continue
        outage.succeeded()
        if delivery is None:
            if consumer.closed:
                return
            continue
        try:
            handle_command(worker, delivery.envelope)
        except Exception:
            log.exception("worker %s: control command failed", worker.worker_id)
        finally:
            _ack(worker, delivery)


def _ack(worker: Worker, delivery: Any) -> None:
    try:
        worker.broker.ack(delivery)
    except Exception:  # noqa: BLE001 - its lease expires and the command is served again
        log.warning("worker %s: could not ack a control command", worker.worker_id, exc_info=True)


def handle_command(worker: Worker, envelope: Envelope) -> dict[str, Any] | None:
    """Run one control command and publish its reply; return the reply args."""
    if envelope.name != COMMAND:
        return None
    args = envelope.args
    command = args.get("command")
    targets = args.get("targets")
    if targets and worker.worker_id not in targets:
        return None
    worker.emit(WorkerEventType.CONTROL_RECEIVED, data={"command": command, "request_id": args.get("request_id")})
    after = None
    try:
        response, after = _dispatch(worker, command, args.get("params") or {})
        status, error = "ok", None
    except Exception as exc:
        response, status, error = {}, "error", f"{type(exc).__name__}: {exc}"
    reply = {
        "request_id": args.get("request_id"),
        "worker_id": worker.worker_id,
        "command": command,
        "status": status,
        "response": response,
        "error": error,
    }
    if args.get("reply_to"):
        worker.broker.publish(Envelope(REPLY, args=reply, queue=args["reply_to"]), queue=args["reply_to"])
    worker.emit(WorkerEventType.CONTROL_COMPLETED, data=reply)
    if after is not None:
        after()
    return reply


def _dispatch(worker: Worker, command: Any, params: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    if command == "ping":
        return ping(worker), None
    if command == "stats":
        return stats(worker), None
    if command == "inspect":
        return inspect(worker, bool(params.get("include_revoked"))), None
    if command == "revoke":
        ids = list(params.get("task_ids") or [])
        for task_id in ids:
            worker._revocations.revoke(
                task_id, terminate=bool(params.get("terminate")), reason=params.get("reason") or "revoked",
                persist=bool(params.get("persist", True)), expires=params.get("expires"),
            )
        return {"revoked": ids, "terminate": bool(params.get("terminate")), "expires": params.get("expires")}, None
    if command in ("queue_pause", "queue_resume"):
        queues = list(params.get("queues") or [worker.primary_queue])
        for queue in queues:
            (worker.pause_queue if command == "queue_pause" else worker.resume_queue)(queue)
        return {"queues": queues, "paused": worker.paused_queues()}, None
    if command == "queue_status":
        return {"paused": worker.paused_queues(), "queues": worker.subscription_queues}, None
    if command == "shutdown":
        mode = WorkerShutdownMode.parse(params.get("mode"))
        return {"mode": mode.value}, lambda: worker.shutdown(mode)
    raise ValueError(f"unknown control command {command!r}")


def ping(worker: Worker) -> dict[str, Any]:
    """The reply to ``ping``: worker id, primary queue, state and time."""
    return {"worker_id": worker.worker_id, "queue": worker.primary_queue, "state": worker.state.value, "timestamp": time.time()}


def stats(worker: Worker) -> dict[str, Any]:
    """The reply to ``stats``: counters, concurrency, queue depths and the held tasks."""
    active = worker._active.snapshot()
    depths: dict[str, int | None] = {}
    for queue in worker.subscription.queues:
        try:
            depths[queue] = worker.broker.pending_count(queue)
        except Exception:
            depths[queue] = None
    pool = worker.pool
    return {
        "worker_id": worker.worker_id,
        "namespace": worker.namespace,
        "state": worker.state.value,
        "queues": worker.subscription_queues,
        "concurrency": worker.active_concurrency,
        "max_concurrency": worker.autoscale_config.max_concurrency,
        "prefetch": worker.prefetch,
        "inflight": len(active),
        "running": sum(1 for t in active if t.running),
        "counters": dict(worker.counters),
        "queue_depth": depths,
        "isolates": pool.size if pool is not None and not pool.closed else 0,
        "started_at": worker.started_at,
        "last_lease_renewal": worker._leases.last_renewal,
        "active": [t.describe() for t in active],
    }


def inspect(worker: Worker, include_revoked: bool = False) -> dict[str, Any]:
    """The reply to ``inspect``: the running tasks (and the known revocations)."""
    out: dict[str, Any] = {"worker_id": worker.worker_id, "active": [t.describe() for t in worker._active.running()]}
    if include_revoked:
        out["revoked"] = worker._revocations.describe()
    return out


# -- client side ------------------------------------------------------------------------------
class ControlClient:
    """Sends control commands to workers through a broker and collects their replies.

    Each call waits up to ``timeout`` seconds, or until ``expected`` replies arrived, and returns
    the reply dicts (``worker_id``, ``status``, ``response``, ``error``).
    """

    def __init__(self, broker: Broker, namespace: str = "stem", timeout: float = 2.0) -> None:
        self.broker = broker
        self.namespace = namespace
        self.timeout = timeout

    def send(
        self,
        command: str,
        params: dict[str, Any] | None = None,
        *,
        worker_id: str | None = None,
        timeout: float | None = None,
        expected: int | None = None,
    ) -> list[dict[str, Any]]:
        """Send ``command`` to one worker (``worker_id``) or all; return the replies."""
        request_id = new_task_id()
        reply_to = reply_queue(self.namespace, request_id)
        args = {"command": command, "params": dict(params or {}), "request_id": request_id, "reply_to": reply_to}
        consumer = self.broker.consume([reply_to], prefetch=64, consumer_name=f"control-{request_id}")
        try:
            envelope = Envelope(COMMAND, args=args)
            if worker_id is not None:
                self.broker.publish(envelope, queue=worker_queue(self.namespace, worker_id))
                expected = 1 if expected is None else expected
            else:
                self.broker.broadcast(broadcast_channel(self.namespace), envelope)
            return _collect(self.broker, consumer, timeout if timeout is not None else self.timeout, expected)
        finally:
            consumer.close()
            self.broker.purge(reply_to)

    def ping(self, **kw: Any) -> list[dict[str, Any]]:
        """Ask workers for a liveness reply."""
        return self.send("ping", **kw)

    def stats(self, **kw: Any) -> list[dict[str, Any]]:
        """Ask workers for their stats snapshot."""
        return self.send("stats", **kw)

    def inspect(self, include_revoked: bool = False, **kw: Any) -> list[dict[str, Any]]:
        """Ask workers for their running tasks (and revocations)."""
        return self.send("inspect", {"include_revoked": include_revoked}, **kw)

    def revoke(self, *task_ids: str, terminate: bool = False, reason: str = "revoked", expires: float | None = None,
               **kw: Any) -> list[dict[str, Any]]:
        """Revoke ``task_ids`` (persisted by the workers' revoke store); ``terminate`` stops running ones;
        ``expires``: seconds after which the revocation lapses (kept until pruned without it)."""
        params = {"task_ids": list(task_ids), "terminate": terminate, "reason": reason, "expires": expires}
        return self.send("revoke", params, **kw)

    def pause_queue(self, *queues: str, **kw: Any) -> list[dict[str, Any]]:
        """Pause ``queues`` (the workers' primary queue when none is given)."""
        return self.send("queue_pause", {"queues": list(queues)}, **kw)

    def resume_queue(self, *queues: str, **kw: Any) -> list[dict[str, Any]]:
        """Resume ``queues``."""
        return self.send("queue_resume", {"queues": list(queues)}, **kw)

    def queue_status(self, **kw: Any) -> list[dict[str, Any]]:
        """Ask workers which queues are paused."""
        return self.send("queue_status", **kw)

    def shutdown(self, mode: str = "warm", **kw: Any) -> list[dict[str, Any]]:
        """Ask workers to shut down (``warm``, ``soft`` or ``hard``)."""
        return self.send("shutdown", {"mode": mode}, **kw)


def _collect(broker: Broker, consumer: Any, timeout: float, expected: int | None) -> list[dict[str, Any]]:
    replies: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while expected is None or len(replies) < expected:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        delivery = consumer.get(timeout=remaining)
        if delivery is None:
            continue
        broker.ack(delivery)
        if delivery.envelope.name == REPLY:
            replies.append(dict(delivery.envelope.args))
    return replies
